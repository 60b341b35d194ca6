//! Broadcast mode's rooms: the one entry point through which a member joins a room and sends
//! to it. Each message is charged to the memory budget once, here, and goes either to the
//! members on this node (`hub`) or, with `--redis`, through the room's stream to every node
//! (`cluster`), this one included.
//!
//! - `hub`: the rooms on this node, their members and their history.
//! - `delivery`: a room's message as its members are sent it, formatted once in a big room.
//! - `mailbox`: one member's bounded queue of messages waiting to be written.
//! - `cluster`: rooms shared between nodes through Redis Streams.

pub(crate) mod cluster;
pub(crate) mod delivery;
pub(crate) mod hub;
mod mailbox;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;
use crate::error::StartError;
use crate::limits::budget::MemoryBudget;
use crate::observe::stats::ClusterView;
use cluster::{Cluster, OutboxFull, StreamBounds};
use hub::{Hub, Membership};

/// Every room this node serves, and the link to the other nodes' when there is one.
pub(crate) struct Rooms {
    hub: Arc<Hub>,
    /// The link to the rooms in Redis (`--redis`).
    cluster: Option<Arc<Cluster>>,
    /// Charged once for each large message, however many members' queues hold it.
    budget: Arc<MemoryBudget>,
}

impl Rooms {
    /// The rooms for `config` (`--history`, `--redis`, `--redis-ca`, `--stream-max-bytes`,
    /// `--room-ttl`). A Redis URL that does
    /// not parse, or a CA file that cannot be read, is a start-up error; an unreachable Redis
    /// is not (the link retries).
    pub(crate) fn new(config: &Config, budget: Arc<MemoryBudget>) -> Result<Self, StartError> {
        let cluster = match &config.redis {
            Some(url) => {
                let bounds = StreamBounds {
                    entries: cluster::STREAM_LENGTH,
                    bytes: config.stream_max_bytes,
                    ttl: config.room_ttl,
                };
                let ca = config.redis_ca.as_deref();
                Some(Cluster::new(url, ca, bounds, config.max_message_size)?)
            }
            None => None,
        };
        Ok(Rooms {
            hub: Arc::new(Hub::with_history(config.history)),
            cluster,
            budget,
        })
    }

    /// Adds `peer` to the room called `name`; `capacity` is how many messages may wait for
    /// it; `history_notice`: see `hub`. When the room is new on this node and shared through Redis, returns once the
    /// room's stream is being read, so the member's own first message comes back to it.
    pub(crate) async fn join(
        &self,
        name: &str,
        peer: SocketAddr,
        capacity: usize,
        history_notice: bool,
    ) -> Membership {
        let member = self.hub.join(name, peer, capacity, history_notice);
        if let Some(cluster) = &self.cluster
            && member.first
        {
            cluster.start_room().await;
        }
        member
    }

    /// Sends `message` to everyone in `member`'s room, the sender included. Never waits;
    /// fails only when Redis has been out of reach so long that its queue is full.
    pub(crate) fn send(&self, member: &Membership, message: Message) -> Result<(), OutboxFull> {
        let message = self.budget.charge_shared(message);
        match &self.cluster {
            // Back to this node, and every other, through the room's stream.
            Some(cluster) => cluster.publish(member.room_name(), message),
            None => {
                member.broadcast(message);
                Ok(())
            }
        }
    }

    /// How many members each room has here, by room name.
    pub(crate) fn sizes(&self) -> Vec<(String, usize)> {
        self.hub.room_sizes()
    }

    /// Whether the node can serve its rooms: always, unless it shares them through a Redis
    /// it cannot reach.
    pub(crate) fn is_healthy(&self) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|cluster| cluster.is_connected())
    }

    /// With `--redis`: whether Redis is reachable, and the nodes and rooms it last showed.
    pub(crate) fn cluster_view(&self) -> Option<(bool, ClusterView)> {
        self.cluster
            .as_ref()
            .map(|cluster| (cluster.is_connected(), cluster.view()))
    }

    /// The background work the rooms need (with `--redis`: appending, reading and presence)
    /// until the server stops; never returns without `--redis`.
    pub(crate) async fn run(&self) {
        match &self.cluster {
            Some(cluster) => {
                cluster
                    .clone()
                    .run(self.hub.clone(), self.budget.clone())
                    .await
            }
            None => std::future::pending().await,
        }
    }
}
