//! Data frames on their way to the client: small ones copied, large ones written from the
//! payloads they carry.
//!
//! tungstenite's `write` copies every frame, payload and all, into its write buffer before
//! the socket sees it (for an echoed 64 KiB message, a 64 KiB copy), and its write path for
//! a small message (turned into a frame, checked, buffered, formatted) is the larger cost.
//! Here a data frame's header is formatted by tungstenite's `FrameHeader`; a small frame is
//! copied with it into one buffer, and a large one is queued as that header beside its
//! payload's `Bytes` (the received message's own, or the room's shared one). The queue goes
//! out in vectored writes: one system call for many frames, and no copy of a large payload
//! in user space. (Writing small payloads from their own `Bytes` measured worse: the
//! kernel's cost per slice is more than the copy.)
//!
//! Control frames (pongs, pings, the close handshake) stay with tungstenite, which owns their
//! rules, and its writes come through here too ([`Outbox::write_for_tungstenite`]), so that
//! the two writers take turns only at frame boundaries.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;

mod frame;

use frame::{Frame, MAX_HEADER};

/// Payloads from this size on are written from their own `Bytes`, smaller ones copied: a
/// payload held until written keeps its read buffer from reuse, an allocation dearer than that.
const SHARE_FROM: usize = 4 * 1024;

/// Frames handed to one vectored write at most (two slices each).
const FRAMES_PER_WRITE: usize = 32;

/// Queue capacity (frames) kept once the queue is empty: a batch's worth stays for the next
/// batch, and what a longer backlog grew is given back.
const SHRINK_ABOVE: usize = 64;

/// The data frames queued for one client, oldest first.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Frames written from their own payloads; all of them go before `copied`.
    shared: VecDeque<Frame>,
    /// Small frames, copied in whole, after everything in `shared`.
    copied: Vec<u8>,
    /// Bytes queued and not yet written, headers included.
    queued: usize,
    /// Bytes already written of the oldest frame in `shared`, or of `copied` when `shared` is
    /// empty: a write may stop anywhere.
    written: usize,
    /// tungstenite's last write stopped inside its buffer, possibly inside a frame: its bytes
    /// go on before the outbox's. The outbox is only ever left part-written by a write of its
    /// own, which tungstenite's next write finishes first, and the other way round.
    tungstenite_mid_write: bool,
}

impl Outbox {
    /// Queues one frame of a message: `opcode` is the message's kind on its first frame and
    /// `Data::Continue` after; `is_final` on its last (`?fragment=`, `?send_bytes=`).
    #[inline]
    pub(crate) fn push_frame(&mut self, opcode: OpCode, is_final: bool, payload: Bytes) {
        let header = FrameHeader {
            is_final,
            opcode,
            ..FrameHeader::default()
        };
        if payload.len() < SHARE_FROM {
            // Formatted straight into the buffer: one copy less per frame.
            let before = self.copied.len();
            self.copied.reserve(MAX_HEADER + payload.len());
            // Writing into a `Vec` cannot fail.
            let _ = header.format(payload.len() as u64, &mut self.copied);
            self.copied.extend_from_slice(&payload);
            self.queued += self.copied.len() - before;
            return;
        }
        let frame = Frame::new(&header, payload);
        self.queued += frame.len();
        if !self.copied.is_empty() {
            // The copied frames go first: they become an entry of their own (how much of
            // them is written carries over, as they are now the oldest entry).
            let copied = Bytes::from(std::mem::take(&mut self.copied));
            self.shared.push_back(Frame::headerless(copied));
        }
        self.shared.push_back(frame);
    }

