//! Graceful shutdown: every client hears 1001 and `serve` returns.

mod common;

use common::*;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_1001_to_every_client_and_serve_returns() {
    let mut server = TestServer::with_mode(Mode::Echo).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.connect_welcomed("/").await);
    }
    server.begin_shutdown();
    for client in &mut clients {
        let frame = expect_close_code(client, CloseCode::Away).await;
        assert!(!frame.reason.is_empty());
        // The client's library answered the close; the server then ends the stream.
        assert!(
            within("the end of the stream", client.next())
                .await
                .is_none()
        );
    }
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_completes_even_when_a_client_never_answers_the_close() {
    let close_timeout = Duration::from_millis(300);
    let mut server = TestServer::start(Config {
        close_timeout,
        ..Config::default()
    })
    .await;
    // A bare TCP client that completed the handshake and will never answer the close.
    let mut silent = raw_websocket(server.addr).await;
    let (opcode, welcome) = read_server_frame(&mut silent).await.expect("the welcome");
    assert_eq!(
        (opcode, welcome.as_slice()),
        (1, &b"Welcome to the WebSocket server!"[..])
    );
    let started = Instant::now();
    server.begin_shutdown();
    let (opcode, payload) = read_server_frame(&mut silent).await.expect("a close frame");
    assert_eq!(opcode, 8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
    server.shut_down().await;
    // The server gave up on the silent client after its close timeout, not after some
    // longer wait (generous margin for a loaded machine, far below the test's patience).
    let waited = started.elapsed();
    assert!(
        waited < close_timeout + Duration::from_secs(8),
        "shutdown took {waited:?} with a {close_timeout:?} close timeout"
    );
}
