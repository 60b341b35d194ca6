//! One session's count of the data messages and bytes it receives and sends, kept in plain
//! fields and added to the shared metrics only every [`Traffic::FLUSH_EVERY`] messages, when
//! the keepalive timer fires, and when the session ends: the per-message path touches no
//! shared counter. A busy connection's figures lag by at most that many messages, an idle
//! one's by at most `--ping-interval`, and a closed one's not at all.

use tokio_tungstenite::tungstenite::Message;

use crate::observe::metrics::{Metrics, TrafficCounts};

/// Counts not yet added to the shared metrics.
#[derive(Default)]
pub(crate) struct Traffic {
    counts: TrafficCounts,
    /// Messages counted since the last flush.
    pending: u32,
}

/// Index 0 counts text, 1 binary; control frames are not counted.
fn type_index(message: &Message) -> Option<usize> {
    match message {
        Message::Text(_) => Some(0),
        Message::Binary(_) => Some(1),
        _ => None,
    }
}

impl Traffic {
    /// Messages counted locally before they are added to the shared counters.
    pub(crate) const FLUSH_EVERY: u32 = 64;

    /// Counts a data message received; returns whether it is time to flush.
    pub(crate) fn received(&mut self, message: &Message) -> bool {
        if let Some(index) = type_index(message) {
            self.counts.received_messages[index] += 1;
            self.counts.received_bytes[index] += message.len() as u64;
            self.pending += 1;
        }
        self.pending >= Self::FLUSH_EVERY
    }

    /// Counts a data message sent; returns whether it is time to flush.
    pub(crate) fn sent(&mut self, message: &Message) -> bool {
        match type_index(message) {
            Some(index) => self.sent_data(index == 0, message.len()),
            None => self.pending >= Self::FLUSH_EVERY,
        }
    }

    /// Counts a text (or else binary) message of `len` bytes sent; returns whether it is
    /// time to flush.
    pub(crate) fn sent_data(&mut self, text: bool, len: usize) -> bool {
        let index = usize::from(!text);
        self.counts.sent_messages[index] += 1;
        self.counts.sent_bytes[index] += len as u64;
        self.pending += 1;
        self.pending >= Self::FLUSH_EVERY
    }

    /// Adds the local counts to the shared counters and starts over.
    pub(crate) fn flush(&mut self, metrics: &Metrics) {
        if self.pending == 0 {
            return;
        }
        metrics.add_traffic(&self.counts);
        *self = Traffic::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_messages_are_counted_by_type_and_control_frames_not_at_all() {
        let mut traffic = Traffic::default();
        traffic.received(&Message::text("four"));
        traffic.received(&Message::binary(vec![0u8; 10]));
        traffic.sent(&Message::text("four"));
        traffic.received(&Message::Ping(Default::default()));
        assert_eq!(traffic.counts.received_messages, [1, 1]);
        assert_eq!(traffic.counts.received_bytes, [4, 10]);
        assert_eq!(traffic.counts.sent_messages, [1, 0]);
        assert_eq!(traffic.pending, 3);
    }

    #[test]
    fn a_flush_is_asked_for_after_64_messages_and_starts_the_count_over() {
        let mut traffic = Traffic::default();
        let asked: Vec<bool> = (0..64)
            .map(|_| traffic.received(&Message::text("x")))
            .collect();
        assert_eq!(asked.iter().filter(|&&asked| asked).count(), 1);
        assert!(asked[63]);
        traffic.flush(&Metrics::new(crate::config::Mode::Raw));
        assert_eq!(traffic.pending, 0);
        assert_eq!(traffic.counts.received_messages, [0, 0]);
    }
}
