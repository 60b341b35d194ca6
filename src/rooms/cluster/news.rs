//! Which rooms have news: every append to a room's stream is followed by one to a stream of
//! room names (`wsecho:news`), so a reader blocks on that one stream and then reads only the
//! rooms named there. Reading every room's stream on every pass cost each node time in
//! proportion to its rooms: with thousands of idle rooms, a busy room's round trip grew to
//! the time it took to ask about all of them.
//!
//! The news stream is a hint, not the record: the rooms' own streams stay the order of
//! truth. A reader that may have missed news (it has just connected, or the news stream was
//! trimmed, or another node did not write news) reads every room's stream, at the latest
//! every [`FULL_PASS_EVERY`].

use std::collections::HashSet;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;

use super::link::{QueryError, query};

/// The stream that names the rooms appended to.
pub(super) const NEWS_KEY: &str = "wsecho:news";

/// Entries the news stream keeps (approximately): enough for a reader that blocks on it.
pub(super) const NEWS_LENGTH: usize = 10_000;

/// How often a reader reads every room's stream, news or not.
pub(super) const FULL_PASS_EVERY: Duration = Duration::from_secs(30);

/// The news after `position` (waiting up to `block_ms` for some, if given): the rooms
/// named, and where the news stream now stands.
pub(super) async fn read_news(
    connection: &mut MultiplexedConnection,
    position: &str,
    block_ms: Option<usize>,
) -> Result<(HashSet<String>, Option<String>), QueryError> {
    let mut command = redis::cmd("XREAD");
    command.arg("COUNT").arg(NEWS_LENGTH);
    if let Some(block_ms) = block_ms {
        command.arg("BLOCK").arg(block_ms);
    }
    command.arg("STREAMS").arg(NEWS_KEY).arg(position);
    let reply: Option<StreamReadReply> = query(&command, connection).await?;
    let mut rooms = HashSet::new();
    let mut last = None;
    for entry in reply
        .into_iter()
        .flat_map(|reply| reply.keys)
        .flat_map(|key| key.ids)
    {
        if let Some(Ok(room)) = entry
            .map
            .get("r")
            .map(redis::from_redis_value_ref::<String>)
        {
            rooms.insert(room);
        }
        last = Some(entry.id);
    }
    Ok((rooms, last))
}

/// Where the news stream stands now (`0-0` when it has no entries).
pub(super) async fn news_end(connection: &mut MultiplexedConnection) -> Result<String, QueryError> {
    let mut command = redis::cmd("XREVRANGE");
    command.arg(NEWS_KEY).arg("+").arg("-").arg("COUNT").arg(1);
    let tail: redis::streams::StreamRangeReply = query(&command, connection).await?;
    Ok(tail
        .ids
        .first()
        .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone()))
}
