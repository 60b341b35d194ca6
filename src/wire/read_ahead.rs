//! The stream tungstenite reads from: a TCP socket with a read-ahead buffer that exists only
//! while a burst of data is arriving.
//!
//! tungstenite allocates its read buffer (`read_buffer_size`) per connection up front and
//! asks the socket for at most that much per read. A large buffer costs memory on every idle
//! connection (tungstenite's 128 KiB default: ~135 KB per idle client); a small one costs a
//! system call per few hundred bytes when a client sends a lot. This wrapper gives both:
//! tungstenite keeps a small buffer, small reads go straight from the socket into it, and
//! when a read fills it completely (more is very likely waiting) the next reads fill a
//! 64 KiB buffer in one system call each and serve tungstenite from there. The big buffer is
//! given up as soon as it has been drained, so an idle connection holds none; the thread
//! keeps one drained buffer for its next burst (pipelined 64 KiB messages: 11% less user
//! CPU per message than a fresh allocation per burst, whose memory was cold in the cache).
//! Over TLS it reads straight through: rustls buffers what it decrypts anyway.

use std::cell::Cell;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::stream::ClientStream;

/// Size of the read-ahead buffer while a burst lasts.
const BURST_BUFFER: usize = 64 * 1024;

type BurstBuffer = Box<[MaybeUninit<u8>]>;

thread_local! {
    /// One drained burst buffer kept per thread for the next burst on any of its connections:
    /// bursts usually drain within one poll, so a worker reuses a buffer that is still in its
    /// CPU's cache instead of a fresh 64 KiB allocation each time. Idle connections still
    /// hold none.
    static SPARE: Cell<Option<BurstBuffer>> = const { Cell::new(None) };
}

/// Keeps a drained burst buffer for the thread's next burst.
fn give_back(bytes: BurstBuffer) {
    SPARE.set(Some(bytes));
}

/// A stream with a read-ahead buffer for bursts.
pub(crate) struct ReadAhead<S> {
    inner: S,
    /// Whether bursts are read ahead at all: not over TLS (see [`ReadAhead::new`]).
    reads_ahead: bool,
    /// Bytes read from the socket and not yet handed on; `None` between bursts.
    burst: Option<Burst>,
    /// The last read from the socket filled the caller's buffer: more is probably waiting.
    busy: bool,
}

/// Read-ahead bytes; `bytes[start..end]` is initialized and not yet handed on.
struct Burst {
    bytes: BurstBuffer,
    start: usize,
    end: usize,
}

impl Burst {
    fn unread(&self) -> &[u8] {
        let unread = &self.bytes[self.start..self.end];
        // SAFETY: `start..end` lies within what the socket read filled in, and `MaybeUninit<u8>`
        // has the layout of `u8`.
        unsafe { &*(unread as *const [MaybeUninit<u8>] as *const [u8]) }
    }
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`; with `reads_ahead` false every read goes straight through. That is the
    /// choice over TLS: rustls already holds what it decrypted in buffers of its own and
    /// refills them from the socket in reads of its own size, so reading ahead saves no
    /// system call and only adds one more pass of every byte through memory. Pipelined
    /// 64 KiB messages over `wss://`, per message, callgrind: 10,400-11,600 against
    /// 12,700-13,600 L1 data-cache misses (the TLS ceiling: 7,800); CPU time alternated over
    /// 8 rounds: 0.94 times the read-ahead's, median of each round's ratio.
    pub(crate) fn new(inner: S, reads_ahead: bool) -> Self {
        ReadAhead {
            inner,
            reads_ahead,
            burst: None,
            busy: false,
        }
    }

    /// The wrapped stream.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether bytes read from the socket are waiting here to be handed on.
    pub(crate) fn holds_unread(&self) -> bool {
        self.burst.is_some()
    }

