//! The whole process as the binary runs it: the runtimes, the open-files limit, the TLS
//! material, the listening sockets, and serving until SIGINT or SIGTERM.

use std::sync::Arc;

use clap::Args;
use log::{info, warn};

use super::{Server, Workers, bind};
use crate::config::Config;
use crate::error::StartError;
use crate::limits::open_files::raise_open_files_limit;
use crate::sync::shutdown::terminated;
use crate::wire::tls::{Tls, reload_on_hangup};

/// Where the server listens and on how many threads: the flags that belong to the process
/// rather than to the server's behaviour.
#[derive(Clone, Debug, Args)]
pub struct Listening {
    /// Address or name to listen on (every address it resolves to); `0.0.0.0` or `::` to
    /// accept clients from other machines.
    #[arg(long, help_heading = "Listening", default_value = "localhost")]
    pub host: String,

    /// Port to listen on; 0 picks a free one (the log says which).
    #[arg(long, help_heading = "Listening", env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Worker threads, each serving its share of the connections in turn; 1 runs everything
    /// on one thread. Default: one per CPU this process may run on.
    #[arg(
        long,
        help_heading = "Listening",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub threads: Option<u16>,
}

/// Runs the server as the binary does, until SIGINT or SIGTERM: starts the worker runtimes,
/// loads the TLS material, builds the server, binds, and serves. Every failure before the
/// first client is served is a [`StartError`]; the logger must already be set up.
pub fn run(listening: &Listening, config: Config) -> Result<(), StartError> {
    let threads = listening
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    // The runtime that accepts is worker 0; see `Workers` for why each worker is a
    // single-threaded runtime.
    let runtime = Workers::runtime().map_err(StartError::Runtime)?;
    let workers = Workers::start(threads).map_err(StartError::Runtime)?;
    if let Err(error) = raise_open_files_limit(config.max_connections) {
        warn!("cannot read the open-files limit: {error}");
    }
    // Before anything listens: a bad certificate or key is a start-up error.
    let tls = Tls::load(&config, &listening.host)?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let reload = tls.clone().map(|tls| reload_on_hangup(tls, config.clone()));
    let server = Server::new(config, tls)?;
    runtime.block_on(async {
        let listeners = bind(&listening.host, listening.port)
            .await
            .map_err(StartError::Listen)?;
        for listener in &listeners {
            if let Ok(address) = listener.local_addr() {
                info!("listening on {scheme}://{address}");
            }
        }
        info!("serving on {} worker thread(s)", workers.count());
        if let Some(reload) = reload {
            tokio::spawn(reload);
        }
        server
            .serve_on(Arc::new(workers), listeners, terminated())
            .await;
        Ok(())
    })
}
