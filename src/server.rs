//! Accepting connections: listening sockets, the connection limit, and shutdown fan-out.
//!
//! [`serve`] runs one accept loop per listening socket (a host name such as `localhost` can
//! stand for both `127.0.0.1` and `::1`). Each accepted client gets a task that owns a permit
//! from the connection limit, so a slot is freed exactly when the task ends, however it ends.
//! When the shutdown future resolves, every task is told to stop and `serve` returns once all
//! of them have sent their close frames and finished.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use tokio::net::{TcpListener, TcpStream, lookup_host};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::Config;
use crate::connection;
use crate::http;
use crate::hub::Hub;
use crate::shutdown::{Coordinator, Shutdown};

/// What every connection task reads: the configuration and the values derived from it once.
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
}

impl Shared {
    fn new(config: Config) -> Self {
        let websocket_config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .write_buffer_size(WRITE_BUFFER_SIZE)
            // Room for what is waiting to go out plus the largest reply; a connection never
            // queues more, because sending waits for the socket before queueing the next
            // message, and a client that stops reading is dropped after the ping timeout.
            .max_write_buffer_size(
                WRITE_BUFFER_SIZE
                    .saturating_add(config.max_message_size)
                    .saturating_add(64),
            )
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size));
        let welcome = match config.mode {
            crate::Mode::Raw => None,
            _ if config.welcome.is_empty() => None,
            _ => Some(Utf8Bytes::from(config.welcome.clone())),
        };
        Shared {
            websocket_config,
            welcome,
            hub: Arc::default(),
            connection_slots: Arc::new(Semaphore::new(config.max_connections)),
            config,
        }
    }

    /// How many clients hold a connection slot now.
    pub fn open_connections(&self) -> usize {
        self.config.max_connections - self.connection_slots.available_permits()
    }
}

/// Bytes tungstenite reads at a time, and allocates per connection up front. tungstenite's
/// default (128 KiB) costs that much memory on every idle client and zero-fills it on every
/// read; bursts are served by `ReadAhead`'s 64 KiB buffer instead, which exists only while
/// data is pouring in.
///
/// Measured here with `bench/run.sh`'s load generator (server on CPU 0, one thread; 10,000
/// idle connections; 64 KiB messages pipelined 4 deep on 16 connections), two runs each:
///
/// | read buffer | idle memory per connection | pipelined 64 KiB: µs CPU per message |
/// |---|---|---|
/// | 128 KiB: tokio-tungstenite's default, as in its examples | 137 KB | 33-35 |
/// | 4 KiB, reading the socket directly | (not comparable: older code) | 51 |
/// | 2 KiB, with `ReadAhead` | 4.4 KB | 29-33 |
/// | 512 B, with `ReadAhead` (chosen) | 3.4 KB | 31-32 |
///
/// Between 2 KiB and 512 B throughput no longer changes measurably (1 KiB messages pipelined:
/// 1.07-1.15 µs at both) while memory keeps falling.
const READ_BUFFER_SIZE: usize = 512;

/// Replies are collected up to this many bytes before tungstenite writes them to the socket;
/// a batch of replies is flushed at the end in any case.
const WRITE_BUFFER_SIZE: usize = 64 * 1024;

/// Most clients being refused (answered `503`) at once; beyond it an excess client's socket is
/// simply closed, so a flood past the connection limit cannot grow the refusals without bound.
const MAX_REFUSALS: usize = 256;

/// Raises this process's soft limit on open files to its hard limit, so the connection limit
/// and not the default soft limit (often 1024) decides how many clients fit, and returns the
/// limit now in force. Logs a warning when `max_connections` cannot fit in it.
pub fn raise_open_files_limit(max_connections: usize) -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            warn!(
                "cannot raise the open-files limit: {}",
                io::Error::last_os_error()
            );
        }
    }
    // Each client needs one descriptor; these are for listeners, logs and the like.
    const HEADROOM: u64 = 64;
    let open_files: u64 = limit.rlim_cur;
    if open_files < max_connections as u64 + HEADROOM {
        warn!(
            "the open-files limit ({open_files}) is below --max-connections ({max_connections}) plus \
             headroom; clients beyond about {} will fail to connect",
            open_files.saturating_sub(HEADROOM)
        );
    }
    Ok(open_files)
}

