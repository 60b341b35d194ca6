//! Broadcast mode: every message goes to everyone in the client's room, and everything the
//! room sends is written to the client, until the client ends or falls too far behind.
//!
//! The member's socket is read all the time, also while what the room sends it waits for
//! room in the socket: a client that sends while it is not reading (an ordinary
//! single-threaded client blocked in `send`) would otherwise wait on the server while the
//! server waits on it. What a member cannot take yet waits in its bounded queue; a member
//! whose queue overflows is evicted (1013), and one whose socket takes nothing for the ping
//! timeout is dropped as not reading. A large message is charged to the memory budget once
//! for all the queues that hold it, and is written to each member from that one payload
//! (`outbox`); a sender's next large message waits while the budget is full.
//!
//! Like the echo loop, the wait is hand-written: whether the socket is backed up decides
//! what the loop may do (take more from the queue, or only retry the write), which is state
//! a `tokio::select!` branch cannot see change between polls.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use tokio::time::{Sleep, sleep, sleep_until};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::end::End;
use super::{AfterBatch, BATCH, Session};
use crate::rooms::Rooms;
use crate::rooms::delivery::Delivery;
use crate::rooms::hub::Membership;
use crate::sync::shutdown::Shutdown;
use crate::sync::wake_flag::WakeFlag;

/// What a wait in the broadcast loop ended with.
enum Wake {
    Shutdown,
    Evicted,
    /// The socket stayed backed up for the whole write deadline.
    NotReading,
    /// The room has a message for this member, and the socket can take it.
    Outgoing(Delivery),
    Socket(Option<Result<Message, tungstenite::Error>>),
    Timer,
    /// A write that had waited for room failed.
    WriteFailed(tungstenite::Error),
    /// The memory budget chose this member to close.
    ShortOfMemory,
}

/// Joins the room named by `room` (with the history notice if `history_notice`), sends the
/// welcome, then relays messages both ways until the session ends; returns only by ending.
pub(crate) async fn run(
    session: &mut Session<'_>,
    rooms: &Rooms,
    welcome: &Option<Utf8Bytes>,
    (room, history_notice): (&str, bool),
    shutdown: &mut Shutdown,
) -> Result<Infallible, End> {
    let max_queue = session.config.max_queue;
    let write_limit = session.config.ping_timeout;
    let member = rooms
        .join(room, session.peer, max_queue, history_notice)
        .await;
    let eviction = member.eviction();
    session.welcome(welcome.as_ref()).await?;
    let mut timer = pin!(sleep_until(session.keepalive.deadline()));
    let mut kicked_out = pin!(eviction.evicted());
    // Running while the socket is backed up: the longest a write may wait for room.
    let mut write_deadline: Option<Pin<Box<Sleep>>> = None;
    let mut taken = VecDeque::new();
    // The room wakes this task for nearly every delivery; everything else it waits on is
    // polled with this flag's waker, and only after the flag says one of them woke it.
    let (quiet_sources, quiet_waker) = WakeFlag::new();
    loop {
        let wake = poll_fn(|context| {
            let quiet_woke = quiet_sources.take(context.waker());
            let mut quiet_context = Context::from_waker(&quiet_waker);
            if quiet_woke {
                if shutdown.poll_recv(&mut quiet_context).is_ready() {
                    return Poll::Ready(Wake::Shutdown);
                }
                if kicked_out.as_mut().poll(&mut quiet_context).is_ready() {
                    return Poll::Ready(Wake::Evicted);
                }
            }
            if session.socket.is_evicted_for_memory() {
                return Poll::Ready(Wake::ShortOfMemory);
            }
            // Returning before the socket and the timer were polled: they are polled next
            // time, whichever of them woke the task.
            let ready = |wake| {
                if quiet_woke {
                    quiet_sources.set();
                }
                Poll::Ready(wake)
            };
            if session.socket.is_backed_up() {
                match session.socket.poll_flush(context) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(error)) => return ready(Wake::WriteFailed(error)),
                    Poll::Pending => {
                        let deadline =
                            write_deadline.get_or_insert_with(|| Box::pin(sleep(write_limit)));
                        if deadline.as_mut().poll(context).is_ready() {
                            return ready(Wake::NotReading);
                        }
                    }
                }
            }
            if !session.socket.is_backed_up() {
                // However the backlog cleared (here, or in a batch's or a ping's write
                // attempt), the next backlog gets a deadline of its own.
                write_deadline = None;
            }
            if !session.socket.is_backed_up()
                && let Poll::Ready(message) = member.queue.poll_take(context)
            {
                return ready(Wake::Outgoing(message));
            }
            if quiet_woke {
                // Either may be ready again at once (the batch reads on with this task's
                // waker; the timer is reset): both are polled next time.
                if let Poll::Ready(received) = session.socket.poll_next(&mut quiet_context) {
                    return ready(Wake::Socket(received));
                }
                if timer.as_mut().poll(&mut quiet_context).is_ready() {
                    return ready(Wake::Timer);
                }
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Shutdown => return Err(End::Shutdown),
            Wake::Evicted => return Err(End::fell_behind(max_queue)),
            Wake::NotReading => return Err(End::NotReading),
            Wake::WriteFailed(error) => return Err(End::from_error(error)),
            Wake::ShortOfMemory => return Err(End::ShortOfMemory),
            Wake::Outgoing(first) => {
                write_queued(session, &member, first, &mut taken)?;
                session.flush_now().await?;
            }
            Wake::Socket(first) => {
                // Answers to pings and the like, which tungstenite queued while reading, go
                // out with the batch's write attempt.
                let mut outbox_full = false;
                let broadcast = |message: Message| {
                    outbox_full |= rooms.send(&member, message).is_err();
                    None
                };
                session
                    .receive_batch(first, broadcast, AfterBatch::LeaveQueued)
                    .await?;
                if outbox_full {
                    return Err(End::redis_backlog());
                }
            }
            Wake::Timer => {
                member.queue.shrink_if_empty(&mut taken);
                session.on_timer(timer.as_mut())?;
                session.flush_now().await?;
            }
        }
    }
}

/// Hands `first` and whatever else is already queued (up to [`BATCH`]) to the socket, and
/// stops early once the socket is backed up: the rest goes back to the member's queue, where
/// it counts towards eviction. `taken` is the loop's scratch queue, empty between calls.
fn write_queued(
    session: &mut Session<'_>,
    member: &Membership,
    first: Delivery,
    taken: &mut VecDeque<Delivery>,
) -> Result<(), End> {
    session.send_delivery(first)?;
    if session.socket.is_backed_up() {
        return Ok(());
    }
    member.queue.take_up_to(BATCH - 1, taken);
    while !session.socket.is_backed_up()
        && let Some(message) = taken.pop_front()
    {
        if let Err(end) = session.send_delivery(message) {
            taken.clear();
            return Err(end);
        }
    }
    member.queue.put_back(taken);
    Ok(())
}

impl Session<'_> {
    /// Queues one of the room's messages for the client at once, as
    /// [`Session::send_now`] does; a formatted frame is appended as it is.
    fn send_delivery(&mut self, delivery: Delivery) -> Result<(), End> {
        let frame = match delivery {
            Delivery::Framed(frame) => frame,
            Delivery::Whole(message) => return self.send_now(message),
        };
        if self.traffic.sent_data(frame.is_text(), frame.payload_len()) {
            self.traffic.flush(self.metrics);
        }
        let bytes = frame.bytes();
        self.socket
            .feed_formatted(bytes, || frame.clone().into_message())
            .map_err(End::from_error)
    }
}
