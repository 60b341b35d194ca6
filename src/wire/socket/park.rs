//! Parking a quiet connection: the smallest state it can wait in until the client speaks.
//!
//! An open WebSocket that nobody is using still holds tungstenite's `WebSocket` (its read
//! buffer, its codec and its state, about a kilobyte), the outbox and the read-ahead state.
//! Between messages none of it holds anything that matters: the same test as
//! `release` (no unparsed bytes, no partial message, nothing unwritten) says the
//! connection is plain "open", which a fresh `WebSocket` starts in. A parked socket keeps
//! only the TCP stream and the connection's memory-budget account, and becomes a `Socket`
//! again when the stream is readable.
//!
//! Only plain TCP parks: over TLS, rustls's own state (several kilobytes, and perhaps
//! plaintext already decrypted) has to stay anyway.

use std::task::{Context, Poll};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::Socket;
use crate::limits::budget::Account;
use crate::wire::stream::ClientStream;

/// A quiet connection, parked: the stream and its account, nothing of the protocol.
pub(crate) struct ParkedSocket {
    stream: ClientStream,
    account: Account,
}

/// A connection just upgraded, before its `WebSocket` is made: the stream, what the client
/// sent after its request head, and the connection's account.
pub(crate) struct Upgraded {
    pub stream: ClientStream,
    pub tail: Vec<u8>,
    pub account: Account,
}

impl Upgraded {
    /// The connection as a `Socket`, speaking WebSocket with `config`.
    pub(crate) fn into_socket(self, config: WebSocketConfig) -> Box<Socket> {
        Box::new(Socket::new(self.stream, self.tail, config, self.account))
    }

    /// Parks a connection that nothing has gone through yet (plain TCP, nothing sent after
    /// the request head) without making its `WebSocket` at all: a fresh one would hold
    /// nothing and be dropped at once (`Socket::is_unused`). Gives it back otherwise.
    pub(crate) fn park(self) -> Result<Box<ParkedSocket>, Self> {
        if !self.tail.is_empty() || !matches!(self.stream, ClientStream::Plain(_)) {
            return Err(self);
        }
        Ok(Box::new(ParkedSocket {
            stream: self.stream,
            account: self.account,
        }))
    }
}

impl Socket {
    /// Whether this connection can ever park: plain TCP only (see the module's comment).
    pub(crate) fn can_park(&self) -> bool {
        matches!(
            self.websocket.get_ref().stream.get_ref(),
            ClientStream::Plain(_)
        )
    }

    /// Whether nothing has gone through the connection since it was made: not a byte read
    /// (none came with the handshake either) and nothing queued. Such a socket need not be
    /// read before it parks: whatever the client has sent since is waiting in the kernel,
    /// and makes the parked socket readable at once.
    pub(crate) fn is_unused(&self) -> bool {
        let stream = self.websocket.get_ref();
        stream.read_total == 0 && self.flushed && stream.outbox.queued() == 0
    }

    /// Whether parking now would lose nothing: the last read found the socket empty (or
    /// it is unused), everything written has gone out, and tungstenite holds nothing but an open
    /// connection (the test `release` makes). A connection the memory budget is holding
    /// back is left as it is.
    pub(crate) fn is_quiet(&self) -> bool {
        self.can_park()
            && !self.ended
            && !self.backed_up
            && (self.drained || self.is_unused())
            && self.flushed
            && !self.websocket.get_ref().account.is_paused()
            && self.holds_only_an_open_connection()
    }

    /// Parks the connection when it is quiet; gives it back unchanged when it is not.
    pub(crate) fn park(self: Box<Self>) -> Result<ParkedSocket, Box<Self>> {
        if !self.is_quiet() {
            return Err(self);
        }
        let stream = self.websocket.into_inner();
        let mut account = stream.account;
        account.release();
        Ok(ParkedSocket {
            stream: stream.stream.into_inner(),
            account,
        })
    }
}

impl ParkedSocket {
    /// Ready once the client has sent something or closed (or the socket failed: the read
    /// after resuming says how).
    pub(crate) fn poll_readable(&self, context: &mut Context<'_>) -> Poll<()> {
        match &self.stream {
            ClientStream::Plain(tcp) => tcp.poll_read_ready(context).map(|_| ()),
            ClientStream::Tls(_) => Poll::Ready(()),
        }
    }

    /// The connection as a `Socket` again, with fresh buffers, the protocol "open" and
    /// `config` (the one it was made with).
    pub(crate) fn resume(self, config: WebSocketConfig) -> Box<Socket> {
        Box::new(Socket::new(self.stream, Vec::new(), config, self.account))
    }
}
