//! One client, from the accepted TCP socket to the last close frame: the handshake (or a
//! plain HTTP answer), then the mode's session loop, then the close. However it ends, the
//! client is told why with a close frame when it is still there to hear it, and the end is
//! logged once with the peer address.
//!
//! - `state`: what every connection task shares.
//! - `handshake`: TLS, reading the request within the timeout, the upgrade.
//! - `endpoints`: the answers that need the server's state (`/healthz`, `/stats`,
//!   `/metrics`).

mod endpoints;
mod handshake;
mod inspect;
pub(crate) mod state;

use std::net::SocketAddr;

use log::info;
use tokio::net::TcpStream;

use crate::config::Mode;
use crate::observe::escape::Escaped;
use crate::session::finish::finish;
use crate::session::{Session, broadcast, echo, scenario};
use crate::sync::shutdown::Shutdown;
use handshake::Target;
use state::ServerState;

/// Serves one accepted TCP connection until it ends or the server shuts down.
///
/// Each phase's future is boxed: a task's future is as large as the largest state it can be
/// in, for as long as the task lives, so the handshake's buffers and the other modes' loops
/// would otherwise sit in every idle connection.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    state: &ServerState,
    mut shutdown: Shutdown,
) {
    let Some((mut socket, target)) =
        Box::pin(handshake::run(stream, peer, state, &mut shutdown)).await
    else {
        return;
    };
    let Target {
        path,
        history_notice,
        scenario,
        inspect,
    } = target;
    let shown = Escaped(&path).to_string();
    info!(peer:% = peer, path = shown.as_str(); "peer {peer} connected to {shown}");
    drop(shown);
    let metrics = &state.metrics;
    metrics.websocket_open.increment(1);
    let mut session = Session::new(&mut socket, peer, &state.config, metrics);
    let welcome = &state.welcome;
    let end = match inspect {
        Some(description) => Box::pin(session.describe_handshake(description))
            .await
            .err(),
        None => None,
    };
    let Err(end) = match (end, scenario) {
        (Some(end), _) => Err(end),
        (None, Some(scenario)) => {
            let room = (path.as_str(), history_notice);
            let rooms = &state.rooms;
            Box::pin(scenario::serve(
                &mut session,
                &scenario,
                rooms,
                welcome,
                room,
                &mut shutdown,
            ))
            .await
        }
        (None, None) if state.config.mode == Mode::Broadcast => {
            let room = (path.as_str(), history_notice);
            let rooms = &state.rooms;
            Box::pin(broadcast::run(
                &mut session,
                rooms,
                welcome,
                room,
                &mut shutdown,
            ))
            .await
        }
        (None, None) => Box::pin(echo::run(&mut session, welcome, &mut shutdown)).await,
    };
    session.flush_metrics();
    let close_timeout = state.config.close_timeout;
    Box::pin(finish(&mut socket, peer, end, metrics, close_timeout)).await;
    metrics.websocket_open.decrement(1);
}
