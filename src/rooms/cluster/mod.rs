//! Broadcast across processes: rooms shared through Redis Streams (`--redis URL`).
//!
//! Each room is a stream (`wsecho:room:<name>`). A message a member sends is appended to its
//! room's stream (by a script that trims it to its bounds and renews its expiry: see
//! `scripts`), and every node delivers the room's messages to its own members from that
//! stream, its own messages included: the stream fixes one order for the room, the same on
//! every node. A node reads only the streams of rooms that have members on it.
//!
//! Nothing is lost across a Redis outage. Appends wait in a bounded queue
//! ([`OUTBOX`] messages; a sender that finds it full is closed with 1013) and go out, in
//! order, when Redis is back. Reading resumes from the last entry this node delivered, so
//! nothing is missed or delivered twice. While Redis cannot be reached `/healthz` answers
//! 503, so a load balancer drains the node; clients stay connected.
//!
//! Each node also publishes its room sizes under a key that expires within seconds, and
//! reads every node's, for `/stats`.
//!
//! Three connections: one for appends, one for the blocking reads, which would otherwise
//! hold up the appends behind them, and one for the room sizes. A command that gets no answer within
//! [`COMMAND_TIMEOUT`] (Redis paused, a network partition) counts as a lost connection.
//!
//! An append that got no answer may still have happened (Redis was only paused), and is
//! made again: every entry carries its node's id and a sequence number, the append script
//! stores each (node, sequence) once per room, and a reader delivers each once (for the
//! stream whose record of what it holds was lost), so a message appended twice is stored
//! and arrives once.
//!
//! - `link`: connecting with backoff, the link's state, commands with a deadline.
//! - `append`, `read` (with `queue` and `resume`): the two directions; `scripts`: the Lua
//!   that keeps streams and reads bounded; `expiry`: rooms' TTLs renewed while they have
//!   members; `presence`: the room sizes for `/stats`.
//! - `entry`: how a message is stored in a stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::hub::Hub;
use crate::error::StartError;
use crate::limits::budget::MemoryBudget;
use crate::observe::stats::ClusterView;
use crate::sync::lock::lock;

mod append;
mod entry;
mod expiry;
mod link;
mod news;
mod presence;
mod queue;
mod read;
mod resume;
mod scripts;

pub use scripts::StreamBounds;

/// Messages that may wait to be appended while Redis is slow or unreachable.
pub const OUTBOX: usize = 10_000;

/// Entries each room's stream keeps: how far a node may fall behind, over an outage, and
/// still catch up without a gap (`--stream-max-bytes` bounds the bytes they hold).
pub const STREAM_LENGTH: usize = 100_000;

/// The slowest transfer from Redis a command's deadline allows for: a command that moves
/// many bytes gets longer than [`COMMAND_TIMEOUT`] before the link counts as lost.
const SLOWEST_BYTES_PER_SECOND: usize = 16 << 20;

/// Longest wait for an answer from Redis before the connection counts as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one blocking read waits for new entries before looking at which rooms have
/// members again.
const READ_BLOCK_MS: usize = 100;

/// How often a node publishes its room sizes and reads the other nodes'.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);

/// How long a node's published room sizes last: a node that stops publishing (killed, or
/// cut off from Redis) drops out of the counts this long after its last word.
const PRESENCE_TTL_MS: u64 = 3000;

const PRESENCE_PREFIX: &str = "wsecho:node:";

/// Longest pause between attempts to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A message on its way to its room's stream.
struct Outgoing {
    room: String,
    message: Message,
    /// This node's count of messages appended, for telling a repeated append.
    sequence: u64,
}

/// Someone waiting for the reader to take up the rooms that have just got members here.
struct Start {
    done: oneshot::Sender<()>,
}

/// This node's link to the rooms in Redis.
pub struct Cluster {
    client: redis::Client,
    /// Tells this node's entries from other nodes': random, drawn at start.
    node: u64,
    /// The next sequence number to give a message.
    next_sequence: std::sync::atomic::AtomicU64,
    /// The URL with any password left out, for the log.
    shown_url: String,
    outbox: mpsc::Sender<Outgoing>,
    starts: mpsc::UnboundedSender<Start>,
    /// Whether all three connections are up: what `/healthz` reports.
    connected: AtomicBool,
    /// Failing to connect has been logged since the node was last connected.
    reported_down: AtomicBool,
    writer_up: AtomicBool,
    reader_up: AtomicBool,
    /// Every node's rooms as last read from Redis: what `/stats` shows.
    view: Mutex<ClusterView>,
    presence_up: AtomicBool,
    /// Set once, when [`Cluster::run`] takes the receiving ends.
    receivers: Mutex<Option<Receivers>>,
    scripts: scripts::Scripts,
    bounds: StreamBounds,
    /// The largest message a client may send (`--max-message-size`): how far one entry
    /// may take a read past its byte limit.
    largest_message: usize,
}

