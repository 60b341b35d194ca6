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
    upgrade: Option<&http::Accepted>,
) -> String {
    let head = &request.head;
    let cross_site = is_cross_site(head);
    let headers: Vec<Value> = request
        .raw_head
        .as_deref()
        .map(http::header_lines)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| match cross_site && is_credential(&name) {
            true => json!([name, "(withheld: sent by a page of another site)"]),
            false => json!([name, String::from_utf8_lossy(&value)]),
        })
        .collect();
    let version = match head.version() {
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let mut description = json!({
        "wsecho": "inspect",
        "method": head.method().as_str(),
        "path": head.uri().path(),
        "query": head.uri().query(),
        "http_version": version,
        "headers": headers,
        "peer": { "address": peer.ip().to_canonical().to_string(), "port": peer.port() },
        "subprotocol": upgrade.and_then(http::Accepted::subprotocol),
        // No extension is ever accepted; the field says so rather than leave it out.
        "extensions": Value::Null,
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

/// Whether a browser sent the request for a page of another site: its `Origin` names a host
/// other than the one the request is for. WebSocket has no same-origin rule, so any site's
/// page can open `?inspect` with its visitor's browser; that page must not read back the
/// visitor's cookies for this host.
fn is_cross_site(head: &http_types::Request<()>) -> bool {
    let Some(origin) = head.headers().get(header::ORIGIN) else {
        return false;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, host)| host.trim_end_matches('/'));
    let host = head
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => !origin_host.eq_ignore_ascii_case(host),
        _ => true,
    }
}

/// Headers that carry a browser's credentials for this host.
fn is_credential(name: &str) -> bool {
    ["cookie", "authorization", "proxy-authorization"]
        .iter()
        .any(|credential| name.eq_ignore_ascii_case(credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> http_types::Request<()> {
        let mut builder = http_types::Request::get("/?inspect");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn only_a_page_of_another_site_is_cross_site() {
        assert!(!is_cross_site(&request(&[("Host", "a.example:8080")])));
        assert!(!is_cross_site(&request(&[
            ("Host", "a.example:8080"),
            ("Origin", "http://A.example:8080")
        ])));
        assert!(is_cross_site(&request(&[
            ("Host", "a.example:8080"),
            ("Origin", "https://evil.example")
        ])));
        assert!(is_cross_site(&request(&[
            ("Host", "a.example"),
            ("Origin", "null")
        ])));
        assert!(is_credential("Cookie") && is_credential("authorization"));
        assert!(!is_credential("X-Cookie"));
    }
}
