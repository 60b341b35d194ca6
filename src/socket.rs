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

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::stream::ClientStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message};

use crate::budget::{Account, Admission};
use crate::outbox::Outbox;
use crate::read_ahead::ReadAhead;

/// A server-side WebSocket owned by one task, with the async operations a session needs.
pub(crate) struct Socket {
    websocket: WebSocket<TaskStream>,
    /// A write was queued while the socket could not take more: the next one waits for the
    /// queue to drain first, so a client that does not read cannot make it grow unbounded.
    backed_up: bool,
    /// The connection is over (closed or failed); reading yields nothing more.
    ended: bool,
}

/// The TCP stream as tungstenite sees it: `std::io` calls that poll the async stream with
/// the waker of the task's current poll, and report "would block" when it is not ready.
struct TaskStream {
    stream: ReadAhead<ClientStream>,
    waker: Waker,
    /// The connection's standing with the memory budget, asked before every read.
    account: Account,
    /// Bytes have arrived since the keepalive last asked (see [`Socket::take_progress`]).
    progressed: bool,
    /// Data frames, written from their own payloads rather than through tungstenite's
    /// buffer (see `outbox`); tungstenite's own writes go through it too.
    outbox: Outbox,
}

impl TaskStream {
    fn poll<T>(
        &mut self,
        operation: impl FnOnce(
            Pin<&mut ReadAhead<ClientStream>>,
            &mut Context<'_>,
        ) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        let mut context = Context::from_waker(&self.waker);
        match operation(Pin::new(&mut self.stream), &mut context) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Read for TaskStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self.account.admit(buffer.len(), &self.waker) {
            Admission::Read => {}
            // Paused: the budget wakes the task when there may be room.
            Admission::Wait => return Err(io::ErrorKind::WouldBlock.into()),
            Admission::Evicted => return Err(io::Error::new(io::ErrorKind::OutOfMemory, EVICTED)),
        }
        let count = match self.stream.read_decrypted(buffer) {
            Some(count) => count,
            None => {
                let mut buffer = ReadBuf::new(buffer);
                self.poll(|stream, context| stream.poll_read(context, &mut buffer))?;
                buffer.filled().len()
            }
        };
        self.account.read(count);
        self.progressed |= count > 0;
        Ok(count)
    }
}

impl TaskStream {
    /// A write of `slices` to the socket, "would block" when it cannot take anything.
    fn write_slices(
        stream: &mut ReadAhead<ClientStream>,
        context: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> io::Result<usize> {
        // One slice (small frames only, the usual case) is a plain write: the kernel's
        // vectored write costs more per call (measured: echo with 1000 connections, 7% more
        // server CPU per message).
        let written = match slices {
            [slice] => Pin::new(stream).poll_write(context, slice),
            _ => Pin::new(stream).poll_write_vectored(context, slices),
        };
        match written {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// tungstenite's writes: its control frames and the close handshake.
impl Write for TaskStream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut context = Context::from_waker(&self.waker);
        let stream = &mut self.stream;
        self.outbox.write_for_tungstenite(bytes, |slices| {
            Self::write_slices(stream, &mut context, slices)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        // tungstenite flushes once its buffer is written out.
        self.outbox.tungstenite_done();
        if self.outbox.queued() > 0 {
            let mut context = Context::from_waker(&self.waker);
            let stream = &mut self.stream;
            self.outbox
                .write_all(|slices| Self::write_slices(stream, &mut context, slices))?;
        }
        self.poll(|stream, context| stream.poll_flush(context))
    }
}

/// Replies are collected up to this many bytes before they are written to the socket; a batch
/// of replies is written out at its end in any case.
const WRITE_AHEAD: usize = 64 * 1024;

/// How much ciphertext rustls may hold unsent, and so how much plaintext one write hands it.
/// rustls's default (64 KiB) split every write of one 64 KiB message plus its header in two:
/// the header's few bytes over went out as a TLS record and a system call of their own.
/// Twice [`WRITE_AHEAD`] takes a batch that crossed it by up to a 64 KiB frame in one
/// write (pipelined 64 KiB over `wss://`: 11% less server CPU per message, one `writev`
/// per message instead of two). The cost is a client that stops reading leaving up to this
/// much ciphertext rather than 64 KiB in rustls.
const TLS_WRITE_LIMIT: usize = 2 * WRITE_AHEAD;

/// The error a read fails with once the memory budget has chosen this connection to close.
pub(crate) const EVICTED: &str = "closed to free memory for other clients";

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
        let stream = TaskStream {
            stream: ReadAhead::new(stream, plain),
            waker: Waker::noop().clone(),
            account,
            progressed: false,
            outbox: Outbox::default(),
        };
        Socket {
            websocket: WebSocket::from_partially_read(stream, tail, Role::Server, Some(config)),
            backed_up: false,
            ended: false,
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
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(message)) => {
                if message.is_text() || message.is_binary() {
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

    // The write operations are `poll_fn`s rather than `async fn`s: a session's future holds
    // the largest state of everything it awaits for as long as the connection lives, and
    // an `async fn` that awaits another stores both.

    /// Queues a message, writing out tungstenite's buffer when it is full. Waits only when
    /// an earlier write is still backed up.
    pub(crate) fn feed(&mut self, message: Message) -> impl Future<Output = Result<(), Error>> {
        let mut message = Some(message);
        std::future::poll_fn(move |context| {
            if self.backed_up {
                std::task::ready!(self.poll_flush(context))?;
            }
            let Some(message) = message.take() else {
                return Poll::Ready(Ok(()));
            };
            self.set_waker(context);
            Poll::Ready(self.feed_now(message))
        })
    }

    /// Whether an earlier write is still waiting for room in the socket; while it is,
    /// messages must go through [`Socket::feed`], which waits.
    pub(crate) fn is_backed_up(&self) -> bool {
        self.backed_up
    }

    /// [`Socket::feed`] without the wait, for when nothing is backed up: the socket then
    /// takes the message at once (what it cannot write yet stays queued). Any wake-up goes to
    /// the task's waker from its latest poll of this socket.
    ///
    /// Text and binary messages go to the outbox (see `outbox`), which is written out once it
    /// holds [`WRITE_AHEAD`] bytes; control frames go through tungstenite.
    pub(crate) fn feed_now(&mut self, message: Message) -> Result<(), Error> {
        let (kind, payload) = match message {
            Message::Text(text) if self.websocket.can_write() => (Data::Text, Bytes::from(text)),
            Message::Binary(bytes) if self.websocket.can_write() => (Data::Binary, bytes),
            // A control frame, or a connection that is closing (tungstenite words the error).
            other => {
                return match self.websocket.write(other) {
                    // Queued; the socket just could not take all of it yet.
                    Err(error) if is_would_block(&error) => {
                        self.backed_up = true;
                        Ok(())
                    }
                    other => other,
                };
            }
        };
        let outbox = &mut self.websocket.get_mut().outbox;
        outbox.push(kind, payload);
        if outbox.queued() >= WRITE_AHEAD
            && let Poll::Ready(Err(error)) = self.try_flush()
        {
            return Err(error);
        }
        Ok(())
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