struct Receivers {
    outbox: mpsc::Receiver<Outgoing>,
    starts: mpsc::UnboundedReceiver<Start>,
}

/// The outbox is full: Redis has been unreachable for a while.
#[derive(Debug)]
pub struct OutboxFull;

impl Cluster {
    /// Parses `url` (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS) and
    /// reads `ca`, the certificate to trust for TLS instead of the system's; connecting
    /// happens in [`Cluster::run`], and an unreachable Redis is not an error. Rooms' streams
    /// are kept within `bounds`; `largest_message` is `--max-message-size`.
    pub fn new(
        url: &str,
        ca: Option<&std::path::Path>,
        bounds: StreamBounds,
        largest_message: usize,
    ) -> Result<Arc<Self>, StartError> {
        let shown = link::without_password(url);
        let client = match ca {
            None => redis::Client::open(url),
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|error| {
                    StartError::Redis(format!("--redis-ca {}: {error}", path.display()))
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(url, certificates)
            }
        }
        .map_err(|error| {
            StartError::Redis(format!(
                "--redis {shown}: {error}; expected redis://[user:password@]host:port[/db], \
                 or rediss://... for Redis over TLS"
            ))
        })?;
        let (outbox, outbox_receiver) = mpsc::channel(OUTBOX);
        let (starts, starts_receiver) = mpsc::unbounded_channel();
        Ok(Arc::new(Cluster {
            client,
            node: random_node_id(),
            next_sequence: std::sync::atomic::AtomicU64::new(0),
            shown_url: shown,
            outbox,
            starts,
            connected: AtomicBool::new(false),
            reported_down: AtomicBool::new(false),
            view: Mutex::default(),
            presence_up: AtomicBool::new(false),
            writer_up: AtomicBool::new(false),
            reader_up: AtomicBool::new(false),
            receivers: Mutex::new(Some(Receivers {
                outbox: outbox_receiver,
                starts: starts_receiver,
            })),
            scripts: scripts::Scripts::new(),
            bounds,
            largest_message,
        }))
    }

    /// Whether this node can reach Redis now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Queues `message` for `room`'s stream. Never waits.
    pub(crate) fn publish(&self, room: &str, message: Message) -> Result<(), OutboxFull> {
        let permit = self.outbox.try_reserve().map_err(|_| OutboxFull)?;
        permit.send(Outgoing {
            room: room.to_owned(),
            message,
            sequence: self.next_sequence.fetch_add(1, Ordering::Relaxed),
        });
        Ok(())
    }

    /// Called when a room gets its first member on this node: returns once the reader knows
    /// where the room's stream stands, so that everything appended from now on (the new
    /// member's own messages included) is delivered here. While Redis cannot be reached it
    /// gives up after [`COMMAND_TIMEOUT`], and the reader starts the room where the stream
    /// stands once it can: messages other nodes append in between are not delivered here.
    pub(crate) async fn start_room(&self) {
        let (done, started) = oneshot::channel();
        let start = Start { done };
        if self.starts.send(start).is_ok() {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, started).await;
        }
    }

    /// Appends and reads until the server stops. Spawn it once. Large messages read from
    /// Redis are charged to `budget` while the members' queues hold them, as local ones are.
    pub(crate) async fn run(self: Arc<Self>, hub: Arc<Hub>, budget: Arc<MemoryBudget>) {
        let Some(receivers) = lock(&self.receivers).take() else {
            return;
        };
        tokio::join!(
            self.append(receivers.outbox),
            self.read(receivers.starts, hub.clone(), budget),
            self.presence(hub),
        );
    }

    /// How long a command that moves `bytes` may take before the link counts as lost.
    fn timeout_for(&self, bytes: usize) -> Duration {
        COMMAND_TIMEOUT + Duration::from_secs_f64(bytes as f64 / SLOWEST_BYTES_PER_SECOND as f64)
    }

    /// The nodes and rooms as last read from Redis.
    pub fn view(&self) -> ClusterView {
        lock(&self.view).clone()
    }
}

/// A node id unlikely to be drawn twice: the standard library's random hasher keys, mixed
/// with the time and the process id.
fn random_node_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_an_error_that_hides_the_password() {
        let bounds = StreamBounds {
            entries: STREAM_LENGTH,
            bytes: 1 << 20,
            ttl: Duration::from_secs(60),
        };
        let error = Cluster::new("http://user:secret@host", None, bounds, 1 << 20)
            .err()
            .expect("an error")
            .to_string();
        assert!(!error.contains("secret"), "{error}");
    }
}
