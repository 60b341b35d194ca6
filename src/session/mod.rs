//! A WebSocket session: what every mode does with a connection once it is upgraded.
//!
//! [`Session`] holds the machinery the modes share: writing with a deadline, taking in what
//! the client sends in batches, and the keepalive clock. Each mode's loop is a file of its
//! own beside this one, built from those pieces:
//!
//! - `batch`: taking in what has arrived in batches, the replies written out together.
//! - `echo`: echo and raw modes, each message answered on the same connection.
//! - `broadcast`: every message to everyone in the client's room.
//! - `keepalive`: when to ping a silent client and when to give up on it.
//! - `parking`: echo and raw sessions parked in a small state between bursts.
//! - `end`: why a session ended, and the close frame and log line that go with it.
//! - `traffic`: the session's message counts, added to the metrics now and then.
//! - `write_deadline`: how long a write may wait for a client that does not read.

mod batch;
pub(crate) mod broadcast;
pub(crate) mod echo;
pub(crate) mod end;
pub(crate) mod finish;
mod keepalive;
pub(crate) mod parking;
pub(crate) mod scenario;
mod traffic;
mod write_deadline;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;

use log::debug;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use crate::config::Config;
use crate::observe::metrics::Metrics;
use crate::wire::Socket;
use batch::{AfterBatch, BATCH};
use end::End;
use keepalive::{Keepalive, Tick};
use traffic::Traffic;
use write_deadline::with_write_deadline;

/// One result of reading the socket, as [`Socket::poll_next`] gives it.
type Received = Option<Result<Message, tungstenite::Error>>;

/// A WebSocket session's shared machinery; the mode loops are built from it.
pub(crate) struct Session<'a> {
    socket: &'a mut Socket,
    peer: SocketAddr,
    config: &'a Config,
    keepalive: Keepalive,
    metrics: &'a Metrics,
    /// Messages and bytes not yet added to `metrics`.
    traffic: Traffic,
}

impl<'a> Session<'a> {
    /// A session over an upgraded socket; the keepalive clock starts now.
    pub(crate) fn new(
        socket: &'a mut Socket,
        peer: SocketAddr,
        config: &'a Config,
        metrics: &'a Metrics,
    ) -> Self {
        let keepalive = Keepalive::new(config.ping_interval, config.ping_timeout);
        Self::resumed(socket, peer, config, metrics, keepalive)
    }

    /// A session over a socket that was parked (see `parking`): the keepalive clock goes on
    /// from where it was.
    fn resumed(
        socket: &'a mut Socket,
        peer: SocketAddr,
        config: &'a Config,
        metrics: &'a Metrics,
        keepalive: Keepalive,
    ) -> Self {
        Session {
            socket,
            peer,
            config,
            keepalive,
            metrics,
            traffic: Traffic::default(),
        }
    }

    /// Adds what this session has counted to the shared metrics; called by the session's
    /// owner when it ends.
    pub(crate) fn flush_metrics(&mut self) {
        self.traffic.flush(self.metrics);
    }

    /// Counts a data message sent.
    fn count_sent(&mut self, message: &Message) {
        if self.traffic.sent(message) {
            self.traffic.flush(self.metrics);
        }
    }

    /// Queues a message for the client, waiting for room in the socket at most the ping
    /// timeout: a client that does not read for that long is dropped rather than left to
    /// hold the server's memory.
    async fn deliver(&mut self, message: Message) -> Result<(), End> {
        self.count_sent(&message);
        with_write_deadline(self.config.ping_timeout, self.socket.feed(message)).await
    }

    /// Queues a message for the client at once; only for when nothing is backed up (see
    /// [`Socket::feed_now`]).
    fn send_now(&mut self, message: Message) -> Result<(), End> {
        self.count_sent(&message);
        self.socket.feed_now(message).map_err(End::from_error)
    }

    /// Writes out everything queued, with the same deadline as [`Session::deliver`].
    async fn flush(&mut self) -> Result<(), End> {
        with_write_deadline(self.config.ping_timeout, self.socket.flush()).await
    }

    /// Sends `description` as the first frame (`?inspect`: the handshake described).
    pub(crate) async fn describe_handshake(&mut self, description: String) -> Result<(), End> {
        self.deliver(Message::text(description)).await?;
        self.flush().await
    }

    /// Sends the welcome, if this server has one.
    async fn welcome(&mut self, welcome: Option<&Utf8Bytes>) -> Result<(), End> {
        if let Some(welcome) = welcome {
            self.deliver(Message::Text(welcome.clone())).await?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Sorts one result of reading the socket: the message if it is data for the mode to
    /// handle, `None` for control frames (tungstenite answers pings itself), and the end of
    /// the session for a close frame or an error. Anything at all counts as a sign of life.
    ///
    /// This and the common path of [`Session::receive_batch`] do not await: a session's
    /// future is one state machine, and every await on the per-message path is state
    /// written into it for every message.
    fn classify(&mut self, received: Received) -> Result<Option<Message>, End> {
        let message = match received {
            Some(Ok(message)) => message,
            Some(Err(error)) => return Err(End::from_error(error)),
            None => return Err(End::ClientClosed(None)),
        };
        self.keepalive.heard();
        log_message(self.peer, &message);
        if self.traffic.received(&message) {
            self.traffic.flush(self.metrics);
        }
        match message {
            Message::Text(_) | Message::Binary(_) => Ok(Some(message)),
            // tungstenite has queued the reply; `finish` sends it.
            Message::Close(frame) => Err(End::ClientClosed(frame)),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
        }
    }

    /// Handles the keepalive timer firing, then re-arms it. A ping is queued, not waited
    /// for: each loop decides whether it may wait for the socket (see
    /// [`Session::flush_now`]).
    fn on_timer(&mut self, timer: Pin<&mut Sleep>) -> Result<(), End> {
        // A quiet moment: let the metrics catch up with a connection that sends little.
        self.traffic.flush(self.metrics);
        // Held back by the server, or in the middle of a message: not silent, though it
        // cannot answer a ping yet.
        if self.socket.take_progress() || self.socket.is_paused_for_memory() {
            self.keepalive.heard();
        }
        match self.keepalive.on_timer() {
            Tick::Ping => self
                .socket
                .feed_now(Message::Ping(Default::default()))
                .map_err(End::from_error)?,
            Tick::Expired => return Err(End::PingTimeout),
            Tick::Wait => {}
        }
        timer.reset(self.keepalive.deadline());
        Ok(())
    }

    /// One attempt to write out everything queued, without waiting. What the socket could
    /// not take stays queued, and the socket counts as backed up until a later attempt
    /// finishes.
    async fn flush_now(&mut self) -> Result<(), End> {
        match poll_fn(|context| Poll::Ready(self.socket.poll_flush(context))).await {
            Poll::Ready(flushed) => flushed.map_err(End::from_error),
            Poll::Pending => Ok(()),
        }
    }
}

/// Logs a received message at debug level: its kind and size, not its content.
fn log_message(peer: SocketAddr, message: &Message) {
    let kind = match message {
        Message::Text(_) => "text",
        Message::Binary(_) => "binary",
        Message::Ping(_) => "ping",
        Message::Pong(_) => "pong",
        Message::Close(_) => "close",
        Message::Frame(_) => "frame",
    };
    debug!(peer:% = peer;"peer {peer} sent {kind} ({} bytes)", message.len());
}
