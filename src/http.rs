//! The HTTP side of the WebSocket port: reading the request head, answering plain HTTP
//! requests, and turning a genuine upgrade request into a WebSocket.
//!
//! tungstenite's own `accept` can only answer "101" or an error (tokio-tungstenite issue 134),
//! so the head is read here first, with `httparse` (which tungstenite itself uses). Plain
//! requests get the page, the health check or a proper error status. An upgrade request is
//! validated and answered with tungstenite's own handshake functions (`create_response`, which
//! checks the method, version, headers and key and derives the accept key, and
//! `write_response`), and the connection is then handed to tungstenite with whatever bytes
//! followed the head. The handshake logic is tungstenite's; this module only decides who gets
//! it.

use std::borrow::Cow;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{create_response, write_response};
use tokio_tungstenite::tungstenite::http::{self, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, error::ProtocolError};

use crate::config::{Config, Mode};
use crate::server::Shared;

/// The browser client, served at `/`. Embedded so the binary works from any directory.
pub const CLIENT_HTML: &str = include_str!("../client.html");

/// Largest request head accepted; a larger one gets `431`. Browsers' heads are well under
/// this even with cookies; nginx's default limit is of the same order.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header lines accepted; more gets `431`. tungstenite's own parser allows 124.
const MAX_HEADERS: usize = 64;

/// How long a refused client gets to read its answer before the socket is closed, and how
/// much of what it still sends is read and thrown away meanwhile. Closing a socket with
/// unread input makes the kernel send a reset, which can destroy the answer before the client
/// reads it.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// A parsed request head and the bytes that arrived after it.
pub(crate) struct Request {
    /// The head in the form tungstenite's handshake functions take.
    pub head: http::Request<()>,
    /// Bytes read past the end of the head: the start of the WebSocket stream, if a client
    /// sent frames without waiting for the 101.
    pub tail: Vec<u8>,
}

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Not HTTP, or HTTP that cannot be understood: answered with 400.
    Malformed(String),
    /// Head over [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`]: answered with 431.
    TooLarge,
    /// The client closed the connection before finishing the head.
    Closed,
    /// The socket failed.
    Io(io::Error),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Malformed(why) => write!(f, "malformed request: {why}"),
            HeadError::TooLarge => write!(f, "request head too large"),
            HeadError::Closed => write!(f, "closed before finishing the request"),
            HeadError::Io(error) => write!(f, "{error}"),
        }
    }
}

/// What to do with a connection whose request head has been read.
pub(crate) enum Route {
    /// A valid WebSocket upgrade: send this 101 response and speak WebSocket.
    Upgrade(http::Response<()>),
    /// Anything else: send this response and close.
    Answer(Response),
}

/// A complete plain-HTTP response.
pub(crate) struct Response {
    pub status: http::StatusCode,
    /// Extra headers beyond the ones every response carries.
    pub headers: Vec<(&'static str, &'static str)>,
    pub content_type: &'static str,
    pub body: Cow<'static, str>,
}

impl Response {
    pub(crate) fn text(status: http::StatusCode, body: &'static str) -> Self {
        Response {
            status,
            headers: Vec::new(),
            content_type: "text/plain; charset=utf-8",
            body: Cow::Borrowed(body),
        }
    }

    /// The answer for a client that did not finish its request in time.
    pub(crate) fn timed_out() -> Self {
        Response::text(http::StatusCode::REQUEST_TIMEOUT, "Request Timeout\n")
    }

    /// The answer for a client over the connection limit.
    pub(crate) fn busy() -> Self {
        Response::text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: too many connections, try again later\n",
        )
        .with_header("Retry-After", "1")
    }

    fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The answer for a head that could not be read, if the client is still there to hear it.
    pub(crate) fn for_error(error: &HeadError) -> Option<Self> {
        match error {
            HeadError::Malformed(_) => Some(Response::text(
                http::StatusCode::BAD_REQUEST,
                "Bad Request: this is a WebSocket server; connect with ws://\n",
            )),
            HeadError::TooLarge => Some(Response::text(
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large\n",
            )),
            HeadError::Closed | HeadError::Io(_) => None,
        }
    }
}

/// Reads one request head from `stream`, keeping any bytes that follow it.
pub(crate) async fn read_request(stream: &mut TcpStream) -> Result<Request, HeadError> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        buffer.reserve(1024.min(MAX_HEAD_BYTES - buffer.len()));
        let read = stream.read_buf(&mut buffer).await.map_err(HeadError::Io)?;
        if read == 0 {
            return Err(HeadError::Closed);
        }
        if let Some((head, head_len)) = parse_head(&buffer)? {
            buffer.drain(..head_len);
            return Ok(Request { head, tail: buffer });
        }
    }
}

