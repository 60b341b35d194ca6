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
async fn another_method_is_405_with_allow_get() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let response = raw_http(
        server.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET"));
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
