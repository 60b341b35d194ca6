//! The HTTP side of the WebSocket port: reading a request head, deciding what it gets, and
//! writing the answer.
//!
//! tungstenite's own `accept` can only answer "101" or an error (tokio-tungstenite issue 134),
//! so the head is read here first, with `httparse` (which tungstenite itself uses). Plain
//! requests get the page, the health check, the statistics or a proper error status. An
//! upgrade request is checked here (RFC 6455 §4.2.1, and what a strict server refuses) and
//! answered with a 101 around tungstenite's `derive_accept_key` (see `upgrade`).
//!
//! It depends on the configuration and the client's stream alone: what needs the server's
//! live state (the statistics, the health check) is named by the route and filled in by the
//! caller.
//!
//! - `request`: reading and parsing the head, within size limits.
//! - `route`: what a head gets, from the path and the method.
//! - `upgrade`: whether an upgrade request is well formed and allowed, and its 101.
//! - `origin`: which pages may open a WebSocket.
//! - `response`: the plain answers and writing them out.
//! - `subprotocol`: which offered subprotocol the server speaks.

mod framing;
mod origin;
mod request;
mod response;
mod route;
mod subprotocol;
mod upgrade;

pub(crate) use request::{HeadError, Request, header_lines, read_request};
pub(crate) use response::{Response, answer, send_upgrade};
pub(crate) use route::{Route, route};
pub(crate) use upgrade::Accepted;

/// The browser client, served at `/`. Embedded so the binary works from any directory.
pub const CLIENT_HTML: &str = include_str!("../../client.html");

/// A `GET /` with `headers`, for the unit tests.
#[cfg(test)]
fn test_request(headers: &[(&str, &str)]) -> tokio_tungstenite::tungstenite::http::Request<()> {
    let mut builder = tokio_tungstenite::tungstenite::http::Request::get("/");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

/// Property tests: whatever bytes arrive as a request head, parsing and routing never panic
/// and every answer is one of the statuses the README documents.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::request::parse_head;
    use super::{HeadError, Response, Route, route};
    use crate::config::{Config, Mode};

    const UPGRADE: &[u8] = b"GET /room HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nOrigin: http://a.example\r\n\r\n";

    /// The statuses a request head can get on its own (408 and 503 depend on timing and
    /// load, not on the bytes).
    const DOCUMENTED: [u16; 10] = [101, 200, 400, 403, 404, 405, 414, 426, 431, 0];

    /// Parses and routes `bytes` as every mode would; returns the statuses (0: more bytes
    /// needed, or no answer).
    fn statuses(bytes: &[u8]) -> Vec<u16> {
        let head = match parse_head(&bytes::Bytes::copy_from_slice(bytes)) {
            Ok(Some((head, _))) => head,
            Ok(None) => return vec![0],
            Err(error) => {
                let status = Response::for_error(&error).map_or(0, |r| r.status.as_u16());
                assert!(!matches!(error, HeadError::Closed | HeadError::Io(_)));
                return vec![status];
            }
        };
        [Mode::Echo, Mode::Broadcast]
            .into_iter()
            .map(|mode| {
                let config = Config {
                    mode,
                    allowed_origins: vec!["http://a.example".into()],
                    ..Config::default()
                };
                match route(&head, &config) {
                    Route::Upgrade(..) => 101,
                    Route::Stats | Route::Metrics | Route::Health | Route::Inspect => 200,
                    Route::Answer(response) => response.status.as_u16(),
                }
            })
            .collect()
    }

    /// A valid upgrade with some bytes overwritten, inserted or removed.
    fn mutated_upgrade() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec((0..UPGRADE.len(), any::<u8>(), 0..3u8), 1..6).prop_map(|edits| {
            let mut bytes = UPGRADE.to_vec();
            for (at, byte, kind) in edits {
                let at = at.min(bytes.len().saturating_sub(1));
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if bytes.len() > 1 => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            bytes
        })
    }

    proptest! {
        #[test]
        fn any_bytes_get_a_documented_answer(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            for status in statuses(&bytes) {
                prop_assert!(DOCUMENTED.contains(&status), "{status}");
            }
        }

        #[test]
        fn mutated_upgrades_get_a_documented_answer(bytes in mutated_upgrade()) {
            for status in statuses(&bytes) {
                prop_assert!(DOCUMENTED.contains(&status), "{status}");
            }
        }

        #[test]
        fn header_text_of_printable_characters_gets_a_documented_answer(
            method in "(GET|HEAD|POST|OPTIONS|[A-Z]{1,8})",
            target in "(\\*|/[ -~]{0,40})",
            headers in prop::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,40}"), 0..12),
        ) {
            let mut request = format!("{method} {target} HTTP/1.1\r\n");
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            for status in statuses(request.as_bytes()) {
                prop_assert!(DOCUMENTED.contains(&status), "{status}");
            }
        }
    }

    #[test]
    fn the_unmutated_upgrade_is_accepted() {
        assert_eq!(statuses(UPGRADE), vec![101, 101]);
    }
}
