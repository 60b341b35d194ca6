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

use crate::config::Config;
use crate::connection;
use crate::http;
use crate::shared::Shared;
use crate::shutdown::{Coordinator, Shutdown};
use crate::stream::ClientStream;
use crate::tls::Tls;
use crate::workers::Workers;

/// Most clients being refused (answered `503`) at once; beyond it an excess client's socket is
/// simply closed, so a flood past the connection limit cannot grow the refusals without bound.
const MAX_REFUSALS: usize = 256;

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

/// Serves WebSocket clients on `listeners` (over TLS when `tls` is given) until `shutdown`
/// resolves, then closes every connection with close code 1001 and returns once all of them
/// are gone. Every connection is served on the caller's runtime.
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

/// [`serve`], with the connections spread over `workers`: accepted on the caller's runtime,
/// then served on each worker in turn.
pub async fn serve_on(
    workers: Arc<Workers>,
    listeners: Vec<TcpListener>,
    config: Config,
    tls: Option<Tls>,
    shutdown: impl Future,
) {
    let shared = Arc::new(Shared::new(config, tls));
    shared.budget.log_at_start(&shared.config);
    let coordinator = Coordinator::new();
    let refusal_slots = Arc::new(Semaphore::new(MAX_REFUSALS));
    for listener in listeners {
        tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            workers.clone(),
            refusal_slots.clone(),
            coordinator.handle(),
        ));
    }
    let cluster = async {
        match &shared.cluster {
            Some(cluster) => {
                cluster
                    .clone()
                    .run(shared.hub.clone(), shared.budget.clone())
                    .await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = shared.budget.clone().enforce() => {}
        _ = cluster => {}
    }
    info!(
        "shutting down: closing {} connection(s)",
        shared.open_connections()
    );
    coordinator.shut_down().await;
    info!("all connections closed");
}

/// Accepts clients on one listener. Each served client's task holds a connection slot (a
/// semaphore permit) and its address's place for exactly as long as it runs; a client that
/// finds no slot is answered `503` (`429` when its address is over its share) by a task
/// holding one of the few refusal slots, or simply closed when even those are taken.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: Arc<Workers>,
    refusal_slots: Arc<Semaphore>,
    mut shutdown: Shutdown,
) {
    let mut failures = AcceptFailures::default();
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
                let wait = failures.failed(&error, std::time::Instant::now());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.recv() => return,
                }
                continue;
            }
        };
        failures.succeeded();
        shared.metrics.accepted.increment(1);
        let _ = stream.set_nodelay(true);
        let task_shutdown = shutdown.clone();
        // The per-address limit first, so that one host over its share cannot take the
        // slots meant for others; then the overall limit.
        let admitted = match shared.address_limit.admit(peer.ip()) {
            None => Err(Refusal::Address),
            Some(address_slot) => match shared.connection_slots.clone().try_acquire_owned() {
                Ok(permit) => Ok((permit, address_slot)),
                Err(_) => Err(Refusal::Full),
            },
        };
        match admitted {
            Ok(slots) => {
                let shared = shared.clone();
                workers.place(stream, peer, move |stream| async move {
                    connection::serve(stream, peer, &shared, task_shutdown).await;
                    drop(slots);
                });
            }
            // A refusal is plain HTTP; a TLS client could not read it, so it is just closed.
            Err(refusal) if shared.tls.is_some() => {
                debug!(peer:% = peer; "peer {peer}: refused ({}); closed", refusal.reason());
            }
            Err(refusal) => match refusal_slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        refuse(stream, peer, refusal, &shared, task_shutdown).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    debug!(peer:% = peer;"peer {peer}: refused ({}); closed", refusal.reason())
                }
            },
        }
    }
}

/// Why a client is refused before any WebSocket work.
#[derive(Clone, Copy)]
enum Refusal {
    /// Every connection slot is taken: `503`.
    Full,
    /// The client's address holds its share already: `429`.
    Address,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "connection limit reached",
            Refusal::Address => "too many connections from this address",
        }
    }

    fn response(self) -> http::Response {
        match self {
            Refusal::Full => http::Response::busy(),
            Refusal::Address => http::Response::too_many_from_address(),
        }
    }
}

