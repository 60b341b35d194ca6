//! The client's stream as tungstenite sees it: blocking-style `Read` and `Write` calls that
//! poll the async stream with the owning task's waker, ask the memory budget before every
//! read, and let the outbox and tungstenite take turns at writing.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::outbox::Outbox;
use super::read_ahead::ReadAhead;
use super::stream::ClientStream;
use crate::limits::budget::{Account, Admission};

/// The error a read fails with once the memory budget has chosen this connection to close.
const EVICTED: &str = "closed to free memory for other clients";

/// The TCP stream as tungstenite sees it: `std::io` calls that poll the async stream with
/// the waker of the task's current poll, and report "would block" when it is not ready.
pub(super) struct TaskStream {
    pub(super) stream: ReadAhead<ClientStream>,
    pub(super) waker: Waker,
    /// The connection's standing with the memory budget, asked before every read.
    pub(super) account: Account,
    /// Bytes have arrived since the keepalive last asked (see [`Socket::take_progress`]).
    pub(super) progressed: bool,
    /// Every byte tungstenite has been given, from the stream or left over from the
    /// handshake: see `socket::release`.
    pub(super) read_total: u64,
    /// Data frames, written from their own payloads rather than through tungstenite's
    /// buffer (see `outbox`); tungstenite's own writes go through it too.
    pub(super) outbox: Outbox,
}

impl TaskStream {
    /// `stream` as tungstenite will see it; `reads_ahead` turns on the read-ahead buffer
    /// (plain TCP only: rustls has its own).
    pub(super) fn new(stream: ClientStream, reads_ahead: bool, account: Account) -> Self {
        TaskStream {
            stream: ReadAhead::new(stream, reads_ahead),
            waker: Waker::noop().clone(),
            account,
            progressed: false,
            read_total: 0,
            outbox: Outbox::default(),
        }
    }

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
        let count = match self.stream.read_held(buffer) {
            Some(count) => count,
            None => {
                let mut buffer = ReadBuf::new(buffer);
                self.poll(|stream, context| stream.poll_read(context, &mut buffer))?;
                buffer.filled().len()
            }
        };
        self.account.read(count);
        self.progressed |= count > 0;
        self.read_total += count as u64;
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
