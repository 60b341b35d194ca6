//! A request that asks for a WebSocket: whether its headers are unambiguous, its Origin is
//! allowed, and which subprotocol it gets; tungstenite's `create_response` checks the rest
//! and derives the accept key.

use tokio_tungstenite::tungstenite::handshake::server::create_response;
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::{self, error::ProtocolError};

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

/// The answer to a request that asks for a WebSocket: the 101, or the error response.
pub(super) fn route_upgrade(
    head: &http::Request<()>,
    config: &Config,
) -> Result<http::Response<()>, Response> {
    if let Err(why) = check_upgrade_headers(head) {
        return Err(Response::bad_request(why));
    }
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
    match create_response(head) {
        Ok(mut response) => {
            // No match: the handshake completes without the header (RFC 6455 §4.2.2); a
            // browser then fails the connection, other clients may carry on.
            if let Some(chosen) = subprotocol::choose(&offered, &config.subprotocols)
                && let Ok(value) = http::HeaderValue::from_str(chosen)
            {
                response
                    .headers_mut()
                    .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
            }
            Ok(response)
        }
        Err(tungstenite::Error::Protocol(ProtocolError::MissingSecWebSocketVersionHeader)) => {
            Err(Response::text(
                http::StatusCode::UPGRADE_REQUIRED,
                "Upgrade Required: this server speaks WebSocket version 13\n",
            )
            .with_header("Sec-WebSocket-Version", "13"))
        }
        Err(tungstenite::Error::Protocol(ProtocolError::WrongHttpMethod)) => Err(Response::text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed: a WebSocket upgrade must be a GET\n",
        )
        .with_header("Allow", "GET")),
        Err(error) => Err(Response::bad_request(&format!(
            "invalid WebSocket upgrade request: {error}"
        ))),
    }
}

/// What tungstenite's handshake check lets through but a strict server refuses: a request
/// two parts of a proxy chain could read differently (repeated headers that disagree, a
/// body on an upgrade), or one RFC 6455 §4.1 says a client must not send.
fn check_upgrade_headers(head: &http::Request<()>) -> Result<(), &'static str> {
    let headers = head.headers();
    if !headers.contains_key(http::header::HOST) {
        return Err("a WebSocket upgrade needs a Host header");
    }
    if headers
        .get_all(http::header::SEC_WEBSOCKET_KEY)
        .iter()
        .count()
        > 1
    {
        return Err("more than one Sec-WebSocket-Key header");
    }
    if !values_agree(head, &http::header::UPGRADE) {
        return Err("Upgrade headers that disagree");
    }
    if !values_agree(head, &http::header::SEC_WEBSOCKET_VERSION) {
        return Err("Sec-WebSocket-Version headers that disagree");
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Err("a WebSocket upgrade has no body, so no Transfer-Encoding");
    }
    let body_length_is_zero = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .all(|length| length.as_bytes().trim_ascii() == b"0");
    if !body_length_is_zero {
        return Err("a WebSocket upgrade has no body, so no non-zero Content-Length");
    }
    Ok(())
}

/// Whether every line of header `name` says the same (letter case and spaces aside).
fn values_agree(head: &http::Request<()>, name: &http::HeaderName) -> bool {
    let mut values = head
        .headers()
        .get_all(name)
        .iter()
        .map(|value| value.as_bytes().trim_ascii());
    match values.next() {
        Some(first) => values.all(|value| value.eq_ignore_ascii_case(first)),
        None => true,
    }
}

/// Whether the request's Origin may open a WebSocket. An absent Origin is allowed: only
/// browsers send one, and the check exists to stop other sites' pages from using a visitor's
/// browser against this server. Scheme and host compare without regard to case (RFC 6454),
/// and a trailing slash on either side is ignored, since an origin has no path.
fn origin_allowed(head: &http::Request<()>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = head.headers().get(http::header::ORIGIN) else {
        return true;
    };
    let origin = origin.as_bytes();
    let origin = origin.strip_suffix(b"/").unwrap_or(origin);
    allowed.iter().any(|listed| {
        let listed = listed.as_bytes();
        listed
            .strip_suffix(b"/")
            .unwrap_or(listed)
            .eq_ignore_ascii_case(origin)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request as request;

    fn allowed(origin: Option<&str>, list: &[&str]) -> bool {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        origin_allowed(&request(&headers), &list)
    }

    #[test]
    fn any_origin_passes_when_none_are_listed() {
        assert!(allowed(Some("https://evil.example"), &[]));
    }

    #[test]
    fn a_request_without_origin_passes_a_list() {
        assert!(allowed(None, &["https://app.example"]));
    }

    #[test]
    fn origins_match_without_regard_to_case_or_a_trailing_slash() {
        let list = ["https://App.Example/", "http://localhost:3000"];
        assert!(allowed(Some("https://app.example"), &list));
        assert!(allowed(Some("HTTP://LOCALHOST:3000"), &list));
        assert!(allowed(Some("http://localhost:3000/"), &list));
    }

    #[test]
    fn other_origins_are_refused() {
        let list = ["https://app.example"];
        assert!(!allowed(Some("https://app.example.evil"), &list));
        assert!(!allowed(Some("http://app.example"), &list));
        assert!(!allowed(Some("https://app.example:8443"), &list));
        assert!(!allowed(Some("null"), &list));
    }

    #[test]
    fn the_upgrade_header_is_a_case_insensitive_token_list() {
        assert!(wants_websocket(&request(&[("Upgrade", "h2c, WebSocket")])));
        assert!(!wants_websocket(&request(&[("Upgrade", "websockets")])));
        assert!(!wants_websocket(&request(&[])));
    }
}
