//! The accept loop: one per listening socket. It admits each client under the connection
//! limits and places it on a worker, or has it refused, and keeps accepting through
//! failures (out of descriptors, say) with a backoff.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::refuse::refuse;
use super::workers::Workers;
use crate::conn;
use crate::conn::state::ServerState;
use crate::sync::shutdown::Shutdown;

/// Accepts clients on one listener. Each served client's task holds a connection slot (a
/// semaphore permit) and its address's place for exactly as long as it runs; a client that
/// finds no slot is answered `503` (`429` when its address is over its share) by a task
/// holding one of the few refusal slots, or simply closed when even those are taken.
pub(super) async fn accept_loop(
    listener: TcpListener,
    state: Arc<ServerState>,
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
        state.metrics.accepted.increment(1);
        let _ = stream.set_nodelay(true);
        let task_shutdown = shutdown.clone();
        match state.connections.admit(peer.ip()) {
            Ok(slots) => {
                let state = state.clone();
                workers.place(stream, peer, move |stream| {
                    conn::serve(stream, peer, state, task_shutdown, slots)
                });
            }
            // A refusal is plain HTTP; a TLS client could not read it, so it is just closed.
            Err(refusal) if state.tls.is_some() => {
                debug!(peer:% = peer; "peer {peer}: refused ({}); closed", refusal.reason());
            }
            Err(refusal) => match refusal_slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        refuse(stream, peer, refusal, &state, task_shutdown).await;
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
