//! How a message is stored in a room's stream: the key, and the fields of an entry.

use std::collections::HashMap;

use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Every room's stream key starts with this, the room's name (its path) follows.
pub(super) const STREAM_PREFIX: &str = "wsecho:room:";

/// The key of `room`'s stream.
pub(super) fn stream_key(room: &str) -> String {
    format!("{STREAM_PREFIX}{room}")
}

/// The key of `room`'s record of its stream: the bytes its messages hold (`bytes`), and
/// the last entry trimmed (`trimmed`). It expires with the stream.
pub(super) fn meta_key(room: &str) -> String {
    format!("wsecho:meta:{room}")
}

/// What an entry holds: the node that appended it (`n`), its sequence number there (`s`),
/// and the message: `t` says text or binary, `d` has the payload.
pub(super) fn entry_message(fields: &HashMap<String, redis::Value>) -> Option<(u64, u64, Message)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
