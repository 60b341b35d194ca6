//! One client, from the accepted TCP socket to the last close frame.
//!
//! The life of a connection: read the HTTP request head (bounded by the handshake timeout),
//! answer plain HTTP or upgrade, send the welcome, then loop over three events: a message
//! from the client, the keepalive timer, and the server's shutdown signal. However it ends,
//! the client is told why with a close frame when it is still there to hear it, and the end
//! is logged once with the peer address.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use log::{debug, info};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes, error::ProtocolError};

use crate::config::{Config, Mode};
use crate::http::{self, Route};
use crate::server::Shared;
use crate::shutdown::Shutdown;
use crate::socket::Socket;

/// How many messages that have already arrived are answered before the replies are flushed
/// together. Batching saves a system call per message when a client pipelines; the cap keeps
/// one busy client from delaying its own replies for long.
const BATCH: usize = 64;

/// Why a session ended: decides the close frame sent, if any, and the log line.
#[derive(Debug)]
pub(crate) enum End {
    /// The client sent a close frame (tungstenite has already answered it).
    ClientClosed(Option<CloseFrame>),
    /// The TCP connection went away without a close handshake.
    Vanished(String),
    /// The client broke the protocol; it is told so with this close frame.
    Violation(CloseFrame),
    /// The server is shutting down.
    Shutdown,
    /// The client answered neither data nor a ping within the ping timeout.
    PingTimeout,
    /// The client stopped reading what the server sends it.
    NotReading,
    /// The server ended the session for a reason of the mode's (a broadcast client that fell
    /// too far behind), with the close frame to send.
    Kicked(CloseFrame),
}

impl End {
    /// The close frame to send, if the client may still be listening.
    fn close_frame(&self) -> Option<CloseFrame> {
        match self {
            End::ClientClosed(_) | End::Vanished(_) | End::NotReading => None,
            End::Violation(frame) | End::Kicked(frame) => Some(frame.clone()),
            End::Shutdown => Some(close_frame(CloseCode::Away, "server shutting down")),
            End::PingTimeout => Some(close_frame(CloseCode::Policy, "ping timeout")),
        }
    }

    /// Maps an error from the socket to how the session ends: tungstenite reports a client's
    /// protocol violation as an error and would just drop the connection; RFC 6455 wants the
    /// matching close code sent first.
    fn from_error(error: tungstenite::Error) -> End {
        use tungstenite::Error;
        match error {
            Error::ConnectionClosed | Error::AlreadyClosed => End::ClientClosed(None),
            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                End::Vanished("connection reset without a close frame".into())
            }
            Error::Io(error) => End::Vanished(error.to_string()),
            Error::Utf8(_) => End::Violation(close_frame(CloseCode::Invalid, "invalid UTF-8")),
            Error::Capacity(error) => {
                End::Violation(close_frame(CloseCode::Size, &error.to_string()))
            }
            Error::Protocol(error) => {
                End::Violation(close_frame(CloseCode::Protocol, &error.to_string()))
            }
            other => End::Violation(close_frame(CloseCode::Error, &other.to_string())),
        }
    }
}

/// Builds a close frame; the reason is cut to the 123 bytes a close frame can hold.
fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    }
}

/// Serves one accepted TCP connection until it ends or the server shuts down.
///
/// Each phase's future is boxed: a task's future is as large as the largest state it can be
/// in, for as long as the task lives, so the handshake's buffers and the other modes' loops
/// would otherwise sit in every idle connection.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    mut shutdown: Shutdown,
) {
    let Some((mut socket, path)) = Box::pin(accept(stream, peer, shared, &mut shutdown)).await
    else {
        return;
    };
    info!("peer {peer} connected to {path}");
    let mut session = Session::new(&mut socket, peer, &shared.config);
    let Err(end) = match shared.config.mode {
        Mode::Echo | Mode::Raw => Box::pin(echo(&mut session, shared, &mut shutdown)).await,
        Mode::Broadcast => Box::pin(broadcast(&mut session, shared, &path, &mut shutdown)).await,
    };
    Box::pin(finish(&mut socket, peer, end, shared.config.close_timeout)).await;
}

