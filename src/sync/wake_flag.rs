//! A waker that remembers it was woken, for a loop that waits on one busy source and several
//! quiet ones.
//!
//! A broadcast member's task is woken by its room for nearly every delivery, and each time
//! it would poll everything else it waits on as well (shutdown, eviction, the socket, the
//! keepalive timer), although none of them has anything: polling the socket alone goes down
//! through tungstenite to the kernel's readiness flag. The quiet sources are polled with
//! this waker instead; a poll of the loop then asks the flag whether any of them has woken
//! it since, and polls them only if one has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;

/// Set when its waker is woken (and when first made), cleared when taken.
pub(crate) struct WakeFlag {
    woken: AtomicBool,
    /// The task to wake when the flag is set.
    task: AtomicWaker,
}

impl WakeFlag {
    /// A flag that is set, so that the first poll polls every source, and the waker that
    /// sets it.
    pub(crate) fn new() -> (Arc<WakeFlag>, Waker) {
        let flag = Arc::new(WakeFlag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(flag.clone());
        (flag, waker)
    }

    /// Whether the flag's waker has been woken (or the flag set) since the last call; clears
    /// the flag. `task` is woken by the next wake-up. A source polled after this returns
    /// `true` may wake the flag's waker before being polled: that wake-up is not lost but
    /// seen by the next call.
    pub(crate) fn take(&self, task: &Waker) -> bool {
        self.task.register(task);
        self.woken.load(Ordering::Acquire) && self.woken.swap(false, Ordering::AcqRel)
    }

    /// Sets the flag, so that the next [`WakeFlag::take`] polls the quiet sources again:
    /// for when one of them was ready (it may be again at once, and those polled after it
    /// were not polled at all) or was used some other way.
    pub(crate) fn set(&self) {
        self.woken.store(true, Ordering::Release);
    }
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set();
        self.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::counting_waker::CountingWaker;

    #[test]
    fn a_new_flag_is_set_once() {
        let (flag, _waker) = WakeFlag::new();
        assert!(flag.take(Waker::noop()));
        assert!(!flag.take(Waker::noop()));
    }

    #[test]
    fn a_wake_sets_the_flag_and_wakes_the_registered_task() {
        let (flag, waker) = WakeFlag::new();
        let (task, task_waker) = CountingWaker::new();
        assert!(flag.take(&task_waker));
        waker.wake_by_ref();
        assert_eq!(task.wakes(), 1);
        assert!(flag.take(&task_waker));
        assert!(!flag.take(&task_waker));
        waker.wake();
        assert_eq!(task.wakes(), 2);
        assert!(flag.take(&task_waker));
    }

    #[test]
    fn set_is_seen_by_the_next_take_without_waking_anyone() {
        let (flag, _waker) = WakeFlag::new();
        let (task, task_waker) = CountingWaker::new();
        assert!(flag.take(&task_waker));
        flag.set();
        assert_eq!(task.wakes(), 0);
        assert!(flag.take(&task_waker));
    }
}
