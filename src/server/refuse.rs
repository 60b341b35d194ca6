//! Answering a client the connection limits refused: `503` when every slot is taken, `429`
//! when its address holds its share.

use std::net::SocketAddr;

use log::info;
use tokio::net::TcpStream;

use crate::conn::state::ServerState;
use crate::http;
use crate::limits::connection_limit::Refusal;
use crate::sync::shutdown::Shutdown;
use crate::wire::ClientStream;

/// Answers a refused client (`503` or `429`), after reading its request so the
/// answer is not lost to a reset.
pub(super) async fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    refusal: Refusal,
    state: &ServerState,
    mut shutdown: Shutdown,
) {
    info!(peer:% = peer;"peer {peer}: refused, {}", refusal.reason());
    let response = match refusal {
        Refusal::Full => http::Response::busy(),
        Refusal::Address => http::Response::too_many_from_address(),
    };
    let mut stream = ClientStream::Plain(stream);
    tokio::select! {
        _ = tokio::time::timeout(state.config.handshake_timeout, async {
            if http::read_request(&mut stream).await.is_ok() {
                state.metrics.http_answer(response.status.as_u16());
                let _ = http::answer(&mut stream, &response).await;
            }
        }) => {}
        _ = shutdown.recv() => {}
    }
}
