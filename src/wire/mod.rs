//! Bytes to messages and back, on the task that owns the connection: the client's stream
//! (plain TCP or TLS), the read-ahead buffer, tungstenite's `WebSocket` driven with the
//! task's own waker, and the outbox that writes data frames from their payloads.
//!
//! - `stream`: plain or TLS, one type; `tls`: the certificate and the TLS acceptor.
//! - `read_ahead`: the socket wrapper that keeps idle connections small and bursts fast.
//! - `task_stream`: the stream as tungstenite's `Read`/`Write` sees it.
//! - `socket`: the WebSocket a session speaks over, and a quiet one parked.
//! - `outbox`: data frames on their way out, written from their own payloads.

mod outbox;
mod read_ahead;
mod socket;
mod stream;
mod task_stream;
pub(crate) mod tls;

pub(crate) use socket::{ParkedSocket, Socket, Upgraded, websocket_config};
pub(crate) use stream::ClientStream;