/// The handshake phase: within the handshake timeout, either answer plain HTTP (`None`) or
/// upgrade, returning the WebSocket and the request path.
async fn accept(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &mut Shutdown,
) -> Option<(Socket, String)> {
    let limit = shared.config.handshake_timeout;
    let request = tokio::select! {
        outcome = timeout(limit, upgrade(&mut stream, peer, shared)) => match outcome {
            Ok(Some(request)) => request,
            Ok(None) => return None,
            Err(_) => {
                debug!("peer {peer}: no complete request within {limit:?}; answering 408");
                let _ = timeout(limit, http::answer(&mut stream, &http::Response::timed_out())).await;
                return None;
            }
        },
        _ = shutdown.recv() => return None,
    };
    let path = request.head.uri().path().to_owned();
    let socket = Socket::new(stream, request.tail, shared.websocket_config);
    Some((socket, path))
}

/// Reads the request and either answers it as plain HTTP (returning `None`) or sends the 101
/// that accepts the upgrade, returning the request.
async fn upgrade(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<http::Request> {
    let request = match http::read_request(stream).await {
        Ok(request) => request,
        Err(error) => {
            debug!("peer {peer}: {error}");
            if let Some(response) = http::Response::for_error(&error) {
                let _ = http::answer(stream, &response).await;
            }
            return None;
        }
    };
    match http::route(&request.head, shared) {
        Route::Answer(response) => {
            info!(
                "peer {peer}: {} {} -> {}",
                request.head.method(),
                request.head.uri(),
                response.status
            );
            if let Err(error) = http::answer(stream, &response).await {
                debug!("peer {peer}: could not send the HTTP answer: {error}");
            }
            None
        }
        Route::Upgrade(response) => match http::send_upgrade(stream, &response).await {
            Ok(()) => Some(request),
            Err(error) => {
                debug!("peer {peer}: gone during the handshake: {error}");
                None
            }
        },
    }
}

/// A WebSocket session's shared machinery: delivering with a deadline, taking in what the
/// client sends, and the keepalive clock. The mode loops below are built from these.
struct Session<'a> {
    socket: &'a mut Socket,
    peer: SocketAddr,
    config: &'a Config,
    keepalive: Keepalive,
}

/// A session loop only ever returns by ending; `?` carries the reason out.
type Ended = Result<Infallible, End>;

impl<'a> Session<'a> {
    fn new(socket: &'a mut Socket, peer: SocketAddr, config: &'a Config) -> Self {
        Session {
            socket,
            peer,
            config,
            keepalive: Keepalive::new(config.ping_interval, config.ping_timeout),
        }
    }

    /// Queues a message for the client, waiting for room in the socket at most the ping
    /// timeout: a client that does not read for that long is dropped rather than left to
    /// hold the server's memory.
    async fn deliver(&mut self, message: Message) -> Result<(), End> {
        within(self.config.ping_timeout, self.socket.feed(message)).await
    }

    /// Writes out everything queued, with the same deadline as [`Session::deliver`].
    async fn flush(&mut self) -> Result<(), End> {
        within(self.config.ping_timeout, self.socket.flush()).await
    }

