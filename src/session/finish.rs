//! Ending a session: the close frame the ending calls for, the wait for the client's answer,
//! and the one log line.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::timeout;

use super::end::End;
use crate::observe::metrics::Metrics;
use crate::wire::Socket;

/// Sends the close frame the ending calls for, waits (at most `close_timeout`) for the
/// client's answer, and logs the end once.
pub(crate) async fn finish(
    socket: &mut Socket,
    peer: SocketAddr,
    end: End,
    metrics: &Metrics,
    close_timeout: Duration,
) {
    end.log(peer);
    end.count(metrics);
    // After a broken frame, or in the middle of a message the server will not read, the
    // rest of the stream cannot be read as frames.
    let stream_is_unparsable = matches!(end, End::Violation(_) | End::ShortOfMemory);
    if let End::Reset = end {
        socket.reset_on_drop();
        return;
    }
    let Some(frame) = end.close_frame() else {
        if let End::ClientClosed(_) = end {
            // The reply to the client's close frame, if tungstenite has queued one.
            let _ = timeout(close_timeout, socket.flush()).await;
        }
        return;
    };
    let _ = timeout(close_timeout, async {
        if socket.close(frame).await.is_err() {
            return;
        }
        if stream_is_unparsable {
            // After a broken frame the rest of the stream cannot be read as frames; it is
            // drained instead, so that the close frame reaches the client intact.
            socket.linger().await;
            return;
        }
        // Read until the client's close frame (or anything that ends the stream).
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}