/// Parses a complete head out of `bytes`, or returns `None` if more bytes are needed.
fn parse_head(bytes: &[u8]) -> Result<Option<(http::Request<()>, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(error) => return Err(HeadError::Malformed(error.to_string())),
    };
    let malformed = |what: &str| HeadError::Malformed(what.to_owned());
    let mut head = http::Request::new(());
    *head.method_mut() = http::Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| malformed("bad method"))?;
    *head.uri_mut() = parsed
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| malformed("bad request target"))?;
    *head.version_mut() = match parsed.version {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let header_map = head.headers_mut();
    header_map.reserve(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| malformed("bad header name"))?;
        let value =
            HeaderValue::from_bytes(header.value).map_err(|_| malformed("bad header value"))?;
        header_map.append(name, value);
    }
    Ok(Some((head, head_len)))
}

/// Decides what a request gets: an upgrade, the page, the statistics, the health check or
/// an error status.
pub(crate) fn route(head: &http::Request<()>, shared: &Shared) -> Route {
    let config = &shared.config;
    if wants_websocket(head) {
        return route_upgrade(head, config);
    }
    let path = head.uri().path();
    enum Page {
        Client,
        Health,
        Stats,
    }
    let page = match path {
        "/" => Page::Client,
        "/healthz" => Page::Health,
        "/stats" => Page::Stats,
        // In broadcast mode the path names a room, and each room has the page.
        _ if config.mode == Mode::Broadcast => Page::Client,
        _ => {
            return Route::Answer(Response::text(
                http::StatusCode::NOT_FOUND,
                "Not Found: try / for the client page, or connect with ws://\n",
            ));
        }
    };
    if head.method() != http::Method::GET {
        return Route::Answer(
            Response::text(http::StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
                .with_header("Allow", "GET"),
        );
    }
    Route::Answer(match page {
        Page::Client => Response {
            status: http::StatusCode::OK,
            headers: vec![("Cache-Control", "no-cache")],
            content_type: "text/html; charset=utf-8",
            body: Cow::Borrowed(CLIENT_HTML),
        },
        Page::Health => Response::text(http::StatusCode::OK, "ok"),
        Page::Stats => Response {
            status: http::StatusCode::OK,
            headers: vec![("Cache-Control", "no-store")],
            content_type: "application/json",
            body: Cow::Owned(stats_json(shared)),
        },
    })
}

/// `{"connections":N,"rooms":{"/lobby":2,...}}`: how many connection slots are taken
/// (WebSocket clients plus HTTP requests being answered, this one included), and in broadcast
/// mode how many clients are in each room.
fn stats_json(shared: &Shared) -> String {
    let rooms: Vec<String> = shared
        .hub
        .room_sizes()
        .into_iter()
        .map(|(name, size)| {
            let name = name.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{name}\":{size}")
        })
        .collect();
    format!(
        "{{\"connections\":{},\"rooms\":{{{}}}}}\n",
        shared.open_connections(),
        rooms.join(",")
    )
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
    if !origin_allowed(head, &config.allowed_origins) {
        return Route::Answer(Response::text(
            http::StatusCode::FORBIDDEN,
            "Forbidden: this Origin may not open a WebSocket here\n",
        ));
    }
    match create_response(head) {
        Ok(response) => Route::Upgrade(response),
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
        Err(_) => Route::Answer(Response::text(
            http::StatusCode::BAD_REQUEST,
            "Bad Request: invalid WebSocket upgrade request\n",
        )),
    }
}

/// An absent Origin is allowed: only browsers send one, and the check exists to stop other
/// sites' pages from using a visitor's browser against this server.
fn origin_allowed(head: &http::Request<()>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match head.headers().get(http::header::ORIGIN) {
        None => true,
        Some(origin) => allowed
            .iter()
            .any(|listed| listed.as_bytes().eq_ignore_ascii_case(origin.as_bytes())),
    }
}

/// Sends the 101 that completes a WebSocket handshake.
pub(crate) async fn send_upgrade(
    stream: &mut TcpStream,
    response: &http::Response<()>,
) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(160);
    write_response(&mut bytes, response).map_err(io::Error::other)?;
    stream.write_all(&bytes).await
}

/// Sends `response`, then closes the connection gently (see [`LINGER`]).
pub(crate) async fn answer(stream: &mut TcpStream, response: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await?;
    let _ = tokio::time::timeout(LINGER, drain(stream)).await;
    Ok(())
}

/// Reads and discards what the client still sends, until it closes or [`LINGER_BYTES`].
async fn drain(stream: &mut TcpStream) {
    // On the heap: an array here would sit in every connection task's future, served or not.
    let mut scratch = vec![0u8; 4096];
    let mut total = 0;
    while total < LINGER_BYTES {
        match stream.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(read) => total += read,
        }
    }
}
