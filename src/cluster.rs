//! Broadcast across processes: rooms shared through Redis Streams (`--redis URL`).
//!
//! Each room is a stream (`wsecho:room:<name>`). A message a member sends is appended to its
//! room's stream (`XADD`, trimmed to about [`STREAM_LENGTH`] entries), and every node
//! delivers the room's messages to its own members from that stream, its own messages
//! included: the stream fixes one order for the room, the same on every node. A node reads
//! only the streams of rooms that have members on it.
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
//! made again: every entry carries its node's id and a sequence number, and a reader
//! delivers each (node, sequence) once, so a message appended twice arrives once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use log::{info, warn};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::budget::MemoryBudget;
use crate::hub::Hub;
use crate::lock::lock;

/// Messages that may wait to be appended while Redis is slow or unreachable.
pub const OUTBOX: usize = 10_000;

/// Entries each room's stream keeps (approximately): how far a node may fall behind, over an
/// outage, and still catch up without a gap.
const STREAM_LENGTH: usize = 100_000;

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
}

struct Receivers {
    outbox: mpsc::Receiver<Outgoing>,
    starts: mpsc::UnboundedReceiver<Start>,
}

/// The nodes sharing the rooms, and each room's members across all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Nodes that published their room sizes within the last few seconds.
    pub nodes: usize,
    /// Members per room, summed over the nodes.
    pub rooms: Vec<(String, usize)>,
}

/// The outbox is full: Redis has been unreachable for a while.
#[derive(Debug)]
pub struct OutboxFull;