    /// Queues a small frame formatted elsewhere (`rooms::delivery`), copied like one of its own.
    pub(crate) fn push_formatted(&mut self, frame: &[u8]) {
        self.copied.extend_from_slice(frame);
        self.queued += frame.len();
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Writes `bytes` from tungstenite's buffer, after the outbox unless tungstenite is in the
    /// middle of its own write; returns how much of `bytes` was written.
    pub(crate) fn write_for_tungstenite(
        &mut self,
        bytes: &[u8],
        mut write_vectored: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if !self.tungstenite_mid_write && self.queued > 0 {
            self.write_all(&mut write_vectored)?;
        }
        let written = write_vectored(&[IoSlice::new(bytes)])?;
        self.tungstenite_mid_write = written < bytes.len();
        Ok(written)
    }

    /// tungstenite's buffer is written out (it flushes only then): the outbox may go next.
    pub(crate) fn tungstenite_done(&mut self) {
        self.tungstenite_mid_write = false;
    }

    /// Writes everything queued with `write_vectored`, which returns how much it wrote (or
    /// "would block", which stops here with the rest kept, and where it stopped remembered).
    pub(crate) fn write_all(
        &mut self,
        mut write_vectored: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<()> {
        while self.queued > 0 {
            let written = if self.shared.is_empty() {
                // Small frames only, the usual case: one slice.
                write_vectored(&[IoSlice::new(&self.copied[self.written..])])?
            } else {
                let mut slices = [IoSlice::new(&[]); 2 * FRAMES_PER_WRITE + 1];
                let mut count = 0;
                let mut offset = self.written;
                for frame in self.shared.iter().take(FRAMES_PER_WRITE) {
                    for part in frame.slices_from(offset) {
                        if !part.is_empty() {
                            slices[count] = IoSlice::new(part);
                            count += 1;
                        }
                    }
                    offset = 0;
                }
                if self.shared.len() <= FRAMES_PER_WRITE && offset < self.copied.len() {
                    slices[count] = IoSlice::new(&self.copied[offset..]);
                    count += 1;
                }
                write_vectored(&slices[..count])?
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.advance(written);
        }
        if self.shared.capacity() > SHRINK_ABOVE {
            self.shared.shrink_to(SHRINK_ABOVE);
        }
        Ok(())
    }

    /// Drops the `count` bytes just written from the front of the queue.
    fn advance(&mut self, mut count: usize) {
        self.queued -= count;
        while let Some(front) = self.shared.front() {
            let rest = front.len() - self.written;
            if count < rest {
                self.written += count;
                return;
            }
            count -= rest;
            self.written = 0;
            self.shared.pop_front();
        }
        self.written += count;
        if self.written == self.copied.len() {
            self.written = 0;
            self.copied.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as TungsteniteFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

    /// What tungstenite itself would write for the same frames.
    fn formatted_by_tungstenite(frames: &[(Data, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (kind, payload) in frames {
            TungsteniteFrame::message(payload.clone(), OpCode::Data(*kind), true)
                .format(&mut bytes)
                .unwrap();
        }
        bytes
    }

    /// Copied and shared frames, mixed.
    fn frames() -> Vec<(Data, Vec<u8>)> {
        vec![
            (Data::Text, b"hello".to_vec()),
            (Data::Binary, vec![7u8; 300]),
            (Data::Binary, vec![]),
            (Data::Text, vec![b'x'; 70_000]),
            (Data::Binary, vec![8u8; SHARE_FROM - 1]),
            (Data::Binary, vec![9u8; SHARE_FROM]),
            (Data::Binary, vec![10u8; SHARE_FROM]),
            (Data::Text, b"last".to_vec()),
        ]
    }

    /// Queues `frame`, the `index`-th: every other small one as a frame formatted elsewhere.
    fn push(outbox: &mut Outbox, index: usize, (kind, payload): &(Data, Vec<u8>)) {
        if index.is_multiple_of(2) && payload.len() < SHARE_FROM {
            let frame = (*kind, payload.clone());
            outbox.push_formatted(&formatted_by_tungstenite(&[frame]));
        } else {
            outbox.push_frame(OpCode::Data(*kind), true, Bytes::from(payload.clone()));
        }
    }

    fn queued(frames: &[(Data, Vec<u8>)]) -> Outbox {
        let mut outbox = Outbox::default();
        for (index, frame) in frames.iter().enumerate() {
            push(&mut outbox, index, frame);
        }
        outbox
    }

    /// tungstenite's write stops inside its frame; a frame queued meanwhile waits until the
    /// rest of tungstenite's has gone, and one queued before goes first.
    #[test]
    fn tungstenite_and_the_outbox_take_turns_at_frame_boundaries() {
        let before = (Data::Binary, vec![1u8; 100]);
        let meanwhile = (Data::Text, b"after the pong".to_vec());
        let pong = [0x8a, 3, b'p', b'o', b'n'];
        let mut outbox = queued(std::slice::from_ref(&before));
        let mut wire = Vec::new();
        // The socket takes the queued frame and two bytes of tungstenite's.
        let mut room = formatted_by_tungstenite(std::slice::from_ref(&before)).len() + 2;
        let socket = |slices: &[IoSlice<'_>], room: &mut usize, wire: &mut Vec<u8>| {
            let mut taken = 0;
            for slice in slices {
                let take = (*room - taken).min(slice.len());
                wire.extend_from_slice(&slice[..take]);
                taken += take;
            }
            *room -= taken;
            Ok(taken)
        };
        let written = outbox
            .write_for_tungstenite(&pong, |slices| socket(slices, &mut room, &mut wire))
            .unwrap();
        assert_eq!(written, 2);
        push(&mut outbox, 1, &meanwhile);
        room = usize::MAX;
        let rest = outbox
            .write_for_tungstenite(&pong[2..], |slices| socket(slices, &mut room, &mut wire))
            .unwrap();
        assert_eq!(rest, 3);
        outbox.tungstenite_done();
        outbox
            .write_all(|slices| socket(slices, &mut room, &mut wire))
            .unwrap();
        let mut expected = formatted_by_tungstenite(&[before]);
        expected.extend_from_slice(&pong);
        expected.extend(formatted_by_tungstenite(&[meanwhile]));
        assert_eq!(wire, expected);
    }

    #[test]
    fn the_bytes_written_are_the_frames_tungstenite_would_write() {
        let frames = frames();
        let expected = formatted_by_tungstenite(&frames);
        let mut outbox = queued(&frames);
        assert_eq!(outbox.queued(), expected.len());
        let mut written = Vec::new();
        outbox
            .write_all(|slices| {
                let before = written.len();
                for slice in slices {
                    written.extend_from_slice(slice);
                }
                Ok(written.len() - before)
            })
            .unwrap();
        assert_eq!(written, expected);
        assert_eq!(outbox.queued(), 0);
    }

    /// A socket that takes a few bytes at a time and sometimes nothing ("would block"), with
    /// frames queued between the attempts: the bytes still come out whole and in order.
    #[test]
    fn short_and_blocked_writes_resume_where_they_stopped() {
        let frames = frames();
        let expected = formatted_by_tungstenite(&frames);
        let mut outbox = Outbox::default();
        let mut written = Vec::new();
        let mut calls = 0usize;
        let mut stuttering = |slices: &[IoSlice<'_>]| {
            calls += 1;
            if calls.is_multiple_of(3) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let budget = [1, 4, 9, 1000, 7][calls % 5];
            let mut taken = 0;
            for slice in slices {
                let take = (budget - taken).min(slice.len());
                written.extend_from_slice(&slice[..take]);
                taken += take;
                if taken == budget {
                    break;
                }
            }
            Ok(taken)
        };
        let mut attempt = |outbox: &mut Outbox| match outbox.write_all(&mut stuttering) {
            Ok(()) => {}
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::WouldBlock),
        };
        for (index, frame) in frames.iter().enumerate() {
            push(&mut outbox, index, frame);
            attempt(&mut outbox);
        }
        while outbox.queued() > 0 {
            attempt(&mut outbox);
        }
        assert_eq!(written, expected);
    }
}
