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
    #[arg(
        long,
        help_heading = "Listening",
        env = "PORT",
        default_value_t = 8080,
        value_parser = parse_port
    )]
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

/// Parses a port number; the error names both places a port can come from, since clap's
/// own message names only the flag even when the value came from `PORT`.
fn parse_port(text: &str) -> Result<u16, String> {
    text.trim().parse().map_err(|_| {
        "expected a port number from 0 to 65535 (from --port, or the PORT environment \
         variable)"
            .to_owned()
    })
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
    let has_tls = tls.is_some();
    let hangup_config = config.clone();
    let server = Server::new(config, tls.clone())?;
    runtime.block_on(async {
        let hangups = reload_on_hangup(tls, hangup_config).map_err(StartError::Runtime)?;
        let listeners = bind(&listening.host, listening.port)
            .await
            .map_err(StartError::Listen)?;
        for listener in &listeners {
            if let Ok(address) = listener.local_addr() {
                announce(scheme, address);
            }
        }
        let pid = std::process::id();
        if has_tls {
            info!(
                "pid {pid}, serving on {} worker thread(s); `kill -HUP {pid}` reloads the TLS \
                 certificate",
                workers.count()
            );
        } else {
            info!("pid {pid}, serving on {} worker thread(s)", workers.count());
        }
        tokio::spawn(hangups);
        let serving = server.serve_on(Arc::new(workers), listeners, terminated());
        tokio::select! {
            () = serving => {}
            () = second_signal() => {
                warn!("a second signal during shutdown: exiting without waiting for clients");
                std::process::exit(130);
            }
        }
        Ok(())
    })
}

/// Resolves on the second SIGINT or SIGTERM: the first starts a graceful shutdown, and a
/// user who presses Ctrl-C again does not want to wait for it.
async fn second_signal() {
    terminated().await;
    terminated().await;
}

/// Says where the server listens, and the page to open: in the log at `info`, and on stderr
/// directly when `RUST_LOG` hides that level, so that the address (and with `--port 0` the
/// port picked) is always visible.
fn announce(scheme: &str, address: std::net::SocketAddr) {
    let page = if scheme == "wss" { "https" } else { "http" };
    let line = format!("listening on {scheme}://{address} (the page: {page}://{address}/)");
    if log::log_enabled!(log::Level::Info) {
        info!("{line}");
    } else {
        eprintln!("wsecho: {line}");
    }
}
