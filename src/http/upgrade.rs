//! A request that asks for a WebSocket: whether it is a well-formed upgrade (RFC 6455
//! §4.2.1), unambiguous, from an allowed Origin, and which subprotocol it gets; and the 101
//! that accepts it.
//!
//! tungstenite's `create_response` makes the same checks of method, version and headers,
//! but answers with an `http::Response` built header by header (a header map, a copy of
//! each value) that is then formatted line by line, work a handshake does not need
//! (docs/performance.md, Handshakes, has what it cost). tungstenite also offers the
//! handshake in pieces, for servers that answer the upgrade themselves: its
//! `derive_accept_key` is the accept key, and the 101 here is written in one piece around
//! it.

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http;

use super::origin::origin_allowed;
use super::{Response, subprotocol};
use crate::config::Config;

/// Whether the client asks for a WebSocket at all (as opposed to a plain page). A request
/// that asks but gets the details wrong is an error, not a page.
pub(super) fn wants_websocket(head: &http::Request<()>) -> bool {
    head.headers()
        .get_all(http::header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
}

/// The 101 that accepts an upgrade.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// `Sec-WebSocket-Accept`, derived from the client's key.
    accept_key: String,
    /// The subprotocol chosen from the client's offer, if any.
    subprotocol: Option<Box<str>>,
    /// The client offered subprotocols and none was chosen.
    declined_offer: bool,
}

impl Accepted {
    /// The subprotocol the 101 names, if any.
    pub(crate) fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Whether the client offered subprotocols, none of which the server speaks.
    pub(crate) fn declined_offer(&self) -> bool {
        self.declined_offer
    }

    /// The 101's head, as sent. No extension is ever accepted, so none is named.
    pub(crate) fn head(&self) -> Vec<u8> {
        let mut head = Vec::with_capacity(160);
        head.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Accept: ",
        );
        head.extend_from_slice(self.accept_key.as_bytes());
        if let Some(protocol) = &self.subprotocol {
            head.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
            head.extend_from_slice(protocol.as_bytes());
        }
        head.extend_from_slice(b"\r\n\r\n");
        head
    }
}

/// The answer to a request that asks for a WebSocket: the 101, or the error response.
pub(super) fn route_upgrade(
    head: &http::Request<()>,
    config: &Config,
) -> Result<Accepted, Response> {
    if head.method() != http::Method::GET {
        return Err(Response::text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed: a WebSocket upgrade must be a GET\n",
        )
        .with_header("Allow", "GET"));
    }
    if head.version() < http::Version::HTTP_11 {
        return Err(Response::bad_request(
            "a WebSocket upgrade needs HTTP/1.1 or later",
        ));
    }
    let Some(key) = check_upgrade_headers(head)? else {
        return Err(Response::text(
            http::StatusCode::UPGRADE_REQUIRED,
            "Upgrade Required: this server speaks WebSocket version 13\n",
        )
        .with_header("Sec-WebSocket-Version", "13"));
    };
    let offered = match subprotocol::offered(head) {
        Ok(offered) => offered,
        Err(why) => return Err(Response::bad_request(why)),
    };
    if !origin_allowed(head, &config.allowed_origins) {
        return Err(Response::text(
            http::StatusCode::FORBIDDEN,
            "Forbidden: this Origin may not open a WebSocket here\n",
        ));
    }
    // No match: the handshake completes without the header (RFC 6455 §4.2.2); a browser
    // then fails the connection, other clients may carry on.
    let subprotocol = subprotocol::choose(&offered, &config.subprotocols).map(Box::from);
    Ok(Accepted {
        accept_key: derive_accept_key(key),
        declined_offer: subprotocol.is_none() && !offered.is_empty(),
        subprotocol,
    })
}

/// The headers of an upgrade: its `Sec-WebSocket-Key`, or `None` when it asks for another
/// version of the protocol than 13 (which gets 426); a 400 for a request that lacks what
/// RFC 6455 §4.1 asks of a client, or that two parts of a proxy chain could read
/// differently (repeated headers that disagree, a body on an upgrade).
fn check_upgrade_headers(head: &http::Request<()>) -> Result<Option<&[u8]>, Response> {
    let bad = |why| Err(Response::bad_request(why));
    // Host: `framing` has refused an HTTP/1.1 request without one, and `route_upgrade` any
    // older request.
    let headers = head.headers();
    let Ok(upgrade) = agreed_value(head, &http::header::UPGRADE) else {
        return bad("Upgrade headers that disagree");
    };
    if !upgrade.is_some_and(|value| value.eq_ignore_ascii_case(b"websocket")) {
        return bad("a WebSocket upgrade needs Upgrade: websocket and nothing else there");
    }
    let connection_upgrade = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b',' || byte == b' '))
        .any(|option| option.eq_ignore_ascii_case(b"upgrade"));
    if !connection_upgrade {
        return bad("a WebSocket upgrade needs Connection: Upgrade");
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return bad("a WebSocket upgrade has no body, so no Transfer-Encoding");
    }
    let body_length_is_zero = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .all(|length| length.as_bytes().trim_ascii() == b"0");
    if !body_length_is_zero {
        return bad("a WebSocket upgrade has no body, so no non-zero Content-Length");
    }
    let Ok(version) = agreed_value(head, &http::header::SEC_WEBSOCKET_VERSION) else {
        return bad("Sec-WebSocket-Version headers that disagree");
    };
    if version != Some(b"13") {
        return Ok(None);
    }
    let mut keys = headers.get_all(http::header::SEC_WEBSOCKET_KEY).iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return match headers.contains_key(http::header::SEC_WEBSOCKET_KEY) {
            true => bad("more than one Sec-WebSocket-Key header"),
            false => bad("a WebSocket upgrade needs a Sec-WebSocket-Key"),
        };
    };
    let key = key.as_bytes().trim_ascii();
    if !is_valid_key(key) {
        return bad("a Sec-WebSocket-Key must be 16 bytes in base64");
    }
    Ok(Some(key))
}

