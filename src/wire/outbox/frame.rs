//! One queued frame: its header, formatted by tungstenite's `FrameHeader`, beside the payload
//! it is written from.

use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// The longest header of an unmasked frame (a server's): two bytes and a 64-bit length.
pub(super) const MAX_HEADER: usize = 10;

/// One frame, or a run of copied frames (no header of its own), written from `payload`.
pub(super) struct Frame {
    header: [u8; MAX_HEADER],
    header_len: u8,
    payload: Bytes,
}

impl Frame {
    /// A frame with `header`, formatted for a payload of `payload`'s length.
    pub(super) fn new(header: &FrameHeader, payload: Bytes) -> Self {
        let mut bytes = [0u8; MAX_HEADER];
        let mut unused = &mut bytes[..];
        // Writing at most MAX_HEADER bytes into a slice of that size cannot fail.
        let _ = header.format(payload.len() as u64, &mut unused);
        let header_len = MAX_HEADER - unused.len();
        Frame {
            header: bytes,
            header_len: header_len as u8,
            payload,
        }
    }

    /// Bytes written as they are: frames already formatted into one buffer.
    pub(super) fn headerless(payload: Bytes) -> Self {
        Frame {
            header: [0; MAX_HEADER],
            header_len: 0,
            payload,
        }
    }

    /// The frame's length on the wire, header included.
    pub(super) fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }

    /// The frame's bytes from `offset` on, as at most two slices.
    pub(super) fn slices_from(&self, offset: usize) -> [&[u8]; 2] {
        let header = &self.header[..usize::from(self.header_len)];
        match offset.checked_sub(header.len()) {
            None => [&header[offset..], &self.payload],
            Some(into_payload) => [&[], &self.payload[into_payload..]],
        }
    }
}
