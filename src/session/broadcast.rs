//! Broadcast mode: every message goes to everyone in the client's room, and everything the
//! room sends is written to the client, until the client ends or falls too far behind.
//!
//! Unlike the echo loop this one uses `tokio::select!`: it waits on five things, and its
//! per-message work (a lock and a queue push per member) dwarfs what a hand-written select
//! would save.

use std::convert::Infallible;
use std::pin::pin;

use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;

use super::end::End;
use super::{BATCH, Session};
use crate::shared::Shared;
use crate::shutdown::Shutdown;

/// Joins the room named by `room`, sends the welcome, then relays messages both ways until
/// the session ends; returns only by ending.
pub(crate) async fn run(
    session: &mut Session<'_>,
    shared: &Shared,
    room: &str,
    shutdown: &mut Shutdown,
) -> Result<Infallible, End> {
    let max_queue = session.config.max_queue;
    let mut member = shared.hub.join(room, session.peer, max_queue);
    let eviction = member.eviction();
    session.welcome(&shared.welcome).await?;
    let mut timer = pin!(sleep_until(session.keepalive.deadline()));
    let mut kicked_out = pin!(eviction.evicted());
    loop {
        // Not biased: a busy room must not starve reading the client (its pongs and close),
        // nor a chatty client starve delivering the room's messages to it.
        tokio::select! {
            _ = shutdown.recv() => return Err(End::Shutdown),
            _ = &mut kicked_out => return Err(End::fell_behind(max_queue)),
            first = session.socket.next() => {
                session.receive_batch(first, |message| {
                    member.broadcast(&message);
                    None
                }).await?;
            }
            outgoing = member.queue.recv() => {
                let Some(first) = outgoing else {
                    return Err(End::fell_behind(max_queue));
                };
                // Writing can wait on a slow client; eviction must still get through.
                tokio::select! {
                    biased;
                    _ = eviction.evicted() => return Err(End::fell_behind(max_queue)),
                    written = deliver_queued(session, &mut member.queue, first) => written?,
                }
            }
            _ = &mut timer => session.on_timer(timer.as_mut()).await?,
        }
    }
}

/// Writes `first` and whatever else is already queued (up to [`BATCH`]), then flushes once.
async fn deliver_queued(
    session: &mut Session<'_>,
    queue: &mut mpsc::Receiver<Message>,
    first: Message,
) -> Result<(), End> {
    session.deliver(first).await?;
    for _ in 1..BATCH {
        match queue.try_recv() {
            Ok(message) => session.deliver(message).await?,
            Err(_) => break,
        }
    }
    session.flush().await
}
