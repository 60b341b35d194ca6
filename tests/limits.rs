//! Limits and timeouts: what a broken, slow or hostile client gets, and proof that it cannot
//! hurt the server or anyone else.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

fn quick_timeouts() -> Config {
    Config {
        handshake_timeout: Duration::from_millis(500),
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(500),
        close_timeout: Duration::from_millis(500),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_closed_with_1009() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        max_message_size: 1024,
        ..Config::default()
    })
    .await;
    let mut client = server.connect("/").await;
    send_text(&mut client, &"x".repeat(1024)).await;
    assert_eq!(
        next_text(&mut client).await.len(),
        1024,
        "at the limit is fine"
    );
    within("send", client.send(Message::binary(vec![0u8; 1025])))
        .await
        .unwrap();
    expect_close_code(&mut client, CloseCode::Size).await;
    drop(client);
    server.shut_down().await;
}

/// The payload of a refused message is still arriving when the server closes. Had it closed
/// the socket with those bytes unread, the kernel would answer with a reset, and a browser
/// that then writes its close reply reports 1006 instead of 1009. The server drains instead:
/// the client's reply goes through and the connection ends with a clean end-of-stream.
#[tokio::test]
async fn a_refused_message_still_arriving_does_not_turn_the_close_into_a_reset() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        max_message_size: 1024,
        ..quick_timeouts()
    })
    .await;
    let mut stream = raw_websocket(server.addr).await;
    let message = frame(0x2, &vec![7u8; 256 * 1024], Some([1, 2, 3, 4]));
    within("send the oversized message", stream.write_all(&message))
        .await
        .unwrap();
    let (opcode, payload) = read_server_frame(&mut stream).await.expect("a close frame");
    assert_eq!(opcode, 0x8);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    within(
        "the close reply",
        stream.write_all(&frame(0x8, &1009u16.to_be_bytes(), Some([1, 2, 3, 4]))),
    )
    .await
    .expect("the server still takes the client's close reply");
    let mut rest = [0u8; 64];
    let end = within("the end of the stream", stream.read(&mut rest)).await;
    assert!(
        matches!(end, Ok(0)),
        "a clean end-of-stream, not a reset: {end:?}"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_fragmented_message_over_the_size_limit_is_closed_with_1009() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        max_message_size: 1024,
        ..Config::default()
    })
    .await;
    // Three 600-byte fragments: each fits, the message does not.
    let mut first = frame(0x2, &[7u8; 600], MASK);
    first[0] &= 0x7f;
    let mut middle = frame(0x0, &[7u8; 600], MASK);
    middle[0] &= 0x7f;
    let last = frame(0x0, &[7u8; 600], MASK);
    let message = [first, middle, last].concat();
    expect_close_after_sending(server.addr, &message, CloseCode::Size).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_half_sent_handshake_gets_408_after_the_timeout() {
    let server = TestServer::start(quick_timeouts()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: webs")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    within("the server to give up", stream.read_to_end(&mut response))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(
        response.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        ..quick_timeouts()
    })
    .await;
    let mut stream = raw_websocket(server.addr).await;
    // Never answer: the server must ping, then give up with a close frame and hang up.
    let (opcode, _) = read_server_frame(&mut stream).await.expect("a ping");
    assert_eq!(opcode, 0x9, "expected a ping frame");
    let (opcode, payload) = read_server_frame(&mut stream).await.expect("a close frame");
    assert_eq!(opcode, 0x8, "expected a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
    wait_for_eof(&mut stream).await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_client_sending_a_large_message_slowly_is_not_timed_out_while_bytes_arrive() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        ..quick_timeouts()
    })
    .await;
    let mut stream = raw_websocket(server.addr).await;
    // One 64 KiB binary frame, masked with a zero key, trickled in over about 2.5 s: more
    // than ping interval + ping timeout (0.8 s), during which a ping cannot be answered
    // (a control frame cannot go inside a frame).
    let size = 64 * 1024;
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(size as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    stream.write_all(&frame).await.unwrap();
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    for chunk in payload.chunks(size / 25) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(chunk).await.unwrap();
    }
    // Pings may have come meanwhile; then the echo, whole.
    loop {
        let (opcode, echoed) = read_server_frame(&mut stream).await.expect("a frame");
        match opcode {
            0x9 => continue,
            0x2 => {
                assert_eq!(echoed, payload);
                break;
            }
            other => panic!("expected the echo, got opcode {other:#x}: {echoed:?}"),
        }
    }
    server.shut_down().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        ..quick_timeouts()
    })
    .await;
    // The client library answers pings whenever it reads, which next_message does.
    let mut client = server.connect("/").await;
    let until = tokio::time::Instant::now() + Duration::from_millis(2000);
    while tokio::time::Instant::now() < until {
        // Wait for the next ping (the server only pings after 300 ms of silence).
        match within("a ping", futures_util::StreamExt::next(&mut client))
            .await
            .unwrap()
            .unwrap()
        {
            Message::Ping(_) => {}
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    send_text(&mut client, "still connected").await;
    assert_eq!(next_text(&mut client).await, "still connected");
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn a_client_over_the_connection_limit_gets_503_and_a_freed_slot_is_reused() {
    let server = TestServer::start(Config {
        max_connections: 2,
        ..Config::default()
    })
    .await;
    let mut first = server.connect_welcomed("/").await;
    let _second = server.connect_welcomed("/").await;
    match within(
        "the refusal",
        tokio_tungstenite::connect_async(server.url("/")),
    )
    .await
    {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body =
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("too many connections"), "{body}");
        }
        Err(other) => panic!("expected a 503, got {other}"),
        Ok(_) => panic!("a third connection was accepted over a limit of two"),
    }
    within("close", first.close(None)).await.unwrap();
    // The server answers the close and hangs up.
    while let Some(Ok(_)) = within(
        "the end of the stream",
        futures_util::StreamExt::next(&mut first),
    )
    .await
    {}
    drop(first);
    // The slot is released just after the socket closes; retry until it is.
    eventually("a freed slot", || async {
        tokio_tungstenite::connect_async(server.url("/"))
            .await
            .is_ok()
    })
    .await;
    drop(_second);
    server.shut_down().await;
}

