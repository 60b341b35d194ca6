//! Presence: each node publishes its room sizes under a key that expires within seconds,
//! and reads every node's, for `/stats`; and it keeps its rooms' streams from expiring
//! (see `expiry`).

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;

use super::expiry::Refreshed;
use super::link::{QueryError, RefusalLog, query};
use super::{Cluster, PRESENCE_EVERY, PRESENCE_PREFIX, PRESENCE_TTL_MS};
use crate::observe::stats::ClusterView;
use crate::observe::stats::LISTED_ROOMS;
use crate::rooms::hub::Hub;
use crate::sync::lock::lock;
use std::sync::Arc;

impl Cluster {
    /// Publishes this node's room sizes (with an expiry) and reads every node's, each
    /// [`PRESENCE_EVERY`].
    pub(super) async fn presence(&self, hub: Arc<Hub>) {
        let mut refusals = RefusalLog::default();
        let mut refreshed = Refreshed::default();
        // Often enough to push rooms' expiry back in time however short `--room-ttl` is.
        let every = PRESENCE_EVERY.min(self.bounds.ttl / 3);
        loop {
            let mut connection = self.connect(&self.presence_up).await;
            loop {
                // The largest rooms only, so that what each node publishes (and every node
                // reads each second) stays small however many rooms clients open.
                let mut sizes = hub.room_sizes();
                sizes.sort_by(|(a_room, a_size), (b_room, b_size)| {
                    b_size.cmp(a_size).then_with(|| a_room.cmp(b_room))
                });
                let own: serde_json::Map<String, serde_json::Value> = sizes
                    .into_iter()
                    .take(LISTED_ROOMS)
                    .map(|(room, size)| (room, size.into()))
                    .collect();
                let key = format!("{PRESENCE_PREFIX}{:016x}", self.node);
                let mut publish = redis::cmd("SET");
                publish
                    .arg(&key)
                    .arg(serde_json::Value::Object(own).to_string())
                    .arg("PX")
                    .arg(PRESENCE_TTL_MS);
                let read = async {
                    self.keep_rooms_alive(&mut connection, &hub, &mut refreshed)
                        .await?;
                    query::<()>(&publish, &mut connection).await?;
                    let mut join = redis::cmd("SADD");
                    join.arg(NODE_SET).arg(&key);
                    query::<()>(&join, &mut connection).await?;
                    let keys = node_keys(&mut connection).await?;
                    if keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut get = redis::cmd("MGET");
                    get.arg(&keys);
                    let published: Vec<Option<String>> = query(&get, &mut connection).await?;
                    forget_expired(&mut connection, &keys, &published).await?;
                    Ok(published)
                };
                match read.await {
                    Ok(published) => *lock(&self.view) = summed(&published),
                    Err(QueryError::Refused(why)) => {
                        refusals.refused("this node's room sizes", &why);
                    }
                    Err(QueryError::Lost(why)) => {
                        self.lost(&self.presence_up, &why);
                        break;
                    }
                }
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// The set of the keys the nodes publish their room sizes under. Each node adds its own
/// each time it publishes, and removes the keys that have expired, so reading the nodes costs
/// in proportion to how many there are; `KEYS` would walk every key of a Redis that other
/// applications may share, blocking it meanwhile.
const NODE_SET: &str = "wsecho:nodes";

/// The keys in [`NODE_SET`], at most [`MOST_NODES`] of them.
async fn node_keys(connection: &mut MultiplexedConnection) -> Result<Vec<String>, QueryError> {
    let mut members = redis::cmd("SRANDMEMBER");
    members.arg(NODE_SET).arg(MOST_NODES);
    let mut keys: Vec<String> = query(&members, connection).await?;
    keys.sort();
    Ok(keys)
}

/// Takes the keys of nodes whose sizes have expired (`published` is `None`) out of the set.
async fn forget_expired(
    connection: &mut MultiplexedConnection,
    keys: &[String],
    published: &[Option<String>],
) -> Result<(), QueryError> {
    let expired: Vec<&String> = keys
        .iter()
        .zip(published)
        .filter(|(_, sizes)| sizes.is_none())
        .map(|(key, _)| key)
        .collect();
    if expired.is_empty() {
        return Ok(());
    }
    let mut remove = redis::cmd("SREM");
    remove.arg(NODE_SET).arg(expired);
    query::<()>(&remove, connection).await
}

/// Nodes whose room sizes are read at most.
const MOST_NODES: usize = 256;

/// Every node's published room sizes, added up.
fn summed(published: &[Option<String>]) -> ClusterView {
    let mut rooms: HashMap<String, usize> = HashMap::new();
    let mut nodes = 0;
    for sizes in published.iter().flatten() {
        let Ok(serde_json::Value::Object(sizes)) = serde_json::from_str(sizes) else {
            continue;
        };
        nodes += 1;
        for (room, size) in sizes {
            *rooms.entry(room).or_default() += size.as_u64().unwrap_or(0) as usize;
        }
    }
    let mut rooms: Vec<(String, usize)> = rooms.into_iter().collect();
    rooms.sort();
    ClusterView { nodes, rooms }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_sizes_add_up_over_the_nodes() {
        let view = summed(&[
            Some(r#"{"/a":2,"/b":1}"#.to_owned()),
            None,
            Some(r#"{"/a":3}"#.to_owned()),
            Some("not json".to_owned()),
        ]);
        assert_eq!(view.nodes, 2);
        assert_eq!(view.rooms, vec![("/a".to_owned(), 5), ("/b".to_owned(), 1)]);
    }
}
