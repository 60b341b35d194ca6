//! Locking the few mutexes the server shares between tasks (the rooms, the shutdown
//! listeners).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, carrying on if a thread panicked while holding it. Every critical section
/// behind these locks inserts or removes one map entry at a time, so a panic cannot leave the
/// data half-updated in a way that matters more than losing the whole server would.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
