//! `--log-format json`: every line the server writes is one JSON object, whatever clients
//! put in the strings it logs.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Connects to `path`, reads the welcome, and closes with 1000 and `reason`.
async fn join_and_close_with(server: &ServerProcess, path: &str, reason: &str) {
    let (mut client, _) = within(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{}{path}", server.addr)),
    )
    .await
    .unwrap();
    next_text(&mut client).await;
    client
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: reason.into(),
        })))
        .await
        .unwrap();
    let _ = close_frame(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_stay_one_object_per_line_under_hostile_input() {
    let server = ServerProcess::start(&["--mode", "broadcast", "--log-format", "json"]).await;
    let hostile_reason = "bye\"}\n{\"level\":\"ERROR\"}\u{1}\\";
    let path = "/room%22%0A%7B%22x%22:1%7D";
    join_and_close_with(&server, path, hostile_reason).await;
    // A plain request with a hostile target is logged with its answer.
    let answer = raw_http(server.addr, b"GET /x%0D%0A\"y HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(answer.status, 200);
    eventually("the disconnect to be logged", || async {
        server.log().contains("disconnected")
    })
    .await;
    let log = server.log();
    let mut disconnect = None;
    for line in log.lines() {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not one JSON object ({error}): {line:?}"));
        for field in ["ts", "level", "target", "msg"] {
            assert!(object[field].is_string(), "{field} in {line}");
        }
        assert_ne!(object["level"], "ERROR", "{line}");
        if object["msg"].as_str().unwrap().contains("disconnected") {
            disconnect = Some(object);
        }
    }
    let disconnect = disconnect.expect("a disconnect line");
    // The message shows the reason with its control characters escaped (as text logs do);
    // serde_json then escapes the rest for the JSON line.
    let shown = "bye\"}\\n{\"level\":\"ERROR\"}\\u{1}\\";
    let message = disconnect["msg"].as_str().unwrap();
    assert!(message.contains(shown), "{message:?}");
    assert!(!message.contains(hostile_reason), "{message:?}");
    assert_eq!(disconnect["code"], 1000);
    assert!(
        disconnect["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let joined = log
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|object| object["msg"].as_str().unwrap().contains("joined"))
        .expect("a join line");
    assert_eq!(joined["room"], path);
    server.assert_no_errors_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_escape_what_clients_choose_and_bound_its_length() {
    let server = ServerProcess::start(&["--mode", "broadcast"]).await;
    let room = format!("/{}", "r".repeat(600));
    join_and_close_with(&server, &room, "bye\nINFO forged line\u{1b}[31m").await;
    eventually("the disconnect to be logged", || async {
        server.log().contains("disconnected (1000 bye")
    })
    .await;
    let log = server.log();
    assert!(
        !log.lines().any(|line| line.starts_with("INFO forged")),
        "a client wrote a line of its own:\n{log}"
    );
    assert!(log.contains("bye\\nINFO forged line\\u{1b}[31m"), "{log}");
    assert!(!log.contains('\u{1b}'), "a terminal escape reached the log");
    // A 600-character room name is shown cut, in the connect, join and leave lines.
    assert!(!log.contains(&room), "the whole name was logged");
    assert!(log.contains(&format!("{}…", &room[..200])), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_short_connections_cannot_outrun_the_client_log_rate() {
    const CONNECTIONS: usize = 300;
    const RATE: usize = 5;
    let server = ServerProcess::start(&["--client-log-rate", &RATE.to_string()]).await;
    let started = std::time::Instant::now();
    let addr = server.addr;
    let storm: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..CONNECTIONS / 10 {
                    join_and_close_with_addr(addr).await;
                }
            })
        })
        .collect();
    for connections in storm {
        connections.await.unwrap();
    }
    let lines_about_clients = |log: &str| log.matches("] peer 127.0.0.1:").count();
    let left_out = |log: &str| -> usize {
        log.lines()
            .filter_map(|line| line.split("left out ").nth(1))
            .map(|rest| rest.split(' ').next().unwrap().parse::<usize>().unwrap())
            .sum()
    };
    // Each connection makes two lines (connected, disconnected): every one is written or
    // counted in a summary.
    eventually("the summary of what was left out", || async {
        let log = server.log();
        lines_about_clients(&log) + left_out(&log) == 2 * CONNECTIONS
    })
    .await;
    let log = server.log();
    let written = lines_about_clients(&log);
    let allowed = RATE * 10 + RATE * (started.elapsed().as_secs() as usize + 1);
    assert!(written <= allowed, "{written} lines about clients:\n{log}");
    assert!(written >= RATE * 10, "the burst is written");
    assert!(
        log.contains("more than 5 a second (--client-log-rate)"),
        "{log}"
    );
    // The server's own lines are never held back.
    assert!(log.contains("listening on ws://"));
}

/// One short connection: the welcome, then a normal close.
async fn join_and_close_with_addr(addr: std::net::SocketAddr) {
    let mut client = member(addr, "/").await;
    client.close(None).await.unwrap();
    let _ = close_frame(&mut client).await;
}