#[tokio::test]
async fn only_listed_origins_may_open_a_websocket() {
    let server = TestServer::start(Config {
        allowed_origins: vec!["http://good.example".into()],
        ..Config::default()
    })
    .await;
    let with_origin = |origin: &str| {
        UPGRADE_REQUEST.replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\n\r\n"))
    };
    let refused = raw_http(server.addr, with_origin("http://evil.example").as_bytes()).await;
    assert_eq!(refused.status, 403);
    let mut accepted = TcpStream::connect(server.addr).await.unwrap();
    accepted
        .write_all(with_origin("http://good.example").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    within("the 101", accepted.read_exact(&mut head))
        .await
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    drop(accepted);
    server.shut_down().await;
}

#[tokio::test]
async fn a_client_without_an_origin_header_passes_the_origin_list() {
    // Only browsers send Origin; command-line clients and libraries must still connect.
    let server = TestServer::start(Config {
        allowed_origins: vec!["http://good.example".into()],
        ..Config::default()
    })
    .await;
    assert!(!UPGRADE_REQUEST.contains("Origin"));
    let mut client = server.connect_welcomed("/").await;
    send_text(&mut client, "no origin").await;
    assert_eq!(
        next_text(&mut client).await,
        "Hello from server, you said: \"no origin\""
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_100_kb_header_gets_431() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let (mut reader, mut writer) = stream.split();
    let mut response = Vec::new();
    let (_, read) = within("the 431", async {
        tokio::join!(
            // The server may stop reading once it has seen enough; a failed write is fine.
            async { writer.write_all(request.as_bytes()).await.ok() },
            reader.read_to_end(&mut response)
        )
    })
    .await;
    read.ok();
    assert!(
        response.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    server.shut_down().await;
}

#[tokio::test]
async fn garbage_after_the_handshake_is_closed_with_1002() {
    let server = TestServer::with_mode(Mode::Raw).await;
    // Plain text read as frame headers: whatever they decode to, they are not valid client
    // frames (unmasked, reserved bits, ...), once enough bytes arrive to complete one.
    let garbage = "hello, this is not a WebSocket frame. ".repeat(20);
    expect_close_after_sending(server.addr, garbage.as_bytes(), CloseCode::Protocol).await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_vanishing_clients_leave_no_descriptor_or_task_behind() {
    // This test process holds the other end of every connection.
    wsecho::raise_open_files_limit(2000).unwrap();
    let server = ServerProcess::start(&["--mode", "raw", "--close-timeout", "1"]).await;
    let baseline = server.open_fds();
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(
            within(
                "connect",
                tokio_tungstenite::connect_async(format!("ws://{}", server.addr)),
            )
            .await
            .unwrap()
            .0,
        );
    }
    // Read once right after the last 101, the count came up short in one CI run and once in
    // 25 local runs after connections began to be handed between worker threads; the cause
    // is not pinned down, so this waits for the count instead of reading it once.
    eventually("a descriptor for every connection", || async {
        server.open_fds() >= baseline + 1000
    })
    .await;
    for (n, mut client) in clients.into_iter().enumerate() {
        if n % 2 == 0 {
            within("close", client.close(None)).await.unwrap();
        }
        // Odd ones: the socket is just dropped.
    }
    eventually("every descriptor to be released", || async {
        server.open_fds() <= baseline
    })
    .await;
    // Each descriptor is released when its connection's task ends, so no task is left either;
    // and the server still serves.
    let mut client = within(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{}", server.addr)),
    )
    .await
    .unwrap()
    .0;
    send_text(&mut client, "alive").await;
    assert_eq!(next_text(&mut client).await, "alive");
    server.assert_no_errors_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_memory_stays_bounded() {
    let server = ServerProcess::start(&[
        "--mode",
        "raw",
        "--max-message-size",
        "1MiB",
        "--ping-timeout",
        "1",
    ])
    .await;
    let mut reader_client = within(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{}", server.addr)),
    )
    .await
    .unwrap()
    .0;
    let mut flooder = raw_websocket(server.addr).await;
    let message = frame(0x2, &vec![0xabu8; 1 << 20], MASK);
    let mut sent = 0usize;
    let mut peak_rss = 0;
    // Send up to 100 MB without ever reading the echoes. The server must give up on this
    // client (its writes fail) long before that.
    let dropped = within("the server to drop the flooder", async {
        while sent < 100 << 20 {
            if flooder.write_all(&message).await.is_err() {
                return true;
            }
            sent += message.len();
            peak_rss = peak_rss.max(server.rss());
        }
        false
    })
    .await;
    assert!(
        dropped,
        "the server accepted 100 MB from a client that never reads"
    );
    assert!(
        peak_rss < 64 << 20,
        "server RSS reached {} MB",
        peak_rss >> 20
    );
    // Everyone else is still served.
    send_text(&mut reader_client, "unaffected").await;
    assert_eq!(next_text(&mut reader_client).await, "unaffected");
    // The log is read from the server's stderr by another thread: wait for the line.
    eventually("the log to say why the flooder was dropped", || async {
        server.log().contains("not reading")
    })
    .await;
    server.assert_no_errors_logged();
}

/// Echo mode pushes back on a client that sends but does not read (the server stops reading
/// it). When the server finally drops it, the client still gets a close frame saying why,
/// behind the replies it had not read, if it reads again within the close timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dropped_for_not_reading_is_told_why_with_1008() {
    let server = ServerProcess::start(&[
        "--mode",
        "raw",
        "--ping-timeout",
        "1",
        "--close-timeout",
        "60",
    ])
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = upgrade_by_hand(socket.connect(server.addr).await.unwrap()).await;
    let (mut reader, mut writer) = stream.into_split();
    // Pipeline echoes without reading them, until the socket stops taking more (bounded).
    let sending = tokio::spawn(async move {
        let message = frame(0x2, &[0x5au8; 1024], MASK);
        for _ in 0..65_536 {
            if writer.write_all(&message).await.is_err() {
                break;
            }
        }
        writer
    });
    eventually("the log to say the client is not reading", || async {
        server.log().contains("not reading what it is sent")
    })
    .await;
    let close = loop {
        match read_server_frame(&mut reader).await {
            Some((0x8, payload)) => break payload,
            Some((0x2, payload)) => assert_eq!(payload, vec![0x5au8; 1024]),
            other => panic!("expected echoes and then a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1008);
    assert!(String::from_utf8_lossy(&close[2..]).contains("not reading"));
    sending.abort();
    server.assert_no_errors_logged();
}

/// A WebSocket handshake from the local address `from` (any 127.x.y.z works on loopback).
async fn connect_from(
    server: &TestServer,
    from: &str,
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = within("connect", socket.connect(server.addr))
        .await
        .unwrap();
    within(
        "the handshake",
        tokio_tungstenite::client_async(
            server.url("/"),
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        ),
    )
    .await
    .map(|(client, _)| client)
}

#[tokio::test]
async fn one_address_over_its_share_gets_429_while_others_connect() {
    let server = TestServer::start(Config {
        max_connections_per_ip: 2,
        ..Config::default()
    })
    .await;
    let mut first = connect_from(&server, "127.0.0.1").await.unwrap();
    let _second = connect_from(&server, "127.0.0.1").await.unwrap();
    match connect_from(&server, "127.0.0.1").await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        }
        Err(other) => panic!("expected a 429, got {other}"),
        Ok(_) => panic!("a third connection from one address was accepted over a limit of 2"),
    }
    let mut other_host = connect_from(&server, "127.0.0.2")
        .await
        .expect("another address is counted apart");
    assert_eq!(
        next_text(&mut other_host).await,
        "Welcome to the WebSocket server!"
    );
    // The place frees when a client leaves.
    within("close", first.close(None)).await.unwrap();
    while let Some(Ok(_)) = within(
        "the end of the stream",
        futures_util::StreamExt::next(&mut first),
    )
    .await
    {}
    eventually("a freed place for 127.0.0.1", || async {
        connect_from(&server, "127.0.0.1").await.is_ok()
    })
    .await;
    drop((_second, other_host));
    server.shut_down().await;
}
