//! Echo and raw sessions that park between bursts of messages.
//!
//! A task's future is as large as the largest state it can be in, for as long as the
//! connection lives, and most connections to a server spend most of their life idle. So the
//! echo loop, with its session, timers and batch state, runs in a boxed future of its own
//! only while messages flow. Once the connection has been quiet for `echo::PARK_AFTER`,
//! that future ends, its box is freed, the socket parks (`wire::socket::park`: no
//! tungstenite state at all), and the connection waits in the small state below for the
//! client to send something, for the keepalive clock, or for shutdown. Any of them starts a
//! fresh echo loop over the resumed socket. A new connection with nothing to send first
//! starts parked (`Start::Parked`): its `WebSocket` is first made when the client speaks.
//! `docs/performance.md` has what a parked connection costs.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use tokio::time::{Sleep, sleep_until};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::end::End;
use super::keepalive::Keepalive;
use super::{Session, echo};
use crate::config::Config;
use crate::observe::metrics::Metrics;
use crate::sync::shutdown::Shutdown;
use crate::wire::{ParkedSocket, Socket};

/// What ended a parked connection's wait.
enum Woken {
    /// The client sent something, closed, or the socket failed (the echo loop will see
    /// which), or the keepalive clock is due (the echo loop pings, or gives up on a silent
    /// client).
    Resume,
    Shutdown,
}

/// How an echo or raw session begins: over a socket (a welcome to send, a client that spoke
/// with its request, a handshake described for `?inspect`, or TLS, which never parks), or
/// parked, before its `WebSocket` was ever made (`conn` parks a new plain connection with
/// nothing to send).
pub(crate) enum Start {
    Socket(Box<Socket>),
    Parked(Box<ParkedSocket>),
}

/// Sends the welcome (when given one), then answers every message until the session ends,
/// parking the connection whenever it goes quiet. Returns the socket, for the close, and
/// why the session ended.
///
/// A function returning an `async` block, not an `async fn`, so that its arguments are
/// kept once (see `conn::serve`); what lives across the parked wait is kept to the socket
/// parked, the keepalive clock and the timer.
#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps a second copy of its arguments"
)]
pub(crate) fn serve<'a>(
    start: Start,
    peer: SocketAddr,
    config: &'a Config,
    websocket: &'a WebSocketConfig,
    metrics: &'a Metrics,
    mut welcome: Option<&'a Utf8Bytes>,
    shutdown: &'a mut Shutdown,
) -> impl Future<Output = (Box<Socket>, End)> + 'a {
    async move {
        let mut keepalive = Keepalive::new(config.ping_interval, config.ping_timeout);
        let (mut socket, mut fresh) = match start {
            Start::Socket(socket) => (socket, true),
            Start::Parked(parked) => {
                // Out of its box first: moved out in place, the emptied box would be freed
                // only at the end of this arm, after the wait.
                let parked = unboxed(parked);
                match wait_parked(parked, &keepalive, websocket, metrics, shutdown).await {
                    (socket, Woken::Resume) => (socket, false),
                    (socket, Woken::Shutdown) => return (socket, End::Shutdown),
                }
            }
        };
        loop {
            // A socket that nothing has been read from, with no welcome to send (after
            // `?inspect`, say), has nothing to do until its client speaks: it parks at once,
            // without running the echo loop for nothing.
            let nothing_to_do = fresh && welcome.is_none() && socket.is_unused();
            if !nothing_to_do {
                let (outcome, kept) = Box::pin(async {
                    let mut session =
                        Session::resumed(&mut socket, peer, config, metrics, keepalive);
                    let first = std::mem::take(&mut fresh);
                    let outcome = echo::run(&mut session, welcome.take(), first, shutdown).await;
                    session.flush_metrics();
                    (outcome, session.keepalive)
                })
                .await;
                keepalive = kept;
                if let Err(end) = outcome {
                    return (socket, end);
                }
            }
            fresh = false;
            let parked = match socket.park() {
                Ok(parked) => parked,
                Err(unparked) => {
                    socket = unparked;
                    continue;
                }
            };
            match wait_parked(parked, &keepalive, websocket, metrics, shutdown).await {
                (resumed, Woken::Resume) => socket = resumed,
                (resumed, Woken::Shutdown) => return (resumed, End::Shutdown),
            }
        }
    }
}

/// The value out of `boxed`, the box freed now.
#[expect(clippy::boxed_local, reason = "taking the box is what frees it here")]
fn unboxed<T>(boxed: Box<T>) -> T {
    *boxed
}

/// Waits, parked, for the client, the keepalive deadline or shutdown; then the connection
/// is a `Socket` again (with `config`), to say why it woke. This is the state an idle
/// connection spends its life in, so it is an `async` block, for the same reason as `serve`.
#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps a second copy of its arguments"
)]
fn wait_parked<'a>(
    parked: ParkedSocket,
    keepalive: &'a Keepalive,
    config: &'a WebSocketConfig,
    metrics: &'a Metrics,
    shutdown: &'a mut Shutdown,
) -> impl Future<Output = (Box<Socket>, Woken)> + 'a {
    async move {
        metrics.parked.increment(1);
        let woken = {
            let mut timer = pin!(sleep_until(keepalive.deadline()));
            poll_fn(|context| wake_reason(&parked, timer.as_mut(), shutdown, context)).await
        };
        metrics.parked.decrement(1);
        (parked.resume(*config), woken)
    }
}

/// Whether anything has woken a parked connection: shutdown, the client, or the keepalive
/// deadline.
fn wake_reason(
    parked: &ParkedSocket,
    timer: Pin<&mut Sleep>,
    shutdown: &mut Shutdown,
    context: &mut Context<'_>,
) -> Poll<Woken> {
    if shutdown.poll_recv(context).is_ready() {
        Poll::Ready(Woken::Shutdown)
    } else if parked.poll_readable(context).is_ready() || timer.poll(context).is_ready() {
        Poll::Ready(Woken::Resume)
    } else {
        Poll::Pending
    }
}
