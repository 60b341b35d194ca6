//! How much tungstenite reads at a time, chosen by the messages a connection carries.
//!
//! tungstenite reads at most its `read_buffer_size` per call, zero-filling that much of its
//! buffer first, and allocates that much for every connection up front. A small size keeps
//! small messages cheap (a 32-byte echo zero-fills 512 bytes, not kilobytes) and idle
//! connections small, but a 64 KiB message then takes 128 calls. So a connection starts
//! small and is given [`LARGE_READ`] once it carries messages of [`LARGE_MESSAGE`] or
//! more, and the small size again after [`SMALL_AGAIN_AFTER`] smaller messages in a row.
//! The size is fixed when the `WebSocket` is made, so the change takes effect when the
//! socket next rebuilds it at a quiet moment (see `release`); a connection parked while
//! idle starts small again when it wakes.

use super::settings::READ_BUFFER_SIZE;

/// A message this large marks a connection as one that carries large messages.
const LARGE_MESSAGE: usize = 16 * 1024;

/// tungstenite's read size for a connection that carries large messages.
const LARGE_READ: usize = 8 * 1024;

/// Messages smaller than [`LARGE_MESSAGE`] in a row after which the small size is wanted
/// again: few enough that a connection that changed its traffic soon gives the large
/// buffer back, enough that mixed traffic does not rebuild at every pause.
const SMALL_AGAIN_AFTER: u32 = 64;

/// The read size a connection's recent messages call for.
#[derive(Debug, Default)]
pub(super) struct ReadSizing {
    /// Whether the recent messages were large ones.
    large: bool,
    /// Smaller messages since the last large one.
    small_in_a_row: u32,
}

impl ReadSizing {
    /// Counts a data message of `length` bytes.
    #[inline]
    pub(super) fn saw(&mut self, length: usize) {
        if length >= LARGE_MESSAGE {
            self.large = true;
            self.small_in_a_row = 0;
        } else if self.large {
            self.small_in_a_row += 1;
            if self.small_in_a_row >= SMALL_AGAIN_AFTER {
                self.large = false;
            }
        }
    }

    /// The read size to build tungstenite's next `WebSocket` with.
    pub(super) fn wanted(&self) -> usize {
        if self.large {
            LARGE_READ
        } else {
            READ_BUFFER_SIZE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_starts_small_and_one_large_message_makes_it_large() {
        let mut sizing = ReadSizing::default();
        assert_eq!(sizing.wanted(), READ_BUFFER_SIZE);
        sizing.saw(LARGE_MESSAGE - 1);
        assert_eq!(sizing.wanted(), READ_BUFFER_SIZE);
        sizing.saw(LARGE_MESSAGE);
        assert_eq!(sizing.wanted(), LARGE_READ);
    }

    #[test]
    fn small_messages_in_a_row_make_it_small_again_and_a_large_one_resets_the_count() {
        let mut sizing = ReadSizing::default();
        sizing.saw(64 * 1024);
        for _ in 1..SMALL_AGAIN_AFTER {
            sizing.saw(32);
        }
        sizing.saw(64 * 1024);
        for _ in 1..SMALL_AGAIN_AFTER {
            sizing.saw(32);
        }
        assert_eq!(sizing.wanted(), LARGE_READ, "mixed traffic stays large");
        sizing.saw(32);
        assert_eq!(sizing.wanted(), READ_BUFFER_SIZE);
    }
}
