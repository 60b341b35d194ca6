//! The memory budget: one limit on what the server holds for all clients together.
//!
//! Every per-connection limit can be obeyed while the sum of them is not: 400 clients each
//! sending a 60 MiB message stay under `--max-message-size` and still exhaust a 24 GiB
//! machine. The budget bounds the sum. It is charged where wsecho already sees the bytes,
//! on the read path: what a client has sent of the message now arriving. tungstenite keeps
//! the read buffer a large message needed until the connection ends, so a connection's
//! charge is the largest message it has had in flight, and is given back when the connection
//! closes. Echo modes are charged twice over: echo mode's reply is a prefixed copy, and a raw
//! reply, written from the received payload itself, keeps its read buffer from being reused
//! until it has gone out. The first [`ALLOWANCE`] bytes of each message are free, so
//! clients sending ordinary messages never touch the budget.
//!
//! When a read would take the budget past its limit, the reader is paused: nothing more is
//! read from its socket, and TCP pushes back on the client. The lower half of the budget is
//! open to every reader; the upper half goes only to the reader that has waited longest, so
//! that when memory is short one message at a time is completed rather than every message
//! being stuck half-read. If a reader has waited for `evict_after` (the ping timeout) while
//! nobody made progress (no room given, no memory given back), the connection holding the
//! most that is not itself waiting is closed with 1013 (try again later) and its memory goes
//! to the others: a client that stopped in the middle of a huge message, one that does not
//! read what it is sent, or an idle one still holding the buffers of an earlier message.
//!
//! - `account`: one connection's account, asked before every read.
//! - `admission`: who may grow, who waits, and whom to close when nobody progresses.
//! - `shared_charge`: a broadcast message charged once for all the queues that hold it.
//! - `system`: the default limit, the allocator setting, the start-up lines.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::config::Mode;
use crate::observe::stats::BudgetUse;
use crate::sync::lock::lock;

mod account;
mod admission;
mod shared_charge;
mod system;

pub(crate) use account::Account;
pub use system::{default_limit, log_limits, return_large_buffers_to_the_system};

/// Bytes of each message a connection may read without charging the budget. Paying for the
/// first bytes too would put every client that sends anything on the budget's lock; this
/// much per connection is part of the fixed overhead `docs/memory-budget.md` states instead.
pub const ALLOWANCE: usize = 64 * 1024;

/// Charges grow in steps of at least this much (or an eighth of what is already charged),
/// so that a large message takes the budget's lock a few dozen times, not once per read.
const STEP: usize = 256 * 1024;

/// The limit on what the server holds for clients, shared by every connection.
pub struct MemoryBudget {
    limit: usize,
    evict_after: Duration,
    /// Bytes charged now; the same as the sum in `state`, readable without the lock.
    held: AtomicUsize,
    state: Mutex<State>,
}

struct State {
    next_id: u64,
    /// When a reader was last given room or a holder last gave memory back: readers that
    /// wait while others make progress are only slowed down, not stuck.
    last_progress: Instant,
    /// Every connection with a charge.
    holders: HashMap<u64, Holder>,
    /// Connections that have had to wait for room, in the order they first did; each keeps
    /// its place until its message is complete.
    waiting: VecDeque<Waiting>,
    /// The one reader allowed past half the budget, until its message is complete: the
    /// first in line, or whoever got there first when nobody was waiting.
    upper_half: Option<u64>,
}

struct Holder {
    charge: usize,
    /// The connection task's, to wake it when it is evicted.
    waker: Waker,
    evicted: Arc<AtomicBool>,
}

struct Waiting {
    id: u64,
    waker: Waker,
    /// While paused: since when, or since the last eviction made on its behalf (the next
    /// comes `evict_after` later). `None` while it is reading.
    paused_since: Option<Instant>,
}

/// What a connection asks of the budget.
#[derive(Clone, Copy)]
enum Growth {
    /// Room for this many more bytes of a message being read. Past half the budget, one
    /// reader at a time.
    Read(usize),
    /// No more room, but the budget must not be over its limit: a broadcast sender, whose
    /// every message is held again in its room's queues.
    Stay,
}

