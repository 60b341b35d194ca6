//! One connection's account with the budget: the check on every read, which must cost
//! almost nothing for a connection that sends ordinary messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;

use super::{ALLOWANCE, Admission, Growth, MemoryBudget, STEP};

/// One connection's standing with the budget: what it has read of the message now arriving,
/// and what it has been charged.
pub(crate) struct Account {
    budget: Arc<MemoryBudget>,
    /// Set once the connection first charges anything.
    holder: Option<(u64, Arc<AtomicBool>)>,
    /// Bytes read since the last complete data message.
    in_progress: usize,
    /// The message size the charge already covers (the allowance is free).
    covered: usize,
    pause_when_full: bool,
    copies: usize,
    paused: bool,
    /// In the budget's line of readers that have had to wait, or past half the budget.
    in_line: bool,
}

impl Account {
    /// See [`MemoryBudget::account`].
    pub(super) fn new(budget: Arc<MemoryBudget>, copies: usize, pause_when_full: bool) -> Self {
        Account {
            budget,
            holder: None,
            in_progress: 0,
            covered: ALLOWANCE,
            pause_when_full,
            copies,
            paused: false,
            in_line: false,
        }
    }

    /// Asks whether a read of up to `wanted` bytes may go ahead. Charges for it if it makes
    /// the message in flight larger than any before; `waker` is woken when a paused read may
    /// try again.
    #[inline]
    pub(crate) fn admit(&mut self, wanted: usize, waker: &Waker) -> Admission {
        // Every read of every connection comes here; most never get past these lines. A
        // connection the budget knows (it once sent a message past the allowance) stays on
        // this path too while its message is within the allowance: such a read can only be
        // refused for an eviction (see `admit_charged`).
        if self.in_progress.saturating_add(wanted) <= self.covered {
            match &self.holder {
                None => return Admission::Read,
                Some((_, evicted))
                    if self.in_progress < ALLOWANCE && !evicted.load(Ordering::Relaxed) =>
                {
                    return Admission::Read;
                }
                Some(_) => {}
            }
        }
        self.admit_charged(wanted, waker)
    }

    /// [`Account::admit`] for a read that grows the message past what is covered, or on a
    /// connection the budget knows.
    #[cold]
    fn admit_charged(&mut self, wanted: usize, waker: &Waker) -> Admission {
        let needed = self.in_progress.saturating_add(wanted);
        if needed <= self.covered {
            if self.is_evicted() {
                return Admission::Evicted;
            }
            if !(self.pause_when_full
                && self.in_progress >= ALLOWANCE
                && self.budget.held.load(Ordering::Relaxed) > self.budget.limit)
            {
                return Admission::Read;
            }
            let admission = self.ask(Growth::Stay, waker);
            self.paused = admission == Admission::Wait;
            return admission;
        }
        let target = needed.max(self.covered + STEP.max(self.covered / 8));
        let growth = (target - self.covered).saturating_mul(self.copies);
        let admission = self.ask(Growth::Read(growth), waker);
        self.paused = admission == Admission::Wait;
        // Past half the budget is the line's too (see `State::upper_half`).
        self.in_line |= admission != Admission::Evicted;
        if admission == Admission::Read {
            self.covered = target;
        }
        admission
    }

    /// Whether the connection is charged for messages of `bytes` or more: tungstenite holds a
    /// read buffer that large.
    pub(crate) fn holds_at_least(&self, bytes: usize) -> bool {
        self.holder.is_some() && self.covered >= bytes
    }

    /// The connection has let go of its large buffers (see `wire::socket::release`): its
    /// charge goes back to the budget, and its next large message is charged afresh.
    pub(crate) fn release(&mut self) {
        if let Some((id, _)) = self.holder.take() {
            self.budget.release(id);
        }
        self.covered = ALLOWANCE;
        self.in_progress = 0;
        self.in_line = false;
        self.paused = false;
    }

    /// Whether the budget has chosen this connection to close.
    pub(crate) fn is_evicted(&self) -> bool {
        self.holder
            .as_ref()
            .is_some_and(|(_, evicted)| evicted.load(Ordering::Relaxed))
    }

    /// Asks the budget, registering this connection with it first if it never has.
    fn ask(&mut self, growth: Growth, waker: &Waker) -> Admission {
        let budget = Arc::clone(&self.budget);
        let id = match &self.holder {
            Some((id, _)) => *id,
            None => self.holder.insert(budget.register(waker)).0,
        };
        budget.grow(id, growth, waker)
    }

    /// Counts `count` bytes read.
    #[inline]
    pub(crate) fn read(&mut self, count: usize) {
        self.in_progress += count;
    }

    /// A whole data message has arrived: the next one starts from zero.
    #[inline]
    pub(crate) fn message_done(&mut self) {
        self.in_progress = 0;
        if std::mem::take(&mut self.in_line)
            && let Some((id, _)) = self.holder
        {
            self.budget.message_done(id);
        }
    }

    /// Whether the last read was paused for room; such a client is not silent, only held
    /// back, so the keepalive does not time it out.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if let Some((id, _)) = self.holder {
            self.budget.release(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MIB, budget, feed};
    use super::*;

    #[test]
    fn small_messages_never_touch_the_budget() {
        let budget = budget(MIB);
        let mut account = budget.account(2, false);
        for _ in 0..1000 {
            assert_eq!(feed(&mut account, 1000), Admission::Read);
            account.message_done();
        }
        assert_eq!(budget.usage().held, 0);
    }

    #[test]
    fn a_large_message_is_charged_once_per_copy_and_given_back_on_close() {
        let budget = budget(64 * MIB);
        let mut account = budget.account(2, false);
        assert_eq!(feed(&mut account, 4 * MIB), Admission::Read);
        let held = budget.usage().held;
        assert!((8 * MIB..9 * MIB).contains(&held), "held {held}");
        // The same size again: tungstenite's buffers are already that big.
        account.message_done();
        assert_eq!(feed(&mut account, 4 * MIB), Admission::Read);
        assert_eq!(budget.usage().held, held);
        drop(account);
        assert_eq!(budget.usage().held, 0);
    }
}
