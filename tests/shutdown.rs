//! Graceful shutdown: every client hears 1001 and `serve` returns.

mod common;

use common::*;
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
    let mut server = TestServer::start(Config {
        close_timeout: std::time::Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    // A bare TCP client that completed the handshake but will never read or answer.
    let _silent = raw_websocket(server.addr).await;
    server.begin_shutdown();
    server.shut_down().await;
}
