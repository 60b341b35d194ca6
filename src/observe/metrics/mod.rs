//! What `/metrics` reports, in the Prometheus text exposition format: the `metrics` crate's
//! handles count, and `metrics-exporter-prometheus` writes the format. The recorder is the
//! server's own (not the process-wide one), so several servers in one process (as in the
//! tests) count apart.
//!
//! Counting must not slow the per-message path, so a session counts its messages and bytes
//! in plain fields of its own (`session::traffic`) and adds them here now and then, through
//! [`Metrics::add_traffic`]. Everything else here happens once per connection or per HTTP
//! request, through handles resolved when the server starts.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::PrometheusHandle;

mod registrar;

use super::stats::BudgetUse;
use registrar::{TrafficCounters, slot};

/// The HTTP statuses counted apart; any other is counted as "other".
const STATUSES: [u16; 11] = [101, 200, 400, 403, 404, 405, 408, 426, 429, 431, 503];

/// The close codes counted apart; any other is counted as "other".
const CLOSE_CODES: [u16; 7] = [1000, 1001, 1002, 1007, 1008, 1009, 1013];

/// Handshake duration buckets, in seconds: 100 µs to about 6.5 s, by fours.
const HANDSHAKE_BUCKETS: [f64; 9] = [
    0.0001, 0.0004, 0.0016, 0.0064, 0.0256, 0.1024, 0.4096, 1.6384, 6.5536,
];

/// The shared counters and gauges, resolved once.
pub(crate) struct Metrics {
    handle: PrometheusHandle,
    /// TCP connections accepted.
    pub accepted: Counter,
    /// HTTP answers, in the order of [`STATUSES`], then "other".
    http_answers: Vec<Counter>,
    /// WebSocket sessions open now (labelled with the mode).
    pub websocket_open: Gauge,
    /// Of those, the ones parked while quiet (`session::parking`).
    pub parked: Gauge,
    connection_slots: Gauge,
    rooms: Gauge,
    largest_room: Gauge,
    received: TrafficCounters,
    sent: TrafficCounters,
    /// Close frames sent and received, in the order of [`CLOSE_CODES`], then "other".
    close_sent: Vec<Counter>,
    close_received: Vec<Counter>,
    /// Broadcast members disconnected for falling behind (1013).
    pub evictions: Counter,
    /// Clients closed with 1013 to free memory for the others (`--max-memory`).
    pub memory_evictions: Counter,
    memory_limit: Gauge,
    memory_held: Gauge,
    memory_paused: Gauge,
    /// Clients closed for not answering a ping.
    pub ping_timeouts: Counter,
    /// Clients dropped for not reading what they are sent.
    pub not_reading: Counter,
    /// TLS handshakes that failed, timed out or met plain text.
    pub tls_handshake_failures: Counter,
    handshake_seconds: Histogram,
}

impl Metrics {
    /// Counts an HTTP answer (or a 101) with `status`.
    pub(crate) fn http_answer(&self, status: u16) {
        self.http_answers[slot(&STATUSES, status)].increment(1);
    }

    /// Counts a close frame sent with `code`.
    pub(crate) fn close_sent(&self, code: u16) {
        self.close_sent[slot(&CLOSE_CODES, code)].increment(1);
    }

    /// Counts a close frame received with `code`.
    pub(crate) fn close_received(&self, code: u16) {
        self.close_received[slot(&CLOSE_CODES, code)].increment(1);
    }

    /// Adds what a session counted to the shared counters.
    pub(crate) fn add_traffic(&self, counts: &TrafficCounts) {
        for index in 0..2 {
            add(
                &self.received.messages[index],
                counts.received_messages[index],
            );
            add(&self.received.bytes[index], counts.received_bytes[index]);
            add(&self.sent.messages[index], counts.sent_messages[index]);
            add(&self.sent.bytes[index], counts.sent_bytes[index]);
        }
    }

    /// Records how long a handshake took.
    pub(crate) fn handshake_took(&self, duration: Duration) {
        self.handshake_seconds.record(duration.as_secs_f64());
    }

    /// The text exposition, with the gauges that are read from the server's state set to
    /// `connections` slots taken, the given room sizes and the memory budget's use.
    pub(crate) fn render(
        &self,
        connections: usize,
        room_sizes: &[(String, usize)],
        memory: BudgetUse,
    ) -> String {
        self.connection_slots.set(connections as f64);
        self.memory_limit.set(memory.limit as f64);
        self.memory_held.set(memory.held as f64);
        self.memory_paused.set(memory.paused as f64);
        self.rooms.set(room_sizes.len() as f64);
        let largest = room_sizes.iter().map(|(_, size)| *size).max().unwrap_or(0);
        self.largest_room.set(largest as f64);
        self.handle.render()
    }
}

/// Messages and bytes counted by one session since it last added them to the shared
/// counters; index 0 is text, 1 binary.
#[derive(Default)]
pub(crate) struct TrafficCounts {
    pub received_messages: [u64; 2],
    pub received_bytes: [u64; 2],
    pub sent_messages: [u64; 2],
    pub sent_bytes: [u64; 2],
}

fn add(counter: &Counter, amount: u64) {
    if amount > 0 {
        counter.increment(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    const IDLE_BUDGET: BudgetUse = BudgetUse::IDLE_GIB;

    /// The value of the sample `name` (with its labels) in `text`.
    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
    }

    #[test]
    fn added_traffic_reaches_the_rendering() {
        let metrics = Metrics::new(Mode::Raw);
        metrics.add_traffic(&TrafficCounts {
            received_messages: [1, 2],
            received_bytes: [4, 30],
            sent_messages: [1, 0],
            sent_bytes: [4, 0],
        });
        let text = metrics.render(0, &[], IDLE_BUDGET);
        assert_eq!(
            sample(&text, "wsecho_messages_received_total{type=\"text\"}"),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "wsecho_message_bytes_received_total{type=\"binary\"}"
            ),
            30.0
        );
        assert_eq!(
            sample(&text, "wsecho_messages_sent_total{type=\"binary\"}"),
            0.0
        );
    }

    #[test]
    fn close_codes_and_statuses_fall_into_their_classes() {
        let metrics = Metrics::new(Mode::Echo);
        metrics.close_sent(1009);
        metrics.close_sent(1003);
        metrics.close_sent(4000);
        metrics.http_answer(429);
        metrics.http_answer(418);
        let text = metrics.render(0, &[], IDLE_BUDGET);
        assert_eq!(
            sample(&text, "wsecho_close_frames_sent_total{code=\"1009\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "wsecho_close_frames_sent_total{code=\"other\"}"),
            2.0
        );
        assert_eq!(
            sample(&text, "wsecho_http_answers_total{status=\"429\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "wsecho_http_answers_total{status=\"other\"}"),
            1.0
        );
    }

    #[test]
    fn the_gauges_read_from_the_state_are_set_when_rendering() {
        let metrics = Metrics::new(Mode::Broadcast);
        let text = metrics.render(3, &[("/a".into(), 2), ("/b".into(), 5)], IDLE_BUDGET);
        assert_eq!(sample(&text, "wsecho_connections"), 3.0);
        assert_eq!(sample(&text, "wsecho_rooms"), 2.0);
        assert_eq!(sample(&text, "wsecho_largest_room_members"), 5.0);
        assert_eq!(
            sample(&text, "wsecho_memory_budget_bytes"),
            (1u64 << 30) as f64
        );
        assert_eq!(sample(&text, "wsecho_memory_held_bytes"), 0.0);
        assert_eq!(
            sample(&text, "wsecho_websocket_connections{mode=\"broadcast\"}"),
            0.0
        );
    }
}