/// RFC 6455 §4.1: the key is 16 random bytes, base64-encoded (24 characters).
fn is_valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24
        && data_encoding::BASE64
            .decode_mut(key, &mut decoded)
            .is_ok_and(|length| length == 16)
}

/// What every line of header `name` says (letter case and spaces aside): `None` without
/// one, `Err` when two lines disagree.
fn agreed_value<'a>(
    head: &'a http::Request<()>,
    name: &http::HeaderName,
) -> Result<Option<&'a [u8]>, ()> {
    let mut values = head
        .headers()
        .get_all(name)
        .iter()
        .map(|value| value.as_bytes().trim_ascii());
    let first = values.next();
    match first {
        Some(first) if !values.all(|value| value.eq_ignore_ascii_case(first)) => Err(()),
        _ => Ok(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request as request;

    #[test]
    fn the_upgrade_header_is_a_case_insensitive_token_list() {
        assert!(wants_websocket(&request(&[("Upgrade", "h2c, WebSocket")])));
        assert!(!wants_websocket(&request(&[("Upgrade", "websockets")])));
        assert!(!wants_websocket(&request(&[])));
    }

    /// RFC 6455 §1.3's sample handshake, with `edit` applied to its headers.
    fn sample(edit: impl FnOnce(&mut Vec<(&'static str, &'static str)>)) -> http::Request<()> {
        let mut headers = vec![
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ];
        edit(&mut headers);
        request(&headers)
    }

    fn refusal(head: &http::Request<()>, config: &Config) -> (u16, String) {
        match route_upgrade(head, config) {
            Ok(accepted) => panic!("accepted: {accepted:?}"),
            Err(response) => (response.status.as_u16(), response.body.into_owned()),
        }
    }

    #[test]
    fn the_101_carries_the_rfc_sample_accept_key_and_nothing_else() {
        let accepted = route_upgrade(&sample(|_| {}), &Config::default()).unwrap();
        assert_eq!(
            String::from_utf8(accepted.head()).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    /// The sample upgrade offering `offer`, to a server that speaks `chat`.
    fn upgrade_offering(offer: &'static str) -> Result<Accepted, Response> {
        let config = Config {
            subprotocols: vec!["chat".into()],
            ..Config::default()
        };
        route_upgrade(
            &sample(|headers| headers.push(("Sec-WebSocket-Protocol", offer))),
            &config,
        )
    }

    #[test]
    fn the_101_names_the_subprotocol_chosen() {
        let accepted = upgrade_offering("superchat, chat").unwrap();
        assert_eq!(accepted.subprotocol(), Some("chat"));
        let text = String::from_utf8(accepted.head()).unwrap();
        assert!(
            text.ends_with("xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"),
            "{text}"
        );
        assert!(!accepted.declined_offer());
    }

    #[test]
    fn an_offer_of_nothing_the_server_speaks_is_declined_and_no_offer_is_not() {
        let declined = upgrade_offering("superchat").unwrap();
        assert!(declined.declined_offer());
        assert_eq!(declined.subprotocol(), None);
        let head = String::from_utf8(declined.head()).unwrap();
        assert!(!head.contains("Sec-WebSocket-Protocol"), "{head}");
        let no_offer = route_upgrade(&sample(|_| {}), &Config::default()).unwrap();
        assert!(!no_offer.declined_offer());
    }

    #[test]
    fn keys_that_are_not_16_bytes_in_base64_are_400() {
        for key in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25jZ!==",
            "dGhlIHNhbXBsZSBub25jZQo=",
        ] {
            let head = sample(|headers| headers[3].1 = key);
            let (status, body) = refusal(&head, &Config::default());
            assert_eq!(status, 400, "{key:?}");
            assert!(body.contains("Sec-WebSocket-Key"), "{key:?}: {body}");
        }
        let head = sample(|headers| {
            headers.remove(3);
        });
        assert!(
            refusal(&head, &Config::default())
                .1
                .contains("needs a Sec-WebSocket-Key")
        );
    }

    #[test]
    fn what_rfc_6455_asks_of_a_client_request_is_checked() {
        let config = Config::default();
        let no_connection_upgrade = sample(|headers| headers[2].1 = "keep-alive");
        assert_eq!(refusal(&no_connection_upgrade, &config).0, 400);
        let listed = sample(|headers| headers[2].1 = "keep-alive, Upgrade");
        assert!(route_upgrade(&listed, &config).is_ok());
        let two_protocols = sample(|headers| headers[1].1 = "websocket, h2c");
        assert_eq!(refusal(&two_protocols, &config).0, 400);
        let mut old = sample(|_| {});
        *old.version_mut() = http::Version::HTTP_10;
        assert_eq!(refusal(&old, &config).0, 400);
        let mut post = sample(|_| {});
        *post.method_mut() = http::Method::POST;
        assert_eq!(refusal(&post, &config).0, 405);
        let version_8 = sample(|headers| headers[4].1 = "8");
        assert_eq!(refusal(&version_8, &config).0, 426);
    }
}
