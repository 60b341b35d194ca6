//! Protocol violations get the close code RFC 6455 names for them.

mod common;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn invalid_utf8_in_a_text_message_is_closed_with_1007() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let invalid = frame(0x1, &[0x68, 0x69, 0xff, 0xfe], MASK);
    expect_close_after_sending(server.addr, &invalid, CloseCode::Invalid).await;
    server.shut_down().await;
}

#[tokio::test]
async fn an_unmasked_client_frame_is_closed_with_1002() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let unmasked = frame(0x1, b"hello", None);
    expect_close_after_sending(server.addr, &unmasked, CloseCode::Protocol).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_reserved_opcode_is_closed_with_1002() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let reserved = frame(0x3, b"?", MASK);
    expect_close_after_sending(server.addr, &reserved, CloseCode::Protocol).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_fragmented_ping_is_closed_with_1002() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let mut ping = frame(0x9, b"x", MASK);
    ping[0] &= 0x7f; // clear FIN
    expect_close_after_sending(server.addr, &ping, CloseCode::Protocol).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_violation_does_not_disturb_other_clients() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut good = server.connect_welcomed("/").await;
    let mut stream = raw_websocket(server.addr).await;
    stream.write_all(&frame(0x1, b"x", None)).await.unwrap();
    let mut bad = as_client(stream).await;
    // The bad client first gets the welcome, then the close.
    expect_close_code(&mut bad, CloseCode::Protocol).await;
    send_text(&mut good, "fine").await;
    assert_eq!(
        next_text(&mut good).await,
        "Hello from server, you said: \"fine\""
    );
    drop((good, bad));
    server.shut_down().await;
}
