//! Queuing messages for the client: text and binary frames go to the outbox (see `outbox`),
//! control frames and anything on a closing connection to tungstenite.

use std::task::Poll;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message};

use super::settings::WRITE_AHEAD;
use super::{Socket, is_would_block};

impl Socket {
    // The write operations are `poll_fn`s rather than `async fn`s: a session's future holds
    // the largest state of everything it awaits, and an `async fn` awaiting another stores
    // both.

    /// Queues a message, writing out tungstenite's buffer when it is full. Waits only when
    /// an earlier write is still backed up.
    pub(crate) fn feed(&mut self, message: Message) -> impl Future<Output = Result<(), Error>> {
        let mut message = Some(message);
        std::future::poll_fn(move |context| {
            if self.backed_up {
                std::task::ready!(self.poll_flush(context))?;
            }
            let Some(message) = message.take() else {
                return Poll::Ready(Ok(()));
            };
            self.set_waker(context);
            Poll::Ready(self.feed_now(message))
        })
    }

    /// [`Socket::feed`] without the wait, for when nothing is backed up: the socket then
    /// takes the message at once (what it cannot write yet stays queued). Any wake-up goes to
    /// the task's waker from its latest poll of this socket.
    ///
    /// Text and binary messages go to the outbox (see `outbox`), which is written out once it
    /// holds [`WRITE_AHEAD`] bytes; control frames go through tungstenite.
    pub(crate) fn feed_now(&mut self, message: Message) -> Result<(), Error> {
        self.flushed = false;
        let (opcode, is_final, payload) = match message {
            Message::Text(text) if self.websocket.can_write() => {
                (OpCode::Data(Data::Text), true, Bytes::from(text))
            }
            Message::Binary(bytes) if self.websocket.can_write() => {
                (OpCode::Data(Data::Binary), true, bytes)
            }
            // One frame of a fragmented message (test scenarios): data, so the outbox's.
            Message::Frame(frame)
                if self.websocket.can_write()
                    && matches!(frame.header().opcode, OpCode::Data(_)) =>
            {
                let (opcode, is_final) = (frame.header().opcode, frame.header().is_final);
                (opcode, is_final, frame.into_payload())
            }
            // A control frame, or a connection that is closing (tungstenite words the error).
            other => {
                return match self.websocket.write(other) {
                    // Queued; the socket just could not take all of it yet.
                    Err(error) if is_would_block(&error) => {
                        self.backed_up = true;
                        Ok(())
                    }
                    other => other,
                };
            }
        };
        self.websocket
            .get_mut()
            .outbox
            .push_frame(opcode, is_final, payload);
        self.write_ahead()
    }

    /// [`Socket::feed_now`] for a text or binary message that arrives as its `frame`, already
    /// formatted as a server's (final, unmasked); `message` makes the same message, for
    /// tungstenite to word the error if the connection is closing.
    pub(crate) fn feed_formatted(
        &mut self,
        frame: &[u8],
        message: impl FnOnce() -> Message,
    ) -> Result<(), Error> {
        if !self.websocket.can_write() {
            return self.feed_now(message());
        }
        self.flushed = false;
        self.websocket.get_mut().outbox.push_formatted(frame);
        self.write_ahead()
    }

    /// Writes out what the outbox holds once it is [`WRITE_AHEAD`] bytes.
    fn write_ahead(&mut self) -> Result<(), Error> {
        if self.websocket.get_ref().outbox.queued() >= WRITE_AHEAD
            && let Poll::Ready(Err(error)) = self.try_flush()
        {
            return Err(error);
        }
        Ok(())
    }
}
