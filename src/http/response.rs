//! The plain-HTTP answers the WebSocket port gives, and writing them (or the 101) out.

use std::borrow::Cow;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::http;

use super::HeadError;
use super::upgrade::Accepted;
use crate::wire::ClientStream;

/// How long a refused client gets to read its answer before the socket is closed. Closing a
/// socket with unread input makes the kernel send a reset, which can destroy the answer
/// before the client reads it, so what the client still sends is read and thrown away
/// meanwhile.
const LINGER: Duration = Duration::from_secs(1);

/// Most bytes read and thrown away while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// A complete plain-HTTP response.
#[derive(Debug)]
pub(crate) struct Response {
    /// The status line's code.
    pub status: http::StatusCode,
    /// Extra headers beyond the ones every response carries.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The body's media type.
    pub content_type: &'static str,
    /// The body: a fixed text, or one made for this request.
    pub body: Cow<'static, str>,
    /// The request was `HEAD`: the same status and headers (`Content-Length` included), but
    /// no body.
    pub omit_body: bool,
    /// The status line's reason phrase, when the standard one is not enough: clients that
    /// show only the status line (websocat, browsers' consoles) then show why.
    pub reason: Option<&'static str>,
}

impl Response {
    /// A plain-text answer.
    pub(crate) fn text(status: http::StatusCode, body: &'static str) -> Self {
        Response {
            status,
            headers: Vec::new(),
            content_type: "text/plain; charset=utf-8",
            body: Cow::Borrowed(body),
            omit_body: false,
            reason: None,
        }
    }

    /// A `400 Bad Request` whose body says what was wrong, in one line.
    pub(crate) fn bad_request(why: &str) -> Self {
        Response {
            body: Cow::Owned(format!("Bad Request: {why}\n")),
            ..Response::text(http::StatusCode::BAD_REQUEST, "")
        }
    }

    /// This answer as it goes to a request with `method`: without its body for `HEAD`.
    pub(crate) fn for_method(mut self, method: &http::Method) -> Self {
        self.omit_body = method == http::Method::HEAD;
        self
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

    /// The answer for a client whose address already holds its share of connections.
    pub(crate) fn too_many_from_address() -> Self {
        Response::text(
            http::StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests: too many connections from your address, try again later\n",
        )
        .with_header("Retry-After", "1")
    }

    /// A JSON answer that must not be cached (`/inspect`), newline-terminated.
    pub(crate) fn json(mut body: String) -> Self {
        body.push('\n');
        Response::stats(body)
    }

    /// `/stats`: the JSON that `observe::stats` made.
    pub(crate) fn stats(json: String) -> Self {
        Response {
            status: http::StatusCode::OK,
            headers: vec![("Cache-Control", "no-store")],
            content_type: "application/json",
            body: Cow::Owned(json),
            omit_body: false,
            reason: None,
        }
    }

    /// `/metrics`: the Prometheus text exposition that metrics-exporter-prometheus wrote.
    pub(crate) fn metrics(exposition: String) -> Self {
        Response {
            status: http::StatusCode::OK,
            headers: vec![("Cache-Control", "no-store")],
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: Cow::Owned(exposition),
            omit_body: false,
            reason: None,
        }
    }

    /// The same answer with `reason` as the status line's reason phrase.
    pub(crate) fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Adds a header to the ones every response carries.
    pub(crate) fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The answer for a head that could not be read, if the client is still there to hear it.
    pub(crate) fn for_error(error: &HeadError) -> Option<Self> {
        match error {
            HeadError::Malformed(why) => Some(
                Response::bad_request(&format!(
                    "{why} (this is a WebSocket server; connect with ws://)"
                ))
                .with_reason("Bad Request (not an HTTP request; connect with ws://)"),
            ),
            HeadError::TooLarge => Some(Response::text(
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large\n",
            )),
            HeadError::Closed | HeadError::Io(_) => None,
        }
    }
}

/// Sends the 101 that completes a WebSocket handshake.
pub(crate) async fn send_upgrade(stream: &mut ClientStream, accepted: &Accepted) -> io::Result<()> {
    stream.write_all(&accepted.head()).await
}

/// Sends `response`, then closes the connection gently (see [`LINGER`]).
pub(crate) async fn answer(stream: &mut ClientStream, response: &Response) -> io::Result<()> {
    let reason = response
        .reason
        .or(response.status.canonical_reason())
        .unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        response.status.as_u16(),
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
    if !response.omit_body {
        stream.write_all(response.body.as_bytes()).await?;
    }
    stream.shutdown().await?;
    let _ = tokio::time::timeout(LINGER, drain(stream)).await;
    Ok(())
}

/// Reads and discards what the client still sends, until it closes or [`LINGER_BYTES`].
async fn drain(stream: &mut ClientStream) {
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