    /// Sends the welcome, if this server has one.
    async fn welcome(&mut self, welcome: &Option<Utf8Bytes>) -> Result<(), End> {
        if let Some(welcome) = welcome {
            self.deliver(Message::Text(welcome.clone())).await?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Takes one result of reading the socket. Returns the message if it is data for the mode
    /// to handle, `None` for control frames (tungstenite answers pings itself), and the end
    /// of the session for a close frame or an error.
    ///
    /// This and the common path of [`Session::receive_batch`] do not await: a session's
    /// future is one state machine, and every await on the per-message path is state
    /// written into it for every message.
    fn receive(
        &mut self,
        next: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<Option<Message>, End> {
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(End::from_error(error)),
            None => return Err(End::ClientClosed(None)),
        };
        self.keepalive.heard();
        log_message(self.peer, &message);
        match message {
            Message::Text(_) | Message::Binary(_) => Ok(Some(message)),
            // tungstenite has queued the reply; `finish` sends it.
            Message::Close(frame) => Err(End::ClientClosed(frame)),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
        }
    }

    /// Handles the keepalive timer firing, then re-arms it.
    async fn on_timer(&mut self, timer: Pin<&mut Sleep>) -> Result<(), End> {
        match self.keepalive.on_timer() {
            Tick::Ping => {
                self.deliver(Message::Ping(Default::default())).await?;
                self.flush().await?;
            }
            Tick::Expired => return Err(End::PingTimeout),
            Tick::Wait => {}
        }
        timer.reset(self.keepalive.deadline());
        Ok(())
    }

    /// Reads the messages that have already arrived after `first`, up to [`BATCH`], handing
    /// each data message to `handle`; then flushes whatever that queued, once.
    ///
    /// Returns whether the socket is left armed: it was found empty with this task's waker
    /// registered, and nothing has waited since, so the next wait need not read it again
    /// before a wake-up (a read attempt costs as much as a fifth of an echoed message).
    async fn receive_batch(
        &mut self,
        first: Option<Result<Message, tungstenite::Error>>,
        mut handle: impl FnMut(Message) -> Option<Message>,
    ) -> Result<bool, End> {
        let mut next = first;
        let mut received = 0;
        let drained = loop {
            if let Some(message) = self.receive(next)?
                && let Some(reply) = handle(message)
            {
                if self.socket.is_backed_up() {
                    self.deliver(reply).await?;
                } else {
                    self.socket.feed_now(reply).map_err(End::from_error)?;
                }
            }
            received += 1;
            if received == BATCH {
                break false;
            }
            match self.socket.next_if_ready().await {
                Some(message) => next = message,
                None => break true,
            }
        };
        match poll_fn(|context| Poll::Ready(self.socket.poll_flush(context))).await {
            Poll::Ready(flushed) => {
                flushed.map_err(End::from_error)?;
                Ok(drained)
            }
            Poll::Pending => {
                self.flush().await?;
                Ok(false)
            }
        }
    }
}

/// What an echo session's wait ended with.
enum Wake {
    Shutdown,
    Socket(Option<Result<Message, tungstenite::Error>>),
    Timer,
}

/// Echo and raw modes: answer each message on the same connection.
async fn echo(session: &mut Session<'_>, shared: &Shared, shutdown: &mut Shutdown) -> Ended {
    session.welcome(&shared.welcome).await?;
    let mode = session.config.mode;
    let mut timer = pin!(sleep_until(session.keepalive.deadline()));
    let mut socket_armed = false;
    // The timer holds this task's waker from its last pending poll until it fires or is
    // reset; meanwhile checking its state is enough, and much cheaper than polling it.
    let mut timer_armed = false;
    loop {
        // A hand-written `select!` (shutdown first, then the socket, then the timer) that
        // skips an armed socket on its first poll and an armed timer until it has fired.
        let wake = poll_fn(|context| {
            if shutdown.poll_recv(context).is_ready() {
                return Poll::Ready(Wake::Shutdown);
            }
            if !std::mem::take(&mut socket_armed)
                && let Poll::Ready(next) = session.socket.poll_next(context)
            {
                return Poll::Ready(Wake::Socket(next));
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
                socket_armed = session
                    .receive_batch(first, |message| reply_to(message, mode))
                    .await?;
            }
            Wake::Timer => {
                timer_armed = false;
                session.on_timer(timer.as_mut()).await?;
            }
        }
    }
}

/// Broadcast mode: every message goes to everyone in the client's room, and everything the
/// room sends is written to the client, until the client ends or falls too far behind.
async fn broadcast(
    session: &mut Session<'_>,
    shared: &Shared,
    room: &str,
    shutdown: &mut Shutdown,
) -> Ended {
    let mut member = shared
        .hub
        .join(room, session.peer, session.config.max_queue);
    let eviction = member.eviction();
    session.welcome(&shared.welcome).await?;
    let mut timer = pin!(sleep_until(session.keepalive.deadline()));
    let mut kicked_out = pin!(eviction.evicted());
    loop {
        // Not biased: a busy room must not starve reading the client (its pongs and close),
        // nor a chatty client starve delivering the room's messages to it.
        tokio::select! {
            _ = shutdown.recv() => return Err(End::Shutdown),
            _ = &mut kicked_out => return Err(evicted(session.config.max_queue)),
            first = session.socket.next() => {
                session.receive_batch(first, |message| {
                    member.broadcast(&message);
                    None
                }).await?;
            }
            outgoing = member.queue.recv() => {
                let Some(first) = outgoing else {
                    return Err(evicted(session.config.max_queue));
                };
                // Writing can wait on a slow client; eviction must still get through.
                tokio::select! {
                    biased;
                    _ = eviction.evicted() => return Err(evicted(session.config.max_queue)),
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
    queue: &mut tokio::sync::mpsc::Receiver<Message>,
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

fn evicted(max_queue: usize) -> End {
    End::Kicked(close_frame(
        CloseCode::Again,
        &format!("too slow: more than {max_queue} messages waiting"),
    ))
}

/// Logs a received message at debug level: its kind and size, not its content.
pub(crate) fn log_message(peer: SocketAddr, message: &Message) {
    let kind = match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "frame",
    };
    debug!("peer {peer} sent {kind} ({} bytes)", message.len());
}

/// The answer to one message in echo or raw mode; `None` for control frames, which
/// tungstenite answers itself.
fn reply_to(message: Message, mode: Mode) -> Option<Message> {
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

/// Runs a socket write, giving up after `limit`. The timer is only created (on the heap,
/// so it takes no room in an idle connection's task) once the write has had to wait:
/// almost every write completes at once, and a timer per message would cost more than the
/// write's own bookkeeping. The write is polled once per wake-up, never twice.
async fn within<F>(limit: Duration, write: F) -> Result<(), End>
where
    F: Future<Output = Result<(), tungstenite::Error>>,
{
    let mut write = pin!(write);
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|context| {
        if let Poll::Ready(outcome) = write.as_mut().poll(context) {
            return Poll::Ready(outcome.map_err(End::from_error));
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(End::NotReading)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Sends the close frame the ending calls for, waits (at most `close_timeout`) for the
/// client's answer, and logs the end once.
pub(crate) async fn finish(
    socket: &mut Socket,
    peer: SocketAddr,
    end: End,
    close_timeout: Duration,
) {
    match &end {
        End::ClientClosed(Some(frame)) => {
            info!("peer {peer} disconnected ({} {})", frame.code, frame.reason)
        }
        End::ClientClosed(None) => info!("peer {peer} disconnected"),
        End::Vanished(why) => info!("peer {peer} disconnected without a close frame: {why}"),
        End::Violation(frame) => info!("peer {peer} closed with {}: {}", frame.code, frame.reason),
        End::Shutdown => debug!("peer {peer}: closing for shutdown"),
        End::PingTimeout => info!("peer {peer} timed out: no answer to ping"),
        End::NotReading => info!("peer {peer} dropped: not reading what it is sent"),
        End::Kicked(frame) => info!(
            "peer {peer} disconnected by the server ({} {})",
            frame.code, frame.reason
        ),
    }
    let Some(frame) = end.close_frame() else {
        if let End::ClientClosed(_) = end {
            // The reply to the client's close frame, if tungstenite has queued one.
            let _ = timeout(close_timeout, socket.flush()).await;
        }
        return;
    };
    let _ = timeout(close_timeout, async {
        if socket.close(frame).await.is_err() {
            return;
        }
        // Read until the client's close frame (or anything that ends the stream).
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

/// The keepalive clock: pings a client that has been silent for `interval`, and gives up on
/// it when a further `timeout` passes with nothing heard.
///
/// Hearing from the client only records the time; the timer itself is re-armed only when it
/// fires, so a busy connection does not touch the timer wheel per message.
struct Keepalive {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
    /// When the outstanding ping was sent, if one is.
    pinged_at: Option<Instant>,
}

/// What the keepalive timer firing means.
enum Tick {
    /// The client has been silent for a whole interval: ping it.
    Ping,
    /// The client did not answer the ping in time.
    Expired,
    /// The client was heard from meanwhile: nothing to do yet.
    Wait,
}

impl Keepalive {
    fn new(interval: Duration, timeout: Duration) -> Self {
        Keepalive {
            interval,
            timeout,
            last_heard: Instant::now(),
            pinged_at: None,
        }
    }

    fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// When the timer should next fire; far in the future when pings are off.
    fn deadline(&self) -> Instant {
        if self.interval.is_zero() {
            return Instant::now() + Duration::from_secs(365 * 24 * 3600);
        }
        match self.pinged_at {
            Some(pinged_at) if self.last_heard < pinged_at => pinged_at + self.timeout,
            _ => self.last_heard + self.interval,
        }
    }

    fn on_timer(&mut self) -> Tick {
        let now = Instant::now();
        if let Some(pinged_at) = self.pinged_at {
            if self.last_heard < pinged_at {
                return if now >= pinged_at + self.timeout {
                    Tick::Expired
                } else {
                    Tick::Wait
                };
            }
            self.pinged_at = None;
        }
        if self.interval.is_zero() || now < self.last_heard + self.interval {
            return Tick::Wait;
        }
        self.pinged_at = Some(now);
        Tick::Ping
    }
}
