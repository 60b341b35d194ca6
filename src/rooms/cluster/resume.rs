//! Where a room's reading starts: at the end of its stream when the room is new on this
//! node (with its last messages as history), and, after reconnecting, from the last entry
//! delivered here if Redis still has it.

use std::collections::HashMap;

use log::warn;
use redis::aio::MultiplexedConnection;
use tokio_tungstenite::tungstenite::Message;

use super::Cluster;
use super::entry::{entry_message, stream_key};
use super::link::{QueryError, query};
use crate::observe::escape::Escaped;

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
}

/// The ID of the last entry in `room`'s stream (`0-0` if it has none), and the messages of
/// its last `count` entries, oldest first.
pub(super) async fn stream_tail(
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
