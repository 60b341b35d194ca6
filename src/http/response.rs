//! The plain-HTTP answers the WebSocket port gives, and writing them (or the 101) out.

use std::borrow::Cow;
use std::io;
use std::time::Duration;

use crate::stream::ClientStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::server::write_response;
use tokio_tungstenite::tungstenite::http;

use super::HeadError;
use crate::budget::BudgetUse;
use crate::cluster::ClusterView;
use crate::config::Mode;
use clap::ValueEnum;

/// How long a refused client gets to read its answer before the socket is closed. Closing a
/// socket with unread input makes the kernel send a reset, which can destroy the answer
/// before the client reads it, so what the client still sends is read and thrown away
/// meanwhile.
const LINGER: Duration = Duration::from_secs(1);

/// Most bytes read and thrown away while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// A complete plain-HTTP response.
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

    /// `/stats`: `{"connections":N,"rooms":{"/lobby":2,...},"memory":{...}}`, where
    /// `connections` counts the connection slots taken (WebSocket clients plus HTTP requests
    /// being answered, this one included), `rooms` the members of each broadcast room, and
    /// `memory` the budget: its limit, the bytes held against it and the clients paused by it;
    /// with `--redis`, `cluster`: whether Redis is reachable, the nodes, and each room's
    /// members on all of them.
    pub(crate) fn stats(
        mode: Mode,
        connections: usize,
        rooms: Vec<(String, usize)>,
        memory: BudgetUse,
        cluster: Option<(bool, ClusterView)>,
    ) -> Self {
        let rooms: serde_json::Map<String, serde_json::Value> = rooms
            .into_iter()
            .map(|(name, size)| (name, size.into()))
            .collect();
        let mode = mode
            .to_possible_value()
            .map(|value| value.get_name().to_owned());
        let memory = serde_json::json!({
            "limit_bytes": memory.limit,
            "held_bytes": memory.held,
            "paused_clients": memory.paused,
        });
        let mut body = serde_json::json!({
            "mode": mode,
            "connections": connections,
            "rooms": rooms,
            "memory": memory,
        });
        if let Some((connected, view)) = cluster {
            let rooms: serde_json::Map<String, serde_json::Value> = view
                .rooms
                .into_iter()
                .map(|(name, size)| (name, size.into()))
                .collect();
            body["cluster"] = serde_json::json!({
                "redis_connected": connected,
                "nodes": view.nodes,
                "rooms": rooms,
            });
        }
        let mut body = body.to_string();
        body.push('\n');
        Response {
            status: http::StatusCode::OK,
            headers: vec![("Cache-Control", "no-store")],
            content_type: "application/json",
            body: Cow::Owned(body),
            omit_body: false,
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
        }
    }

    /// Adds a header to the ones every response carries.
    pub(crate) fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The answer for a head that could not be read, if the client is still there to hear it.
    pub(crate) fn for_error(error: &HeadError) -> Option<Self> {
        match error {
            HeadError::Malformed(why) => Some(Response::bad_request(&format!(
                "{why} (this is a WebSocket server; connect with ws://)"
            ))),
            HeadError::TooLarge => Some(Response::text(
                http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request Header Fields Too Large\n",
            )),
            HeadError::Closed | HeadError::Io(_) => None,
        }
    }
}

/// Sends the 101 that completes a WebSocket handshake.
pub(crate) async fn send_upgrade(
    stream: &mut ClientStream,
    response: &http::Response<()>,
) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(160);
    write_response(&mut bytes, response).map_err(io::Error::other)?;
    stream.write_all(&bytes).await
}

/// Sends `response`, then closes the connection gently (see [`LINGER`]).
pub(crate) async fn answer(stream: &mut ClientStream, response: &Response) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE_BUDGET: BudgetUse = BudgetUse {
        limit: 1 << 30,
        held: 0,
        paused: 0,
    };

    #[test]
    fn stats_escape_room_names_as_json() {
        let rooms = vec![
            ("/plain".to_owned(), 2),
            ("/quo\"te\\back".to_owned(), 1),
            ("/ctl\u{1}\n".to_owned(), 3),
            ("/ünï".to_owned(), 4),
        ];
        let response = Response::stats(Mode::Broadcast, 7, rooms.clone(), IDLE_BUDGET, None);
        assert!(response.body.ends_with('\n'));
        assert_eq!(
            response.body.lines().count(),
            1,
            "one line: {}",
            response.body
        );
        let parsed: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(parsed["connections"], 7);
        assert_eq!(parsed["mode"], "broadcast");
        for (name, size) in rooms {
            assert_eq!(parsed["rooms"][name.as_str()], size, "{name:?}");
        }
    }

    #[test]
    fn stats_without_rooms_is_an_empty_object() {
        let parsed: serde_json::Value = serde_json::from_str(
            &Response::stats(Mode::Echo, 0, Vec::new(), IDLE_BUDGET, None).body,
        )
        .unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "mode": "echo",
                "connections": 0,
                "rooms": {},
                "memory": { "limit_bytes": 1 << 30, "held_bytes": 0, "paused_clients": 0 },
            })
        );
    }
}
