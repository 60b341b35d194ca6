//! The two things a node asks of a room's stream that plain commands cannot do safely, as
//! Lua scripts that Redis runs atomically.
//!
//! Appending keeps the stream within its bounds: trimmed by bytes as well as entries (from
//! the sizes recorded in the room's `meta` hash, so every node trims the same stream the
//! same way), expiring with the room (`--room-ttl`), and named in the news stream in the
//! same step, so that no reader sees one without the other.
//!
//! Reading is bounded by bytes: `XREAD COUNT` limits entries, not bytes, and a node that had
//! fallen behind on large messages asked for hundreds of MiB in one reply, timed out, and
//! asked again. The script reads each room's stream in batches that surely fit in the bytes
//! left (judged by the largest message the stream has held; one entry at a time when that
//! is not known) and stops at a byte limit (one message over at most), saying which rooms
//! have more.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;

use super::entry::{meta_key, stream_key};
use super::link::{QueryError, answer};
use super::news::{NEWS_KEY, NEWS_LENGTH};

/// Appends one message to a room's stream, trims the oldest past the limits, refreshes the
/// expiry, and names the room in the news. The meta hash keeps the bytes held, the largest
/// message appended since it was made (an upper bound the read script sizes its batches
/// by), the newest entry trimmed, and each node's last sequence number appended (`a:NODE`):
/// an append made again after its answer was lost is not stored twice, so it neither
/// counts twice against the bounds nor shows twice in a joiner's history. Answers the new
/// entry's ID, or nothing for a message already stored. KEYS: stream, meta, news. ARGV:
/// node, sequence, kind, payload, most entries, most bytes, expiry in ms, news length, room.
const APPEND: &str = r#"
local stream, meta, news = KEYS[1], KEYS[2], KEYS[3]
local payload = ARGV[4]
local most_entries, most_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
local function size_of(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then return #fields[i + 1] end
  end
  return 0
end
local appended_by_node = 'a:' .. ARGV[1]
local known = redis.call('HMGET', meta, 'bytes', 'largest', appended_by_node)
local held, largest = tonumber(known[1]), tonumber(known[2])
local last_appended = tonumber(known[3])
-- The same message again: an append whose answer was lost (a timeout), made again.
if last_appended and last_appended >= tonumber(ARGV[2]) then return false end
if not held or not largest then
  -- No record of the stream's sizes (a new room, or the record was lost): count them.
  held, largest = 0, 0
  local after = '-'
  while true do
    local batch = redis.call('XRANGE', stream, after, '+', 'COUNT', 8)
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      local size = size_of(entry)
      held = held + size
      if size > largest then largest = size end
    end
    after = '(' .. batch[#batch][1]
  end
end
local id = redis.call('XADD', stream, '*', 'n', ARGV[1], 's', ARGV[2], 't', ARGV[3], 'd', payload)
held = held + #payload
if #payload > largest then largest = #payload end
local length = redis.call('XLEN', stream)
local trimmed = false
while length > 1 and (held > most_bytes or length > most_entries) do
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  held = held - size_of(oldest)
  redis.call('XDEL', stream, oldest[1])
  trimmed = oldest[1]
  length = length - 1
end
if trimmed then
  redis.call('HSET', meta, 'bytes', held, 'largest', largest, appended_by_node, ARGV[2], 'trimmed', trimmed)
else
  redis.call('HSET', meta, 'bytes', held, 'largest', largest, appended_by_node, ARGV[2])
end
redis.call('PEXPIRE', stream, ARGV[7])
redis.call('PEXPIRE', meta, ARGV[7])
redis.call('XADD', news, 'MAXLEN', '~', ARGV[8], '*', 'r', ARGV[9])
return id
"#;

/// Reads the entries after each room's position, in batches no larger than the bytes left
/// (judged by the largest message appended to the room's stream), until `most bytes` in all (the
/// first entry read may go over it when ARGV[3] is 1) or `most entries` for a room.
/// KEYS: the rooms' streams, then their meta hashes. ARGV: most entries per room, most bytes,
/// whether the first may go over, then each room's position. Answers, for each room: whether
/// it has more to read, whether entries after its position were trimmed, and the entries.
const READ: &str = r#"
local rooms = #KEYS / 2
local most_entries, most_bytes = tonumber(ARGV[1]), tonumber(ARGV[2])
local first_may_go_over = ARGV[3] == '1'
local function size_of(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then return #fields[i + 1] end
  end
  return 0
end
local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local bytes, taken = 0, 0
local answer = {}
for r = 1, rooms do
  local stream, meta, after = KEYS[r], KEYS[rooms + r], ARGV[3 + r]
  local entries, more, trimmed = {}, 0, 0
  if taken > 0 and bytes >= most_bytes then
    more = 1
  else
    local known = redis.call('HMGET', meta, 'trimmed', 'largest')
    local cut, largest = known[1], tonumber(known[2])
    if after ~= '0-0' and cut and before(after, cut) then trimmed = 1 end
    while true do
      local wanted = most_entries - #entries
      if wanted <= 0 then more = 1 break end
      -- As many entries at once as surely fit in the bytes left, one when the sizes are
      -- not known: a batch never holds much more than the read may take.
      local count = 1
      if largest and largest > 0 then
        count = math.floor((most_bytes - bytes) / largest)
      elseif largest then
        count = wanted
      end
      count = math.max(1, math.min(count, wanted))
      local batch = redis.call('XRANGE', stream, '(' .. after, '+', 'COUNT', count)
      local full = false
      for _, entry in ipairs(batch) do
        local size = size_of(entry)
        if bytes + size > most_bytes and not (first_may_go_over and taken == 0) then
          full = true
          break
        end
        entries[#entries + 1] = entry
        bytes, taken, after = bytes + size, taken + 1, entry[1]
      end
      if full then more = 1 break end
      if #batch < count then break end
    end
  end
  answer[r] = {more, trimmed, entries}
end
return answer
"#;

/// How a room's stream is bounded.
#[derive(Clone, Copy, Debug)]
pub struct StreamBounds {
    /// Entries kept at most.
    pub entries: usize,
    /// Bytes of messages kept at most (one message over when a single one is larger).
    pub bytes: usize,
    /// How long the stream lasts after the last append or refresh.
    pub ttl: Duration,
}

/// The scripts, hashed once; Redis is sent each script's text only the first time.
pub(super) struct Scripts {
    append: redis::Script,
    read: redis::Script,
}

/// One message for a room's stream, as the append script takes it.
pub(super) struct Append<'a> {
    pub room: &'a str,
    pub node: u64,
    pub sequence: u64,
    /// `t` for text, `b` for binary.
    pub kind: &'static str,
    pub payload: &'a [u8],
}

/// What a read found in one room.
pub(super) struct RoomRead {
    pub room: String,
    /// The read stopped at a limit: the room has (or may have) more.
    pub more: bool,
    /// Entries after the room's position were trimmed before this node read them.
    pub trimmed: bool,
    pub entries: StreamRangeReply,
}

/// What one read asks for at most.
#[derive(Clone, Copy)]
pub(super) struct ReadLimit {
    pub entries_per_room: usize,
    pub bytes: usize,
    /// The first entry may take the read past `bytes` (so that a message larger than the
    /// limit is read at all).
    pub first_may_go_over: bool,
    pub timeout: Duration,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            append: redis::Script::new(APPEND),
            read: redis::Script::new(READ),
        }
    }

    /// Appends `message` to its room's stream within `bounds`; answers the entry's ID, or
    /// `None` when the stream already has it (this is an append made again).
    pub(super) async fn append(
        &self,
        connection: &mut MultiplexedConnection,
        message: &Append<'_>,
        bounds: StreamBounds,
        timeout: Duration,
    ) -> Result<Option<String>, QueryError> {
        let mut invocation = self.append.prepare_invoke();
        invocation
            .key(stream_key(message.room))
            .key(meta_key(message.room))
            .key(NEWS_KEY)
            .arg(message.node)
            .arg(message.sequence)
            .arg(message.kind)
            .arg(message.payload)
            .arg(bounds.entries)
            .arg(bounds.bytes)
            .arg(bounds.ttl.as_millis().max(1) as u64)
            .arg(NEWS_LENGTH)
            .arg(message.room);
        answer(invocation.invoke_async(connection), timeout, || {
            "an append".to_owned()
        })
        .await
    }

    /// Reads what follows each of `rooms`' positions, within `limit`.
    pub(super) async fn read(
        &self,
        connection: &mut MultiplexedConnection,
        rooms: &[(&str, &str)],
        limit: ReadLimit,
    ) -> Result<Vec<RoomRead>, QueryError> {
        let mut invocation = self.read.prepare_invoke();
        for (room, _) in rooms {
            invocation.key(stream_key(room));
        }
        for (room, _) in rooms {
            invocation.key(meta_key(room));
        }
        invocation
            .arg(limit.entries_per_room)
            .arg(limit.bytes)
            .arg(u8::from(limit.first_may_go_over));
        for (_, position) in rooms {
            invocation.arg(*position);
        }
        let found: Vec<(u8, u8, StreamRangeReply)> =
            answer(invocation.invoke_async(connection), limit.timeout, || {
                "a read of the rooms' streams".to_owned()
            })
            .await?;
        Ok(rooms
            .iter()
            .zip(found)
            .map(|((room, _), (more, trimmed, entries))| RoomRead {
                room: (*room).to_owned(),
                more: more != 0,
                trimmed: trimmed != 0,
                entries,
            })
            .collect())
    }
}
