//! Broadcast mode's rooms: who is in which room, and delivering a message to all of them.
//!
//! A room is the set of clients that connected with the same URL path. Each member has a
//! bounded queue of messages waiting to be written to its socket. Broadcasting takes the
//! room's lock once per message (not per receiver, and never across an `.await`), puts a
//! clone of the message in every member's queue (in a room of several, formatted once for
//! all of them, see `delivery`; a clone only bumps a reference count), and never waits: a
//! member whose queue is full is evicted on the spot, so a slow reader cannot hold up the
//! sender, the room or the server's memory. Taking the lock per message also fixes one order
//! for the room: every member sees messages in the order the room received them.
//!
//! With `--history N` a room also keeps its last N messages (clones again, so the payloads
//! are shared) and a member who joins finds them in its queue (after a notice saying how
//! many they are, if it asked for one); an empty room is removed, and its history with it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use log::info;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use super::delivery::Delivery;
use super::mailbox::Mailbox;
use crate::observe::escape::Escaped;
use crate::sync::lock::lock;

/// Every room that has at least one member.
#[derive(Default)]
pub(crate) struct Hub {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// Counts rooms created and removed, so that a reader of the room list (the Redis reader)
    /// copies it only when it has changed.
    generation: AtomicU64,
    /// How many of each room's latest messages a joining member is sent first
    /// (`--history`).
    history: usize,
}

/// The members of one room.
struct Room {
    name: String,
    members: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    by_id: HashMap<u64, Member>,
    next_id: u64,
    /// The room's latest messages, oldest first, at most [`Hub::history`]. Kept under the
    /// same lock as the members, so a joining member's replay ends exactly where its live
    /// messages begin.
    history: VecDeque<Delivery>,
}

/// The room's side of one member.
struct Member {
    queue: Arc<Mailbox>,
    eviction: Arc<Eviction>,
    /// The member asked to be told how many replayed messages precede the live ones.
    history_notice: bool,
}

/// Set by the room when it drops a member that fell behind; the member's task watches it.
#[derive(Default)]
pub(crate) struct Eviction {
    evicted: AtomicBool,
    notify: Notify,
}

impl Room {
    /// Puts `message` in every member's queue and in the history. Never waits; a member
    /// whose queue is full is evicted and its task told so.
    fn deliver(&self, message: Message, history: usize) {
        let mut members = lock(&self.members);
        let delivery = Delivery::new(message, members.by_id.len());
        if history > 0 {
            if members.history.len() == history {
                members.history.pop_front();
            }
            members.history.push_back(delivery.clone());
        }
        members
            .by_id
            .retain(|_, member| match member.queue.deliver(delivery.clone()) {
                Ok(()) => true,
                Err(_full) => {
                    member.eviction.evicted.store(true, Ordering::Release);
                    member.eviction.notify.notify_one();
                    false
                }
            });
    }
}

/// The text frame that tells a joining member how many of the room's earlier messages follow
/// (`{"wsecho":"history","count":N}`), so that a client can tell them from live ones. Only
/// members that ask for it (`?history_notice=1`) get it: to any other chat client it would
/// be one more message to show.
fn history_notice(count: usize) -> Message {
    Message::text(format!("{{\"wsecho\":\"history\",\"count\":{count}}}"))
}

/// A joining member's replay: the notice if it asked for one, then the room's history.
fn replay(history: &VecDeque<Delivery>, notice: bool) -> impl Iterator<Item = Delivery> + '_ {
    notice
        .then(|| Delivery::Whole(history_notice(history.len())))
        .into_iter()
        .chain(history.iter().cloned())
}

/// A client's place in a room; leaving the room is dropping this.
pub(crate) struct Membership {
    hub: Arc<Hub>,
    room: Arc<Room>,
    id: u64,
    peer: SocketAddr,
    /// Messages from the room, waiting to be written to this client.
    pub queue: Arc<Mailbox>,
    eviction: Arc<Eviction>,
    /// The room was empty here before this member joined.
    pub first: bool,
}

impl Hub {
    /// Rooms that replay their last `history` messages to each member who joins.
    pub(crate) fn with_history(history: usize) -> Self {
        Hub {
            rooms: Mutex::default(),
            generation: AtomicU64::new(0),
            history,
        }
    }

