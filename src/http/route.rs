//! What a request gets: an upgrade, the page, the health check, the statistics, or an error
//! status, decided from the head and the configuration alone.

use std::borrow::Cow;

use tokio_tungstenite::tungstenite::http;

use super::framing::check_framing;
use super::upgrade::{Accepted, route_upgrade, wants_websocket};
use super::{CLIENT_HTML, Response};
use crate::config::{Config, Mode};
use crate::scenario::{self, Scenario};

/// What to do with a connection whose request head has been read.
pub(crate) enum Route {
    /// A valid WebSocket upgrade: send this 101 and speak WebSocket, doing what the client
    /// asked for in its query string (see `scenario`), if anything.
    Upgrade(Accepted, Option<Box<Scenario>>),
    /// `GET /inspect`: the caller, which sees the connection, describes the request.
    Inspect,
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
    Inspect,
}

/// The methods the pages answer, as the `Allow` header lists them.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// Decides what a request gets.
pub(crate) fn route(head: &http::Request<()>, config: &Config) -> Route {
    if let Err(why) = check_framing(head) {
        return Route::Answer(Response::bad_request(why));
    }
    let target_length = head
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_length > config.max_path_length {
        return Route::Answer(Response::text(
            http::StatusCode::URI_TOO_LONG,
            "URI Too Long: the path and query are over --max-path-length\n",
        ));
    }
    if wants_websocket(head) {
        let scenario = match config.no_faults {
            true => Ok(None),
            false => scenario::parse(head.uri().query(), config.max_message_size),
        };
        return match (route_upgrade(head, config), scenario) {
            (Err(response), _) => Route::Answer(response),
            (Ok(_), Err(why)) => Route::Answer(Response::bad_request(&why)),
            (
                Ok(_),
                Ok(Some(Scenario {
                    status: Some(status),
                    ..
                })),
            ) => Route::Answer(refused_on_request(status)),
            (Ok(accepted), Ok(scenario)) => Route::Upgrade(accepted, scenario.map(Box::new)),
        };
    }
    // Any method but these is refused before the path is looked at: 405 everywhere.
    if !matches!(*head.method(), http::Method::GET | http::Method::HEAD) {
        return Route::Answer(
            Response::text(http::StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
                .with_header("Allow", ALLOWED_METHODS),
        );
    }
    let page = match head.uri().path() {
        "/" => Some(Page::Client),
        "/inspect" if !config.no_faults => Some(Page::Inspect),
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
        Page::Inspect => Route::Inspect,
    }
}

/// The answer to `?status=CODE`: that status, with the headers a client needs to act on
/// it (`Retry-After` for 429 and 503, a challenge for 401). No redirects: a `Location` the
/// client chose would make the server an open redirect.
fn refused_on_request(status: u16) -> Response {
    let code = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let response = Response::text(code, "Refused on request (?status=CODE)\n");
    match status {
        429 | 503 => response.with_header("Retry-After", "1"),
        401 => response.with_header("WWW-Authenticate", "Basic realm=\"wsecho\""),
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request as request;

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
            Route::Upgrade(..) => 101,
            Route::Inspect => 200,
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
                .header("Host", "localhost")
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
        let get = |path: &str| {
            http::Request::get(path)
                .header("Host", "localhost")
                .body(())
                .unwrap()
        };
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

    #[test]
    fn a_long_target_is_414_and_any_other_method_405_whatever_the_path() {
        let config = Config::default();
        let status = |request: http::Request<()>| answer_status(route(&request, &config));
        let long = http::Request::get(format!("/{}", "x".repeat(2000)))
            .header("Host", "localhost")
            .body(())
            .unwrap();
        assert_eq!(status(long), 414);
        let post = http::Request::post("/nowhere")
            .header("Host", "localhost")
            .body(())
            .unwrap();
        assert_eq!(status(post), 405);
        let bare = http::Request::get("/").body(()).unwrap();
        assert_eq!(status(bare), 400, "HTTP/1.1 without Host");
    }
}