/// Resolves `host` and listens on `port` at every address it stands for.
///
/// With port 0 the first address picks a free port and the others use the same one, so one
/// port number reaches the server whichever address a client resolves the name to. An address
/// this machine does not have (e.g. `::1` with IPv6 off) is skipped with a warning; any other
/// failure is an error that names the address.
pub async fn bind(host: &str, port: u16) -> io::Result<Vec<TcpListener>> {
    let mut addresses: Vec<SocketAddr> = lookup_host((host, port))
        .await
        .map_err(|error| io::Error::new(error.kind(), format!("cannot resolve {host}: {error}")))?
        .collect();
    addresses.dedup();
    let mut listeners = Vec::with_capacity(addresses.len());
    let mut chosen_port = port;
    for mut address in addresses {
        address.set_port(chosen_port);
        match TcpListener::bind(address).await {
            Ok(listener) => {
                chosen_port = listener.local_addr()?.port();
                listeners.push(listener);
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
                ) || error.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                warn!("not listening on {address}: {error}");
            }
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("cannot listen on {address}: {error}"),
                ));
            }
        }
    }
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("cannot listen on {host}:{port}: no usable address"),
        ));
    }
    Ok(listeners)
}

/// Serves WebSocket clients on `listeners` until `shutdown` resolves, then closes every
/// connection with close code 1001 and returns once all of them are gone.
pub async fn serve(listeners: Vec<TcpListener>, config: Config, shutdown: impl Future) {
    let shared = Arc::new(Shared::new(config));
    let coordinator = Coordinator::new();
    let refusal_slots = Arc::new(Semaphore::new(MAX_REFUSALS));
    for listener in listeners {
        tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            refusal_slots.clone(),
            coordinator.handle(),
        ));
    }
    shutdown.await;
    info!(
        "shutting down: closing {} connection(s)",
        shared.open_connections()
    );
    coordinator.shut_down().await;
    info!("all connections closed");
}

/// Accepts clients on one listener. Each served client's task holds a connection slot (a
/// semaphore permit) for exactly as long as it runs; a client that finds no slot is answered
/// `503` by a task holding one of the few refusal slots, or simply closed when even those
/// are taken.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    refusal_slots: Arc<Semaphore>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.recv() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or memory, or a client that gave up while queued:
                // wait a moment rather than spin, and keep serving.
                warn!("accept failed: {error}; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.recv() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let _ = stream.set_nodelay(true);
        let task_shutdown = shutdown.clone();
        match shared.connection_slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection::serve(stream, peer, &shared, task_shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => match refusal_slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let handshake_timeout = shared.config.handshake_timeout;
                    tokio::spawn(async move {
                        refuse(stream, peer, handshake_timeout, task_shutdown).await;
                        drop(permit);
                    });
                }
                Err(_) => debug!("peer {peer}: over the connection limit; closed"),
            },
        }
    }
}

/// Answers a client over the connection limit with `503`, after reading its request so the
/// answer is not lost to a reset.
async fn refuse(
    mut stream: TcpStream,
    peer: SocketAddr,
    handshake_timeout: Duration,
    mut shutdown: Shutdown,
) {
    info!("peer {peer}: refused, connection limit reached");
    let response = http::Response::busy();
    tokio::select! {
        _ = tokio::time::timeout(handshake_timeout, async {
            if http::read_request(&mut stream).await.is_ok() {
                let _ = http::answer(&mut stream, &response).await;
            }
        }) => {}
        _ = shutdown.recv() => {}
    }
}
