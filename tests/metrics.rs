//! `/metrics`: Prometheus's own checker accepts it, its counters move by exactly the
//! traffic sent, it agrees with `/stats`, and only allowed networks may read it.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn scrape(server: &TestServer) -> String {
    let response = get(server.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(response.body).unwrap()
}

#[tokio::test]
async fn counters_move_by_exactly_the_traffic_sent() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        max_message_size: 1024,
        ..Config::default()
    })
    .await;
    let mut client = server.connect("/").await;
    for text in ["one", "two", "three"] {
        send_text(&mut client, text).await;
        assert_eq!(next_text(&mut client).await, text);
    }
    client.send(Message::binary(vec![7u8; 100])).await.unwrap();
    next_message(&mut client).await;
    // Over the limit: closed with 1009.
    client.send(Message::binary(vec![0u8; 2000])).await.unwrap();
    expect_close_code(&mut client, CloseCode::Size).await;
    drop(client);
    eventually("the session to end", || async {
        sample(
            &scrape(&server).await,
            "wsecho_websocket_connections{mode=\"raw\"}",
        ) == 0.0
    })
    .await;
    let text = scrape(&server).await;
    for (name, value) in [
        ("wsecho_messages_received_total{type=\"text\"}", 3.0),
        ("wsecho_message_bytes_received_total{type=\"text\"}", 11.0),
        ("wsecho_messages_received_total{type=\"binary\"}", 1.0),
        (
            "wsecho_message_bytes_received_total{type=\"binary\"}",
            100.0,
        ),
        ("wsecho_messages_sent_total{type=\"text\"}", 3.0),
        ("wsecho_message_bytes_sent_total{type=\"text\"}", 11.0),
        ("wsecho_messages_sent_total{type=\"binary\"}", 1.0),
        ("wsecho_close_frames_sent_total{code=\"1009\"}", 1.0),
        ("wsecho_http_answers_total{status=\"101\"}", 1.0),
        ("wsecho_handshake_duration_seconds_count", 1.0),
    ] {
        assert_eq!(sample(&text, name), value, "{name}");
    }
    server.shut_down().await;
}

#[tokio::test]
async fn metrics_and_stats_agree_on_connections_and_rooms() {
    let server = TestServer::with_mode(Mode::Broadcast).await;
    let _a = server.connect_welcomed("/lobby").await;
    let _b = server.connect_welcomed("/lobby").await;
    let _c = server.connect_welcomed("/other").await;
    eventually("three members", || async {
        sample(
            &scrape(&server).await,
            "wsecho_websocket_connections{mode=\"broadcast\"}",
        ) == 3.0
    })
    .await;
    let stats: serde_json::Value =
        serde_json::from_slice(&get(server.addr, "/stats").await.body).unwrap();
    let text = scrape(&server).await;
    // Each request counts itself: both see the three clients plus one.
    assert_eq!(stats["connections"], 4);
    assert_eq!(sample(&text, "wsecho_connections"), 4.0);
    assert_eq!(sample(&text, "wsecho_rooms"), 2.0);
    assert_eq!(sample(&text, "wsecho_largest_room_members"), 2.0);
    drop((_a, _b, _c));
    server.shut_down().await;
}

#[tokio::test]
async fn only_allowed_networks_may_read_metrics() {
    let server = TestServer::start(Config {
        metrics_allow: vec![wsecho::parse_network("10.0.0.0/8").unwrap()],
        ..Config::default()
    })
    .await;
    let response = get(server.addr, "/metrics").await;
    assert_eq!(response.status, 403);
    assert!(!String::from_utf8_lossy(&response.body).contains("wsecho_"));
    server.shut_down().await;
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let Some(promtool) = required_tool("promtool", "apt-get install prometheus") else {
        return;
    };
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    send_text(&mut client, "counted").await;
    next_text(&mut client).await;
    drop(client);
    let text = scrape(&server).await;
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    server.shut_down().await;
}
