//! Graceful shutdown as two small pieces: a signal every task listens to, and a way to wait
//! until every task has finished.
//!
//! The pattern is tokio's mini-redis: each task holds a [`Shutdown`], which says when to stop
//! and carries an `mpsc::Sender` that is never used to send: when the last clone is dropped
//! (every task has returned), the [`Coordinator`]'s receiver yields `None` and the server
//! knows it may exit. No polling and no sleeps.
//!
//! Unlike mini-redis, the signal is not a tokio channel (mini-redis uses `broadcast`). A
//! connection's loop polls the signal every time it wakes, that is, for every message; a
//! waiting `broadcast`, `watch` or `Notify` future takes the channel's one lock on each such
//! poll, shared by every connection on every thread. Here a handle keeps a copy of the waker it left with the signal: polling is
//! a flag load and a comparison with that copy, and the shared lock is only taken to join,
//! to leave, and in the rare case that the task's waker changes.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;

use crate::sync::lock::lock;

/// Owned by the server: starts shutdown and waits for the tasks to finish.
pub(crate) struct Coordinator {
    signal: Arc<Signal>,
    /// Completes (yields `None`) when every [`Shutdown`] handle has been dropped.
    all_finished: mpsc::Receiver<()>,
    /// The original liveness token, cloned into each handle; dropped when waiting starts, so
    /// that only tasks keep the channel open.
    token: mpsc::Sender<()>,
}

/// Held by every task: says when to stop, and by being dropped says the task has stopped.
pub(crate) struct Shutdown {
    signal: Arc<Signal>,
    /// This handle's place among the signal's listeners, taken the first time it waits.
    listener: Option<Listener>,
    /// Keeps the coordinator waiting while this task is alive.
    _alive: mpsc::Sender<()>,
}

/// The flag every handle reads, and the wakers of the handles waiting on it.
struct Signal {
    down: AtomicBool,
    listeners: Mutex<Listeners>,
}

#[derive(Default)]
struct Listeners {
    next_key: u64,
    wakers: HashMap<u64, Waker>,
}

struct Listener {
    key: u64,
    /// The waker this handle left with the signal.
    registered: Waker,
}

impl Signal {
    fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    fn listeners(&self) -> MutexGuard<'_, Listeners> {
        lock(&self.listeners)
    }

    fn join(&self, task: &Waker) -> Listener {
        let mut listeners = self.listeners();
        let key = listeners.next_key;
        listeners.next_key += 1;
        listeners.wakers.insert(key, task.clone());
        Listener {
            key,
            registered: task.clone(),
        }
    }

    fn update(&self, listener: &mut Listener, task: &Waker) {
        self.listeners().wakers.insert(listener.key, task.clone());
        listener.registered.clone_from(task);
    }

    /// Sets the flag first, then wakes under the lock: a listener that joins or updates its
    /// waker after the wake-up pass still sees the flag when it checks afterwards.
    fn raise(&self) {
        self.down.store(true, Ordering::Release);
        for waker in self.listeners().wakers.values() {
            waker.wake_by_ref();
        }
    }
}

impl Coordinator {
    pub(crate) fn new() -> Self {
        let (token, all_finished) = mpsc::channel(1);
        Coordinator {
            signal: Arc::new(Signal {
                down: AtomicBool::new(false),
                listeners: Mutex::default(),
            }),
            all_finished,
            token,
        }
    }

    /// A handle for a task; a task passes clones of its own to the tasks it spawns.
    pub(crate) fn handle(&self) -> Shutdown {
        Shutdown {
            signal: self.signal.clone(),
            listener: None,
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
        signal.raise();
        drop(token);
        let _ = all_finished.recv().await;
    }
}

impl Shutdown {
    /// Waits until shutdown begins; returns at once if it already has. Cancel-safe and cheap
    /// to make afresh, so it can sit in a `select!` loop.
    pub(crate) fn recv(&mut self) -> impl Future<Output = ()> + '_ {
        poll_fn(|context| self.poll_recv(context))
    }

    /// [`Shutdown::recv`] for hand-written futures.
    pub(crate) fn poll_recv(&mut self, context: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_down() {
            return Poll::Ready(());
        }
        let task = context.waker();
        match &mut self.listener {
            None => self.listener = Some(self.signal.join(task)),
            Some(listener) if !listener.registered.will_wake(task) => {
                self.signal.update(listener, task)
            }
            Some(_) => {}
        }
        if self.signal.is_down() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Clone for Shutdown {
    /// A clone listens on its own: it joins the signal the first time it waits.
    fn clone(&self) -> Self {
        Shutdown {
            signal: self.signal.clone(),
            listener: None,
            _alive: self._alive.clone(),
        }
    }
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            self.signal.listeners().wakers.remove(&listener.key);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_handles_wake_and_late_ones_return_at_once() {
        let coordinator = Coordinator::new();
        let mut waiting = coordinator.handle();
        let mut late = waiting.clone();
        let waiter = tokio::spawn(async move { waiting.recv().await });
        tokio::task::yield_now().await;
        assert_eq!(coordinator.signal.listeners().wakers.len(), 1);
        let shut_down = tokio::spawn(coordinator.shut_down());
        waiter.await.unwrap();
        late.recv().await;
        drop(late);
        shut_down.await.unwrap();
    }

    #[tokio::test]
    async fn a_dropped_handle_leaves_the_listeners() {
        let coordinator = Coordinator::new();
        let mut handle = coordinator.handle();
        assert!(futures_util::FutureExt::now_or_never(handle.recv()).is_none());
        assert_eq!(coordinator.signal.listeners().wakers.len(), 1);
        drop(handle);
        assert!(coordinator.signal.listeners().wakers.is_empty());
    }
}
