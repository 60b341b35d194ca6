//! What the connection tasks share, grouped by concern: built once when the server starts,
//! read by every connection. Each phase of a connection takes the groups it uses.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{Config, Mode};
use crate::error::StartError;
use crate::limits::budget::{MemoryBudget, default_limit};
use crate::limits::connection_limit::ConnectionLimit;
use crate::observe::metrics::Metrics;
use crate::rooms::Rooms;
use crate::wire::tls::Tls;
use crate::wire::websocket_config;

/// The server's shared state: settings, limits, rooms and metrics.
pub(crate) struct ServerState {
    /// The settings, built once from the command line.
    pub config: Config,
    /// The TLS acceptor, when the server speaks TLS.
    pub tls: Option<Tls>,
    /// What `/metrics` reports.
    pub metrics: Metrics,
    /// Connection slots, overall and per client address.
    pub connections: ConnectionLimit,
    /// What all clients together may hold (`--max-memory`).
    pub budget: Arc<MemoryBudget>,
    /// Broadcast mode's rooms, on this node and through Redis.
    pub rooms: Rooms,
    /// tungstenite's limits and buffer sizes, derived from `config`.
    pub websocket_config: WebSocketConfig,
    /// The welcome frame's payload, made once so each connection only bumps a count.
    pub welcome: Option<Utf8Bytes>,
}

impl ServerState {
    /// Builds everything the connections share from `config`; fails only on settings that
    /// cannot work (a Redis URL that does not parse, a CA file that cannot be read).
    pub(crate) fn new(config: Config, tls: Option<Tls>) -> Result<Self, StartError> {
        let budget = Arc::new(MemoryBudget::new(
            config.max_memory.unwrap_or_else(default_limit),
            config.ping_timeout,
        ));
        let welcome = match config.mode {
            Mode::Raw => None,
            _ if config.welcome.is_empty() => None,
            _ => Some(Utf8Bytes::from(config.welcome.clone())),
        };
        Ok(ServerState {
            rooms: Rooms::new(&config, budget.clone())?,
            websocket_config: websocket_config(config.max_message_size),
            welcome,
            connections: ConnectionLimit::new(
                config.max_connections,
                config.max_connections_per_ip,
            ),
            metrics: Metrics::new(config.mode),
            tls,
            budget,
            config,
        })
    }
}
