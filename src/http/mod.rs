//! The HTTP side of the WebSocket port: reading a request head, deciding what it gets, and
//! writing the answer.
//!
//! tungstenite's own `accept` can only answer "101" or an error (tokio-tungstenite issue 134),
//! so the head is read here first, with `httparse` (which tungstenite itself uses). Plain
//! requests get the page, the health check, the statistics or a proper error status. An
//! upgrade request is validated and answered with tungstenite's own handshake functions
//! (`create_response`, which checks the method, version, headers and key and derives the
//! accept key, and `write_response`); the handshake logic is tungstenite's, and this module
//! only decides who gets it.
//!
//! It depends on the configuration alone: what needs the server's live state (the
//! statistics) is named by the route and filled in by the caller.
//!
//! - `request`: reading and parsing the head, within size limits.
//! - `route`: what a head gets, from the path, the method and the upgrade headers.
//! - `response`: the plain answers and writing them out.

mod request;
mod response;
mod route;

pub(crate) use request::{HeadError, Request, read_request};
pub(crate) use response::{Response, answer, send_upgrade};
pub(crate) use route::{Route, route};

/// The browser client, served at `/`. Embedded so the binary works from any directory.
pub const CLIENT_HTML: &str = include_str!("../../client.html");
