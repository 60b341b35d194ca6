//! Appending: messages sent here go to their rooms' streams in order, and one whose append
//! fails for a lost link is retried first once the link is back. Each append also trims
//! the room's stream to its bounds (see `scripts`). One that Redis refuses
//! (out of memory, read-only, an ACL or script error) is dropped: retrying it would fail
//! the same way and hold up every other room's messages behind it. Refusals are logged
//! once per cause and interval, with a count.

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::link::{QueryError, RefusalLog};
use super::scripts::Append;
use super::{Cluster, Outgoing};

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
                    Message::Text(text) => ("t", text.as_bytes()),
                    Message::Binary(bytes) => ("b", bytes.as_ref()),
                    _ => continue,
                };
                let append = Append {
                    room: &next.room,
                    node: self.node,
                    sequence: next.sequence,
                    kind,
                    payload,
                };
                let timeout = self.timeout_for(payload.len());
                let appended = self
                    .scripts
                    .append(&mut connection, &append, self.bounds, timeout)
                    .await;
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