    /// The wrapped stream, once nothing is held here (see [`ReadAhead::holds_unread`]).
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> ReadAhead<S> {
    /// Copies read-ahead bytes into `buffer`, if any are waiting: the path of every read
    /// but the first of a burst, which tungstenite makes in pieces of its small read size,
    /// so it goes without a `Context`, a `ReadBuf` or a poll.
    fn take_unread(&mut self, buffer: &mut [u8]) -> Option<usize> {
        let burst = self.burst.as_mut()?;
        let unread = burst.unread();
        let count = buffer.len().min(unread.len());
        buffer[..count].copy_from_slice(&unread[..count]);
        burst.start += count;
        if burst.start == burst.end
            && let Some(drained) = self.burst.take()
        {
            give_back(drained.bytes);
        }
        Some(count)
    }
}

impl ReadAhead<ClientStream> {
    /// Bytes this stream already holds, copied without a poll: read-ahead bytes over plain
    /// TCP ([`ReadAhead::take_unread`]), over TLS the plaintext rustls has decrypted
    /// ([`ClientStream::read_decrypted`]; nothing is ever read ahead there). `None` when a
    /// read has to go to the socket.
    pub(crate) fn read_held(&mut self, buffer: &mut [u8]) -> Option<usize> {
        if self.burst.is_some() {
            return self.take_unread(buffer);
        }
        self.inner.read_decrypted(buffer)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.burst.is_some() {
            let count = this.take_unread(out.initialize_unfilled()).unwrap_or(0);
            out.advance(count);
            return Poll::Ready(Ok(()));
        }
        if !this.reads_ahead || !this.busy || out.remaining() >= BURST_BUFFER {
            // Quiet connection (or a caller with room enough, or TLS): read straight into its
            // buffer.
            let before = out.filled().len();
            let wanted = out.remaining();
            let result = Pin::new(&mut this.inner).poll_read(cx, out);
            if let Poll::Ready(Ok(())) = result {
                this.busy = out.filled().len() - before == wanted;
            }
            return result;
        }
        // A burst: read as much as the socket has, once, and hand it out piece by piece. The
        // buffer is not zeroed first; only what the socket fills in is ever read.
        let mut bytes = SPARE
            .take()
            .unwrap_or_else(|| Box::new_uninit_slice(BURST_BUFFER));
        let mut read_buf = ReadBuf::uninit(&mut bytes);
        match Pin::new(&mut this.inner).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => {
                let end = read_buf.filled().len();
                this.busy = end == BURST_BUFFER;
                let mut burst = Burst {
                    bytes,
                    start: 0,
                    end,
                };
                let count = out.remaining().min(end);
                out.put_slice(&burst.unread()[..count]);
                burst.start = count;
                if count < end {
                    this.burst = Some(burst);
                } else {
                    give_back(burst.bytes);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => {
                give_back(bytes);
                Poll::Ready(Err(error))
            }
            Poll::Pending => {
                give_back(bytes);
                this.busy = false;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A stream with 300,000 bytes already waiting in it, and those bytes.
    async fn busy_stream(reads_ahead: bool) -> (ReadAhead<DuplexStream>, Vec<u8>) {
        let (mut writer, reader) = tokio::io::duplex(1 << 20);
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        writer.write_all(&sent).await.unwrap();
        drop(writer);
        (ReadAhead::new(reader, reads_ahead), sent)
    }

    /// Reads to the end in 512-byte pieces, as tungstenite does: what was read, and after how
    /// many of the reads a burst buffer was held.
    async fn read_in_small_pieces(stream: &mut ReadAhead<DuplexStream>) -> (Vec<u8>, usize) {
        let mut received = Vec::new();
        let mut reads_holding_a_burst = 0;
        let mut chunk = [0u8; 512];
        loop {
            let read = stream.read(&mut chunk).await.unwrap();
            reads_holding_a_burst += usize::from(stream.burst.is_some());
            if read == 0 {
                return (received, reads_holding_a_burst);
            }
            received.extend_from_slice(&chunk[..read]);
        }
    }

    /// Small reads through a burst hand on every byte, in order, across many buffer refills.
    #[tokio::test]
    async fn small_reads_during_a_burst_see_every_byte_in_order() {
        let (mut stream, sent) = busy_stream(true).await;
        let (received, bursts) = read_in_small_pieces(&mut stream).await;
        assert_eq!(received, sent);
        assert!(bursts > 0, "a busy stream is read ahead");
        assert!(
            stream.burst.is_none(),
            "the burst buffer is given up once drained"
        );
        assert!(
            SPARE.take().is_some(),
            "the thread keeps the drained buffer for its next burst"
        );
    }

    /// Without read-ahead (TLS), a busy stream is still read only as far as the caller asks:
    /// nothing is copied aside for later.
    #[tokio::test]
    async fn without_read_ahead_reads_go_straight_through() {
        let (mut stream, sent) = busy_stream(false).await;
        let (received, bursts) = read_in_small_pieces(&mut stream).await;
        assert_eq!(received, sent);
        assert_eq!(bursts, 0, "no read left a burst buffer behind");
    }
}
