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
use std::sync::Arc;

use log::info;
use tokio::net::TcpStream;

use crate::config::Mode;
use crate::observe::escape::Escaped;
use crate::session::end::End;
use crate::session::finish::finish;
use crate::session::parking::{self, Start};
use crate::session::{Session, broadcast, scenario};
use crate::sync::shutdown::Shutdown;
use crate::wire::{ParkedSocket, Socket, Upgraded};
use handshake::Target;
use state::ServerState;

/// Serves one accepted TCP connection until it ends or the server shuts down; `slot` (the
/// connection's place under the limits) is held until then.
///
/// Each phase's future is boxed: a task's future is as large as the largest state it can be
/// in, for as long as the task lives, so the handshake's buffers and the other modes' loops
/// would otherwise sit in every idle connection. Echo and raw sessions, the usual case,
/// wait in `parking`'s small state whenever they are quiet, with the socket given up. This
/// is a function returning an `async` block rather than an `async fn` because an `async
/// fn` keeps a second copy of each of its arguments for the whole life of the connection.
#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps a second copy of its arguments"
)]
pub(crate) fn serve<Slot: Send + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState>,
    mut shutdown: Shutdown,
    slot: Slot,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        // A block of its own: the target is borrowed here, and a borrowed local would
        // otherwise keep its place in the task's future, parked or not, until the task ends.
        let opened = {
            let Some((upgraded, target)) =
                Box::pin(handshake::run(stream, peer, &state, &mut shutdown)).await
            else {
                return;
            };
            let shown = Escaped(&target.path);
            info!(peer:% = peer, path:% = shown; "peer {peer} connected to {shown}");
            state.metrics.websocket_open.increment(1);
            match park_at_once(upgraded, &target, &state) {
                Ok(parked) => Opened::Echo(Start::Parked(parked)),
                Err(upgraded) => {
                    Box::pin(open(upgraded, target, peer, &state, &mut shutdown)).await
                }
            }
        };
        let (mut socket, end) = match opened {
            Opened::Ended(socket, end) => (socket, end),
            Opened::Echo(start) => {
                let welcome = state.welcome.as_ref();
                let (config, metrics) = (&state.config, &state.metrics);
                let websocket = &state.websocket_config;
                let shutdown = &mut shutdown;
                parking::serve(start, peer, config, websocket, metrics, welcome, shutdown).await
            }
        };
        let (metrics, close_timeout) = (&state.metrics, state.config.close_timeout);
        Box::pin(finish(&mut socket, peer, end, metrics, close_timeout)).await;
        metrics.websocket_open.decrement(1);
        drop(slot);
    }
}

/// How a connection's opening phase ended.
enum Opened {
    /// A session that has ended: closed with this.
    Ended(Box<Socket>, End),
    /// An echo or raw session, settled into answering messages: `parking` takes over.
    Echo(Start),
}

/// A new echo or raw connection with nothing to send first (no welcome, no `?inspect`, no
/// scenario) waits for its client: parked straight away, it never has a `WebSocket` made
/// for it until the client speaks, and its session starts without `open`. Any other
/// connection is given back, for `open`.
fn park_at_once(
    upgraded: Upgraded,
    target: &Target,
    state: &ServerState,
) -> Result<Box<ParkedSocket>, Upgraded> {
    let echoes_at_once = target.inspect.is_none()
        && target.scenario.is_none()
        && state.config.mode != Mode::Broadcast
        && state.welcome.is_none();
    match echoes_at_once {
        true => upgraded.park(),
        false => Err(upgraded),
    }
}

/// The session of an upgraded connection up to the point where an echo or raw session
/// settles into answering messages: the handshake described (`?inspect`), and the whole of
/// a broadcast or scenario session.
async fn open(
    upgraded: Upgraded,
    target: Target,
    peer: SocketAddr,
    state: &ServerState,
    shutdown: &mut Shutdown,
) -> Opened {
    let Target {
        path,
        history_notice,
        scenario,
        inspect,
    } = target;
    let mut socket = upgraded.into_socket(state.websocket_config);
    let mut session = Session::new(&mut socket, peer, &state.config, &state.metrics);
    let welcome = &state.welcome;
    let end = match inspect {
        Some(description) => session.describe_handshake(description).await.err(),
        None => None,
    };
    let ended = match (end, scenario) {
        (Some(end), _) => Err(end),
        (None, Some(scenario)) => {
            let room = (path.as_str(), history_notice);
            let rooms = &state.rooms;
            scenario::serve(&mut session, &scenario, rooms, welcome, room, shutdown)
                .await
                .map(|never| match never {})
        }
        (None, None) if state.config.mode == Mode::Broadcast => {
            let room = (path.as_str(), history_notice);
            broadcast::run(&mut session, &state.rooms, welcome, room, shutdown)
                .await
                .map(|never| match never {})
        }
        (None, None) => Ok(()),
    };
    session.flush_metrics();
    match ended {
        Ok(()) => Opened::Echo(Start::Socket(socket)),
        Err(end) => Opened::Ended(socket, end),
    }
}
