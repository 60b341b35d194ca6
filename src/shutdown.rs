//! Graceful shutdown as two small pieces: a signal every task listens to, and a way to wait
//! until every task has finished.
//!
//! The pattern is tokio's mini-redis: each task holds a [`Shutdown`]. It carries a
//! `watch::Receiver` that flips to `true` when shutdown begins, and an `mpsc::Sender` that is
//! never used to send: when the last clone is dropped (every task has returned), the
//! [`Coordinator`]'s receiver yields `None` and the server knows it may exit. No polling and no
//! sleeps.

use tokio::sync::{mpsc, watch};

/// Owned by the server: starts shutdown and waits for the tasks to finish.
pub(crate) struct Coordinator {
    /// Flipped to `true` once, when shutdown begins.
    signal: watch::Sender<bool>,
    /// Completes (yields `None`) when every [`Shutdown`] handle has been dropped.
    all_finished: mpsc::Receiver<()>,
    /// The original liveness token, cloned into each handle; dropped when waiting starts, so
    /// that only tasks keep the channel open.
    token: mpsc::Sender<()>,
}

/// Held by every task: says when to stop, and by being dropped says the task has stopped.
#[derive(Clone)]
pub(crate) struct Shutdown {
    /// Becomes `true` when the server starts shutting down.
    signal: watch::Receiver<bool>,
    /// Keeps the coordinator waiting while this task is alive.
    _alive: mpsc::Sender<()>,
}

impl Coordinator {
    pub(crate) fn new() -> Self {
        let (signal, _) = watch::channel(false);
        let (token, all_finished) = mpsc::channel(1);
        Coordinator {
            signal,
            all_finished,
            token,
        }
    }

    /// A handle for a task; a task passes clones of its own to the tasks it spawns.
    pub(crate) fn handle(&self) -> Shutdown {
        Shutdown {
            signal: self.signal.subscribe(),
            _alive: self.token.clone(),
        }
    }

    /// Tells every task to stop, then waits until all of them have returned.
    pub(crate) async fn shut_down(self) {
        let Coordinator {
            signal,
            mut all_finished,
            token,
        } = self;
        signal.send_replace(true);
        drop(token);
        let _ = all_finished.recv().await;
    }
}

impl Shutdown {
    /// Waits until shutdown begins; returns at once if it already has. Cancel-safe, so it can
    /// sit in a `select!` loop.
    pub(crate) async fn recv(&mut self) {
        // An error means the coordinator is gone, which only happens once serving is over.
        let _ = self.signal.wait_for(|&down| down).await;
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM: the shutdown signal the binary passes
/// to [`serve`](crate::serve).
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
