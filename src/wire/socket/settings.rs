//! tungstenite's settings for every connection: its buffer sizes and the message limit.

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes tungstenite reads at a time, and allocates per connection up front. tungstenite's
/// default (128 KiB) costs that much memory on every idle client and zero-fills it on every
/// read; bursts are served by `ReadAhead`'s buffer instead, which exists only while data is
/// pouring in, so this can be small enough to keep an idle connection within a few KB.
/// `docs/performance.md` has the measurements behind the choice.
const READ_BUFFER_SIZE: usize = 512;

/// Bytes of control frames tungstenite collects before writing them, and half of what it may
/// hold.
const CONTROL_WRITE_BUFFER: usize = 4 * 1024;

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
