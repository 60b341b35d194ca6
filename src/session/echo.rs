//! Echo and raw modes: each message is answered on the connection it came from.
//!
//! The loop waits on three things: the shutdown signal, the socket and the keepalive timer.
//! It is a hand-written `select!` rather than `tokio::select!` because it runs once per
//! message and can skip work the macro cannot know is unnecessary: a socket that was just
//! found empty (its waker is registered) and a timer that is armed and has not fired are not
//! polled again. `docs/performance.md` has what that saves. A connection that has gone
//! quiet ends its loop, so that `parking` can keep it in less memory until it speaks again.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::Session;
use super::batch::{AfterBatch, BatchEnd};
use super::end::End;
use crate::config::Mode;
use crate::sync::shutdown::Shutdown;

/// What a wait in the echo loop ended with.
enum Wake {
    Shutdown,
    Socket(Option<Result<Message, tungstenite::Error>>),
    Timer,
}

/// How long a connection must have been silent, with nothing of it held anywhere, before
/// its loop ends so that it can park (see `parking`). Checked when the timer fires, so a
/// connection parks between one and two of these after its last message; a client that
/// sends more often than this never pays for parking and waking.
pub(super) const PARK_AFTER: Duration = Duration::from_secs(1);

/// The echo loop ended because the connection went quiet: it may park.
pub(super) struct Quiet;

/// Sends the welcome (when given one), then answers every message until the session ends or
/// the connection has been quiet for [`PARK_AFTER`]. A new connection (`fresh`) that has
/// sent nothing once the welcome is out is quiet at once: a burst of clients connecting
/// then never holds more than one loop's state each at the same time, and the memory each
/// loop used goes to the next rather than staying with the process (freed memory
/// scattered between live connections is not given back to the system).
pub(super) async fn run(
    session: &mut Session<'_>,
    welcome: Option<&Utf8Bytes>,
    fresh: bool,
    shutdown: &mut Shutdown,
) -> Result<Quiet, End> {
    session.welcome(welcome).await?;
    let mode = session.config.mode;
    let mut quiet_for = if fresh { Duration::ZERO } else { PARK_AFTER };
    let mut park_check = session
        .socket
        .can_park()
        .then(|| Instant::now() + quiet_for);
    let mut timer = pin!(sleep_until(earliest(
        session.keepalive.deadline(),
        park_check
    )));
    let mut socket_armed = false;
    // The timer holds this task's waker from its last pending poll until it fires or is
    // reset; meanwhile checking its state is enough, and much cheaper than polling it.
    let mut timer_armed = false;
    loop {
        // Shutdown first, then the socket, then the timer.
        let wake = poll_fn(|context| {
            if shutdown.poll_recv(context).is_ready() {
                return Poll::Ready(Wake::Shutdown);
            }
            if !std::mem::take(&mut socket_armed)
                && let Poll::Ready(received) = session.socket.poll_next(context)
            {
                return Poll::Ready(Wake::Socket(received));
            }
            if !timer_armed || timer.is_elapsed() {
                if timer.as_mut().poll(context).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                timer_armed = true;
            }
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Shutdown => return Err(End::Shutdown),
            Wake::Socket(first) => {
                let batch_end = session
                    .receive_batch(
                        first,
                        |message| reply_to(message, mode),
                        AfterBatch::WaitForRoom,
                    )
                    .await?;
                socket_armed = batch_end == BatchEnd::Drained;
            }
            Wake::Timer => {
                timer_armed = false;
                session.on_timer(timer.as_mut())?;
                session.flush().await?;
                if let Some(check) = park_check
                    && Instant::now() >= check
                {
                    if session.keepalive.silent_for(quiet_for) && session.socket.is_quiet() {
                        return Ok(Quiet);
                    }
                    quiet_for = PARK_AFTER;
                    park_check = Some(Instant::now() + PARK_AFTER);
                }
                timer
                    .as_mut()
                    .reset(earliest(session.keepalive.deadline(), park_check));
            }
        }
    }
}

/// The earlier of the keepalive's deadline and the next parking check, if there is one.
fn earliest(keepalive: Instant, park_check: Option<Instant>) -> Instant {
    park_check.map_or(keepalive, |check| check.min(keepalive))
}

/// The answer to one message in echo or raw mode; `None` for control frames, which
/// tungstenite answers itself.
pub(super) fn reply_to(message: Message, mode: Mode) -> Option<Message> {
    match message {
        Message::Text(text) if mode == Mode::Echo => Some(Message::Text(prefixed_reply(&text))),
        Message::Text(_) | Message::Binary(_) => Some(message),
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => None,
    }
}

/// `Hello from server, you said: "<text>"`, built with one allocation of the right size.
fn prefixed_reply(text: &str) -> Utf8Bytes {
    const PREFIX: &str = "Hello from server, you said: \"";
    let mut reply = String::with_capacity(PREFIX.len() + text.len() + 1);
    reply.push_str(PREFIX);
    reply.push_str(text);
    reply.push('"');
    Utf8Bytes::from(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_mode_prefixes_text_and_returns_binary_unchanged() {
        let reply = reply_to(Message::text("hi \"there\" ✓"), Mode::Echo);
        assert_eq!(
            reply,
            Some(Message::text(
                "Hello from server, you said: \"hi \"there\" ✓\""
            ))
        );
        let binary = Message::binary(vec![0u8, 255, 7]);
        assert_eq!(reply_to(binary.clone(), Mode::Echo), Some(binary));
    }

    #[test]
    fn raw_mode_returns_text_unchanged() {
        let text = Message::text("verbatim");
        assert_eq!(reply_to(text.clone(), Mode::Raw), Some(text));
    }

    #[test]
    fn control_frames_get_no_reply_of_ours() {
        assert_eq!(reply_to(Message::Ping(Default::default()), Mode::Raw), None);
        assert_eq!(
            reply_to(Message::Pong(Default::default()), Mode::Echo),
            None
        );
    }

    #[test]
    fn an_empty_message_gets_the_prefix_and_two_quotes() {
        let reply = prefixed_reply("");
        assert_eq!(reply.as_str(), "Hello from server, you said: \"\"");
    }
}
