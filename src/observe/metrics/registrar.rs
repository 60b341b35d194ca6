//! Registering the server's metrics with its own Prometheus recorder: names, help texts and
//! labels, resolved to handles once at start.

use metrics::{Counter, Gauge, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::{CLOSE_CODES, HANDSHAKE_BUCKETS, Metrics, STATUSES};
use crate::config::Mode;

/// Where `value` is counted: its place in `counted`, or the "other" counter after them.
pub(super) fn slot(counted: &[u16], value: u16) -> usize {
    counted
        .iter()
        .position(|&listed| listed == value)
        .unwrap_or(counted.len())
}

/// The label values for `counted` and "other", in that order.
pub(super) fn labels(counted: &[u16]) -> impl Iterator<Item = String> + '_ {
    counted
        .iter()
        .map(u16::to_string)
        .chain(std::iter::once("other".to_owned()))
}

/// Registers metrics with the server's recorder and describes them (the HELP lines).
pub(super) struct Registrar {
    pub(super) recorder: PrometheusRecorder,
}

impl Registrar {
    pub(super) fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(key, value)| Label::new(*key, value.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    pub(super) fn metadata() -> Metadata<'static> {
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
    }

    pub(super) fn counter(
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

    pub(super) fn gauge(
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

/// Messages and bytes one way, by frame type (index 0 text, 1 binary).
pub(super) struct TrafficCounters {
    pub(super) messages: [Counter; 2],
    pub(super) bytes: [Counter; 2],
}

impl TrafficCounters {
    /// The two counters of each kind for `way` (`received` or `sent`).
    pub(super) fn register(
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
            parked: registrar.gauge(
                "wsecho_websocket_connections_parked",
                "Echo and raw sessions parked while quiet, in the least memory (plain ws:// only)",
                &[],
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
}
