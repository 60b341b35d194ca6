//! The WebSocket a session speaks over: tungstenite's `WebSocket`, driven from the one task
//! that owns the connection.
//!
//! tungstenite is a synchronous state machine over `std::io::Read + Write`; an async stream
//! fits it by answering "would block" where the stream is not ready, and by remembering whose
//! waker to wake when it becomes ready. tokio-tungstenite's `WebSocketStream` does this for a
//! stream that may be split between a reading and a writing task: each socket operation
//! registers the caller's waker in two shared wake-up proxies (`AtomicWaker`s), and a
//! wake-up goes through both. A session here is one task that both reads and writes, so the
//! stream is simply polled with that task's own waker, which saves that work on every
//! operation and two heap objects per connection. The protocol itself (framing, masking,
//! UTF-8, control frames, the close handshake) stays tungstenite's; only the writing of data
//! frames, with headers tungstenite formats, happens beside its write buffer (see `outbox`).

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

use super::stream::ClientStream;
use super::task_stream::TaskStream;
use crate::limits::budget::Account;

mod feed;
mod park;
mod read_size;
mod release;
mod settings;

pub(crate) use park::{ParkedSocket, Upgraded};
use settings::TLS_WRITE_LIMIT;
pub(crate) use settings::websocket_config;

/// A server-side WebSocket owned by one task, with the async operations a session needs.
pub(crate) struct Socket {
    websocket: WebSocket<TaskStream>,
    /// A write was queued while the socket could not take more: the next one waits for the
    /// queue to drain first, so a client that does not read cannot make it grow unbounded.
    backed_up: bool,
    /// The connection is over (closed or failed); reading yields nothing more.
    ended: bool,
    /// The last read found nothing more to read (see `release` and `park`).
    drained: bool,
    /// Everything written has gone out (the last flush completed), and nothing has been read
    /// or queued since that tungstenite might owe an answer to.
    flushed: bool,
    /// The fewest bytes the messages read so far can have taken on the wire; equal to what
    /// the stream has given tungstenite only when tungstenite holds nothing unparsed.
    parsed: u64,
    /// The read size this connection's messages call for (see `read_size`).
    read_sizing: read_size::ReadSizing,
}

/// Whether tungstenite's error only says the socket could not take or give more yet.
fn is_would_block(error: &Error) -> bool {
    matches!(error, Error::Io(error) if error.kind() == io::ErrorKind::WouldBlock)
}

/// Turns tungstenite's "would block" into `Pending`.
fn pending_if_blocked<T>(result: Result<T, Error>) -> Poll<Result<T, Error>> {
    match result {
        Err(error) if is_would_block(&error) => Poll::Pending,
        other => Poll::Ready(other),
    }
}

/// tungstenite reports a close handshake that has finished, everything written, as
/// `ConnectionClosed`; for a write that is success.
fn closed_is_done(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(Error::ConnectionClosed) => Ok(()),
        other => other,
    }
}

impl Socket {
    /// Starts speaking WebSocket on a stream whose handshake is done; `tail` holds whatever
    /// the client sent after its request head.
    pub(crate) fn new(
        mut stream: ClientStream,
        tail: Vec<u8>,
        config: WebSocketConfig,
        account: Account,
    ) -> Self {
        let plain = match &mut stream {
            ClientStream::Plain(_) => true,
            ClientStream::Tls(tls) => {
                tls.get_mut().1.set_buffer_limit(Some(TLS_WRITE_LIMIT));
                false
            }
        };
        let mut stream = TaskStream::new(stream, plain, account);
        stream.read_total = tail.len() as u64;
        Socket {
            websocket: WebSocket::from_partially_read(stream, tail, Role::Server, Some(config)),
            backed_up: false,
            ended: false,
            drained: false,
            flushed: true,
            parsed: 0,
            read_sizing: read_size::ReadSizing::default(),
        }
    }

    /// Puts the polling task's waker in place for the tungstenite operation that follows.
    fn set_waker(&mut self, context: &Context<'_>) {
        self.websocket.get_mut().waker.clone_from(context.waker());
    }

