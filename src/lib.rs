#![warn(missing_docs)]

//! wsecho: a small, fast, correct WebSocket echo, test and chat server.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`], which parses flags, sets up logging
//! and calls [`run`]; everything lives here, one job per file, in folders by role. Listed in the order one
//! message travels, each layer depends only on the ones below it:
//!
//! - `cli`: the command line, its subcommands, and one-line errors.
//! - `server`: listening, the accept loop, admission, worker runtimes, background jobs and
//!   the shutdown fan-out; [`run`] is the whole process.
//! - `conn`: one client: the handshake (or a plain HTTP answer: the page, `/healthz`,
//!   `/stats`, `/metrics`), then the session, then the close.
//! - `http`: request heads, routing and plain-HTTP answers; reads the configuration and
//!   writes to the client's stream, nothing else.
//! - `session`: the WebSocket session: the machinery every mode shares, one file per mode's
//!   loop (`echo`, `broadcast`), the keepalive clock, and how a session ends.
//! - `rooms`: broadcast mode's rooms: the one entry point that charges the memory budget and
//!   sends to this node's members (`hub`) or through Redis Streams (`cluster`).
//! - `wire`: bytes to messages and back on the owning task: the plain or TLS stream, the
//!   read-ahead buffer, tungstenite's `WebSocket`, the outbox of data frames.
//! - `limits`: connection slots overall and per address, the memory budget, open files.
//! - `observe`: the metrics, JSON log lines, the logger, the `/stats` snapshot types.
//! - `config`, `scenario` and `error`: the one [`Config`], what a client asks of its own
//!   connection in the URL (`?close=`, `?delay_ms=`, ...), and why the server could not start.
//! - `sync`: the shutdown signal and locking shared maps.

pub mod cli;
mod config;
mod conn;
mod error;
mod http;
mod limits;
mod observe;
mod rooms;
mod scenario;
mod server;
mod session;
mod sync;
mod wire;

pub use config::{Config, Mode, parse_network, parse_seconds, parse_size};
pub use error::StartError;
pub use http::CLIENT_HTML;
pub use limits::budget::return_large_buffers_to_the_system;
pub use limits::open_files::raise_open_files_limit;
pub use observe::json_log::json_log_line;
pub use observe::logger::{LogFormat, init_logger};
pub use observe::stats::{BudgetUse, ClusterView};
pub use server::{Listening, Server, Workers, bind, run, serve, serve_on};
pub use sync::shutdown::terminated;
pub use wire::tls::{Tls, reload_on_hangup};
