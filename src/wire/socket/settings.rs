//! The buffer sizes of every connection, tungstenite's and the socket's own, and the
//! message limit.

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes tungstenite reads at a time, and allocates per connection up front, until the
/// connection carries large messages (see `read_size`). tungstenite's default (128 KiB)
/// costs that much memory on every idle client and zero-fills it on every read; bursts are
/// served by `ReadAhead`'s buffer instead, which exists only while data is pouring in, so
/// this can be small enough to keep an idle connection within a few KB.
/// `docs/performance.md` has the measurements behind the choice.
pub(super) const READ_BUFFER_SIZE: usize = 512;

/// Bytes of control frames tungstenite collects before writing them, and half of what it may
/// hold.
const CONTROL_WRITE_BUFFER: usize = 4 * 1024;

/// Replies are collected up to this many bytes before they are written to the socket; a batch
/// of replies is written out at its end in any case.
pub(super) const WRITE_AHEAD: usize = 64 * 1024;

/// How much ciphertext rustls may hold unsent, and so how much plaintext one write hands it.
/// rustls's default (64 KiB) split every write of one 64 KiB message plus its header in two:
/// the header's few bytes over went out as a TLS record and a system call of their own.
/// Twice [`WRITE_AHEAD`] takes a batch that crossed it by up to a 64 KiB frame in one
/// write (pipelined 64 KiB over `wss://`: 11% less server CPU per message, one `writev`
/// per message instead of two). The cost is a client that stops reading leaving up to this
/// much ciphertext rather than 64 KiB in rustls.
pub(super) const TLS_WRITE_LIMIT: usize = 2 * WRITE_AHEAD;

/// tungstenite's settings for every connection: small buffers, and `max_message_size` as
/// the limit on a message and on a frame.
pub(crate) fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        // tungstenite writes only control frames (data goes through `outbox`), and holds
        // few: an answer to a ping it cannot write yet waits there, and a client that
        // sends pings and never reads would pile them up (a broadcast member's socket is
        // read while its writes wait). Past the limit tungstenite keeps only the latest,
        // which is all RFC 6455 asks.
        .write_buffer_size(CONTROL_WRITE_BUFFER)
        .max_write_buffer_size(2 * CONTROL_WRITE_BUFFER)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}
