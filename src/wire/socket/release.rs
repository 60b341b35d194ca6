//! Giving tungstenite's large read buffer back once a connection goes quiet, and changing
//! its read size (see `read_size`) at the same kind of moment.
//!
//! tungstenite reads each frame into one buffer as large as the frame, and keeps that
//! buffer's capacity for as long as the connection lives: a client that sent one 40 MiB
//! message and stays connected holds 40 MiB. tungstenite has no call to shrink it. But a
//! `WebSocket` that holds no unparsed bytes, no incomplete message and nothing unwritten can
//! be rebuilt over the same stream with fresh small buffers and lose nothing: the only
//! protocol state left is "open", which a new `WebSocket` starts in.
//!
//! The socket knows that tungstenite holds no unparsed bytes by counting: the stream counts
//! every byte tungstenite has been given, and each message tungstenite returns accounts for
//! at least the bytes of its shortest encoding (one masked frame). A client can only have
//! used more (a fragmented message, a longer length field), so when the two counts are
//! equal, everything read has been parsed. When they are not (a client that fragments), the
//! buffer is simply kept, and stays charged to the memory budget.
//!
//! Only buffers of [`RELEASE_FROM`] and more are given back: below that the allocator keeps
//! freed memory for the process anyway, and a connection pipelining mid-sized messages would
//! pay for a new buffer every time its socket ran dry.

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};

use super::Socket;

/// The smallest read buffer worth giving back: glibc returns freed blocks of this size and
/// more to the system (see `limits::budget::return_large_buffers_to_the_system`).
const RELEASE_FROM: usize = 1 << 20;

/// The fewest bytes `message` can have taken from a client: one frame, its header with the
/// shortest length field, the mask key, the payload.
pub(super) fn least_wire_bytes(message: &Message) -> u64 {
    let payload = match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(Some(frame)) => 2 + frame.reason.len(),
        Message::Close(None) => 0,
        // tungstenite returns whole messages when reading, never raw frames.
        Message::Frame(frame) => frame.len(),
    };
    let length_field = match payload {
        0..126 => 0,
        126..65536 => 2,
        _ => 8,
    };
    (2 + length_field + 4 + payload) as u64
}

impl Socket {
    /// Whether a fresh `WebSocket` over the same stream would lose nothing: tungstenite
    /// holds no bytes it has not parsed into messages (counted as the module's comment says),
    /// nothing is waiting to be written, the protocol is plainly "open", and the memory
    /// budget is not closing the connection.
    pub(super) fn holds_only_an_open_connection(&self) -> bool {
        let stream = self.websocket.get_ref();
        stream.read_total == self.parsed
            && !stream.stream.holds_unread()
            && stream.outbox.queued() == 0
            && self.websocket.can_write()
            && !stream.account.is_evicted()
    }

    /// After a flush that wrote everything, on a connection whose last read found nothing:
    /// rebuilds the `WebSocket` if tungstenite holds a large buffer and nothing else, or if
    /// the connection's messages call for another read size (see `read_size`), and gives
    /// the connection's charge back to the memory budget.
    pub(super) fn rebuild_if_quiet(&mut self) {
        let read_size = self.read_sizing.wanted();
        let holds_large = self
            .websocket
            .get_ref()
            .account
            .holds_at_least(RELEASE_FROM);
        if !holds_large && read_size == self.websocket.get_config().read_buffer_size
            || !self.holds_only_an_open_connection()
        {
            return;
        }
        let config = self.websocket.get_config().read_buffer_size(read_size);
        // Neither call can panic short of running out of memory, which aborts anyway.
        replace_with::replace_with_or_abort(&mut self.websocket, |websocket| {
            WebSocket::from_partially_read(
                websocket.into_inner(),
                Vec::new(),
                Role::Server,
                Some(config),
            )
        });
        self.websocket.get_mut().account.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    #[test]
    fn the_shortest_encoding_counts_header_mask_and_payload() {
        assert_eq!(least_wire_bytes(&Message::text("")), 6);
        assert_eq!(least_wire_bytes(&Message::text("a".repeat(125))), 131);
        assert_eq!(least_wire_bytes(&Message::binary(vec![0; 126])), 134);
        assert_eq!(least_wire_bytes(&Message::binary(vec![0; 65535])), 65543);
        assert_eq!(least_wire_bytes(&Message::binary(vec![0; 65536])), 65550);
        assert_eq!(least_wire_bytes(&Message::Ping(vec![1, 2].into())), 8);
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        assert_eq!(least_wire_bytes(&Message::Close(Some(close))), 11);
        assert_eq!(least_wire_bytes(&Message::Close(None)), 6);
    }
}
