//! `?inspect` and `GET /inspect`: the handshake as the server received it, as one JSON
//! object, so a client developer can see what their library or proxy really sent.
//!
//! Every value is the client's own, escaped by serde_json; the headers keep their order,
//! their spelling and their duplicates. `--no-faults` turns it off, for a server behind a
//! proxy whose internal headers should not be shown.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::http::{self as http_types, Version, header};

use crate::http;
use crate::wire::ClientStream;

/// The description of `request` from `peer` over `stream`; `upgrade` is the 101 when the
/// request became a WebSocket (its subprotocol and extensions are shown).
pub(super) fn describe(
    request: &http::Request,
    peer: SocketAddr,
    stream: &ClientStream,
    upgrade: Option<&http_types::Response<()>>,
) -> String {
    let head = &request.head;
    let headers: Vec<Value> = request
        .raw_head
        .as_deref()
        .map(http::header_lines)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| json!([name, String::from_utf8_lossy(&value)]))
        .collect();
    let version = match head.version() {
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let chosen = |name: header::HeaderName| {
        upgrade
            .and_then(|response| response.headers().get(name))
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    };
    let mut description = json!({
        "wsecho": "inspect",
        "method": head.method().as_str(),
        "path": head.uri().path(),
        "query": head.uri().query(),
        "http_version": version,
        "headers": headers,
        "peer": { "address": peer.ip().to_canonical().to_string(), "port": peer.port() },
        "subprotocol": chosen(header::SEC_WEBSOCKET_PROTOCOL),
        "extensions": chosen(header::SEC_WEBSOCKET_EXTENSIONS),
        "tls": Value::Null,
    });
    if let ClientStream::Tls(tls) = stream {
        let connection = &tls.get_ref().1;
        description["tls"] = json!({
            "version": connection.protocol_version().map(|version| format!("{version:?}")),
            "cipher_suite": connection
                .negotiated_cipher_suite()
                .map(|suite| format!("{:?}", suite.suite())),
            "alpn": connection
                .alpn_protocol()
                .map(|protocol| String::from_utf8_lossy(protocol).into_owned()),
            "sni": connection.server_name(),
        });
    }
    description.to_string()
}
