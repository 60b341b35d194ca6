//! The one [`Config`] that every part of the server reads.
//!
//! It is built once (from the command line in `main.rs`, or by hand in tests) and shared by
//! reference; nothing else carries settings around. Every field is a flag, so the doc comment
//! on a field is also its line in `--help`.

use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

use crate::error::StartError;

/// What the server does with the messages a client sends.
///
/// The connection code matches on this, so each behaviour lives in one place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Send the welcome, then answer each text message with `Hello from server, you said:
    /// "<message>"` and echo binary messages unchanged (the Node `ws` tutorial).
    #[default]
    Echo,
    /// Echo every text and binary message back unchanged, with no welcome: for protocol
    /// testing and conformance suites.
    Raw,
    /// Send the welcome, then deliver every message to every client in the same room (the
    /// URL path), the sender included: a chat.
    Broadcast,
}

/// Everything the server needs to know, as one value.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// What to do with messages: `echo` (welcome + prefixed reply), `raw` (verbatim echo, no
    /// welcome) or `broadcast` (chat: every message to everyone in the same room).
    #[arg(help_heading = "Modes", long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,

    /// Text frame sent to each client when it connects (echo and broadcast modes); an empty
    /// string sends none.
    #[arg(
        help_heading = "Modes",
        long,
        default_value = "Welcome to the WebSocket server!"
    )]
    pub welcome: String,

    /// Largest message (and frame) a client may send, in bytes or with a KiB/MiB/GiB suffix;
    /// a larger one is refused with close code 1009.
    #[arg(help_heading = "Limits", long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Memory all clients together may hold (unfinished messages, replies waiting to be
    /// written); past it the largest senders are paused. Default: 1/4 of RAM, at most 4GiB.
    #[arg(help_heading = "Limits", long, value_name = "BYTES", value_parser = parse_size)]
    pub max_memory: Option<usize>,

    /// Seconds a client gets to send its HTTP request and finish the upgrade; a slower one is
    /// disconnected (slowloris defence).
    #[arg(help_heading = "Limits", long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub handshake_timeout: Duration,

    /// Seconds of silence from a client after which the server pings it; 0 disables pings.
    #[arg(help_heading = "Limits", long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
    pub ping_interval: Duration,

    /// Seconds a pinged client has to send anything back, and that a client has to take
    /// delivery of what the server is sending it, before it is disconnected.
    #[arg(help_heading = "Limits", long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
    pub ping_timeout: Duration,

    /// Seconds each client gets to answer the server's close frame (on shutdown or after an
    /// error) before its connection is dropped.
    #[arg(help_heading = "Limits", long, value_name = "SECS", default_value = "3", value_parser = parse_seconds)]
    pub close_timeout: Duration,

    /// Longest request target (path and query) accepted, in bytes; a longer one gets `414`.
    /// In broadcast mode the path is the room's name, so this bounds room names too.
    #[arg(help_heading = "Limits", long, value_name = "BYTES", default_value = "1KiB", value_parser = parse_size)]
    pub max_path_length: usize,

    /// Most clients served at once; the next one gets `503 Service Unavailable`.
    #[arg(
        help_heading = "Limits",
        long,
        value_name = "N",
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// Most clients served at once from one address (IPv6: one /64); the next one gets `429
    /// Too Many Requests`. 0: no limit.
    #[arg(help_heading = "Limits", long, value_name = "N", default_value_t = 0)]
    pub max_connections_per_ip: usize,

    /// Origin allowed to open a WebSocket (repeat the flag for several); others get `403
    /// Forbidden`. Default: any origin.
    #[arg(
        help_heading = "Limits",
        long = "allowed-origin",
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,

    /// Turn off the test scenarios a client can ask for in the URL (`?close=`, `?delay_ms=`,
    /// `?status=`, `?inspect`, ...) and `GET /inspect`: for a public chat, or behind a proxy
    /// whose internal headers should not be shown.
    #[arg(help_heading = "Modes", long)]
    pub no_faults: bool,

    /// Subprotocol to accept (repeat for several): the client's first offer that is listed is
    /// chosen; `*` accepts whatever the client offers first. Default: none.
    #[arg(help_heading = "Modes", long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,

    /// Network allowed to read `/metrics` (CIDR such as `10.0.0.0/8`, or one address; repeat
    /// for several); others get `403`. Default: loopback only.
    #[arg(
        help_heading = "Observability",
        long = "metrics-allow",
        value_name = "CIDR",
        default_values = ["127.0.0.0/8", "::1/128"],
        value_parser = parse_network
    )]
    pub metrics_allow: Vec<ipnet::IpNet>,

    /// PEM certificate (chain) to serve `wss://` and `https://` with; needs --tls-key.
    #[arg(help_heading = "TLS", long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(help_heading = "TLS", long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Serve TLS with a certificate made at start for localhost, 127.0.0.1, ::1 and --host
    /// (its SHA-256 fingerprint is logged).
    #[arg(help_heading = "TLS", long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,

    /// With --tls-self-signed: write the certificate (never the key) here, for clients to
    /// trust (curl --cacert, the example client's --ca).
    #[arg(
        help_heading = "TLS",
        long,
        value_name = "FILE",
        requires = "tls_self_signed"
    )]
    pub tls_cert_out: Option<std::path::PathBuf>,

    /// Broadcast mode: messages a client may have waiting to be sent to it; a client that
    /// falls this far behind is disconnected with close code 1013.
    #[arg(
        help_heading = "Limits",
        long,
        value_name = "N",
        default_value_t = 1024
    )]
    pub max_queue: usize,

    /// Broadcast mode: the room's last N messages are sent to each client that joins, after
    /// the welcome, so a reconnecting chat page catches up. A client that connects with
    /// `?history_notice=1` gets `{"wsecho":"history","count":N}` before them.
    #[arg(
        help_heading = "Broadcast",
        long,
        value_name = "N",
        default_value_t = 0
    )]
    pub history: usize,

    /// Broadcast mode: share rooms with other wsecho nodes through this Redis
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://` over TLS); every node
    /// delivers a room's messages in the same order.
    #[arg(help_heading = "Broadcast", long, value_name = "URL")]
    pub redis: Option<String>,

    /// With a `rediss://` URL: the PEM certificate (or CA) to trust for Redis, instead of
    /// the system's trust store.
    #[arg(
        help_heading = "Broadcast",
        long,
        value_name = "FILE",
        requires = "redis"
    )]
    pub redis_ca: Option<std::path::PathBuf>,

    /// With --redis: most bytes of messages one room's stream keeps; the oldest are trimmed
    /// past it, so one busy room cannot fill a Redis that other rooms share.
    #[arg(help_heading = "Broadcast", long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub stream_max_bytes: usize,

    /// With --redis: a room's stream is deleted once nobody has been in the room, on any
    /// node, for this many seconds.
    #[arg(help_heading = "Broadcast", long, value_name = "SECONDS", default_value = "3600", value_parser = parse_seconds)]
    pub room_ttl: Duration,
}

