//! A session that misbehaves on request: the client chose, in its URL's query string, a
//! close code and when it comes, a reset, a delay on every reply, fragmented replies, pings
//! with a counter, a ticker, a large download, or a pause in reading (see
//! `http::scenario`). The mode still decides what a reply is: the echo, or the room's
//! messages in broadcast mode.
//!
//! This loop is only for connections that asked for a scenario, so it is written for
//! clarity with `tokio::select!` rather than for speed; every other connection runs the
//! mode's own loop, untouched.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::poll_fn;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::Session;
use super::echo::reply_to;
use super::end::End;
use crate::config::Mode;
use crate::rooms::Rooms;
use crate::rooms::hub::Membership;
use crate::scenario::{LONGEST_TIMER, Scenario, Trigger};
use crate::sync::shutdown::Shutdown;
use frames::{send_download, send_reply};

mod frames;

/// Replies waiting out `?delay_ms` at most, and their bytes: past either the client's socket
/// is not read until some have gone out, so a delayed client holds no more than an ordinary
/// one with a message in flight (one large message may always wait).
const MOST_DELAYED: usize = 1024;
const MOST_DELAYED_BYTES: usize = 256 * 1024;

/// Where the replies come from: the connection itself (echo and raw modes) or its room.
pub(crate) enum Replies<'a> {
    /// Each message is answered as the mode answers it.
    Echo(Mode),
    /// Each message goes to the room; the room's messages are the replies.
    Room(&'a Rooms, &'a Membership),
}

