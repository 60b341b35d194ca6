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

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::budget::BudgetUse;
use crate::config::Mode;

/// The HTTP statuses counted apart; any other is counted as "other".
const STATUSES: [u16; 11] = [101, 200, 400, 403, 404, 405, 408, 426, 429, 431, 503];

/// The close codes counted apart; any other is counted as "other".
const CLOSE_CODES: [u16; 7] = [1000, 1001, 1002, 1007, 1008, 1009, 1013];

/// Where `value` is counted: its place in `counted`, or the "other" counter after them.
fn slot(counted: &[u16], value: u16) -> usize {
    counted
        .iter()
        .position(|&listed| listed == value)
        .unwrap_or(counted.len())
}

/// The label values for `counted` and "other", in that order.
fn labels(counted: &[u16]) -> impl Iterator<Item = String> + '_ {
    counted
        .iter()
        .map(u16::to_string)
        .chain(std::iter::once("other".to_owned()))
}

/// Handshake duration buckets, in seconds: 100 µs to about 6.5 s, by fours.
const HANDSHAKE_BUCKETS: [f64; 9] = [
    0.0001, 0.0004, 0.0016, 0.0064, 0.0256, 0.1024, 0.4096, 1.6384, 6.5536,
];

/// Registers metrics with the server's recorder and describes them (the HELP lines).
struct Registrar {
    recorder: PrometheusRecorder,
}

impl Registrar {
    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(key, value)| Label::new(*key, value.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    fn metadata() -> Metadata<'static> {
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
    }

    fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        self.recorder
            .describe_counter(name.into(), None, help.into());
        self.recorder
            .register_counter(&Self::key(name, labels), &Self::metadata())
    }

    fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Gauge {
        self.recorder.describe_gauge(name.into(), None, help.into());
        self.recorder
            .register_gauge(&Self::key(name, labels), &Self::metadata())
    }
}

/// The shared counters and gauges, resolved once.
pub(crate) struct Metrics {
    handle: PrometheusHandle,
    /// TCP connections accepted.
    pub accepted: Counter,
    /// HTTP answers, in the order of [`STATUSES`], then "other".
    http_answers: Vec<Counter>,
    /// WebSocket sessions open now (labelled with the mode).
    pub websocket_open: Gauge,
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

/// Messages and bytes one way, by frame type (index 0 text, 1 binary).
struct TrafficCounters {
    messages: [Counter; 2],
    bytes: [Counter; 2],
}

impl TrafficCounters {
    fn register(
        registrar: &Registrar,
        messages: &'static str,
        bytes: &'static str,
        way: &'static str,
    ) -> Self {
        let (messages_help, bytes_help) = match way {
            "received" => (
                "WebSocket data messages received, by type",
                "Payload bytes of the WebSocket data messages received, by type",
            ),
            _ => (
                "WebSocket data messages sent, by type",
                "Payload bytes of the WebSocket data messages sent, by type",
            ),
        };
        let of = |name, help, kind| registrar.counter(name, help, &[("type", kind)]);
        TrafficCounters {
            messages: [
                of(messages, messages_help, "text"),
                of(messages, messages_help, "binary"),
            ],
            bytes: [
                of(bytes, bytes_help, "text"),
                of(bytes, bytes_help, "binary"),
            ],
        }
    }
}

impl Metrics {
    /// Registers everything; `mode` labels the open-sessions gauge.
    pub(crate) fn new(mode: Mode) -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&HANDSHAKE_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            // The buckets are a non-empty constant: this cannot fail.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let registrar = Registrar { recorder };
        let mode_name = match mode {
            Mode::Echo => "echo",
            Mode::Raw => "raw",
            Mode::Broadcast => "broadcast",
        };
        let close = |name, help| -> Vec<Counter> {
            labels(&CLOSE_CODES)
                .map(|code| registrar.counter(name, help, &[("code", &code)]))
                .collect()
        };
        let handshake_name = "wsecho_handshake_duration_seconds";
        registrar.recorder.describe_histogram(
            handshake_name.into(),
            None,
            "Time from accepting a connection to sending its 101".into(),
        );
        let handshake_seconds = registrar
            .recorder
            .register_histogram(&Registrar::key(handshake_name, &[]), &Registrar::metadata());
        Metrics {
            accepted: registrar.counter("wsecho_tcp_accepted_total", "TCP connections accepted", &[]),
            http_answers: labels(&STATUSES)
                .map(|status| {
                    registrar.counter(
                        "wsecho_http_answers_total",
                        "HTTP answers sent, by status (101 is an upgrade)",
                        &[("status", &status)],
                    )
                })
                .collect(),
            websocket_open: registrar.gauge(
                "wsecho_websocket_connections",
                "WebSocket sessions open now, by mode",
                &[("mode", mode_name)],
            ),
            connection_slots: registrar.gauge(
                "wsecho_connections",
                "Connection slots taken now: WebSocket clients and HTTP requests being answered, as /stats counts them",
                &[],
            ),
            rooms: registrar.gauge("wsecho_rooms", "Broadcast rooms with members", &[]),
            largest_room: registrar.gauge(
                "wsecho_largest_room_members",
                "Members of the largest broadcast room",
                &[],
            ),
            received: TrafficCounters::register(
                &registrar,
                "wsecho_messages_received_total",
                "wsecho_message_bytes_received_total",
                "received",
            ),
            sent: TrafficCounters::register(
                &registrar,
                "wsecho_messages_sent_total",
                "wsecho_message_bytes_sent_total",
                "sent",
            ),
            close_sent: close("wsecho_close_frames_sent_total", "Close frames sent, by code"),
            close_received: close(
                "wsecho_close_frames_received_total",
                "Close frames received with a code, by code",
            ),
            evictions: registrar.counter(
                "wsecho_broadcast_evictions_total",
                "Broadcast members disconnected for falling more than --max-queue behind",
                &[],
            ),
            memory_evictions: registrar.counter(
                "wsecho_memory_evictions_total",
                "Clients closed with 1013 because the memory budget (--max-memory) stayed full",
                &[],
            ),
            memory_limit: registrar.gauge(
                "wsecho_memory_budget_bytes",
                "The memory budget for all clients together (--max-memory)",
                &[],
            ),
            memory_held: registrar.gauge(
                "wsecho_memory_held_bytes",
                "Bytes held for clients, counted against the memory budget",
                &[],
            ),
            memory_paused: registrar.gauge(
                "wsecho_memory_paused_clients",
                "Clients whose reading is paused until the memory budget has room",
                &[],
            ),
            ping_timeouts: registrar.counter(
                "wsecho_ping_timeouts_total",
                "Clients closed for not answering a ping within --ping-timeout",
                &[],
            ),
            not_reading: registrar.counter(
                "wsecho_not_reading_drops_total",
                "Clients dropped for taking nothing they were sent within --ping-timeout",
                &[],
            ),
            tls_handshake_failures: registrar.counter(
                "wsecho_tls_handshake_failures_total",
                "TLS handshakes that failed, timed out, or met a client not speaking TLS",
                &[],
            ),
            handshake_seconds,
            handle,
        }
    }

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

    const IDLE_BUDGET: BudgetUse = BudgetUse {
        limit: 1 << 30,
        held: 0,
        paused: 0,
    };

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
