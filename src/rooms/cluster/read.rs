//! Reading: the streams of the rooms with members on this node, delivered to them in the
//! streams' order, each (node, sequence) once.
//!
//! Every read is bounded in bytes ([`READ_BYTES`], one message over at most) and by what
//! the memory budget has room for, and its deadline grows with what it may carry; a room
//! with more to read is read again after the rooms with news. A node that fell far behind
//! (paused, or its members slow) so catches up in steps while its other rooms keep
//! delivering, instead of asking for everything at once and timing out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::warn;
use tokio::sync::mpsc;

use super::entry::entry_message;
use super::link::{Backoff, QueryError, RefusalLog};
use super::news::{FULL_PASS_EVERY, news_end, read_news};
use super::queue::ReadQueue;
use super::resume::stream_tail;
use super::scripts::{ReadLimit, RoomRead};
use super::{Cluster, READ_BLOCK_MS, Start};
use crate::limits::budget::{ALLOWANCE, MemoryBudget};
use crate::observe::escape::Escaped;
use crate::rooms::hub::Hub;

/// Bytes one read asks for at most (one message more when a single one is larger).
const READ_BYTES: usize = 16 << 20;

/// Entries of one room one read takes at most.
const READ_ENTRIES: usize = 1024;

/// Rooms one read names at most.
const READ_ROOMS: usize = 256;

