//! Quiet echo and raw connections are parked in a small state and woken by the client, the
//! keepalive clock or shutdown, without the client noticing anything but the memory saved:
//! every message is still answered, a message or frame that straddles a quiet spell is
//! never cut, and shutdown still says 1001.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A connection parks between one and two seconds after its last message (see
/// `session::echo::PARK_AFTER`); this is longer than both.
const LONGER_THAN_PARKING_TAKES: Duration = Duration::from_millis(2500);

/// The value of the sample `name` (labels included) in a scrape of `/metrics`.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let response = get(server.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    sample(&String::from_utf8(response.body).unwrap(), name)
}

async fn parked(server: &TestServer) -> f64 {
    metric(server, "wsecho_websocket_connections_parked").await
}

/// A connection upgraded by hand, once the server has parked it (it is its only one).
async fn parked_raw_connection(server: &TestServer) -> TcpStream {
    let stream = raw_websocket(server.addr).await;
    eventually("the new connection parked", || async {
        parked(server).await == 1.0
    })
    .await;
    stream
}

async fn raw_server() -> TestServer {
    TestServer::start(Config {
        mode: Mode::Raw,
        ..Config::default()
    })
    .await
}

/// Writes `bytes` to the server.
async fn write(stream: &mut TcpStream, bytes: &[u8]) {
    within("write", stream.write_all(bytes)).await.unwrap();
}

#[tokio::test]
async fn quiet_connections_park_and_answer_as_before_when_they_speak() {
    let server = TestServer::start(Config::default()).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.connect_welcomed("/").await);
    }
    eventually("all 20 parked once welcomed", || async {
        parked(&server).await == 20.0
    })
    .await;
    for (index, client) in clients.iter_mut().enumerate() {
        let text = format!("message {index}");
        send_text(client, &text).await;
        assert_eq!(
            next_text(client).await,
            format!("Hello from server, you said: \"{text}\"")
        );
    }
    eventually("all 20 parked again once quiet", || async {
        parked(&server).await == 20.0
    })
    .await;
    assert_eq!(
        metric(&server, "wsecho_websocket_connections{mode=\"echo\"}").await,
        20.0,
        "parked sessions are still open sessions"
    );
    server.shut_down_expecting_1001(clients).await;
}

#[tokio::test]
async fn a_frame_cut_by_a_quiet_spell_is_never_parked_on_and_arrives_whole() {
    let server = raw_server().await;
    let mut stream = parked_raw_connection(&server).await;
    let payload = vec![b'x'; 300];
    let whole = frame(0x1, &payload, MASK);
    write(&mut stream, &whole[..3]).await;
    eventually("woken by the first bytes", || async {
        parked(&server).await == 0.0
    })
    .await;
    tokio::time::sleep(LONGER_THAN_PARKING_TAKES).await;
    assert_eq!(parked(&server).await, 0.0, "parked holding part of a frame");
    write(&mut stream, &whole[3..]).await;
    let (opcode, echoed) = read_server_frame(&mut stream).await.expect("the echo");
    assert_eq!((opcode, echoed), (0x1, payload));
    eventually("parked once the frame is answered", || async {
        parked(&server).await == 1.0
    })
    .await;
    server.shut_down().await;
}

#[tokio::test]
async fn a_message_cut_by_a_quiet_spell_is_never_parked_on_and_comes_back_whole() {
    let server = raw_server().await;
    let mut stream = raw_websocket(server.addr).await;
    let mut first = frame(0x1, b"first half, ", MASK);
    first[0] &= 0x7f;
    write(&mut stream, &first).await;
    tokio::time::sleep(LONGER_THAN_PARKING_TAKES).await;
    assert_eq!(
        parked(&server).await,
        0.0,
        "parked holding part of a message"
    );
    write(&mut stream, &frame(0x0, b"second half", MASK)).await;
    let (opcode, echoed) = read_server_frame(&mut stream).await.expect("the echo");
    assert_eq!(opcode, 0x1);
    assert_eq!(echoed, b"first half, second half");
    server.shut_down().await;
}

#[tokio::test]
async fn a_parked_client_that_closes_gets_its_close_answered() {
    let server = raw_server().await;
    let mut stream = parked_raw_connection(&server).await;
    write(&mut stream, &frame(0x8, &1000u16.to_be_bytes(), MASK)).await;
    let (opcode, payload) = read_server_frame(&mut stream).await.expect("a close frame");
    assert_eq!((opcode, payload), (0x8, 1000u16.to_be_bytes().to_vec()));
    wait_for_eof(&mut stream).await;
    eventually("nothing parked or open", || async {
        parked(&server).await == 0.0
            && metric(&server, "wsecho_websocket_connections{mode=\"raw\"}").await == 0.0
    })
    .await;
    server.shut_down().await;
}

/// A new raw connection parks without having been read (raw mode sends no welcome), so a
/// client that has already spoken must not be parked on: a first message in the same write
/// as the upgrade request is answered, a silent connection parks and answers when it
/// speaks, and both end up parked once quiet.
#[tokio::test]
async fn a_message_sent_with_the_upgrade_request_is_answered_before_the_connection_parks() {
    let server = raw_server().await;
    let mut request = UPGRADE_REQUEST.as_bytes().to_vec();
    request.extend(frame(0x1, b"spoke first", MASK));
    let mut eager = TcpStream::connect(server.addr).await.unwrap();
    write(&mut eager, &request).await;
    read_101(&mut eager).await;
    let answer = read_server_frame(&mut eager).await.expect("the echo");
    assert_eq!(answer, (0x1, b"spoke first".to_vec()));
    let mut silent = raw_websocket(server.addr).await;
    eventually("both connections parked", || async {
        parked(&server).await == 2.0
    })
    .await;
    write(&mut silent, &frame(0x2, b"late", MASK)).await;
    let answer = read_server_frame(&mut silent).await.expect("the echo");
    assert_eq!(answer, (0x2, b"late".to_vec()));
    server.shut_down().await;
}

/// A new raw connection parks before it ever has a WebSocket made for it; shutdown still
/// reaches it with a 1001.
#[tokio::test]
async fn a_connection_parked_since_its_upgrade_is_told_of_shutdown() {
    let mut server = raw_server().await;
    let mut stream = parked_raw_connection(&server).await;
    server.begin_shutdown();
    let (opcode, payload) = read_server_frame(&mut stream).await.expect("a close frame");
    assert_eq!(opcode, 0x8);
    assert_eq!(payload[..2], 1001u16.to_be_bytes());
    write(&mut stream, &frame(0x8, &1001u16.to_be_bytes(), MASK)).await;
    server.shut_down().await;
}

/// ... and the keepalive clock wakes it: the ping comes when the interval is up.
#[tokio::test]
async fn a_connection_parked_since_its_upgrade_is_pinged() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        ping_interval: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut stream = parked_raw_connection(&server).await;
    let (opcode, _) = read_server_frame(&mut stream).await.expect("a ping");
    assert_eq!(opcode, 0x9, "the keepalive ping");
    server.shut_down().await;
}
