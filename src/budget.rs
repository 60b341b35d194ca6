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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::{info, warn};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::config::Config;

use crate::lock::lock;

/// Bytes of each message a connection may read without charging the budget. Paying for the
/// first bytes too would put every client that sends anything on the budget's lock; this
/// much per connection is part of the fixed overhead the README states instead.
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

/// What `/stats` and `/metrics` show of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUse {
    /// The limit, in bytes.
    pub limit: usize,
    /// Bytes charged to connections now.
    pub held: usize,
    /// Connections paused until there is room.
    pub paused: usize,
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

    /// A fresh account for one connection. `copies` is how many times the server holds each
    /// byte of a message it reads: 2 when a reply may hold a second copy of it.
    /// `pause_when_full`: the connection's messages are held again elsewhere (broadcast
    /// queues), so its large messages wait whenever the budget is over its limit.
    pub(crate) fn account(self: &Arc<Self>, copies: usize, pause_when_full: bool) -> Account {
        Account {
            budget: Arc::clone(self),
            holder: None,
            in_progress: 0,
            covered: ALLOWANCE,
            pause_when_full,
            copies,
            paused: false,
            in_line: false,
        }
    }

    /// Charges `growth` more bytes to connection `id`, or queues it until there is room.
    /// `Growth::Stay` asks only that the budget not be over its limit.
    fn grow(&self, id: u64, growth: Growth, waker: &Waker) -> Admission {
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

    /// Charges a broadcast message to the budget once, however many members' queues hold it,
    /// until the last of them has written it out: the payload is handed on in a `Bytes` that
    /// gives the charge back when its last clone is dropped. Small messages are left as they
    /// are (the allowance covers them).
    pub(crate) fn charge_shared(self: &Arc<Self>, message: Message) -> Message {
        if message.len() <= ALLOWANCE {
            return message;
        }
        let charged = |payload: Bytes| {
            self.held.fetch_add(payload.len(), Ordering::Relaxed);
            Bytes::from_owner(SharedCharge {
                payload,
                budget: Arc::clone(self),
            })
        };
        match message {
            Message::Binary(payload) => Message::Binary(charged(payload)),
            Message::Text(text) => {
                let payload = charged(Bytes::from(text));
                // SAFETY: the bytes are those of `text`, which was valid UTF-8.
                Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(payload) })
            }
            other => other,
        }
    }

    /// Gives back the charge of a broadcast message that every member has written out.
    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        let mut state = lock(&self.state);
        state.last_progress = Instant::now();
        for entry in &state.waiting {
            entry.waker.wake_by_ref();
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

    /// Takes connection `id` out of the line and out of the upper half once its message is
    /// complete, and wakes the next in line.
    fn message_done(&self, id: u64) {
        let mut state = lock(&self.state);
        Self::leave(&mut state, id);
    }

    fn leave(state: &mut State, id: u64) {
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

    /// Logs the budget, and warns when the per-client limits allow far more than it: they
    /// always do by default (10,000 clients × 64 MiB), which is what the budget is for, but
    /// the user should know which limit will bite first.
    pub(crate) fn log_at_start(&self, config: &Config) {
        info!(
            "memory budget for clients: {} (--max-memory)",
            format_bytes(self.limit)
        );
        let worst_case = config
            .max_connections
            .saturating_mul(config.max_message_size);
        if worst_case / 100 > self.limit {
            warn!(
                "--max-connections {} × --max-message-size {} allows {}, over 100 times the \
                 memory budget of {}: past the budget, the largest senders are paused, and \
                 after --ping-timeout closed with 1013",
                config.max_connections,
                format_bytes(config.max_message_size),
                format_bytes(worst_case),
                format_bytes(self.limit)
            );
        }
        if config.max_message_size.saturating_mul(2) > self.limit {
            warn!(
                "--max-message-size {} is over half the memory budget of {}: a message that \
                 large may never fit, and its sender is closed with 1013 when memory is short",
                format_bytes(config.max_message_size),
                format_bytes(self.limit)
            );
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

/// A broadcast message's payload, charged to the budget until the last copy is dropped.
struct SharedCharge {
    payload: Bytes,
    budget: Arc<MemoryBudget>,
}

impl AsRef<[u8]> for SharedCharge {
    fn as_ref(&self) -> &[u8] {
        &self.payload
    }
}

impl Drop for SharedCharge {
    fn drop(&mut self) {
        self.budget.give_back(self.payload.len());
    }
}

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

/// Makes the allocator give every large buffer (a client's message, its copy in a write
/// buffer) back to the system as soon as it is freed, so that the process's memory follows
/// what the budget counts. glibc otherwise raises its threshold for using `mmap` each time
/// a large block is freed (up to 32 MiB), after which messages of several MiB come from
/// the heap, whose freed space is kept: in a test of 200 broadcast members and 8 MiB
/// messages that kept the process 70 MiB above the budget. Call it once, at start, before
/// any threads exist.
pub fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's settings; called before other threads.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// `bytes` in the largest binary unit that keeps it at one or more, e.g. `64 MiB`.
fn format_bytes(bytes: usize) -> String {
    const UNITS: [(&str, usize); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// The budget to use when `--max-memory` is not given: a quarter of physical memory, at most
/// 4 GiB (at least 64 MiB where the size cannot be read).
pub fn default_limit() -> usize {
    const CAP: usize = 4 << 30;
    // SAFETY: `sysconf` only reads system configuration.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    match (usize::try_from(pages), usize::try_from(page_size)) {
        (Ok(pages), Ok(page_size)) if pages > 0 && page_size > 0 => {
            (pages.saturating_mul(page_size) / 4).min(CAP)
        }
        _ => 64 << 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn budget(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget::new(limit, Duration::from_secs(1)))
    }

    /// Reads `bytes` in 64 KiB pieces; stops at the first read that is not admitted.
    fn feed(account: &mut Account, bytes: usize) -> Admission {
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

    #[test]
    fn a_broadcast_message_is_charged_once_until_its_last_copy_is_gone() {
        let budget = budget(64 * MIB);
        let text = "ü".repeat(MIB / 2);
        let charged = budget.charge_shared(Message::text(text.clone()));
        let copies: Vec<Message> = (0..200).map(|_| charged.clone()).collect();
        assert_eq!(budget.usage().held, text.len());
        assert_eq!(charged.to_text().unwrap(), text);
        drop(charged);
        assert_eq!(budget.usage().held, text.len(), "copies are still queued");
        drop(copies);
        assert_eq!(budget.usage().held, 0);
        let small = budget.charge_shared(Message::binary(vec![1u8; 100]));
        assert_eq!(budget.usage().held, 0, "small messages are not charged");
        drop(small);
    }

    #[test]
    fn sizes_are_logged_in_binary_units() {
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(100), "100 bytes");
    }

    #[test]
    fn the_default_is_a_quarter_of_memory_at_most_4_gib() {
        let limit = default_limit();
        assert!((64 << 20..=4 << 30).contains(&limit), "{limit}");
    }
}
