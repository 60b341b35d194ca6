//! What every connection task reads: the configuration, the values derived from it once, and
//! the state the connections share (the rooms and the connection limit).
//!
//! It has a module of its own so that the pieces that read it (the accept loop, the
//! handshake, the session loops) can each depend on it without depending on one another.

use std::sync::Arc;

use log::error;

use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::address_limit::AddressLimit;
use crate::budget::{Account, MemoryBudget};
use crate::cluster::Cluster;
use crate::config::{Config, Mode};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::tls::Tls;

/// Bytes tungstenite reads at a time, and allocates per connection up front. tungstenite's
/// default (128 KiB) costs that much memory on every idle client and zero-fills it on every
/// read; bursts are served by `ReadAhead`'s buffer instead, which exists only while data is
/// pouring in, so this can be small enough to keep an idle connection within a few KB. The
/// README's performance section has the measurements behind the choice.
const READ_BUFFER_SIZE: usize = 512;

/// Bytes of control frames tungstenite collects before writing them, and half of what it may
/// hold.
const CONTROL_WRITE_BUFFER: usize = 4 * 1024;

/// The configuration and everything derived from it, shared by every connection task.
pub(crate) struct Shared {
    /// The settings, built once from the command line.
    pub config: Config,
    /// tungstenite's limits and buffer sizes, derived from `config`.
    pub websocket_config: WebSocketConfig,
    /// The welcome frame's payload, made once so each connection only bumps a count.
    pub welcome: Option<Utf8Bytes>,
    /// Broadcast mode's rooms.
    pub hub: Arc<Hub>,
    /// One permit per client being served: the connection limit.
    pub connection_slots: Arc<Semaphore>,
    /// Connections per client address.
    pub address_limit: Arc<AddressLimit>,
    /// What `/metrics` reports.
    pub metrics: Metrics,
    /// The TLS acceptor, when the server speaks TLS.
    pub tls: Option<Tls>,
    /// What all clients together may hold (`--max-memory`).
    pub budget: Arc<MemoryBudget>,
    /// The link to the rooms in Redis (`--redis`), in broadcast mode.
    pub cluster: Option<Arc<Cluster>>,
}

impl Shared {
    /// Derives the shared values from `config`.
    pub(crate) fn new(config: Config, tls: Option<Tls>) -> Self {
        let websocket_config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            // tungstenite writes only control frames (data goes through `outbox`), and holds
            // few: an answer to a ping it cannot write yet waits there, and a client that
            // sends pings and never reads would pile them up (a broadcast member's socket is
            // read while its writes wait). Past the limit tungstenite keeps only the latest,
            // which is all RFC 6455 asks.
            .write_buffer_size(CONTROL_WRITE_BUFFER)
            .max_write_buffer_size(2 * CONTROL_WRITE_BUFFER)
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size));
        let welcome = match config.mode {
            Mode::Raw => None,
            _ if config.welcome.is_empty() => None,
            _ => Some(Utf8Bytes::from(config.welcome.clone())),
        };
        let cluster = config
            .redis
            .as_deref()
            .map(|url| Cluster::new(url, config.redis_ca.as_deref()));
        let cluster = match cluster.transpose() {
            Ok(cluster) => cluster,
            Err(error) => {
                // `Config::check` refuses this before anything starts; a library caller
                // that skipped it gets the rooms in memory.
                error!("{error}; rooms stay on this node");
                None
            }
        };
        Shared {
            cluster,
            websocket_config,
            welcome,
            hub: Arc::new(Hub::with_history(config.history)),
            connection_slots: Arc::new(Semaphore::new(config.max_connections)),
            address_limit: Arc::new(AddressLimit::new(config.max_connections_per_ip)),
            metrics: Metrics::new(config.mode),
            tls,
            budget: Arc::new(MemoryBudget::new(
                config
                    .max_memory
                    .unwrap_or_else(crate::budget::default_limit),
                config.ping_timeout,
            )),
            config,
        }
    }

    /// A new connection's account with the memory budget. Echo modes may hold each message
    /// twice (see `budget`); broadcast holds it once, and again in its room's queues, so a
    /// sender waits whenever the budget is full.
    pub(crate) fn budget_account(&self) -> Account {
        match self.config.mode {
            Mode::Echo | Mode::Raw => self.budget.account(2, false),
            Mode::Broadcast => self.budget.account(1, true),
        }
    }

    /// How many clients hold a connection slot now.
    pub(crate) fn open_connections(&self) -> usize {
        self.config.max_connections - self.connection_slots.available_permits()
    }
}
