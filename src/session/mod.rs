//! A WebSocket session: what every mode does with a connection once it is upgraded.
//!
//! [`Session`] holds the machinery the modes share: writing with a deadline, taking in what
//! the client sends in batches, and the keepalive clock. Each mode's loop is a file of its
//! own beside this one, built from those pieces:
//!
//! - `echo`: echo and raw modes, each message answered on the same connection.
//! - `broadcast`: every message to everyone in the client's room.
//! - `keepalive`: when to ping a silent client and when to give up on it.
//! - `end`: why a session ended, and the close frame and log line that go with it.
//! - `traffic`: the session's message counts, added to the metrics now and then.
//! - `write_deadline`: how long a write may wait for a client that does not read.

pub(crate) mod broadcast;
pub(crate) mod echo;
pub(crate) mod end;
pub(crate) mod finish;
mod keepalive;
pub(crate) mod scenario;
mod traffic;
mod write_deadline;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use log::debug;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use crate::config::Config;
use crate::observe::metrics::Metrics;
use crate::wire::Socket;
use end::End;
use keepalive::{Keepalive, Tick};
use traffic::Traffic;
use write_deadline::with_write_deadline;

/// How many messages that have already arrived are handled before the replies are flushed
/// together. Batching saves a system call per message when a client pipelines; the cap keeps
/// one busy client from delaying its own replies for long.
const BATCH: usize = 64;

/// Payload bytes a batch handles at most. A batch also ends here, so that a client sending
/// large messages as fast as they are answered gives up the thread after this much, as one
/// sending small ones does after [`BATCH`]. Without it such a client was served for as long
/// as its data kept arriving: the read-ahead buffer takes 64 KiB per socket read, and tokio's
/// cooperative budget counts socket reads, so a task could echo up to 8 MiB before the
/// runtime made it yield, while the other connections waited.
const BATCH_BYTES: usize = 256 * 1024;

/// One result of reading the socket, as [`Socket::poll_next`] gives it.
type Received = Option<Result<Message, tungstenite::Error>>;

/// Where reading stood when a batch ended, so the loop knows whether to read again before
/// the next wake-up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BatchEnd {
    /// The socket was found empty with this task's waker registered, and nothing has
    /// waited since: it need not be read again until it wakes the task (a read attempt
    /// costs as much as a fifth of an echoed message).
    Drained,
    /// The batch stopped at its cap (and has let the other connections' tasks run), or a
    /// write had to wait: more may have arrived.
    MayHaveMore,
}

/// A WebSocket session's shared machinery; the mode loops are built from it.
pub(crate) struct Session<'a> {
    socket: &'a mut Socket,
    peer: SocketAddr,
    config: &'a Config,
    keepalive: Keepalive,
    metrics: &'a Metrics,
    /// Messages and bytes not yet added to `metrics`.
    traffic: Traffic,
}

impl<'a> Session<'a> {
    /// A session over an upgraded socket; the keepalive clock starts now.
    pub(crate) fn new(
        socket: &'a mut Socket,
        peer: SocketAddr,
        config: &'a Config,
        metrics: &'a Metrics,
    ) -> Self {
        Session {
            socket,
            peer,
            config,
            keepalive: Keepalive::new(config.ping_interval, config.ping_timeout),
            metrics,
            traffic: Traffic::default(),
        }
    }

    /// Adds what this session has counted to the shared metrics; called by the session's
    /// owner when it ends.
    pub(crate) fn flush_metrics(&mut self) {
        self.traffic.flush(self.metrics);
    }

    /// Counts a data message sent.
    fn count_sent(&mut self, message: &Message) {
        if self.traffic.sent(message) {
            self.traffic.flush(self.metrics);
        }
    }

    /// Queues a message for the client, waiting for room in the socket at most the ping
    /// timeout: a client that does not read for that long is dropped rather than left to
    /// hold the server's memory.
    async fn deliver(&mut self, message: Message) -> Result<(), End> {
        self.count_sent(&message);
        with_write_deadline(self.config.ping_timeout, self.socket.feed(message)).await
    }

    /// Queues a message for the client at once; only for when nothing is backed up (see
    /// [`Socket::feed_now`]).
    fn send_now(&mut self, message: Message) -> Result<(), End> {
        self.count_sent(&message);
        self.socket.feed_now(message).map_err(End::from_error)
    }

    /// Writes out everything queued, with the same deadline as [`Session::deliver`].
    async fn flush(&mut self) -> Result<(), End> {
        with_write_deadline(self.config.ping_timeout, self.socket.flush()).await
    }

    /// Sends `description` as the first frame (`?inspect`: the handshake described).
    pub(crate) async fn describe_handshake(&mut self, description: String) -> Result<(), End> {
        self.deliver(Message::text(description)).await?;
        self.flush().await
    }

