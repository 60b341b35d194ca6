#![warn(missing_docs)]

//! wsecho: a small, fast, correct WebSocket echo and test server.
//!
//! The binary (`src/main.rs`) only parses flags, binds and calls [`serve`]; everything else
//! lives here, one concern per module:
//!
//! - `config`: the one [`Config`], built from the command line.
//! - `server`: listening, accepting, the connection limit and shutdown fan-out.
//! - `shutdown`: the shutdown signal and the wait for every task to finish.
//! - `http`: plain-HTTP answers on the WebSocket port and the upgrade decision.
//! - `connection`: one client's session: welcome, echo or broadcast loop, keepalive, close.
//! - `hub`: broadcast mode's rooms and the fan-out to their members.
//! - `socket`: tungstenite's WebSocket, driven from the task that owns the connection.
//! - `read_ahead`: the socket wrapper that keeps idle connections small and bursts fast.

mod config;
mod connection;
mod http;
mod hub;
mod read_ahead;
mod server;
mod shutdown;
mod socket;

pub use config::{Config, Mode, parse_seconds, parse_size};
pub use http::CLIENT_HTML;
pub use server::{bind, raise_open_files_limit, serve};
pub use shutdown::terminated;
