//! Appending: messages sent here go to their rooms' streams in order, and one whose append
//! fails for a lost link is retried first once the link is back. One that Redis refuses
//! (out of memory, read-only, an ACL or script error) is dropped: retrying it would fail
//! the same way and hold up every other room's messages behind it. Refusals are logged
//! once per cause and interval, with a count.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::entry::stream_key;
use super::link::{QueryError, RefusalLog, query_together};
use super::news::{NEWS_KEY, NEWS_LENGTH};
use super::{Cluster, Outgoing, STREAM_LENGTH};

impl Cluster {
    /// Appends queued messages to their rooms' streams, in order; a message whose append
    /// fails is retried first once the connection is back.
    pub(super) async fn append(&self, mut outbox: mpsc::Receiver<Outgoing>) {
        let mut retry: Option<Outgoing> = None;
        let mut refusals = RefusalLog::default();
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
                let mut news = redis::cmd("XADD");
                news.arg(NEWS_KEY)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(NEWS_LENGTH)
                    .arg("*")
                    .arg("r")
                    .arg(&next.room);
                // One round trip for both: the entry, then the news naming its room.
                let mut both = redis::pipe();
                both.add_command(command).add_command(news);
                let appended: Result<(String, String), _> =
                    query_together(&both, &mut connection, "XADD").await;
                match appended {
                    Ok(_) => {}
                    Err(QueryError::Refused(why)) => {
                        refusals.refused("an append to a room's stream (message dropped)", &why);
                    }
                    Err(QueryError::Lost(why)) => {
                        retry = Some(next);
                        self.lost(&self.writer_up, &why);
                        break;
                    }
                }
            }
        }
    }
}
