//! A room's message as its members' queues hold it: in a room of several, a small data
//! message is formatted once, by the room, into the frame every member is sent.
//!
//! Formatting a frame (the header worked out and written, the payload copied behind it) was
//! the largest share of a delivery when each member did it for itself, and a room of a
//! thousand members did it a thousand times for the same bytes. uWebSockets formats a
//! published message once for all the topic's subscribers; here the room does the same, and
//! a member's socket only appends the frame to what it is about to write. Large messages
//! stay whole (each member's outbox writes them from their one shared payload, which a
//! formatted copy would double), and so do the messages of a room of a few members.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

/// Data messages below this size are formatted by the room. The outbox copies frames below
/// the same size into its write buffer anyway; from it on, it writes them from their payload.
const FORMAT_BELOW: usize = 4 * 1024;

/// Rooms of at least this many members format a message once for all of them. Formatting it
/// costs two allocations and a copy, which each member's cheaper write pays back only when
/// there are several members to write it.
const FORMAT_FOR_MEMBERS: usize = 8;

/// One message of a room, as each member's queue holds it; a clone only bumps a count.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Delivery {
    /// A small text or binary message, formatted as the frame a server sends.
    Framed(FormattedFrame),
    /// Any other message, or any message of a small room: written by each member's socket.
    Whole(Message),
}

/// A final, unmasked text or binary frame, header and payload in one buffer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FormattedFrame(Arc<Formatted>);

/// The frame, with what a member's socket needs of it without reading its header.
#[derive(Debug, PartialEq)]
struct Formatted {
    frame: Bytes,
    header_len: u8,
    text: bool,
}

impl Delivery {
    /// `message` as the `members` of a room are sent it.
    pub(crate) fn new(message: Message, members: usize) -> Self {
        let (kind, payload): (Data, &[u8]) = match &message {
            _ if members < FORMAT_FOR_MEMBERS => return Delivery::Whole(message),
            Message::Text(text) if text.len() < FORMAT_BELOW => (Data::Text, text.as_bytes()),
            Message::Binary(bytes) if bytes.len() < FORMAT_BELOW => (Data::Binary, bytes),
            _ => return Delivery::Whole(message),
        };
        let header = FrameHeader {
            opcode: OpCode::Data(kind),
            ..FrameHeader::default()
        };
        // Formatted into a slice, not straight into the `Vec`: the outbox's own formatting
        // into a `Vec` stays that instance's only caller, which the compiler inlines.
        let mut head = [0u8; 4];
        let mut unused = &mut head[..];
        // A payload below `FORMAT_BELOW` has a header of at most 4 bytes.
        let _ = header.format(payload.len() as u64, &mut unused);
        let head_len = 4 - unused.len();
        let mut frame = Vec::with_capacity(head_len + payload.len());
        frame.extend_from_slice(&head[..head_len]);
        frame.extend_from_slice(payload);
        Delivery::Framed(FormattedFrame(Arc::new(Formatted {
            frame: Bytes::from(frame),
            header_len: head_len as u8,
            text: kind == Data::Text,
        })))
    }

    /// The message itself, for a member that handles messages one by one (test scenarios).
    pub(crate) fn into_message(self) -> Message {
        match self {
            Delivery::Framed(frame) => frame.into_message(),
            Delivery::Whole(message) => message,
        }
    }
}

impl FormattedFrame {
    /// The frame as it goes on the wire.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0.frame
    }

    /// Whether it is a text frame (otherwise binary).
    pub(crate) fn is_text(&self) -> bool {
        self.0.text
    }

    /// The length of its payload.
    pub(crate) fn payload_len(&self) -> usize {
        self.0.frame.len() - usize::from(self.0.header_len)
    }

    /// The message the frame carries.
    pub(crate) fn into_message(self) -> Message {
        let payload = self.0.frame.slice(usize::from(self.0.header_len)..);
        if self.is_text() {
            // SAFETY: a text frame is formatted only from a `Message::Text`, valid UTF-8.
            Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(payload) })
        } else {
            Message::Binary(payload)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    /// The frame tungstenite itself would send for `message`.
    fn tungstenite_frame(message: &Message) -> Vec<u8> {
        let frame = match message {
            Message::Text(text) => Frame::message(text.clone(), OpCode::Data(Data::Text), true),
            Message::Binary(bytes) => {
                Frame::message(bytes.clone(), OpCode::Data(Data::Binary), true)
            }
            _ => unreachable!("only data messages are formatted"),
        };
        let mut bytes = Vec::new();
        frame.format(&mut bytes).expect("formats into a Vec");
        bytes
    }

    #[test]
    fn a_small_message_is_formatted_as_tungstenite_would_and_gives_the_message_back() {
        for message in [
            Message::text(""),
            Message::text("grüße"),
            Message::binary(vec![7u8; 125]),
            Message::binary(vec![7u8; 126]),
            Message::text("x".repeat(FORMAT_BELOW - 1)),
        ] {
            let Delivery::Framed(frame) = Delivery::new(message.clone(), FORMAT_FOR_MEMBERS) else {
                panic!("{} bytes are formatted", message.len());
            };
            assert_eq!(frame.bytes(), tungstenite_frame(&message));
            assert_eq!(frame.payload_len(), message.len());
            assert_eq!(frame.is_text(), message.is_text());
            assert_eq!(frame.into_message(), message);
        }
    }

    #[test]
    fn large_messages_control_frames_and_small_rooms_messages_stay_whole() {
        for (message, members) in [
            (Message::binary(vec![0u8; FORMAT_BELOW]), FORMAT_FOR_MEMBERS),
            (Message::Ping(Bytes::from_static(b"p")), FORMAT_FOR_MEMBERS),
            (Message::text("a room of a few"), FORMAT_FOR_MEMBERS - 1),
        ] {
            let delivery = Delivery::new(message.clone(), members);
            assert_eq!(delivery, Delivery::Whole(message));
        }
    }
}
