#![warn(missing_docs)]

//! wsecho: a small, fast, correct WebSocket echo and test server.
//!
//! The binary (`src/main.rs`) only parses flags, binds and calls [`serve`]; everything else
//! lives here, one concern per module. Dependencies only point down this list:
//!
//! - `server`: listening, accepting, the connection limit and shutdown fan-out.
//! - `connection`: one client from accept to close: handshake, then session, then close.
//! - `handshake`: reading the request within the timeout; plain answer or upgrade.
//! - `session`: the WebSocket session: the machinery every mode shares, one file per mode's
//!   loop (`echo`, `broadcast`), the keepalive clock, and how a session ends.
//! - `http`: request heads, routing and plain-HTTP answers; reads only the [`Config`].
//! - `shared`: the configuration and the state every connection task reads.
//! - `hub`: broadcast mode's rooms and the fan-out to their members.
//! - `cluster`: rooms shared between nodes through Redis Streams (`--redis`).
//! - `socket`: tungstenite's WebSocket, driven from the task that owns the connection.
//! - `tls`: the certificate and the TLS handshake; `stream`: plain or TLS, one type.
//! - `read_ahead`: the socket wrapper that keeps idle connections small and bursts fast.
//! - `metrics`: the counters and gauges `/metrics` reports.
//! - `json_log`: log lines as JSON objects, for `--log-format json`.
//! - `shutdown`: the shutdown signal and the wait for every task to finish.
//! - `config`: the one [`Config`], built from the command line.
//! - `address_limit`: connections per client address (`--max-connections-per-ip`).
//! - `budget`: the memory all clients together may hold (`--max-memory`).
//! - `open_files`, `lock`: the open-files limit, and locking shared maps.

mod address_limit;
mod budget;
mod cluster;
mod config;
mod connection;
#[cfg(test)]
mod counting_waker;
mod handshake;
mod http;
mod hub;
mod json_log;
mod lock;
mod mailbox;
mod metrics;
mod open_files;
mod outbox;
mod read_ahead;
mod server;
mod session;
mod shared;
mod shutdown;
mod socket;
mod stream;
mod tls;
mod workers;

pub use budget::return_large_buffers_to_the_system;
pub use config::{Config, Mode, parse_network, parse_seconds, parse_size};
pub use http::CLIENT_HTML;
pub use json_log::json_log_line;
pub use open_files::raise_open_files_limit;
pub use server::{bind, serve, serve_on};
pub use shutdown::terminated;
pub use tls::{Tls, reload_on_hangup};
pub use workers::Workers;
