//! How a session ends: the reasons, the close frame each one sends, and the closing itself.
//!
//! One enum decides both what the client is told and what the log says, so every way a
//! session can end is listed in one place.

use std::net::SocketAddr;

use log::{debug, info, warn};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Utf8Bytes, error::ProtocolError};

use crate::observe::escape::Escaped;
use crate::observe::metrics::Metrics;

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
    /// The client took nothing the server sent it for the write deadline. It is still told
    /// so, behind what it has not read: should it read again within the close timeout, it
    /// learns why it was dropped.
    NotReading,
    /// The memory budget stayed full and this client held the most of it: it is closed with
    /// 1013 so that the others can go on.
    ShortOfMemory,
    /// The server ended the session for a reason of the mode's (a broadcast client that fell
    /// too far behind), with the close frame to send.
    Kicked(CloseFrame),
    /// The client asked for this close in its URL (`?close=CODE`).
    Requested(CloseFrame),
    /// The client asked for the connection to be reset with no close frame (`?drop_after`).
    Reset,
}

/// The longest close reason that fits in a close frame: a control frame's payload is at most
/// 125 bytes, two of which are the code.
const MAX_REASON_BYTES: usize = 123;

impl End {
    /// A broadcast member whose queue overflowed `max_queue` messages.
    pub(crate) fn fell_behind(max_queue: usize) -> End {
        End::Kicked(close_frame(
            CloseCode::Again,
            &format!("too slow: more than {max_queue} messages waiting"),
        ))
    }

    /// A broadcast sender whose message found the queue for Redis full: Redis has been out
    /// of reach for a while.
    pub(crate) fn redis_backlog() -> End {
        End::Kicked(close_frame(
            CloseCode::Again,
            "server cannot reach Redis: too many messages waiting",
        ))
    }

    /// The close frame to send, if the client may still be listening.
    pub(super) fn close_frame(&self) -> Option<CloseFrame> {
        match self {
            End::ClientClosed(_) | End::Vanished(_) | End::Reset => None,
            End::NotReading => Some(close_frame(
                CloseCode::Policy,
                "not reading: nothing taken for the ping timeout",
            )),
            End::Violation(frame) | End::Kicked(frame) | End::Requested(frame) => {
                Some(frame.clone())
            }
            End::Shutdown => Some(close_frame(CloseCode::Away, "server shutting down")),
            End::PingTimeout => Some(close_frame(CloseCode::Policy, "ping timeout")),
            End::ShortOfMemory => Some(close_frame(
                CloseCode::Again,
                "server is short of memory: try again later",
            )),
        }
    }

    /// Maps an error from the socket to how the session ends: tungstenite reports a client's
    /// protocol violation as an error and would just drop the connection; RFC 6455 wants the
    /// matching close code sent first.
    pub(crate) fn from_error(error: tungstenite::Error) -> End {
        use tungstenite::Error;
        match error {
            Error::ConnectionClosed | Error::AlreadyClosed => End::ClientClosed(None),
            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                End::Vanished("connection reset without a close frame".into())
            }
            Error::Io(error) if error.kind() == std::io::ErrorKind::OutOfMemory => {
                End::ShortOfMemory
            }
            Error::Io(error) => End::Vanished(error.to_string()),
            // Only control frames go through tungstenite's buffer (see `outbox`); full, it
            // means the client has not read what it was sent.
            Error::WriteBufferFull(_) => End::NotReading,
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

    /// Counts the end in the metrics: the close frames it receives and sends, and the
    /// server's reasons for ending.
    pub(super) fn count(&self, metrics: &Metrics) {
        match self {
            // tungstenite answers a close frame with the same code.
            End::ClientClosed(Some(frame)) => {
                metrics.close_received(frame.code.into());
                metrics.close_sent(frame.code.into());
            }
            End::PingTimeout => {
                metrics.ping_timeouts.increment(1);
            }
            End::NotReading => {
                metrics.not_reading.increment(1);
            }
            End::Kicked(_) => {
                metrics.evictions.increment(1);
            }
            End::ShortOfMemory => {
                metrics.memory_evictions.increment(1);
            }
            _ => {}
        }
        if let Some(frame) = self.close_frame() {
            metrics.close_sent(frame.code.into());
        }
    }

    /// Logs the end once, with the peer address: at `info`, since a client's comings and
    /// goings are what the default log shows; a shutdown's many closes only at `debug`.
    pub(super) fn log(&self, peer: SocketAddr) {
        match self {
            End::ClientClosed(Some(frame)) => {
                info!(peer:% = peer, code = u16::from(frame.code); "peer {peer} disconnected ({})", Described(frame))
            }
            End::ClientClosed(None) => info!(peer:% = peer;"peer {peer} disconnected"),
            End::Vanished(why) => {
                info!(peer:% = peer;"peer {peer} disconnected without a close frame: {why}")
            }
            End::Violation(frame) => {
                info!(peer:% = peer, code = u16::from(frame.code); "peer {peer} closed with {}: {}", frame.code, Escaped(&frame.reason))
            }
            End::Shutdown => debug!(peer:% = peer;"peer {peer}: closing for shutdown"),
            End::PingTimeout => {
                info!(peer:% = peer, code = 1008; "peer {peer} timed out: no answer to ping")
            }
            End::NotReading => info!(
                peer:% = peer, code = 1008;
                "peer {peer} dropped: not reading what it is sent (its socket took nothing for \
                 the ping timeout)"
            ),
            End::ShortOfMemory => warn!(
                peer:% = peer, code = 1013;
                "peer {peer} closed with 1013: it held the most of a full memory budget \
                 (--max-memory) for the ping timeout"
            ),
            End::Requested(frame) => info!(
                peer:% = peer, code = u16::from(frame.code);
                "peer {peer}: closing as it asked ({})", Described(frame)
            ),
            End::Reset => info!(peer:% = peer; "peer {peer}: resetting as it asked (?drop_after)"),
            End::Kicked(frame) => info!(
                peer:% = peer, code = u16::from(frame.code);
                "peer {peer} disconnected by the server ({})",
                Described(frame)
            ),
        }
    }
}

/// A close frame as the log shows it: the code, and the reason after a space when there is
/// one (`1000 bye`, or just `1000`).
struct Described<'a>(&'a CloseFrame);