    /// The next message from the client: `None` once the connection is closed. Control
    /// frames come through too; tungstenite has already queued the answers to pings and
    /// closes.
    pub(crate) fn poll_next(
        &mut self,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        self.set_waker(context);
        match pending_if_blocked(self.websocket.read()) {
            Poll::Pending => {
                self.drained = true;
                if self.flushed {
                    self.rebuild_if_quiet();
                }
                Poll::Pending
            }
            Poll::Ready(Ok(message)) => {
                self.drained = false;
                self.flushed = false;
                self.parsed += release::least_wire_bytes(&message);
                if message.is_text() || message.is_binary() {
                    self.read_sizing.saw(message.len());
                    self.websocket.get_mut().account.message_done();
                }
                Poll::Ready(Some(Ok(message)))
            }
            Poll::Ready(Err(Error::ConnectionClosed | Error::AlreadyClosed)) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(error)) => {
                self.ended = true;
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    /// Waits for the next message; see [`Socket::poll_next`].
    pub(crate) fn next(&mut self) -> impl Future<Output = Option<Result<Message, Error>>> {
        std::future::poll_fn(|context| self.poll_next(context))
    }

    /// The next message if one has already arrived, without waiting. When none has, the
    /// task's waker is left registered for the socket, as after a pending [`Socket::next`].
    pub(crate) fn next_if_ready(
        &mut self,
    ) -> impl Future<Output = Option<Option<Result<Message, Error>>>> {
        std::future::poll_fn(|context| match self.poll_next(context) {
            Poll::Ready(next) => Poll::Ready(Some(next)),
            Poll::Pending => Poll::Ready(None),
        })
    }

    /// Whether an earlier write is still waiting for room in the socket; while it is,
    /// messages must go through [`Socket::feed`], which waits.
    pub(crate) fn is_backed_up(&self) -> bool {
        self.backed_up
    }

    /// Writes out everything queued.
    pub(crate) fn flush(&mut self) -> impl Future<Output = Result<(), Error>> {
        std::future::poll_fn(|context| self.poll_flush(context))
    }

    /// One attempt at [`Socket::flush`]. When the socket cannot take everything yet, the
    /// rest waits in tungstenite's buffer and the socket counts as backed up until a later
    /// attempt finishes.
    pub(crate) fn poll_flush(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.set_waker(context);
        self.try_flush()
    }

    /// [`Socket::poll_flush`] with the waker already in place.
    fn try_flush(&mut self) -> Poll<Result<(), Error>> {
        let Poll::Ready(flushed) = pending_if_blocked(self.websocket.flush()) else {
            self.backed_up = true;
            return Poll::Pending;
        };
        self.backed_up = false;
        if flushed.is_ok() {
            self.flushed = true;
            if self.drained {
                self.rebuild_if_quiet();
            }
        }
        Poll::Ready(closed_is_done(flushed))
    }

    /// Whether the memory budget has chosen this connection to close. Reads notice by
    /// themselves; a loop that may be waiting on a write checks this when it wakes.
    pub(crate) fn is_evicted_for_memory(&self) -> bool {
        self.websocket.get_ref().account.is_evicted()
    }

    /// Whether any bytes have arrived since the last call: a client in the middle of a large
    /// message cannot answer a ping until the message ends (a control frame cannot go inside
    /// a frame), but it is not silent.
    pub(crate) fn take_progress(&mut self) -> bool {
        std::mem::take(&mut self.websocket.get_mut().progressed)
    }

    /// Whether reading is paused until the memory budget has room.
    pub(crate) fn is_paused_for_memory(&self) -> bool {
        self.websocket.get_ref().account.is_paused()
    }

    /// Starts the close handshake with `frame` and writes it out.
    pub(crate) async fn close(&mut self, frame: CloseFrame) -> Result<(), Error> {
        let mut frame = Some(frame);
        let closed = std::future::poll_fn(|context| {
            self.set_waker(context);
            let result = match frame.take() {
                Some(frame) => self.websocket.close(Some(frame)),
                None => self.websocket.flush(),
            };
            pending_if_blocked(result)
        })
        .await;
        closed_is_done(closed)
    }

    /// Makes dropping the connection reset it (RST, no close frame): the client sees 1006.
    pub(crate) fn reset_on_drop(&self) {
        let tcp = match self.websocket.get_ref().stream.get_ref() {
            ClientStream::Plain(tcp) => tcp,
            ClientStream::Tls(tls) => tls.get_ref().0,
        };
        let _ = tcp.set_zero_linger();
    }

    /// Ends a connection whose client may still be sending, after the close frame: a FIN
    /// says no more is coming, then whatever arrives is read and dropped until the client
    /// closes its side. Closing a socket with unread bytes in it makes the kernel answer
    /// with RST, and an RST can destroy the close frame before the client has read it:
    /// browsers then report 1006 instead of the code the server sent (1009 for a message
    /// over the limit, whose payload is still on its way when the header is refused).
    pub(crate) async fn linger(&mut self) {
        let stream = &mut self.websocket.get_mut().stream;
        if stream.shutdown().await.is_err() {
            return;
        }
        let mut scratch = [0u8; 4096];
        while let Ok(1..) = stream.read(&mut scratch).await {}
    }
}
