//! Keeping rooms that have members alive in Redis. Every append sets its room's stream to
//! expire `--room-ttl` later, so the streams of rooms nobody uses any more are deleted by
//! Redis itself; each node also pushes the expiry back for the rooms that have members on
//! it, every third of the TTL and as soon as a room starts here, so that a quiet room with
//! members keeps its history.

use std::collections::HashSet;
use std::time::Instant;

use redis::aio::MultiplexedConnection;

use super::entry::{meta_key, stream_key};
use super::link::{QueryError, answer};
use super::{COMMAND_TIMEOUT, Cluster};
use crate::rooms::hub::Hub;

/// Rooms whose expiry is pushed back in one round trip at most.
const REFRESH_BATCH: usize = 256;

/// What has been refreshed, and when.
#[derive(Default)]
pub(super) struct Refreshed {
    rooms: HashSet<String>,
    last_pass: Option<Instant>,
    generation: Option<u64>,
}

impl Cluster {
    /// Pushes back the expiry of this node's rooms: all of them once a third of the TTL has
    /// passed since the last time, otherwise only those new since.
    pub(super) async fn keep_rooms_alive(
        &self,
        connection: &mut MultiplexedConnection,
        hub: &Hub,
        refreshed: &mut Refreshed,
    ) -> Result<(), QueryError> {
        let every_room = refreshed
            .last_pass
            .is_none_or(|last| last.elapsed() >= self.bounds.ttl / 3);
        let generation = hub.generation();
        if !every_room && refreshed.generation == Some(generation) {
            return Ok(());
        }
        let rooms = hub.room_names();
        let due: Vec<&String> = rooms
            .iter()
            .filter(|room| every_room || !refreshed.rooms.contains(*room))
            .collect();
        let ttl_ms = self.bounds.ttl.as_millis().max(1) as u64;
        for batch in due.chunks(REFRESH_BATCH) {
            let mut refresh = redis::pipe();
            for room in batch {
                refresh
                    .cmd("PEXPIRE")
                    .arg(stream_key(room))
                    .arg(ttl_ms)
                    .ignore();
                refresh
                    .cmd("PEXPIRE")
                    .arg(meta_key(room))
                    .arg(ttl_ms)
                    .ignore();
            }
            answer(
                refresh.query_async::<()>(connection),
                COMMAND_TIMEOUT,
                || "a refresh of the rooms' expiry".to_owned(),
            )
            .await?;
        }
        if every_room {
            refreshed.last_pass = Some(Instant::now());
        }
        refreshed.rooms = rooms.into_iter().collect();
        refreshed.generation = Some(generation);
        Ok(())
    }
}