/// The accept loop's response to failing accepts: a wait that doubles from 10 ms to 1 s, so a
/// loop out of descriptors neither spins nor stalls for long once some free up, and one log
/// line per burst of failures rather than one per attempt. At the open-files limit accepts
/// fail, then one succeeds whenever a client leaves, then they fail again: all of that is one
/// burst, until no accept has failed for [`BURST_GAP`].
#[derive(Debug, Default)]
struct AcceptFailures {
    /// Failed attempts since the last successful accept: sets the wait.
    since_success: u64,
    /// Failed attempts in the current burst.
    in_burst: u64,
    /// When the last attempt failed.
    last_failure: Option<std::time::Instant>,
    /// The burst's recovery has been logged.
    recovery_logged: bool,
}

/// The first wait after a failed accept, and the longest.
const FIRST_ACCEPT_WAIT: Duration = Duration::from_millis(10);
const LONGEST_ACCEPT_WAIT: Duration = Duration::from_secs(1);

/// A failed accept this long after the previous one starts a new burst.
const BURST_GAP: Duration = Duration::from_secs(10);

impl AcceptFailures {
    /// Records a failed accept at `now` and returns how long to wait before the next attempt.
    fn failed(&mut self, error: &io::Error, now: std::time::Instant) -> Duration {
        let new_burst = self
            .last_failure
            .is_none_or(|last| now.duration_since(last) >= BURST_GAP);
        if new_burst {
            warn!(
                "accept failed: {error}; retrying with a backoff of up to {LONGEST_ACCEPT_WAIT:?} \
                 (further failures within {BURST_GAP:?} of each other are counted, not logged)"
            );
            self.in_burst = 0;
            self.recovery_logged = false;
        }
        self.in_burst += 1;
        self.since_success += 1;
        self.last_failure = Some(now);
        let doublings = (self.since_success - 1).min(10) as u32;
        (FIRST_ACCEPT_WAIT * 2u32.pow(doublings)).min(LONGEST_ACCEPT_WAIT)
    }

    /// Records a successful accept: the wait starts over, and the first success of a burst
    /// is logged.
    fn succeeded(&mut self) {
        if self.since_success == 0 {
            return;
        }
        self.since_success = 0;
        if !self.recovery_logged {
            info!("accepting again after {} failed attempt(s)", self.in_burst);
            self.recovery_logged = true;
        }
    }
}

/// Answers a refused client (`503` or `429`), after reading its request so the
/// answer is not lost to a reset.
async fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    refusal: Refusal,
    shared: &Shared,
    mut shutdown: Shutdown,
) {
    info!(peer:% = peer;"peer {peer}: refused, {}", refusal.reason());
    let response = refusal.response();
    let mut stream = ClientStream::Plain(stream);
    tokio::select! {
        _ = tokio::time::timeout(shared.config.handshake_timeout, async {
            if http::read_request(&mut stream).await.is_ok() {
                shared.metrics.http_answer(response.status.as_u16());
                let _ = http::answer(&mut stream, &response).await;
            }
        }) => {}
        _ = shutdown.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_waits_double_up_to_a_second_and_start_over_after_a_success() {
        let mut failures = AcceptFailures::default();
        let error = io::Error::from_raw_os_error(libc::EMFILE);
        let now = std::time::Instant::now();
        let waits: Vec<u64> = (0..10)
            .map(|_| failures.failed(&error, now).as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        failures.succeeded();
        assert_eq!(failures.failed(&error, now), FIRST_ACCEPT_WAIT);
    }

    #[test]
    fn failures_close_together_are_one_burst_even_across_successes() {
        let mut failures = AcceptFailures::default();
        let error = io::Error::from_raw_os_error(libc::EMFILE);
        let start = std::time::Instant::now();
        failures.failed(&error, start);
        failures.succeeded();
        assert!(failures.recovery_logged);
        failures.failed(&error, start + BURST_GAP / 2);
        assert_eq!(failures.in_burst, 2, "still the same burst");
        assert!(failures.recovery_logged, "its recovery is not logged twice");
        failures.failed(&error, start + BURST_GAP / 2 + BURST_GAP);
        assert_eq!(failures.in_burst, 1, "a new burst after a quiet gap");
        assert!(!failures.recovery_logged);
    }
}