impl Cluster {
    /// Reads the streams of the rooms with members here and delivers their entries to them.
    pub(super) async fn read(
        &self,
        mut starts: mpsc::UnboundedReceiver<Start>,
        hub: Arc<Hub>,
        budget: Arc<MemoryBudget>,
    ) {
        // Room name → the last entry delivered here (or where its stream stood when the
        // room started here).
        let mut positions: HashMap<String, String> = HashMap::new();
        // (room, node) → the highest sequence number delivered: see the module's comment.
        let mut delivered: HashMap<(String, u64), u64> = HashMap::new();
        let mut waiting: Vec<Start> = Vec::new();
        // The hub's room list last looked at: it is copied only when rooms come or go.
        let mut local_generation = None;
        // Rooms with members here whose stream position is not known yet.
        let mut unstarted: Vec<String> = Vec::new();
        let mut to_read = ReadQueue::default();
        // Rooms whose skipped entries have been reported, until a read finds none skipped.
        let mut reported_trimmed: HashSet<String> = HashSet::new();
        let mut refusals = RefusalLog::default();
        // The wait after a refused read, doubling while Redis keeps refusing.
        let mut refused = Backoff::new(Duration::from_millis(100));
        // Where the news stream was last read (`None`: a full pass comes first).
        let mut news_position: Option<String> = None;
        let mut last_full_pass = Instant::now();
        // Whether the last round delivered anything: if not, the next waits for news
        // rather than asking again at once for rooms that could not be read.
        let mut progressed = false;
        loop {
            let mut connection = self.connect(&self.reader_up).await;
            match self.check_streams(&mut connection, &mut positions).await {
                Ok(()) => {}
                Err(QueryError::Lost(why)) => {
                    self.lost(&self.reader_up, &why);
                    continue;
                }
                Err(QueryError::Refused(why)) => {
                    refusals.refused("a check of the rooms' streams", &why);
                }
            }
            'connected: loop {
                while let Ok(start) = starts.try_recv() {
                    waiting.push(start);
                }
                let generation = hub.generation();
                if local_generation != Some(generation) {
                    let local: HashSet<String> = hub.room_names().into_iter().collect();
                    positions.retain(|room, _| local.contains(room));
                    delivered.retain(|(room, _), _| local.contains(room));
                    reported_trimmed.retain(|room| local.contains(room));
                    unstarted = local
                        .iter()
                        .filter(|room| !positions.contains_key(*room))
                        .cloned()
                        .collect();
                    local_generation = Some(generation);
                }
                // Rooms new here start where their stream stands now, and with its last
                // messages as their history (`--history`).
                let mut failure = None;
                while let Some(room) = unstarted.last() {
                    match stream_tail(&mut connection, room, hub.history_length()).await {
                        Ok((end, messages)) => {
                            hub.seed_history(room, messages);
                            positions.insert(room.clone(), end);
                            unstarted.pop();
                        }
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
                match failure {
                    None => {}
                    Some(QueryError::Lost(why)) => {
                        self.lost(&self.reader_up, &why);
                        break;
                    }
                    Some(QueryError::Refused(why)) => {
                        refusals.refused("a read of a room's stream", &why);
                        refused.wait().await;
                        continue;
                    }
                }
                // Whoever waited for a room to start: it has (or it has no members left).
                for start in waiting.drain(..) {
                    let _ = start.done.send(());
                }
                if positions.is_empty() {
                    tokio::time::sleep(Duration::from_millis(READ_BLOCK_MS as u64)).await;
                    continue;
                }
                // Which rooms to read: every room after (re)connecting and now and then;
                // otherwise the rooms the news names (see `news`), and those left behind.
                let full_pass =
                    news_position.is_none() || last_full_pass.elapsed() >= FULL_PASS_EVERY;
                let news = if full_pass {
                    news_end(&mut connection).await.map(|end| {
                        for room in positions.keys() {
                            to_read.named(room.clone());
                        }
                        last_full_pass = Instant::now();
                        (HashSet::new(), Some(end))
                    })
                } else {
                    // Rooms still behind are read again at once, unless nothing could be
                    // read last time (the budget full): then news is waited for.
                    let block = if to_read.is_empty() || !progressed {
                        Some(READ_BLOCK_MS)
                    } else {
                        None
                    };
                    let position = news_position.as_deref().unwrap_or("0-0");
                    read_news(&mut connection, position, block).await
                };
                match news {
                    Ok((rooms, end)) => {
                        for room in rooms {
                            to_read.named(room);
                        }
                        if end.is_some() {
                            news_position = end;
                        }
                    }
                    Err(QueryError::Lost(why)) => {
                        self.lost(&self.reader_up, &why);
                        news_position = None;
                        break;
                    }
                    Err(QueryError::Refused(why)) => {
                        refusals.refused("a read of the news stream", &why);
                        refused.wait().await;
                        continue;
                    }
                }
                progressed = false;
                while !to_read.is_empty() {
                    let batch = to_read.take(READ_ROOMS, |room| positions.contains_key(room));
                    if batch.is_empty() {
                        break;
                    }
                    let rooms: Vec<(&str, &str)> = batch
                        .iter()
                        .map(|room| (room.as_str(), positions[room].as_str()))
                        .collect();
                    let limit = self.read_limit(&budget);
                    let reads = match self.scripts.read(&mut connection, &rooms, limit).await {
                        Ok(reads) => {
                            refused.reset();
                            reads
                        }
                        Err(QueryError::Lost(why)) => {
                            to_read.put_back(batch);
                            self.lost(&self.reader_up, &why);
                            news_position = None;
                            break 'connected;
                        }
                        Err(QueryError::Refused(why)) => {
                            to_read.put_back(batch);
                            refusals.refused("a read of the rooms' streams", &why);
                            refused.wait().await;
                            break;
                        }
                    };
                    let mut limit_reached = false;
                    // Rooms the byte limit left unread keep their place at the front: a
                    // room that came after a large one in this batch must not fall behind
                    // it again and again.
                    let mut unread = Vec::new();
                    for read in reads {
                        let got_some = !read.entries.ids.is_empty();
                        progressed |= got_some;
                        let room = read.room.clone();
                        let more = read.more;
                        if read.trimmed {
                            if reported_trimmed.insert(room.clone()) {
                                let shown = Escaped(&room).to_string();
                                warn!(
                                    room = shown.as_str();
                                    "room {shown}: this node fell further behind than the \
                                     stream keeps (--stream-max-bytes); the messages trimmed \
                                     meanwhile are skipped here"
                                );
                            }
                        } else if got_some {
                            reported_trimmed.remove(&room);
                        }
                        deliver(read, &hub, &budget, &mut positions, &mut delivered);
                        if more {
                            limit_reached = true;
                            if got_some {
                                to_read.behind(room);
                            } else {
                                unread.push(room);
                            }
                        }
                    }
                    to_read.put_back(unread);
                    // This round's bytes are spent: news first, then the rest.
                    if limit_reached {
                        break;
                    }
                }
            }
        }
    }

    /// What one read may take now: [`READ_BYTES`], less when the memory budget is nearly
    /// full (small messages, which the budget does not charge, always flow).
    fn read_limit(&self, budget: &MemoryBudget) -> ReadLimit {
        let (headroom, idle) = budget.headroom();
        let bytes = headroom.clamp(ALLOWANCE, READ_BYTES);
        ReadLimit {
            entries_per_room: READ_ENTRIES,
            bytes,
            first_may_go_over: idle || headroom >= bytes + self.largest_message,
            timeout: self.timeout_for(bytes + self.largest_message),
        }
    }
}

/// Delivers what a read found to the room's members here, each (node, sequence) once, and
/// moves the room's position past it.
fn deliver(
    read: RoomRead,
    hub: &Hub,
    budget: &Arc<MemoryBudget>,
    positions: &mut HashMap<String, String>,
    delivered: &mut HashMap<(String, u64), u64>,
) {
    let room = read.room;
    for entry in read.entries.ids {
        if let Some((node, sequence, message)) = entry_message(&entry.map) {
            let last = delivered.entry((room.clone(), node)).or_insert(0);
            if sequence >= *last {
                *last = sequence + 1;
                hub.deliver(&room, budget.charge_shared(message));
            }
        }
        if let Some(position) = positions.get_mut(&room) {
            *position = entry.id;
        }
    }
}
