//! Echo and raw sessions that park between bursts of messages.
//!
//! A task's future is as large as the largest state it can be in, for as long as the
//! connection lives, and most connections to a server spend most of their life idle. So the
//! echo loop, with its session, timers and batch state, runs in a boxed future of its own
//! only while messages flow. Once the connection has been quiet for `echo::PARK_AFTER`,
//! that future ends, its box is freed, the socket parks (`wire::socket::park`: no
//! tungstenite state at all), and the connection waits in the small state below for the
//! client to send something, for the keepalive clock, or for shutdown. Any of them starts a
//! fresh echo loop over the resumed socket. `docs/performance.md` has what a parked
//! connection costs.

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
    mut socket: Box<Socket>,
    peer: SocketAddr,
    config: &'a Config,
    websocket: &'a WebSocketConfig,
    metrics: &'a Metrics,
    mut welcome: Option<&'a Utf8Bytes>,
    shutdown: &'a mut Shutdown,
) -> impl Future<Output = (Box<Socket>, End)> + 'a {
    async move {
        let mut keepalive = Keepalive::new(config.ping_interval, config.ping_timeout);
        let mut fresh = true;
        loop {
            // A new connection with no welcome to send has nothing to do until its client
            // speaks: it parks at once, without running the echo loop for nothing.
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
            metrics.parked.increment(1);
            let woken = {
                let mut timer = pin!(sleep_until(keepalive.deadline()));
                poll_fn(|context| wake_reason(&parked, timer.as_mut(), shutdown, context)).await
            };
            metrics.parked.decrement(1);
            socket = parked.resume(*websocket);
            if let Woken::Shutdown = woken {
                return (socket, End::Shutdown);
            }
        }
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
