//! Presence: each node publishes its room sizes under a key that expires within seconds,
//! and reads every node's, for `/stats`.

use std::collections::HashMap;

use super::link::{QueryError, RefusalLog, query};
use super::{Cluster, PRESENCE_EVERY, PRESENCE_PREFIX, PRESENCE_TTL_MS};
use crate::observe::stats::ClusterView;
use crate::rooms::hub::Hub;
use crate::sync::lock::lock;
use std::sync::Arc;

impl Cluster {
    /// Publishes this node's room sizes (with an expiry) and reads every node's, each
    /// [`PRESENCE_EVERY`].
    pub(super) async fn presence(&self, hub: Arc<Hub>) {
        let mut refusals = RefusalLog::default();
        loop {
            let mut connection = self.connect(&self.presence_up).await;
            loop {
                let own: serde_json::Map<String, serde_json::Value> = hub
                    .room_sizes()
                    .into_iter()
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
                    query::<()>(&publish, &mut connection).await?;
                    let mut list = redis::cmd("KEYS");
                    list.arg(format!("{PRESENCE_PREFIX}*"));
                    let keys: Vec<String> = query(&list, &mut connection).await?;
                    if keys.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut get = redis::cmd("MGET");
                    get.arg(&keys);
                    query::<Vec<Option<String>>>(&get, &mut connection).await
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
                tokio::time::sleep(PRESENCE_EVERY).await;
            }
        }
    }
}

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
