//! The budget's decisions: who may grow, who waits in line for the upper half, and whom to
//! close when nobody has made progress for `evict_after`.

use std::task::Waker;
use std::time::{Duration, Instant};

use log::warn;

use super::{Admission, Growth, MemoryBudget, State, Waiting};
use crate::sync::lock::lock;
use std::sync::atomic::Ordering;

impl MemoryBudget {
    /// Charges `growth` more bytes to connection `id`, or queues it until there is room.
    /// `Growth::Stay` asks only that the budget not be over its limit.
    pub(super) fn grow(&self, id: u64, growth: Growth, waker: &Waker) -> Admission {
        let mut state = lock(&self.state);
        let Some(holder) = state.holders.get_mut(&id) else {
            return Admission::Evicted;
        };
        if holder.evicted.load(Ordering::Relaxed) {
            return Admission::Evicted;
        }
        holder.waker.clone_from(waker);
        let held = self.held.load(Ordering::Relaxed);
        let growth_bytes = match growth {
            Growth::Read(bytes) => bytes,
            Growth::Stay => 0,
        };
        let after = held.saturating_add(growth_bytes);
        let may_take_upper_half = match state.upper_half {
            Some(owner) => owner == id,
            None => state.waiting.front().is_none_or(|first| first.id == id),
        };
        let lower_half = after <= self.limit / 2;
        let fits = match growth {
            Growth::Read(_) => lower_half || (after <= self.limit && may_take_upper_half),
            Growth::Stay => after <= self.limit,
        };
        if fits {
            if !lower_half && matches!(growth, Growth::Read(_)) {
                state.upper_half = Some(id);
            }
            if let Some(holder) = state.holders.get_mut(&id) {
                holder.charge += growth_bytes;
            }
            self.held.store(after, Ordering::Relaxed);
            state.last_progress = Instant::now();
            if let Some(entry) = state.waiting.iter_mut().find(|entry| entry.id == id) {
                entry.paused_since = None;
            }
            return Admission::Read;
        }
        match state.waiting.iter_mut().find(|entry| entry.id == id) {
            Some(entry) => {
                entry.waker.clone_from(waker);
                entry.paused_since.get_or_insert_with(Instant::now);
            }
            None => state.waiting.push_back(Waiting {
                id,
                waker: waker.clone(),
                paused_since: Some(Instant::now()),
            }),
        }
        Admission::Wait
    }

    /// Takes connection `id` out of the line and out of the upper half once its message is
    /// complete, and wakes the next in line.
    pub(super) fn message_done(&self, id: u64) {
        let mut state = lock(&self.state);
        Self::leave(&mut state, id);
    }

    pub(super) fn leave(state: &mut State, id: u64) {
        state.waiting.retain(|entry| entry.id != id);
        if state.upper_half == Some(id) {
            state.upper_half = None;
        }
        if let Some(next) = state.waiting.front() {
            next.waker.wake_by_ref();
        }
    }

    /// Evicts the largest holder if a reader has been paused for `evict_after` and nobody
    /// has made progress meanwhile; returns when to look again. Called by
    /// [`MemoryBudget::enforce`], and directly by tests.
    pub(crate) fn evict_if_stuck(&self, now: Instant) -> Duration {
        let mut state = lock(&self.state);
        let last_progress = state.last_progress;
        let Some(longest) = state
            .waiting
            .iter_mut()
            .filter_map(|entry| entry.paused_since.as_mut())
            .min()
        else {
            return self.evict_after;
        };
        let stuck_since = (*longest).max(last_progress);
        let stuck_for = now.saturating_duration_since(stuck_since);
        if stuck_for < self.evict_after {
            return self.evict_after - stuck_for;
        }
        *longest = now;
        state.last_progress = now;
        // A connection waiting for room suffers the shortage rather than causes it: the one
        // to close is the largest of those that are not waiting (a client stalled in the
        // middle of a message, one that does not read what it is sent, one idle with the
        // buffers of an earlier message), and only when every holder waits, the largest.
        let waiting: Vec<u64> = state
            .waiting
            .iter()
            .filter(|entry| entry.paused_since.is_some())
            .map(|entry| entry.id)
            .collect();
        let candidates = || {
            state
                .holders
                .iter()
                .filter(|(_, holder)| !holder.evicted.load(Ordering::Relaxed))
        };
        let largest = candidates()
            .filter(|(id, _)| !waiting.contains(id))
            .max_by_key(|(_, holder)| holder.charge)
            .or_else(|| candidates().max_by_key(|(_, holder)| holder.charge));
        if let Some((_, holder)) = largest {
            warn!(
                "memory budget of {} bytes full for {:?}: closing the connection holding the \
                 most ({} bytes) with 1013",
                self.limit, self.evict_after, holder.charge
            );
            holder.evicted.store(true, Ordering::Relaxed);
            holder.waker.wake_by_ref();
        }
        self.evict_after
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{MIB, budget, feed};
    use super::*;

    #[test]
    fn past_half_the_budget_one_reader_at_a_time_grows_in_the_order_they_waited() {
        let budget = budget(16 * MIB);
        let mut first = budget.account(1, false);
        let mut second = budget.account(1, false);
        let mut third = budget.account(1, false);
        assert_eq!(feed(&mut first, 6 * MIB), Admission::Read);
        // The second crosses half the budget while nobody waits: the upper half is its own.
        assert_eq!(feed(&mut second, 4 * MIB), Admission::Read);
        assert_eq!(feed(&mut third, MIB), Admission::Wait);
        assert!(third.is_paused());
        assert_eq!(feed(&mut first, MIB), Admission::Wait);
        assert_eq!(budget.usage().paused, 2);
        assert_eq!(feed(&mut second, MIB), Admission::Read);
        // The second's message is complete: the upper half goes to the third, first in line.
        second.message_done();
        assert_eq!(feed(&mut first, MIB), Admission::Wait);
        assert_eq!(feed(&mut third, MIB), Admission::Read);
        assert!(!third.is_paused());
        assert_eq!(budget.usage().paused, 1);
        assert!(budget.usage().held <= 16 * MIB);
        // When the third is done too, the first's turn comes.
        third.message_done();
        drop(second);
        assert_eq!(feed(&mut first, MIB), Admission::Read);
        assert_eq!(budget.usage().paused, 0);
    }

    #[test]
    fn a_reader_stuck_for_the_timeout_evicts_the_largest_holder() {
        let budget = budget(4 * MIB);
        let mut large = budget.account(1, false);
        let mut small = budget.account(1, false);
        assert_eq!(feed(&mut large, 3 * MIB), Admission::Read);
        assert_eq!(feed(&mut small, 2 * MIB), Admission::Wait);
        let start = Instant::now();
        assert!(budget.evict_if_stuck(start) > Duration::ZERO);
        assert_eq!(large.admit(0, Waker::noop()), Admission::Read);
        budget.evict_if_stuck(start + Duration::from_secs(2));
        assert_eq!(large.admit(0, Waker::noop()), Admission::Evicted);
        drop(large);
        assert_eq!(feed(&mut small, 2 * MIB), Admission::Read);
    }
}
