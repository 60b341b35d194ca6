//! What a request gets: an upgrade, the page, the health check, the statistics, or an error
//! status, decided from the head and the configuration alone.

use std::borrow::Cow;

use tokio_tungstenite::tungstenite::handshake::server::create_response;
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::{self, error::ProtocolError};

use super::{CLIENT_HTML, Response, subprotocol};
use crate::config::{Config, Mode};

/// What to do with a connection whose request head has been read.
pub(crate) enum Route {
    /// A valid WebSocket upgrade: send this 101 response and speak WebSocket.
    Upgrade(http::Response<()>),
    /// `GET /stats`: the caller, which sees the server's state, builds the answer.
    Stats,
    /// `GET /healthz`: the caller knows whether the node can reach what it depends on.
    Health,
    /// `GET /metrics`: the caller decides whether the client may see it, and builds it.
    Metrics,
    /// Anything else: send this response and close.
    Answer(Response),
}

/// The pages a plain `GET` can ask for.
enum Page {
    Client,
    Health,
    Stats,
    Metrics,
}

/// The methods the pages answer, as the `Allow` header lists them.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// Decides what a request gets.
pub(crate) fn route(head: &http::Request<()>, config: &Config) -> Route {
    if wants_websocket(head) {
        return route_upgrade(head, config);
    }
    let page = match head.uri().path() {
        "/" => Some(Page::Client),
        "/healthz" => Some(Page::Health),
        "/stats" => Some(Page::Stats),
        "/metrics" => Some(Page::Metrics),
        // `OPTIONS *` and the like: the server as a whole, which answers no method but these.
        "*" => None,
        // In broadcast mode the path names a room, and each room has the page.
        _ if config.mode == Mode::Broadcast => Some(Page::Client),
        _ => {
            return Route::Answer(Response::text(
                http::StatusCode::NOT_FOUND,
                "Not Found: try / for the client page, or connect with ws://\n",
            ));
        }
    };
    let page = match page {
        Some(page) if matches!(*head.method(), http::Method::GET | http::Method::HEAD) => page,
        _ => {
            return Route::Answer(
                Response::text(http::StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
                    .with_header("Allow", ALLOWED_METHODS),
            );
        }
    };
    match page {
        Page::Client => Route::Answer(Response {
            headers: vec![("Cache-Control", "no-cache")],
            content_type: "text/html; charset=utf-8",
            body: Cow::Borrowed(CLIENT_HTML),
            ..Response::text(http::StatusCode::OK, "")
        }),
        Page::Health => Route::Health,
        Page::Stats => Route::Stats,
        Page::Metrics => Route::Metrics,
    }
}

/// Whether the client asks for a WebSocket at all (as opposed to a plain page). A request
/// that asks but gets the details wrong is an error, not a page.
fn wants_websocket(head: &http::Request<()>) -> bool {
    head.headers()
        .get_all(http::header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
}

fn route_upgrade(head: &http::Request<()>, config: &Config) -> Route {
    if let Err(why) = check_upgrade_headers(head) {
        return Route::Answer(Response::bad_request(why));
    }
    let offered = match subprotocol::offered(head) {
        Ok(offered) => offered,
        Err(why) => return Route::Answer(Response::bad_request(why)),
    };
    if !origin_allowed(head, &config.allowed_origins) {
        return Route::Answer(Response::text(
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
            Route::Upgrade(response)
        }
        Err(tungstenite::Error::Protocol(ProtocolError::MissingSecWebSocketVersionHeader)) => {
            Route::Answer(
                Response::text(
                    http::StatusCode::UPGRADE_REQUIRED,
                    "Upgrade Required: this server speaks WebSocket version 13\n",
                )
                .with_header("Sec-WebSocket-Version", "13"),
            )
        }
        Err(tungstenite::Error::Protocol(ProtocolError::WrongHttpMethod)) => Route::Answer(
            Response::text(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed: a WebSocket upgrade must be a GET\n",
            )
            .with_header("Allow", "GET"),
        ),
        Err(error) => Route::Answer(Response::bad_request(&format!(
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
        .map(|value| value.as_bytes().trim_ascii().to_ascii_lowercase());
    match values.next() {
        Some(first) => values.all(|value| value == first),
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

    fn request(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::get("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

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

    fn upgrade(extra: &[(&str, &str)]) -> http::Request<()> {
        let mut headers = vec![
            ("Host", "localhost"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ];
        headers.extend_from_slice(extra);
        request(&headers)
    }

    fn answer_status(route: Route) -> u16 {
        match route {
            Route::Answer(response) => response.status.as_u16(),
            Route::Upgrade(_) => 101,
            Route::Stats | Route::Metrics | Route::Health => 200,
        }
    }

    #[test]
    fn a_well_formed_upgrade_is_accepted() {
        let config = Config::default();
        assert_eq!(answer_status(route(&upgrade(&[]), &config)), 101);
        assert_eq!(
            answer_status(route(&upgrade(&[("Content-Length", "0")]), &config)),
            101
        );
        assert_eq!(
            answer_status(route(&upgrade(&[("Upgrade", "WebSocket")]), &config)),
            101,
            "a repeated Upgrade header that agrees"
        );
    }

    #[test]
    fn ambiguous_or_bodied_upgrades_are_400() {
        let config = Config::default();
        for extra in [
            &[("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA==")][..],
            &[("Upgrade", "h2c")],
            &[("Sec-WebSocket-Version", "8")],
            &[("Transfer-Encoding", "chunked")],
            &[("Content-Length", "5")],
            &[("Content-Length", "zero")],
        ] {
            assert_eq!(
                answer_status(route(&upgrade(extra), &config)),
                400,
                "{extra:?}"
            );
        }
        let mut no_host = upgrade(&[]);
        no_host.headers_mut().remove("host");
        assert_eq!(answer_status(route(&no_host, &config)), 400);
    }

    #[test]
    fn head_is_allowed_wherever_get_is_and_other_methods_are_told_both() {
        let config = Config::default();
        let with = |method: &str, target: &str| {
            http::Request::builder()
                .method(method)
                .uri(target)
                .body(())
                .unwrap()
        };
        assert_eq!(answer_status(route(&with("HEAD", "/"), &config)), 200);
        assert_eq!(
            answer_status(route(&with("HEAD", "/healthz"), &config)),
            200
        );
        assert!(matches!(
            route(&with("HEAD", "/stats"), &config),
            Route::Stats
        ));
        for (method, target) in [("POST", "/"), ("OPTIONS", "*"), ("DELETE", "/healthz")] {
            match route(&with(method, target), &config) {
                Route::Answer(response) => {
                    assert_eq!(response.status, 405, "{method} {target}");
                    assert!(response.headers.contains(&("Allow", "GET, HEAD")));
                }
                _ => panic!("expected 405 for {method} {target}"),
            }
        }
    }

    #[test]
    fn stats_and_health_are_left_to_the_caller_and_other_paths_are_found_or_not() {
        let config = Config::default();
        let get = |path: &str| http::Request::get(path).body(()).unwrap();
        assert!(matches!(route(&get("/stats"), &config), Route::Stats));
        assert!(matches!(route(&get("/healthz"), &config), Route::Health));
        let status = |route: Route| match route {
            Route::Answer(response) => response.status,
            _ => panic!("expected a plain answer"),
        };
        assert_eq!(status(route(&get("/"), &config)), 200);
        assert_eq!(status(route(&get("/room"), &config)), 404);
        let broadcast = Config {
            mode: Mode::Broadcast,
            ..Config::default()
        };
        assert_eq!(status(route(&get("/room"), &broadcast)), 200);
    }
}
