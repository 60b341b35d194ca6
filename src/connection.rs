//! One client, from the accepted TCP socket to the last close frame: the handshake, then the
//! mode's session loop, then the close. However it ends, the client is told why with a close
//! frame when it is still there to hear it, and the end is logged once with the peer address.

use std::net::SocketAddr;

use log::info;
use tokio::net::TcpStream;

use crate::config::Mode;
use crate::handshake;
use crate::session::end::finish;
use crate::session::{Session, broadcast, echo};
use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// Serves one accepted TCP connection until it ends or the server shuts down.
///
/// Each phase's future is boxed: a task's future is as large as the largest state it can be
/// in, for as long as the task lives, so the handshake's buffers and the other modes' loops
/// would otherwise sit in every idle connection.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    mut shutdown: Shutdown,
) {
    let Some((mut socket, path)) =
        Box::pin(handshake::run(stream, peer, shared, &mut shutdown)).await
    else {
        return;
    };
    info!(peer:% = peer, path = path.as_str(); "peer {peer} connected to {path}");
    shared.metrics.websocket_open.increment(1);
    let mut session = Session::new(&mut socket, peer, shared);
    let Err(end) = match shared.config.mode {
        Mode::Echo | Mode::Raw => Box::pin(echo::run(&mut session, shared, &mut shutdown)).await,
        Mode::Broadcast => {
            Box::pin(broadcast::run(&mut session, shared, &path, &mut shutdown)).await
        }
    };
    session.flush_metrics();
    Box::pin(finish(&mut socket, peer, end, shared)).await;
    shared.metrics.websocket_open.decrement(1);
}
