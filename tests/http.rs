//! Plain HTTP on the WebSocket port: the page, the health check, and error statuses.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn get_root_returns_the_client_page_byte_for_byte() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let response = get(server.addr, "/").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/client.html")).unwrap();
    assert_eq!(response.body, on_disk);
    server.shut_down().await;
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let response = get(server.addr, "/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");
    server.shut_down().await;
}

#[tokio::test]
async fn an_unknown_path_is_404() {
    let server = TestServer::with_mode(Mode::Echo).await;
    assert_eq!(get(server.addr, "/nothing-here").await.status, 404);
    server.shut_down().await;
}

#[tokio::test]
async fn another_method_is_405_with_allow_get_and_head() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let response = raw_http(
        server.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    server.shut_down().await;
}

#[tokio::test]
async fn an_upgrade_without_a_key_is_400() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let response = raw_http(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 400);
    server.shut_down().await;
}

#[tokio::test]
async fn an_upgrade_with_the_wrong_version_is_426_naming_version_13() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let response = raw_http(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 426);
    assert_eq!(response.header("sec-websocket-version"), Some("13"));
    server.shut_down().await;
}

#[tokio::test]
async fn the_upgrade_response_declines_permessage_deflate() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = UPGRADE_REQUEST.replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 1024];
    let read = within("the 101", stream.read(&mut head)).await.unwrap();
    let head = String::from_utf8_lossy(&head[..read]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
    drop(stream);
    server.shut_down().await;
}

#[tokio::test]
async fn garbage_bytes_get_400_and_other_clients_are_unaffected() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    let response = raw_http(
        server.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 400);
    // A client that sends junk and vanishes mid-request.
    let mut vanishing = TcpStream::connect(server.addr).await.unwrap();
    vanishing.write_all(b"\x00\xff\x00\xffGET").await.unwrap();
    drop(vanishing);
    send_text(&mut client, "still here?").await;
    assert_eq!(
        next_text(&mut client).await,
        "Hello from server, you said: \"still here?\""
    );
    drop(client);
    server.shut_down().await;
}

/// A change to a request's text.
type Edit = Box<dyn Fn(String) -> String>;

/// An upgrade request with `edit` applied, sent raw; returns the answer.
async fn upgrade_edited(
    addr: std::net::SocketAddr,
    edit: impl Fn(String) -> String,
) -> HttpResponse {
    raw_http(addr, edit(UPGRADE_REQUEST.to_owned()).as_bytes()).await
}

fn add_header(line: &'static str) -> impl Fn(String) -> String {
    move |request| request.replacen("\r\n\r\n", &format!("\r\n{line}\r\n\r\n"), 1)
}

/// The answer's body as text, which must be one line.
fn one_line(response: &HttpResponse) -> String {
    let body = String::from_utf8(response.body.clone()).unwrap();
    assert_eq!(body.trim_end().lines().count(), 1, "{body:?}");
    body
}

#[tokio::test]
async fn ambiguous_upgrade_requests_get_400_with_the_reason() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let cases: [(&str, Edit); 6] = [
        (
            "Host",
            Box::new(|request: String| request.replace("Host: localhost\r\n", "")),
        ),
        (
            "Sec-WebSocket-Key",
            Box::new(add_header("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==")),
        ),
        ("Upgrade", Box::new(add_header("Upgrade: h2c"))),
        (
            "Sec-WebSocket-Version",
            Box::new(add_header("Sec-WebSocket-Version: 8")),
        ),
        (
            "Transfer-Encoding",
            Box::new(add_header("Transfer-Encoding: chunked")),
        ),
        ("Content-Length", Box::new(add_header("Content-Length: 5"))),
    ];
    for (names, edit) in cases {
        let response = upgrade_edited(server.addr, edit).await;
        assert_eq!(response.status, 400, "{names}");
        assert!(one_line(&response).contains(names), "{names}");
    }
    // The same request without the flaw is accepted.
    let mut stream = raw_websocket(server.addr).await;
    assert_eq!(read_server_frame(&mut stream).await.unwrap().0, 1);
    server.shut_down().await;
}

#[tokio::test]
async fn head_gets_what_get_gets_without_the_body() {
    let server = TestServer::with_mode(Mode::Echo).await;
    for path in ["/", "/healthz", "/stats", "/nothing-here"] {
        let get = get(server.addr, path).await;
        let head = raw_http(
            server.addr,
            format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "{path}"
        );
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str()),
            "{path}"
        );
        assert!(head.body.is_empty(), "{path}: {:?}", head.body);
    }
    server.shut_down().await;
}

#[tokio::test]
async fn options_star_is_405_with_allow() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let response = raw_http(server.addr, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    server.shut_down().await;
}

#[tokio::test]
async fn malformed_heads_get_a_clear_status_and_the_connection_closes() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
    let cases: [(&[u8], u16); 5] = [
        (long_line.as_bytes(), 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n", 400),
        (b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ];
    for (request, status) in cases {
        // raw_http reads to the end: the server closes after answering.
        let response = raw_http(server.addr, request).await;
        assert_eq!(
            response.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
        one_line(&response);
    }
    server.shut_down().await;
}

#[tokio::test]
async fn requests_two_servers_could_read_differently_are_400() {
    let server = TestServer::start(Config::default()).await;
    for request in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ] {
        let answer = raw_http(server.addr, request).await;
        assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(request));
    }
    // HTTP/1.0 may leave Host out.
    assert_eq!(
        raw_http(server.addr, b"GET / HTTP/1.0\r\n\r\n")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn answers_say_nosniff_a_long_target_is_414_and_other_methods_405_everywhere() {
    let server = TestServer::start(Config::default()).await;
    for path in ["/", "/healthz", "/nothing-here"] {
        let answer = get(server.addr, path).await;
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    let long = format!("/{}", "x".repeat(1100));
    assert_eq!(get(server.addr, &long).await.status, 414);
    let upgrade = tokio_tungstenite::connect_async(server.url(&long))
        .await
        .expect_err("a 414");
    assert!(upgrade.to_string().contains("414"), "{upgrade}");
    let answer = raw_http(
        server.addr,
        b"DELETE /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn stats_names_rooms_only_to_the_networks_metrics_allow_lists() {
    let server = TestServer::start(Config {
        mode: Mode::Broadcast,
        metrics_allow: vec![wsecho::parse_network("10.0.0.0/8").unwrap()],
        ..Config::default()
    })
    .await;
    let _member = server.connect_welcomed("/secret-room-name").await;
    eventually("the member to be counted", || async {
        let stats: serde_json::Value =
            serde_json::from_slice(&get(server.addr, "/stats").await.body).unwrap();
        stats["room_count"] == 1
    })
    .await;
    let body = get(server.addr, "/stats").await.body;
    assert!(
        !String::from_utf8_lossy(&body).contains("secret-room-name"),
        "a room's name shown to a network --metrics-allow does not list"
    );
}
