//! A client's byte stream: plain TCP, or TLS over TCP. Everything above the handshake reads
//! and writes through this one type, so the HTTP and WebSocket code is the same for `ws://`
//! and `wss://`.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// One client's connection.
pub(crate) enum ClientStream {
    /// `ws://` and `http://`.
    Plain(TcpStream),
    /// `wss://` and `https://`; boxed, since rustls's state is large and plain clients
    /// should not carry its size.
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Copies plaintext that rustls has already decrypted into `buffer`: `None` when it
    /// holds none (or the stream is plain TCP), and the read must go through `poll_read`.
    ///
    /// tungstenite reads in pieces of its `read_buffer_size` (512 bytes here), so a 64 KiB
    /// message over `wss://` is 128 reads, nearly all of them served from plaintext rustls
    /// decrypted earlier. tokio-rustls's `poll_read` passes each through its state machine,
    /// a `poll_fill_buf` and a checked `consume`; taking the bytes from rustls's reader does
    /// the same copy without those steps. Whenever rustls holds no plaintext (more must be
    /// read from the socket, or the peer has closed), `poll_read` does the work as before,
    /// end-of-stream and errors included.
    pub(crate) fn read_decrypted(&mut self, buffer: &mut [u8]) -> Option<usize> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(stream) => match stream.get_mut().1.reader().read(buffer) {
                Ok(count @ 1..) => Some(count),
                _ => None,
            },
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_write(context, bytes),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_write_vectored(context, buffers),
            ClientStream::Tls(stream) => {
                Pin::new(stream.as_mut()).poll_write_vectored(context, buffers)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(stream) => stream.is_write_vectored(),
            ClientStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_flush(context),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}