    /// Adds `peer` to the room called `name`, creating the room if it is new. `capacity` is how
    /// many messages may wait for this member before it is evicted; `history_notice`: the
    /// replayed history is preceded by a notice saying how long it is.
    pub(crate) fn join(
        self: &Arc<Self>,
        name: &str,
        peer: SocketAddr,
        capacity: usize,
        history_notice: bool,
    ) -> Membership {
        let queue = Arc::new(Mailbox::new(capacity));
        let eviction = Arc::new(Eviction::default());
        let (room, id, size) = {
            let mut rooms = lock(&self.rooms);
            let room = match rooms.get(name) {
                Some(room) => room.clone(),
                None => {
                    let room = Arc::new(Room {
                        name: name.to_owned(),
                        members: Mutex::default(),
                    });
                    rooms.insert(name.to_owned(), room.clone());
                    self.generation.fetch_add(1, Ordering::Relaxed);
                    room
                }
            };
            let mut members = lock(&room.members);
            if !members.history.is_empty() {
                queue.preload(replay(&members.history, history_notice));
            }
            let id = members.next_id;
            members.next_id += 1;
            members.by_id.insert(
                id,
                Member {
                    queue: queue.clone(),
                    eviction: eviction.clone(),
                    history_notice,
                },
            );
            let size = members.by_id.len();
            drop(members);
            (room, id, size)
        };
        // Logged after the locks are released: writing a line must not hold up other joins.
        let shown = Escaped(&room.name).to_string();
        info!(
            peer:% = peer, room = shown.as_str();
            "peer {peer} joined {shown} ({size} in room)"
        );
        Membership {
            hub: self.clone(),
            room,
            id,
            peer,
            queue,
            eviction,
            first: size == 1,
        }
    }

    /// Delivers `message` to the members of the room called `name`, if it has any here: a
    /// message of the room's that came from elsewhere (another node, through Redis).
    pub(crate) fn deliver(&self, name: &str, message: Message) {
        let room = lock(&self.rooms).get(name).cloned();
        if let Some(room) = room {
            room.deliver(message, self.history);
        }
    }

    /// How many messages each room keeps for joiners (`--history`).
    pub(crate) fn history_length(&self) -> usize {
        self.history
    }

    /// Sets the history of the room called `name` (when it has just started on this node:
    /// from the room's stream in Redis), and gives it to the members there, who joined
    /// before it was known. The history is kept to `--history` messages.
    pub(crate) fn seed_history(&self, name: &str, messages: Vec<Message>) {
        if self.history == 0 || messages.is_empty() {
            return;
        }
        let Some(room) = lock(&self.rooms).get(name).cloned() else {
            return;
        };
        let mut members = lock(&room.members);
        let skip = messages.len().saturating_sub(self.history);
        members.history = messages
            .into_iter()
            .skip(skip)
            .map(Delivery::Whole)
            .collect();
        let members = &*members;
        for member in members.by_id.values() {
            member
                .queue
                .preload(replay(&members.history, member.history_notice));
        }
    }

    /// The names of the rooms that have members.
    pub(crate) fn room_names(&self) -> Vec<String> {
        lock(&self.rooms).keys().cloned().collect()
    }

    /// Changes whenever a room is created or removed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// How many members each room has, by room name.
    pub(crate) fn room_sizes(&self) -> Vec<(String, usize)> {
        let mut sizes: Vec<_> = lock(&self.rooms)
            .values()
            .map(|room| (room.name.clone(), lock(&room.members).by_id.len()))
            .collect();
        sizes.sort();
        sizes
    }
}

impl Membership {
    /// The name of the member's room: its URL path.
    pub(crate) fn room_name(&self) -> &str {
        &self.room.name
    }

    /// Delivers `message` to every member of the room, this one included. Never waits; a
    /// member whose queue is full is evicted and its task told so.
    pub(crate) fn broadcast(&self, message: Message) {
        self.room.deliver(message, self.hub.history);
    }

    /// The signal that this member was evicted, to watch while the queue is borrowed.
    pub(crate) fn eviction(&self) -> Arc<Eviction> {
        self.eviction.clone()
    }
}

impl Eviction {
    /// Resolves when the room has evicted the member for falling behind. Cancel-safe.
    pub(crate) async fn evicted(&self) {
        while !self.evicted.load(Ordering::Acquire) {
            self.notify.notified().await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        // Hub lock first, then the room's, as in `join`, so that a client joining cannot see
        // a room that is being removed.
        let remaining = {
            let mut rooms = lock(&self.hub.rooms);
            let mut members = lock(&self.room.members);
            members.by_id.remove(&self.id);
            let remaining = members.by_id.len();
            drop(members);
            if remaining == 0 {
                rooms.remove(&self.room.name);
                self.hub.generation.fetch_add(1, Ordering::Relaxed);
            }
            remaining
        };
        let shown = Escaped(&self.room.name).to_string();
        info!(
            peer:% = self.peer, room = shown.as_str();
            "peer {} left {shown} ({remaining} in room)",
            self.peer
        );
    }
}