/// What the loop woke for.
enum Wake {
    Shutdown,
    FellBehind,
    Close,
    Reset,
    Ping,
    Tick,
    DelayedReady,
    FromRoom(Message),
    Received(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    StallOver,
    Keepalive,
}

/// Serves a connection that asked for `scenario`: joins its room in broadcast mode, sends
/// the welcome, then runs the scenario; returns only by ending.
pub(crate) async fn serve(
    session: &mut Session<'_>,
    scenario: &Scenario,
    rooms: &Rooms,
    welcome: &Option<Utf8Bytes>,
    (room, history_notice): (&str, bool),
    shutdown: &mut Shutdown,
) -> Result<Infallible, End> {
    match session.config.mode {
        Mode::Broadcast => {
            let capacity = session.config.max_queue;
            let member = rooms
                .join(room, session.peer, capacity, history_notice)
                .await;
            session.welcome(welcome.as_ref()).await?;
            run(session, scenario, Replies::Room(rooms, &member), shutdown).await
        }
        mode => {
            session.welcome(welcome.as_ref()).await?;
            run(session, scenario, Replies::Echo(mode), shutdown).await
        }
    }
}

/// Runs the session as `scenario` asks, after the welcome has been sent; returns only by
/// ending.
async fn run(
    session: &mut Session<'_>,
    scenario: &Scenario,
    replies: Replies<'_>,
    shutdown: &mut Shutdown,
) -> Result<Infallible, End> {
    let started = Instant::now();
    let at = |delay: Duration| started + delay.min(LONGEST_TIMER);
    let timed = |trigger: Option<Trigger>| match trigger {
        Some(Trigger::Elapsed(delay)) => Some(at(delay)),
        _ => None,
    };
    let counted = |trigger: Option<Trigger>| match trigger {
        Some(Trigger::Replies(count)) => Some(count),
        _ => None,
    };
    let close_trigger = scenario.close.as_ref().map(|(_, _, trigger)| *trigger);
    let close_at = timed(close_trigger);
    let close_after = counted(close_trigger);
    let reset_at = timed(scenario.drop);
    let reset_after = counted(scenario.drop);
    let mut stall_until = scenario.stall.map(at);
    let mut next_ping = scenario.ping_every.map(at);
    let mut next_tick = scenario.repeat.as_ref().map(|(period, _)| at(*period));
    let mut pings_sent: u64 = 0;
    let mut pings_out: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut ticks: u64 = 0;
    let mut delayed: VecDeque<(Instant, Message)> = VecDeque::new();
    let mut replies_sent: u64 = 0;
    let mut keepalive = Box::pin(sleep_until(session.keepalive.deadline()));
    let eviction = match &replies {
        Replies::Room(_, member) => Some(member.eviction()),
        Replies::Echo(_) => None,
    };
    let mut kicked_out = Box::pin(async {
        match &eviction {
            Some(eviction) => eviction.evicted().await,
            None => std::future::pending().await,
        }
    });
    if let Some(size) = scenario.send_bytes {
        send_download(session, size, scenario.fragment).await?;
    }
    loop {
        if close_after.is_some_and(|count| replies_sent >= count) {
            return Err(requested_close(scenario));
        }
        if reset_after.is_some_and(|count| replies_sent >= count) {
            return Err(End::Reset);
        }
        let delayed_bytes: usize = delayed.iter().map(|(_, reply)| reply.len()).sum();
        let room_for_delayed = delayed.len() < MOST_DELAYED && delayed_bytes < MOST_DELAYED_BYTES;
        let reading = stall_until.is_none() && room_for_delayed;
        let room = match &replies {
            Replies::Room(_, member) => Some(*member),
            Replies::Echo(_) => None,
        };
        let wake = tokio::select! {
            biased;
            _ = shutdown.recv() => Wake::Shutdown,
            _ = kicked_out.as_mut() => Wake::FellBehind,
            _ = sleep_until(close_at.unwrap_or(started)), if close_at.is_some() => Wake::Close,
            _ = sleep_until(reset_at.unwrap_or(started)), if reset_at.is_some() => Wake::Reset,
            _ = sleep_until(stall_until.unwrap_or(started)), if stall_until.is_some() => {
                Wake::StallOver
            }
            _ = sleep_until(delayed.front().map_or(started, |(due, _)| *due)),
                if !delayed.is_empty() => Wake::DelayedReady,
            _ = sleep_until(next_ping.unwrap_or(started)), if next_ping.is_some() => Wake::Ping,
            _ = sleep_until(next_tick.unwrap_or(started)), if next_tick.is_some() => Wake::Tick,
            message = poll_fn(|context| room.map_or(std::task::Poll::Pending, |member| {
                member.queue.poll_take(context)
            })), if room.is_some() && room_for_delayed => Wake::FromRoom(message.into_message()),
            received = session.socket.next(), if reading => Wake::Received(received),
            _ = keepalive.as_mut() => Wake::Keepalive,
        };
        match wake {
            Wake::Shutdown => return Err(End::Shutdown),
            Wake::FellBehind => return Err(End::fell_behind(session.config.max_queue)),
            Wake::Close => return Err(requested_close(scenario)),
            Wake::Reset => return Err(End::Reset),
            Wake::StallOver => stall_until = None,
            Wake::Ping => {
                pings_sent += 1;
                pings_out.push_back((pings_sent, Instant::now()));
                if pings_out.len() > MOST_DELAYED {
                    pings_out.pop_front();
                }
                let payload = Bytes::from(pings_sent.to_string());
                session.deliver(Message::Ping(payload)).await?;
                session.flush().await?;
                next_ping = scenario.ping_every.map(|period| Instant::now() + period);
            }
            Wake::Tick => {
                ticks += 1;
                let text = match &scenario.repeat {
                    Some((_, Some(text))) => text.clone(),
                    _ => format!(
                        "{{\"wsecho\":\"tick\",\"n\":{ticks},\"elapsed_ms\":{}}}",
                        started.elapsed().as_millis()
                    ),
                };
                session.deliver(Message::text(text)).await?;
                session.flush().await?;
                next_tick = scenario
                    .repeat
                    .as_ref()
                    .map(|(period, _)| Instant::now() + *period);
            }
            Wake::DelayedReady => {
                while let Some((due, _)) = delayed.front()
                    && *due <= Instant::now()
                {
                    if let Some((_, reply)) = delayed.pop_front() {
                        send_reply(session, reply, scenario.fragment).await?;
                        replies_sent += 1;
                    }
                }
                session.flush().await?;
            }
            Wake::FromRoom(message) => {
                reply_later(session, &mut delayed, scenario, message, &mut replies_sent).await?;
            }
            Wake::Received(received) => {
                if let Some(Ok(Message::Pong(payload))) = &received
                    && scenario.ping_report
                {
                    report_pong(session, payload, &mut pings_out).await?;
                }
                let Some(message) = session.classify(received)? else {
                    continue;
                };
                match &replies {
                    Replies::Echo(mode) => {
                        if let Some(reply) = reply_to(message, *mode) {
                            reply_later(session, &mut delayed, scenario, reply, &mut replies_sent)
                                .await?;
                        }
                    }
                    Replies::Room(rooms, member) => {
                        if rooms.send(member, message).is_err() {
                            return Err(End::redis_backlog());
                        }
                    }
                }
            }
            Wake::Keepalive => {
                if stall_until.is_some() {
                    // Not reading by request: the client's answers wait unread, and it is
                    // not to be timed out for the server's own pause.
                    session.keepalive.heard();
                }
                session.on_timer(keepalive.as_mut())?;
                session.flush().await?;
            }
        }
    }
}

/// Sends `reply` now, or queues it until its delay is over.
async fn reply_later(
    session: &mut Session<'_>,
    delayed: &mut VecDeque<(Instant, Message)>,
    scenario: &Scenario,
    reply: Message,
    replies_sent: &mut u64,
) -> Result<(), End> {
    match scenario.delay {
        Some(delay) => delayed.push_back((Instant::now() + delay, reply)),
        None => {
            send_reply(session, reply, scenario.fragment).await?;
            session.flush().await?;
            *replies_sent += 1;
        }
    }
    Ok(())
}

/// `?ping_report=1`: the round trip of the ping this pong answers, as a text frame.
async fn report_pong(
    session: &mut Session<'_>,
    payload: &Bytes,
    pings_out: &mut VecDeque<(u64, Instant)>,
) -> Result<(), End> {
    let Some(number) = std::str::from_utf8(payload)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
    else {
        return Ok(());
    };
    let Some(position) = pings_out.iter().position(|(sent, _)| *sent == number) else {
        return Ok(());
    };
    let Some((_, sent_at)) = pings_out.remove(position) else {
        return Ok(());
    };
    let rtt = sent_at.elapsed().as_secs_f64() * 1000.0;
    let report = format!("{{\"wsecho\":\"pong\",\"n\":{number},\"rtt_ms\":{rtt:.3}}}");
    session.deliver(Message::text(report)).await?;
    session.flush().await
}

/// The close the client asked for, code and reason as given.
fn requested_close(scenario: &Scenario) -> End {
    let (code, reason) = scenario
        .close
        .as_ref()
        .map_or((1000, ""), |(code, reason, _)| (*code, reason.as_str()));
    End::Requested(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason),
    })
}