impl std::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let CloseFrame { code, reason } = self.0;
        if reason.is_empty() {
            write!(f, "{code}")
        } else {
            write!(f, "{code} {}", Escaped(reason))
        }
    }
}

/// Builds a close frame, cutting the reason to [`MAX_REASON_BYTES`] at a character boundary.
fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_reason_is_kept_whole() {
        assert_eq!(close_frame(CloseCode::Normal, "bye").reason.as_str(), "bye");
        assert_eq!(close_frame(CloseCode::Normal, "").reason.as_str(), "");
    }

    #[test]
    fn a_reason_of_exactly_123_bytes_is_kept_and_one_more_is_cut() {
        let exact = "a".repeat(MAX_REASON_BYTES);
        assert_eq!(
            close_frame(CloseCode::Normal, &exact).reason.as_str(),
            exact
        );
        let over = "b".repeat(MAX_REASON_BYTES + 1);
        assert_eq!(
            close_frame(CloseCode::Normal, &over).reason.len(),
            MAX_REASON_BYTES
        );
    }

    #[test]
    fn a_multibyte_character_across_the_limit_is_dropped_whole() {
        // 122 ASCII bytes, then a 3-byte character that would end at byte 125.
        let reason = format!("{}€tail", "x".repeat(MAX_REASON_BYTES - 1));
        let cut = close_frame(CloseCode::Normal, &reason);
        assert_eq!(cut.reason.as_str(), "x".repeat(MAX_REASON_BYTES - 1));
        // Ending exactly on the limit keeps the character.
        let reason = format!("{}€", "x".repeat(MAX_REASON_BYTES - 3));
        assert_eq!(
            close_frame(CloseCode::Normal, &reason).reason.as_str(),
            reason
        );
    }

    #[test]
    fn errors_map_to_the_close_codes_rfc_6455_names() {
        use tungstenite::Error;
        use tungstenite::error::CapacityError;
        let code = |end: End| end.close_frame().map(|frame| frame.code);
        assert_eq!(
            code(End::from_error(Error::Protocol(
                ProtocolError::NonZeroReservedBits
            ))),
            Some(CloseCode::Protocol)
        );
        assert_eq!(
            code(End::from_error(Error::Capacity(
                CapacityError::MessageTooLong {
                    size: 2,
                    max_size: 1
                }
            ))),
            Some(CloseCode::Size)
        );
        assert_eq!(code(End::from_error(Error::ConnectionClosed)), None);
        assert_eq!(
            code(End::from_error(Error::Io(
                std::io::ErrorKind::BrokenPipe.into()
            ))),
            None
        );
        assert_eq!(code(End::fell_behind(8)), Some(CloseCode::Again));
        assert_eq!(code(End::Shutdown), Some(CloseCode::Away));
        assert_eq!(code(End::PingTimeout), Some(CloseCode::Policy));
        assert_eq!(
            code(End::from_error(Error::Io(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "closed to free memory"
            )))),
            Some(CloseCode::Again)
        );
        assert_eq!(code(End::NotReading), Some(CloseCode::Policy));
    }

    #[test]
    fn a_close_frame_without_a_reason_is_logged_without_a_trailing_space() {
        let empty = close_frame(CloseCode::Normal, "");
        assert_eq!(Described(&empty).to_string(), "1000");
        let bye = close_frame(CloseCode::Normal, "bye");
        assert_eq!(Described(&bye).to_string(), "1000 bye");
    }
}
