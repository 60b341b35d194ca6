//! The server as a whole: listening, accepting, worker threads, background jobs and the
//! shutdown fan-out.
//!
//! [`Server::serve_on`] runs one accept loop per listening socket (a host name such as
//! `localhost` can stand for both `127.0.0.1` and `::1`). Each accepted client gets a task
//! that owns its places under the connection limits, so a slot is freed exactly when the
//! task ends, however it ends. When the shutdown future resolves, every task is told to stop
//! and `serve_on` returns once all of them have sent their close frames and finished.
//!
//! - `listen`: binding every address a host name stands for.
//! - `accept`: the accept loop, its backoff, and admission under the limits.
//! - `refuse`: the `503`/`429` answers to clients over a limit.
//! - `workers`: the runtimes connections are spread over.
//! - `run`: the whole process as the binary runs it.

mod accept;
mod listen;
mod refuse;
mod run;
mod workers;

use std::future::Future;
use std::sync::Arc;

use log::{error, info};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::conn::state::ServerState;
use crate::error::StartError;
use crate::limits::budget::log_limits;
use crate::sync::shutdown::Coordinator;
use crate::wire::tls::Tls;
use accept::accept_loop;
pub use listen::bind;
pub use run::{Listening, run};
pub use workers::Workers;

/// Most clients being refused (answered `503`) at once; beyond it an excess client's socket is
/// simply closed, so a flood past the connection limit cannot grow the refusals without bound.
const MAX_REFUSALS: usize = 256;

/// A server ready to serve: its configuration checked and its shared state built.
pub struct Server {
    state: Arc<ServerState>,
}

impl Server {
    /// Builds the server's shared state from `config` (and `tls`, when it speaks TLS). Fails
    /// on settings that cannot work, such as a Redis URL that does not parse.
    pub fn new(config: Config, tls: Option<Tls>) -> Result<Server, StartError> {
        config.check()?;
        Ok(Server {
            state: Arc::new(ServerState::new(config, tls)?),
        })
    }

    /// Serves WebSocket clients on `listeners` until `shutdown` resolves, with the
    /// connections spread over `workers` (accepted on the caller's runtime, then served on
    /// each worker in turn); then closes every connection with close code 1001 and returns
    /// once all of them are gone.
    pub async fn serve_on(
        self,
        workers: Arc<Workers>,
        listeners: Vec<TcpListener>,
        shutdown: impl Future,
    ) {
        let state = self.state;
        let config = &state.config;
        log_limits(state.budget.usage().limit, config.max_message_size);
        let coordinator = Coordinator::new();
        let refusal_slots = Arc::new(Semaphore::new(MAX_REFUSALS));
        for listener in listeners {
            tokio::spawn(accept_loop(
                listener,
                state.clone(),
                workers.clone(),
                refusal_slots.clone(),
                coordinator.handle(),
            ));
        }
        // The background jobs end with the server: dropped when shutdown begins.
        tokio::select! {
            _ = shutdown => {}
            _ = state.budget.clone().enforce() => {}
            _ = state.rooms.run() => {}
        }
        info!(
            "shutting down: closing {} connection(s)",
            state.connections.open()
        );
        coordinator.shut_down().await;
        info!("all connections closed");
    }
}

/// Serves WebSocket clients on `listeners` (over TLS when `tls` is given) until `shutdown`
/// resolves, then closes every connection with close code 1001 and returns once all of them
/// are gone. Every connection is served on the caller's runtime. A configuration that
/// cannot work is logged as an error and nothing is served; [`Server::new`] returns it.
pub async fn serve(
    listeners: Vec<TcpListener>,
    config: Config,
    tls: Option<Tls>,
    shutdown: impl Future,
) {
    serve_on(
        Arc::new(Workers::current()),
        listeners,
        config,
        tls,
        shutdown,
    )
    .await
}

/// [`serve`], with the connections spread over `workers`: see [`Server::serve_on`].
pub async fn serve_on(
    workers: Arc<Workers>,
    listeners: Vec<TcpListener>,
    config: Config,
    tls: Option<Tls>,
    shutdown: impl Future,
) {
    match Server::new(config, tls) {
        Ok(server) => server.serve_on(workers, listeners, shutdown).await,
        Err(error) => error!("not serving: {error}"),
    }
}
