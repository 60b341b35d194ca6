//! Reading: the streams of the rooms with members on this node, delivered to them in the
//! streams' order, each (node, sequence) once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use log::warn;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::entry::{STREAM_PREFIX, entry_message, stream_key};
use super::link::{QueryError, RefusalLog, jittered, query};
use super::{Cluster, MAX_BACKOFF, READ_BLOCK_MS, Start};
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
        let mut refusals = RefusalLog::default();
        // The wait after a refused read, doubling while Redis keeps refusing.
        let mut refused_wait = Duration::from_millis(100);
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
                let local: Vec<String> = hub.room_names();
                positions.retain(|room, _| local.contains(room));
                delivered.retain(|(room, _), _| local.contains(room));
                // Rooms new here start where their stream stands now, and with its last
                // messages as their history (`--history`).
                let mut failure = None;
                for room in &local {
                    if positions.contains_key(room) {
                        continue;
                    }
                    match stream_tail(&mut connection, room, hub.history_length()).await {
                        Ok((end, messages)) => {
                            hub.seed_history(room, messages);
                            positions.insert(room.clone(), end);
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
                        tokio::time::sleep(jittered(refused_wait)).await;
                        refused_wait = (refused_wait * 2).min(MAX_BACKOFF);
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
                let rooms: Vec<&String> = positions.keys().collect();
                let mut command = redis::cmd("XREAD");
                command
                    .arg("COUNT")
                    .arg(1024)
                    .arg("BLOCK")
                    .arg(READ_BLOCK_MS)
                    .arg("STREAMS");
                for room in &rooms {
                    command.arg(stream_key(room));
                }
                for room in &rooms {
                    command.arg(&positions[*room]);
                }
                let reply = match query::<Option<StreamReadReply>>(&command, &mut connection).await
                {
                    Ok(reply) => {
                        refused_wait = Duration::from_millis(100);
                        reply
                    }
                    Err(QueryError::Lost(why)) => {
                        self.lost(&self.reader_up, &why);
                        break;
                    }
                    Err(QueryError::Refused(why)) => {
                        refusals.refused("a read of the rooms' streams", &why);
                        tokio::time::sleep(jittered(refused_wait)).await;
                        refused_wait = (refused_wait * 2).min(MAX_BACKOFF);
                        continue;
                    }
                };
                for stream in reply.map(|reply| reply.keys).unwrap_or_default() {
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