    /// Sends the welcome, if this server has one.
    async fn welcome(&mut self, welcome: &Option<Utf8Bytes>) -> Result<(), End> {
        if let Some(welcome) = welcome {
            self.deliver(Message::Text(welcome.clone())).await?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Sorts one result of reading the socket: the message if it is data for the mode to
    /// handle, `None` for control frames (tungstenite answers pings itself), and the end of
    /// the session for a close frame or an error. Anything at all counts as a sign of life.
    ///
    /// This and the common path of [`Session::receive_batch`] do not await: a session's
    /// future is one state machine, and every await on the per-message path is state
    /// written into it for every message.
    fn classify(&mut self, received: Received) -> Result<Option<Message>, End> {
        let message = match received {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(End::from_error(error)),
            None => return Err(End::ClientClosed(None)),
        };
        self.keepalive.heard();
        log_message(self.peer, &message);
        if self.traffic.received(&message) {
            self.traffic.flush(self.metrics);
        }
        match message {
            Message::Text(_) | Message::Binary(_) => Ok(Some(message)),
            // tungstenite has queued the reply; `finish` sends it.
            Message::Close(frame) => Err(End::ClientClosed(frame)),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
        }
    }

    /// Handles the keepalive timer firing, then re-arms it. A ping is queued, not waited
    /// for: each loop decides whether it may wait for the socket (see
    /// [`Session::flush_now`]).
    fn on_timer(&mut self, timer: Pin<&mut Sleep>) -> Result<(), End> {
        // A quiet moment: let the metrics catch up with a connection that sends little.
        self.traffic.flush(self.metrics);
        // Held back by the server, or in the middle of a message: not silent, though it
        // cannot answer a ping yet.
        if self.socket.take_progress() || self.socket.is_paused_for_memory() {
            self.keepalive.heard();
        }
        match self.keepalive.on_timer() {
            Tick::Ping => self
                .socket
                .feed_now(Message::Ping(Default::default()))
                .map_err(End::from_error)?,
            Tick::Expired => return Err(End::PingTimeout),
            Tick::Wait => {}
        }
        timer.reset(self.keepalive.deadline());
        Ok(())
    }

    /// One attempt to write out everything queued, without waiting. What the socket could
    /// not take stays queued, and the socket counts as backed up until a later attempt
    /// finishes.
    async fn flush_now(&mut self) -> Result<(), End> {
        match poll_fn(|context| Poll::Ready(self.socket.poll_flush(context))).await {
            Poll::Ready(flushed) => flushed.map_err(End::from_error),
            Poll::Pending => Ok(()),
        }
    }

    /// Handles `first` and the messages that have already arrived after it, up to
    /// [`BATCH`], passing each data message to `handle` and queueing the reply it returns;
    /// then writes out what was queued, once for the whole batch. Waits for room for a reply
    /// only when an earlier one is still backed up (a `handle` that never replies never
    /// waits), and for the final write only with [`AfterBatch::WaitForRoom`].
    ///
    /// One flat function rather than a read step and a flush step awaited in turn: each
    /// nested `async fn` would be a state of its own inside the session's future, which
    /// every idle connection carries.
    async fn receive_batch(
        &mut self,
        first: Received,
        mut handle: impl FnMut(Message) -> Option<Message>,
        after: AfterBatch,
    ) -> Result<BatchEnd, End> {
        let mut next = first;
        let mut handled = 0;
        let mut bytes = 0;
        let mut at_cap = false;
        let batch_end = loop {
            if let Some(message) = self.classify(next)? {
                bytes += message.len();
                if let Some(reply) = handle(message) {
                    if self.socket.is_backed_up() {
                        self.deliver(reply).await?;
                    } else {
                        self.send_now(reply)?;
                    }
                }
            }
            handled += 1;
            if handled == BATCH || bytes >= BATCH_BYTES {
                at_cap = true;
                break BatchEnd::MayHaveMore;
            }
            match self.socket.next_if_ready().await {
                Some(received) => next = received,
                None => break BatchEnd::Drained,
            }
        };
        match poll_fn(|context| Poll::Ready(self.socket.poll_flush(context))).await {
            Poll::Ready(flushed) => {
                flushed.map_err(End::from_error)?;
                if at_cap {
                    // Others' turn before this client's next batch: see `BATCH_BYTES`.
                    requeue().await;
                }
                Ok(batch_end)
            }
            Poll::Pending if after == AfterBatch::WaitForRoom => {
                self.flush().await?;
                Ok(BatchEnd::MayHaveMore)
            }
            Poll::Pending => Ok(BatchEnd::MayHaveMore),
        }
    }
}

/// Gives up the thread, going to the back of the worker's run queue at once.
///
/// Not `tokio::task::yield_now`, which parks the task until the worker has next polled its
/// sockets and then queues it behind every connection that poll woke. With 64 clients
/// pipelining 64 KiB messages, that left a few neighbouring connections served every other
/// round (half the answers of the rest, p99 1.6x the TCP ceiling's). Queued at once, with
/// the worker polling readiness often (`workers::EVENT_INTERVAL`), every connection got the
/// same number of answers to within 1%.
fn requeue() -> impl Future<Output = ()> {
    let mut requeued = false;
    poll_fn(move |context| {
        if requeued {
            return Poll::Ready(());
        }
        requeued = true;
        context.waker().wake_by_ref();
        Poll::Pending
    })
}

/// What [`Session::receive_batch`] does when the socket cannot take the batch's writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AfterBatch {
    /// Wait (under the write deadline): echo replies must go out before more is read.
    WaitForRoom,
    /// Leave them queued: broadcast keeps reading while its writes wait.
    LeaveQueued,
}

/// Logs a received message at debug level: its kind and size, not its content.
fn log_message(peer: SocketAddr, message: &Message) {
    let kind = match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "frame",
    };
    debug!(peer:% = peer;"peer {peer} sent {kind} ({} bytes)", message.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::counting_waker::CountingWaker;
    use std::pin::pin;
    use std::task::Context;

    /// The task is queued again by the yield itself, inside a runtime too: tokio's
    /// `yield_now` would leave the waker with the runtime until its next readiness poll.
    #[tokio::test]
    async fn requeue_wakes_the_task_at_once_then_completes() {
        let (counter, waker) = CountingWaker::new();
        let mut context = Context::from_waker(&waker);
        let mut yielding = pin!(requeue());
        assert!(yielding.as_mut().poll(&mut context).is_pending());
        assert_eq!(counter.wakes(), 1, "woken before returning");
        assert!(yielding.as_mut().poll(&mut context).is_ready());
    }
}
