//! Reading: the streams of the rooms with members on this node, delivered to them in the
//! streams' order, each (node, sequence) once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::warn;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::entry::{STREAM_PREFIX, entry_message, stream_key};
use super::link::{Backoff, QueryError, RefusalLog, query};
use super::news::{FULL_PASS_EVERY, news_end, read_news, read_rooms};
use super::{Cluster, READ_BLOCK_MS, Start};
use crate::limits::budget::MemoryBudget;
use crate::observe::escape::Escaped;
use crate::rooms::hub::Hub;

impl Cluster {
    /// After reconnecting: if the entry this node delivered last is no longer in its
    /// room's stream, Redis lost its data (restarted without it) or trimmed past it. The
    /// room carries on from the stream as it is, with a warning that messages appended
    /// meanwhile may be lost.
    pub(super) async fn check_streams(
        &self,
        connection: &mut MultiplexedConnection,
        positions: &mut HashMap<String, String>,
    ) -> Result<(), QueryError> {
        for (room, position) in positions.iter_mut() {
            if position == "0-0" {
                continue;
            }
            let mut command = redis::cmd("XRANGE");
            command
                .arg(stream_key(room))
                .arg(&*position)
                .arg(&*position);
            let still_there =
                match query::<redis::streams::StreamRangeReply>(&command, connection).await {
                    Ok(reply) => !reply.ids.is_empty(),
                    Err(why) => return Err(why),
                };
            if !still_there {
                let shown = Escaped(room).to_string();
                warn!(
                    room = shown.as_str();
                    "room {shown}: Redis no longer has the last message delivered here \
                     (restarted without its data?); messages appended meanwhile may be \
                     lost; carrying on from the stream as it is"
                );
                // Read the stream from its start: what is in it was appended after the
                // loss, and whatever this node has already delivered is told apart by its
                // node and sequence number.
                *position = "0-0".to_owned();
            }
        }
        Ok(())
    }

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
        // The rooms with members here, copied from the hub when it says they changed.
        let mut local: HashSet<String> = HashSet::new();
        let mut local_generation = None;
        // Rooms with members here whose stream position is not known yet.
        let mut unstarted: Vec<String> = Vec::new();
        let mut refusals = RefusalLog::default();
        // The wait after a refused read, doubling while Redis keeps refusing.
        let mut refused = Backoff::new(Duration::from_millis(100));
        // Where the news stream was last read (`None`: a full pass comes first).
        let mut news_position: Option<String> = None;
        let mut last_full_pass = Instant::now();
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
            loop {
                while let Ok(start) = starts.try_recv() {
                    waiting.push(start);
                }
                let generation = hub.generation();
                if local_generation != Some(generation) {
                    local = hub.room_names().into_iter().collect();
                    positions.retain(|room, _| local.contains(room));
                    delivered.retain(|(room, _), _| local.contains(room));
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
                // Every room after (re)connecting and now and then; otherwise the rooms
                // the news names (see `news`).
                let full_pass =
                    news_position.is_none() || last_full_pass.elapsed() >= FULL_PASS_EVERY;
                let read = async {
                    if full_pass {
                        let end = news_end(&mut connection).await?;
                        let replies = read_rooms(&mut connection, local.iter(), &positions).await?;
                        return Ok((replies, Some(end)));
                    }
                    let position = news_position.as_deref().unwrap_or("0-0");
                    let (rooms, end) = read_news(&mut connection, position, READ_BLOCK_MS).await?;
                    let replies = read_rooms(&mut connection, rooms.iter(), &positions).await?;
                    Ok((replies, end))
                };
                let replies = match read.await {
                    Ok((replies, end)) => {
                        refused.reset();
                        if full_pass {
                            last_full_pass = Instant::now();
                        }
                        if end.is_some() {
                            news_position = end;
                        }
                        replies
                    }
                    Err(QueryError::Lost(why)) => {
                        self.lost(&self.reader_up, &why);
                        news_position = None;
                        break;
                    }
                    Err(QueryError::Refused(why)) => {
                        refusals.refused("a read of the rooms' streams", &why);
                        refused.wait().await;
                        continue;
                    }
                };
                for stream in replies.into_iter().flat_map(|reply| reply.keys) {
                    let Some(room) = stream.key.strip_prefix(STREAM_PREFIX) else {
                        continue;
                    };
                    for entry in stream.ids {
                        if let Some((node, sequence, message)) = entry_message(&entry.map) {
                            let last = delivered.entry((room.to_owned(), node)).or_insert(0);
                            if sequence >= *last {
                                *last = sequence + 1;
                                hub.deliver(room, &budget.charge_shared(message));
                            }
                        }
                        positions.insert(room.to_owned(), entry.id);
                    }
                }
            }
        }
    }
}

/// The ID of the last entry in `room`'s stream (`0-0` if it has none), and the messages of
/// its last `count` entries, oldest first.
async fn stream_tail(
    connection: &mut MultiplexedConnection,
    room: &str,
    count: usize,
) -> Result<(String, Vec<Message>), QueryError> {
    let mut command = redis::cmd("XREVRANGE");
    command
        .arg(stream_key(room))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(count.max(1));
    let tail: redis::streams::StreamRangeReply = query(&command, connection).await?;
    let end = tail
        .ids
        .first()
        .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone());
    let mut messages: Vec<Message> = tail
        .ids
        .iter()
        .take(count)
        .filter_map(|entry| entry_message(&entry.map).map(|(_, _, message)| message))
        .collect();
    messages.reverse();
    Ok((end, messages))
}