/// What the budget says to a read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Go ahead.
    Read,
    /// Wait: the task is woken when there may be room.
    Wait,
    /// The connection was chosen to make room: close it with 1013.
    Evicted,
}

impl MemoryBudget {
    /// A budget of `limit` bytes; a reader paused for `evict_after` makes the largest holder
    /// give its memory up.
    pub fn new(limit: usize, evict_after: Duration) -> Self {
        MemoryBudget {
            limit,
            evict_after,
            held: AtomicUsize::new(0),
            state: Mutex::new(State {
                next_id: 0,
                last_progress: Instant::now(),
                holders: HashMap::new(),
                waiting: VecDeque::new(),
                upper_half: None,
            }),
        }
    }

    /// The limit and how much of it is in use.
    pub fn usage(&self) -> BudgetUse {
        let state = lock(&self.state);
        BudgetUse {
            limit: self.limit,
            held: self.held.load(Ordering::Relaxed),
            paused: state
                .waiting
                .iter()
                .filter(|entry| entry.paused_since.is_some())
                .count(),
        }
    }

    /// Bytes that may still be charged before the limit, and whether nothing is charged at
    /// all: what a reader of large messages from elsewhere (Redis) may take on now.
    pub(crate) fn headroom(&self) -> (usize, bool) {
        let held = self.held.load(Ordering::Relaxed);
        (self.limit.saturating_sub(held), held == 0)
    }

    /// A fresh account for one connection. `copies` is how many times the server holds each
    /// byte of a message it reads: 2 when a reply may hold a second copy of it.
    /// `pause_when_full`: the connection's messages are held again elsewhere (broadcast
    /// queues), so its large messages wait whenever the budget is over its limit.
    pub(crate) fn account(self: &Arc<Self>, copies: usize, pause_when_full: bool) -> Account {
        Account::new(Arc::clone(self), copies, pause_when_full)
    }

    /// A new connection's account in `mode`. Echo modes may hold each message twice (see
    /// the module's comment); broadcast holds it once, and again in its room's queues, so a
    /// sender waits whenever the budget is full.
    pub(crate) fn account_for(self: &Arc<Self>, mode: Mode) -> Account {
        match mode {
            Mode::Echo | Mode::Raw => self.account(2, false),
            Mode::Broadcast => self.account(1, true),
        }
    }

    /// Registers a connection that is about to charge for the first time.
    fn register(&self, waker: &Waker) -> (u64, Arc<AtomicBool>) {
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        let evicted = Arc::new(AtomicBool::new(false));
        state.holders.insert(
            id,
            Holder {
                charge: 0,
                waker: waker.clone(),
                evicted: Arc::clone(&evicted),
            },
        );
        (id, evicted)
    }

    /// Gives back everything connection `id` holds, and lets the waiting readers try again.
    fn release(&self, id: u64) {
        let mut state = lock(&self.state);
        if let Some(holder) = state.holders.remove(&id) {
            self.held.fetch_sub(holder.charge, Ordering::Relaxed);
            state.last_progress = Instant::now();
        }
        Self::leave(&mut state, id);
        // Room for anyone whose read now fits in the lower half, not only the first in line.
        for entry in &state.waiting {
            entry.waker.wake_by_ref();
        }
    }

    /// Watches for readers stuck waiting and evicts for them, until the server stops.
    pub(crate) async fn enforce(self: Arc<Self>) {
        loop {
            let next = self.evict_if_stuck(Instant::now());
            tokio::time::sleep(next.max(Duration::from_millis(10))).await;
        }
    }
}

/// Helpers for the unit tests of the budget's parts.
#[cfg(test)]
mod testing {
    use super::*;

    pub(super) const MIB: usize = 1 << 20;

    pub(super) fn budget(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget::new(limit, Duration::from_secs(1)))
    }

    /// Reads `bytes` in 64 KiB pieces; stops at the first read that is not admitted.
    pub(super) fn feed(account: &mut Account, bytes: usize) -> Admission {
        let mut read = 0;
        while read < bytes {
            let piece = (bytes - read).min(64 * 1024);
            match account.admit(piece, Waker::noop()) {
                Admission::Read => {}
                other => return other,
            }
            account.read(piece);
            read += piece;
        }
        Admission::Read
    }
}
