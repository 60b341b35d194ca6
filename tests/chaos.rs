//! Chaos: the server frozen under load, and run out of file descriptors. Either way it must
//! come back to serving everyone, lose no accepted message, and close whoever it gives up
//! on with a documented code.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How one client's run went: replies verified in order, and how it ended.
struct Run {
    verified: usize,
    /// The close code, if the server closed the connection.
    closed_with: Option<u16>,
}

/// Echoes numbered messages one at a time until `until`, checking each reply in order.
async fn echo_until(mut client: Client, until: Instant) -> Run {
    let mut verified = 0;
    while Instant::now() < until {
        let text = format!("message {verified}");
        if client.send(Message::text(text.clone())).await.is_err() {
            break;
        }
        let reply = loop {
            match within("a reply", client.next()).await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => break other,
            }
        };
        match reply {
            Some(Ok(Message::Text(reply))) => {
                assert_eq!(reply.as_str(), text, "replies in order, none lost");
                verified += 1;
            }
            Some(Ok(Message::Close(frame))) => {
                return Run {
                    verified,
                    closed_with: Some(frame.map_or(1005, |frame| frame.code.into())),
                };
            }
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(error)) => panic!("the connection failed without a close frame: {error}"),
            None => panic!("the connection ended without a close frame"),
        }
    }
    Run {
        verified,
        closed_with: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_frozen_for_five_seconds_under_load_recovers() {
    // Keepalive as a short-lived test server would have it: a ping after a second of
    // silence, two seconds to answer. The freeze outlasts both.
    let server = ServerProcess::start(&[
        "--mode",
        "raw",
        "--ping-interval",
        "1",
        "--ping-timeout",
        "2",
    ])
    .await;
    let url = format!("ws://{}", server.addr);
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, _) = within("connect", tokio_tungstenite::connect_async(&url))
            .await
            .unwrap();
        clients.push(client);
    }
    let until = Instant::now() + Duration::from_secs(8);
    let runs: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(echo_until(client, until)))
        .collect();
    // The chaos itself: a fixed freeze under load, not a wait for an event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal("STOP");
    tokio::time::sleep(Duration::from_secs(5)).await;
    server.signal("CONT");
    for run in runs {
        let run = within("a client's run", run).await.unwrap();
        assert!(run.verified > 0);
        // A client is either still served or was closed for the ping it could not answer
        // while the server was frozen: never dropped without a word.
        assert!(
            matches!(run.closed_with, None | Some(1008)),
            "closed with {:?}",
            run.closed_with
        );
    }
    let (mut fresh, _) = within(
        "connect after the freeze",
        tokio_tungstenite::connect_async(&url),
    )
    .await
    .unwrap();
    fresh.send(Message::text("after")).await.unwrap();
    assert_eq!(next_text(&mut fresh).await, "after");
    server.assert_no_errors_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_logged_once_and_the_server_serves_again() {
    const LIMIT: u64 = 64;
    let server = ServerProcess::start_with_open_files_limit(&["--mode", "raw"], LIMIT).await;
    // Far more connections than descriptors: the kernel completes their handshakes, but
    // the server cannot accept all of them.
    let mut hogs = Vec::new();
    for _ in 0..LIMIT * 2 {
        hogs.push(
            within("connect", TcpStream::connect(server.addr))
                .await
                .unwrap(),
        );
    }
    eventually("the server to hit the open-files limit", || async {
        server.log().contains("accept failed")
    })
    .await;
    drop(hogs);
    eventually("the server to accept again", || async {
        server.log().contains("accepting again after")
    })
    .await;
    let (mut client, _) = within(
        "connect once descriptors are free",
        tokio_tungstenite::connect_async(format!("ws://{}", server.addr)),
    )
    .await
    .unwrap();
    client.send(Message::text("served")).await.unwrap();
    assert_eq!(next_text(&mut client).await, "served");
    let log = server.log();
    assert_eq!(
        log.matches("accept failed").count(),
        1,
        "one line for the burst, not one per failed accept:\n{log}"
    );
    server.assert_no_errors_logged();
}
