//! Faults on demand: what a client asks of its own connection in the URL's query string,
//! observed as a client observes it: the frames, close codes, timings (within generous
//! bounds), a reset, and 400 for what cannot be done.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

const WELCOME: &str = "Welcome to the WebSocket server!";

async fn echo_server() -> TestServer {
    TestServer::start(Config::default()).await
}

/// The first data message, skipping pings.
async fn data(client: &mut Client) -> Message {
    loop {
        match next_message(client).await {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

async fn text(client: &mut Client) -> String {
    match data(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn inspect_describes_the_handshake_first_headers_in_order_with_duplicates() {
    let server = echo_server().await;
    let mut request = server
        .url("/room?inspect&x=%22q%22")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.append("X-Dup", "first".parse().unwrap());
    headers.append("X-Other", "\"quoted\" \\ value".parse().unwrap());
    headers.append("X-Dup", "second".parse().unwrap());
    let (mut client, _) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    let description: serde_json::Value = serde_json::from_str(&text(&mut client).await).unwrap();
    assert_eq!(description["method"], "GET");
    assert_eq!(description["path"], "/room");
    assert_eq!(description["query"], "inspect&x=%22q%22");
    assert_eq!(description["http_version"], "HTTP/1.1");
    assert_eq!(description["peer"]["address"], "127.0.0.1");
    assert_eq!(description["tls"], serde_json::Value::Null);
    let headers: Vec<(String, String)> = description["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // The client library writes repeated headers together; their order is kept.
    let values = |wanted: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.as_str())
            .collect()
    };
    assert_eq!(values("x-dup"), ["first", "second"], "{headers:?}");
    assert_eq!(values("x-other"), ["\"quoted\" \\ value"]);
    assert!(
        headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
    );
    // Then the session as usual.
    assert_eq!(text(&mut client).await, WELCOME);
    send_text(&mut client, "hi").await;
    assert_eq!(
        text(&mut client).await,
        "Hello from server, you said: \"hi\""
    );
}

#[tokio::test]
async fn get_inspect_answers_the_same_description_as_json() {
    let server = echo_server().await;
    let answer = raw_http(
        server.addr,
        b"GET /inspect?a=1 HTTP/1.1\r\nHost: localhost\r\nX-Trace: one\r\nX-Trace: two\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let description: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(description["path"], "/inspect");
    assert_eq!(description["query"], "a=1");
    let traces: Vec<&str> = description["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == "X-Trace")
        .map(|pair| pair[1].as_str().unwrap())
        .collect();
    assert_eq!(traces, ["one", "two"]);
}

#[tokio::test]
async fn status_refuses_the_upgrade_with_that_status_and_what_a_client_needs() {
    let server = echo_server().await;
    for (status, header) in [
        (503, Some(("retry-after", "1"))),
        (429, Some(("retry-after", "1"))),
        (401, Some(("www-authenticate", "Basic realm=\"wsecho\""))),
        (500, None),
        (403, None),
    ] {
        let error = tokio_tungstenite::connect_async(server.url(&format!("/?status={status}")))
            .await
            .expect_err("a refused upgrade");
        let Error::Http(response) = error else {
            panic!("{status}: {error:?}")
        };
        assert_eq!(response.status().as_u16(), status);
        if let Some((name, value)) = header {
            assert_eq!(response.headers()[name], value, "{status}");
        }
        assert!(response.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn malformed_or_out_of_range_values_get_400_naming_the_parameter() {
    let server = echo_server().await;
    for (query, named) in [
        ("status=302", "status"),
        ("close=1005", "close"),
        ("delay_ms=soon", "delay_ms"),
        ("repeat_ms=1", "repeat_ms"),
        ("ping_ms=700000", "ping_ms"),
        ("send_bytes=99999999999", "send_bytes"),
        ("after=2", "close"),
    ] {
        let error = tokio_tungstenite::connect_async(server.url(&format!("/?{query}")))
            .await
            .expect_err(query);
        let Error::Http(response) = error else {
            panic!("{query}: {error:?}")
        };
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
        assert!(body.contains(named), "{query}: {body}");
    }
}

#[tokio::test]
async fn close_comes_with_the_chosen_code_and_reason_after_n_replies() {
    let server = echo_server().await;
    let mut client = server.connect("/?close=4000&reason=bye+now&after=2").await;
    assert_eq!(text(&mut client).await, WELCOME);
    for word in ["one", "two"] {
        send_text(&mut client, word).await;
        assert!(text(&mut client).await.contains(word));
    }
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4000);
    assert_eq!(frame.reason, "bye now");
    // Right after the welcome by default, and 1011 works like any other.
    let mut client = server.connect("/?close=1011").await;
    assert_eq!(text(&mut client).await, WELCOME);
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Error);
}

#[tokio::test]
async fn close_after_ms_comes_on_time() {
    let server = echo_server().await;
    let started = Instant::now();
    let mut client = server.connect("/?close=3001&after_ms=200").await;
    assert_eq!(text(&mut client).await, WELCOME);
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 3001);
    assert!(started.elapsed() >= Duration::from_millis(190));
}

#[tokio::test]
async fn drop_after_resets_the_connection_with_no_close_frame() {
    let server = echo_server().await;
    let mut client = server.connect("/?drop_after=1").await;
    assert_eq!(text(&mut client).await, WELCOME);
    send_text(&mut client, "one").await;
    assert!(text(&mut client).await.contains("one"));
    // A reset, not a close: no close frame, and not even a FIN.
    match within("the reset", client.next()).await {
        Some(Err(Error::Io(error))) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to be reset: {other:?}"),
    }
}

#[tokio::test]
async fn delay_holds_each_reply_and_keeps_their_order() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let mut client = server.connect("/?delay_ms=200").await;
    let started = Instant::now();
    for number in 0..3 {
        send_text(&mut client, &number.to_string()).await;
    }
    for number in 0..3 {
        assert_eq!(text(&mut client).await, number.to_string());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
}

/// A handshake to `target` by hand, returning the bare stream after the 101.
async fn raw_upgrade(addr: std::net::SocketAddr, target: &str) -> TcpStream {
    upgrade_by_hand_to(TcpStream::connect(addr).await.unwrap(), target).await
}

/// One frame from the server: its first byte (FIN and opcode) and its payload.
async fn frame_with_fin(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    wsecho_bench::read_server_frame_with_fin(stream, PATIENCE)
        .await
        .expect("a frame")
}

#[tokio::test]
async fn fragment_sends_each_reply_as_frames_of_at_most_that_many_bytes() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let mut stream = raw_upgrade(server.addr, "/?fragment=4").await;
    stream
        .write_all(&frame(0x1, b"hello world", Some([1, 2, 3, 4])))
        .await
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let (first_byte, payload) = frame_with_fin(&mut stream).await;
        frames.push((first_byte, payload));
        if first_byte & 0x80 != 0 {
            break;
        }
    }
    let opcodes: Vec<u8> = frames.iter().map(|(byte, _)| byte & 0x0f).collect();
    assert_eq!(opcodes, [0x1, 0x0, 0x0]);
    let payloads: Vec<&[u8]> = frames
        .iter()
        .map(|(_, payload)| payload.as_slice())
        .collect();
    assert_eq!(payloads, [&b"hell"[..], b"o wo", b"rld"]);
}

#[tokio::test]
async fn ping_ms_pings_with_a_counter_and_reports_each_round_trip() {
    let server = echo_server().await;
    let mut client = server.connect("/?ping_ms=50&ping_report=1").await;
    assert_eq!(text(&mut client).await, WELCOME);
    let mut pings = Vec::new();
    let mut reports = Vec::new();
    while reports.len() < 2 {
        // tokio-tungstenite answers each ping as it reads it.
        match within("a frame", client.next()).await.unwrap().unwrap() {
            Message::Ping(payload) => pings.push(String::from_utf8_lossy(&payload).into_owned()),
            Message::Text(report) => reports.push(report.to_string()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(&pings[..2], ["1", "2"]);
    let report: serde_json::Value = serde_json::from_str(&reports[0]).unwrap();
    assert_eq!(report["wsecho"], "pong");
    assert_eq!(report["n"], 1);
    assert!(report["rtt_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn repeat_sends_the_message_on_a_timer_without_being_asked() {
    let server = echo_server().await;
    let mut client = server.connect("/?repeat_ms=20&message=tick").await;
    assert_eq!(text(&mut client).await, WELCOME);
    for _ in 0..3 {
        assert_eq!(text(&mut client).await, "tick");
    }
    let mut counter = server.connect("/?repeat_ms=20").await;
    assert_eq!(text(&mut counter).await, WELCOME);
    let tick: serde_json::Value = serde_json::from_str(&text(&mut counter).await).unwrap();
    assert_eq!(tick["wsecho"], "tick");
    assert_eq!(tick["n"], 1);
}

#[tokio::test]
async fn send_bytes_downloads_one_binary_message_of_that_size() {
    let server = echo_server().await;
    for size in [0usize, 100_000, 3 << 20] {
        let mut client = server.connect(&format!("/?send_bytes={size}")).await;
        assert_eq!(text(&mut client).await, WELCOME);
        match data(&mut client).await {
            Message::Binary(payload) => {
                assert_eq!(payload.len(), size);
                assert!(payload.iter().all(|&byte| byte == 0));
            }
            other => panic!("{other:?}"),
        }
        // The session goes on as usual.
        send_text(&mut client, "after").await;
        assert!(text(&mut client).await.contains("after"));
    }
}

#[tokio::test]
async fn stall_stops_reading_for_a_while_after_the_welcome() {
    let server = echo_server().await;
    let mut client = server.connect("/?stall_ms=300").await;
    let started = Instant::now();
    assert_eq!(text(&mut client).await, WELCOME);
    send_text(&mut client, "waiting").await;
    assert!(text(&mut client).await.contains("waiting"));
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn parameters_compose() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let mut stream = raw_upgrade(server.addr, "/?fragment=2&delay_ms=50&close=4000&after=1").await;
    stream
        .write_all(&frame(0x1, b"abc", Some([9, 8, 7, 6])))
        .await
        .unwrap();
    let first = frame_with_fin(&mut stream).await;
    let second = frame_with_fin(&mut stream).await;
    assert_eq!((first.0, first.1.as_slice()), (0x01, &b"ab"[..]));
    assert_eq!((second.0, second.1.as_slice()), (0x80, &b"c"[..]));
    let close = frame_with_fin(&mut stream).await;
    assert_eq!(close.0 & 0x0f, 0x8);
    assert_eq!(u16::from_be_bytes([close.1[0], close.1[1]]), 4000);
}

#[tokio::test]
async fn in_broadcast_mode_a_fault_applies_to_that_member_only() {
    let server = TestServer::with_mode(Mode::Broadcast).await;
    let mut plain = server.connect_welcomed("/room").await;
    let mut faulty = server.connect("/room?close=4001&after=1").await;
    assert_eq!(text(&mut faulty).await, WELCOME);
    eventually("two members", || async {
        get(server.addr, "/stats")
            .await
            .body
            .windows(8)
            .any(|w| w == b"\"/room\":")
    })
    .await;
    send_text(&mut plain, "to all").await;
    assert_eq!(text(&mut plain).await, "to all");
    assert_eq!(text(&mut faulty).await, "to all");
    let frame = close_frame(&mut faulty).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4001);
    send_text(&mut plain, "still here").await;
    assert_eq!(text(&mut plain).await, "still here");
}

#[tokio::test]
async fn no_faults_turns_every_scenario_and_inspect_off() {
    let server = TestServer::start(Config {
        no_faults: true,
        ..Config::default()
    })
    .await;
    let mut client = server.connect("/?close=4000&inspect").await;
    assert_eq!(text(&mut client).await, WELCOME);
    send_text(&mut client, "ordinary").await;
    assert!(text(&mut client).await.contains("ordinary"));
    assert_eq!(get(server.addr, "/inspect").await.status, 404);
}

#[tokio::test]
async fn a_client_that_asks_for_nothing_gets_the_ordinary_session() {
    let server = echo_server().await;
    let mut client = server.connect("/?history_notice=1&v=2").await;
    assert_eq!(text(&mut client).await, WELCOME);
    send_text(&mut client, "plain").await;
    assert_eq!(
        text(&mut client).await,
        "Hello from server, you said: \"plain\""
    );
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn a_sink_is_not_needed_for_close_frames() {
    // The close frame a scenario sends is answered like any other: the client's reply ends
    // the connection cleanly.
    let server = echo_server().await;
    let mut client = server.connect("/?close=1000").await;
    assert_eq!(text(&mut client).await, WELCOME);
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Normal);
    let _ = client.send(Message::Close(None)).await;
}

#[tokio::test]
async fn inspect_withholds_credentials_from_a_page_of_another_site() {
    let server = echo_server().await;
    let ask = |origin: Option<&'static str>| {
        let url = server.url("/?inspect");
        async move {
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("Cookie", "session=secret-value".parse().unwrap());
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert("Origin", origin.parse().unwrap());
            }
            let (mut client, _) = within("connect", tokio_tungstenite::connect_async(request))
                .await
                .unwrap();
            text(&mut client).await
        }
    };
    // Another site's page, through its visitor's browser: the cookie is not read back.
    let cross = ask(Some("https://evil.example")).await;
    assert!(!cross.contains("secret-value"), "{cross}");
    assert!(cross.contains("withheld"), "{cross}");
    // A client that is no page, or this host's own page, sees what it sent.
    assert!(ask(None).await.contains("secret-value"));
    let own = format!("http://{}", server.addr);
    let own: &'static str = Box::leak(own.into_boxed_str());
    assert!(ask(Some(own)).await.contains("secret-value"));
}