impl Cluster {
    /// Parses `url` (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS) and
    /// reads `ca`, the certificate to trust for TLS instead of the system's; connecting
    /// happens in [`Cluster::run`], and an unreachable Redis is not an error.
    pub fn new(url: &str, ca: Option<&std::path::Path>) -> Result<Arc<Self>, String> {
        let shown = without_password(url);
        let client = match ca {
            None => redis::Client::open(url),
            Some(path) => {
                let root_cert = std::fs::read(path)
                    .map_err(|error| format!("--redis-ca {}: {error}", path.display()))?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(url, certificates)
            }
        }
        .map_err(|error| format!("--redis {shown}: {error}"))?;
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

    /// The nodes and rooms as last read from Redis.
    pub fn view(&self) -> ClusterView {
        lock(&self.view).clone()
    }

    /// Publishes this node's room sizes (with an expiry) and reads every node's, each
    /// [`PRESENCE_EVERY`].
    async fn presence(&self, hub: Arc<Hub>) {
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
                    Err(why) => {
                        self.lost(&self.presence_up, &why);
                        break;
                    }
                }
                tokio::time::sleep(PRESENCE_EVERY).await;
            }
        }
    }

    /// Connects, retrying with capped backoff; `up` records this connection's state.
    async fn connect(&self, up: &AtomicBool) -> MultiplexedConnection {
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = tokio::time::timeout(
                COMMAND_TIMEOUT,
                self.client.get_multiplexed_async_connection(),
            )
            .await;
            match attempt {
                Ok(Ok(connection)) => {
                    up.store(true, Ordering::Relaxed);
                    self.update_connected();
                    return connection;
                }
                Ok(Err(error)) => self.lost(up, &error.to_string()),
                Err(_) => self.lost(up, "no answer"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Records a connection as lost, or an attempt as failed; logged once until the node
    /// is connected again.
    fn lost(&self, up: &AtomicBool, why: &str) {
        up.store(false, Ordering::Relaxed);
        if self.connected.swap(false, Ordering::Relaxed) {
            self.reported_down.store(true, Ordering::Relaxed);
            warn!("lost Redis at {}: {why}; retrying", self.shown_url);
        } else if !self.reported_down.swap(true, Ordering::Relaxed) {
            warn!("cannot reach Redis at {}: {why}; retrying", self.shown_url);
        }
    }

    fn update_connected(&self) {
        let both = self.writer_up.load(Ordering::Relaxed) && self.reader_up.load(Ordering::Relaxed);
        if both && !self.connected.swap(true, Ordering::Relaxed) {
            self.reported_down.store(false, Ordering::Relaxed);
            info!("connected to Redis at {}", self.shown_url);
        }
    }

    /// Appends queued messages to their rooms' streams, in order; a message whose append
    /// fails is retried first once the connection is back.
    async fn append(&self, mut outbox: mpsc::Receiver<Outgoing>) {
        let mut retry: Option<Outgoing> = None;
        loop {
            let mut connection = self.connect(&self.writer_up).await;
            loop {
                let next = match retry.take() {
                    Some(next) => next,
                    None => match outbox.recv().await {
                        Some(next) => next,
                        None => return,
                    },
                };
                let (kind, payload) = match &next.message {
                    Message::Text(text) => ("t", Bytes::from(text.clone())),
                    Message::Binary(bytes) => ("b", bytes.clone()),
                    _ => continue,
                };
                let mut command = redis::cmd("XADD");
                command
                    .arg(stream_key(&next.room))
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(STREAM_LENGTH)
                    .arg("*")
                    .arg("n")
                    .arg(self.node)
                    .arg("s")
                    .arg(next.sequence)
                    .arg("t")
                    .arg(kind)
                    .arg("d")
                    .arg(payload.as_ref());
                if let Err(why) = query::<String>(&command, &mut connection).await {
                    retry = Some(next);
                    self.lost(&self.writer_up, &why);
                    break;
                }
            }
        }
    }

    /// After reconnecting: if the entry this node delivered last is no longer in its
    /// room's stream, Redis lost its data (restarted without it) or trimmed past it. The
    /// room carries on from the stream as it is, with a warning that messages appended
    /// meanwhile may be lost.
    async fn check_streams(
        &self,
        connection: &mut MultiplexedConnection,
        positions: &mut HashMap<String, String>,
    ) -> Result<(), ()> {
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
                    Err(why) => {
                        self.lost(&self.reader_up, &why);
                        return Err(());
                    }
                };
            if !still_there {
                warn!(
                    room = room.as_str();
                    "room {room}: Redis no longer has the last message delivered here \
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
    async fn read(
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
        loop {
            let mut connection = self.connect(&self.reader_up).await;
            if self
                .check_streams(&mut connection, &mut positions)
                .await
                .is_err()
            {
                continue;
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
                let mut failed = false;
                for room in &local {
                    if positions.contains_key(room) {
                        continue;
                    }
                    match stream_tail(&mut connection, room, hub.history_length()).await {
                        Ok((end, messages)) => {
                            hub.seed_history(room, messages);
                            positions.insert(room.clone(), end);
                        }
                        Err(why) => {
                            self.lost(&self.reader_up, &why);
                            failed = true;
                            break;
                        }
                    }
                }
                if failed {
                    break;
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
                    Ok(reply) => reply,
                    Err(why) => {
                        self.lost(&self.reader_up, &why);
                        break;
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

const STREAM_PREFIX: &str = "wsecho:room:";

fn stream_key(room: &str) -> String {
    format!("{STREAM_PREFIX}{room}")
}

/// Runs `command`, giving up after [`COMMAND_TIMEOUT`]; the error, for the log, names the
/// command when Redis did not answer.
async fn query<T: redis::FromRedisValue>(
    command: &redis::Cmd,
    connection: &mut MultiplexedConnection,
) -> Result<T, String> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command.query_async(connection)).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(_) => {
            let name = match command.args_iter().next() {
                Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).into_owned(),
                _ => "a command".to_owned(),
            };
            Err(format!("no answer to {name}"))
        }
    }
}

/// The ID of the last entry in `room`'s stream (`0-0` if it has none), and the messages of
/// its last `count` entries, oldest first.
async fn stream_tail(
    connection: &mut MultiplexedConnection,
    room: &str,
    count: usize,
) -> Result<(String, Vec<Message>), String> {
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

/// What an entry holds: the node that appended it (`n`), its sequence number there (`s`),
/// and the message: `t` says text or binary, `d` has the payload.
fn entry_message(fields: &HashMap<String, redis::Value>) -> Option<(u64, u64, Message)> {
    let node: u64 = redis::from_redis_value_ref(fields.get("n")?).ok()?;
    let sequence: u64 = redis::from_redis_value_ref(fields.get("s")?).ok()?;
    let payload: Vec<u8> = redis::from_redis_value_ref(fields.get("d")?).ok()?;
    let kind: String = redis::from_redis_value_ref(fields.get("t")?).ok()?;
    let message = match kind.as_str() {
        "t" => Message::Text(Utf8Bytes::try_from(payload).ok()?),
        "b" => Message::Binary(payload.into()),
        _ => return None,
    };
    Some((node, sequence, message))
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

/// `url` with the password, if any, replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
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

    #[test]
    fn passwords_are_left_out_of_the_url_shown() {
        assert_eq!(
            without_password("redis://user:secret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(
            without_password("redis://secret@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn a_bad_url_is_an_error_that_hides_the_password() {
        let error = Cluster::new("http://user:secret@host", None)
            .err()
            .expect("an error");
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn entries_become_the_messages_they_were() {
        let fields = |kind: &str, data: &[u8]| {
            HashMap::from([
                ("n".to_owned(), redis::Value::BulkString(b"77".to_vec())),
                ("s".to_owned(), redis::Value::BulkString(b"5".to_vec())),
                ("t".to_owned(), redis::Value::BulkString(kind.into())),
                ("d".to_owned(), redis::Value::BulkString(data.to_vec())),
            ])
        };
        assert_eq!(
            entry_message(&fields("t", "hé".as_bytes())),
            Some((77, 5, Message::text("hé")))
        );
        assert_eq!(
            entry_message(&fields("b", &[0, 255])),
            Some((77, 5, Message::binary(vec![0u8, 255])))
        );
        assert_eq!(entry_message(&fields("t", &[0xff])), None);
    }
}