impl Config {
    /// Settings that cannot work together. Only the flags are looked at: whether the Redis
    /// URL parses and the TLS files load is found out when the server is built from them.
    pub fn check(&self) -> Result<(), StartError> {
        if self.redis.is_some() && self.mode != Mode::Broadcast {
            return Err(StartError::Config(
                "--redis shares broadcast rooms: it needs --mode broadcast".into(),
            ));
        }
        if self.room_ttl < Duration::from_secs(1) {
            return Err(StartError::Config(format!(
                "--room-ttl {:?} is too short: rooms' streams would expire under their members; \
                 use 1 second or more",
                self.room_ttl
            )));
        }
        if self.history > self.max_queue {
            return Err(StartError::Config(format!(
                "--history {} is more than --max-queue {}: a client joining a room would be \
                 disconnected as too slow before it had read the history",
                self.history, self.max_queue
            )));
        }
        Ok(())
    }
}

impl Default for Config {
    /// The same values the command line gives when no flag is passed, so that tests and
    /// embedders start from what users get.
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        Defaults::parse_from(["wsecho"]).config
    }
}

/// Parses a byte count such as `1048576`, `512KiB`, `64MiB` or `1GiB` (`K`, `M`, `G` and
/// `KB`, `MB`, `GB` mean the same binary multiples; case does not matter).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: expected e.g. 65536, 512KiB or 64MiB"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}`: use KiB, MiB or GiB")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a network in CIDR form (`10.0.0.0/8`, `fd00::/8`) or a single address.
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not a network: expected e.g. 10.0.0.0/8 or ::1"))
}

/// Parses a number of seconds, fractions allowed (`0.5`), into a [`Duration`].
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    // Deadlines are computed as now + duration; a century keeps that far from overflowing.
    const LONGEST: f64 = 100.0 * 365.0 * 24.0 * 3600.0;
    if !(0.0..=LONGEST).contains(&seconds) {
        return Err(format!("`{text}` is out of range: 0 to {LONGEST} seconds"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a valid duration"))
}
