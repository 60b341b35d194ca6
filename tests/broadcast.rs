//! Broadcast mode: rooms, fan-out, ordering, and slow consumers.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn broadcast_server() -> TestServer {
    TestServer::with_mode(Mode::Broadcast).await
}

/// The server's `/stats` as `(connections, rooms)`.
async fn stats(server: &TestServer) -> (usize, HashMap<String, usize>) {
    let response = get(server.addr, "/stats").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let stats: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    let connections = stats["connections"].as_u64().expect("a connection count") as usize;
    let rooms = stats["rooms"]
        .as_object()
        .expect("a rooms object")
        .iter()
        .map(|(name, size)| (name.clone(), size.as_u64().expect("a room size") as usize))
        .collect();
    (connections, rooms)
}

#[tokio::test]
async fn a_message_reaches_every_client_in_the_room_including_the_sender() {
    let server = broadcast_server().await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(server.connect_welcomed("/").await);
    }
    // Everyone must be in the room before the message goes out.
    eventually("five members", || async {
        stats(&server).await.1.get("/") == Some(&5)
    })
    .await;
    send_text(&mut clients[2], "hello, room ✓").await;
    for client in &mut clients {
        assert_eq!(next_text(client).await, "hello, room ✓");
    }
    within("send", clients[0].send(Message::binary(vec![1u8, 2, 3])))
        .await
        .unwrap();
    for client in &mut clients {
        assert_eq!(next_message(client).await, Message::binary(vec![1u8, 2, 3]));
    }
    drop(clients);
    server.shut_down().await;
}

#[tokio::test]
async fn messages_never_cross_rooms() {
    let server = broadcast_server().await;
    let mut lobby = server.connect_welcomed("/lobby").await;
    let mut team = server.connect_welcomed("/team-a").await;
    eventually("both rooms", || async { stats(&server).await.1.len() == 2 }).await;
    send_text(&mut lobby, "for the lobby").await;
    send_text(&mut team, "for team a").await;
    assert_eq!(next_text(&mut lobby).await, "for the lobby");
    assert_eq!(next_text(&mut team).await, "for team a");
    // Each room's own message arrived; had the other's crossed over, it would come next.
    send_text(&mut lobby, "second").await;
    assert_eq!(next_text(&mut lobby).await, "second");
    send_text(&mut team, "second").await;
    assert_eq!(next_text(&mut team).await, "second");
    drop((lobby, team));
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_receiver_sees_each_senders_messages_in_order() {
    const PER_SENDER: usize = 1000;
    // A queue longer than the whole test, so no receiver can be evicted however the
    // scheduler runs: this test is about order only.
    let server = TestServer::start(Config {
        mode: Mode::Broadcast,
        max_queue: 4 * PER_SENDER,
        ..Config::default()
    })
    .await;
    let mut senders = Vec::new();
    for _ in 0..3 {
        senders.push(server.connect_welcomed("/chat").await);
    }
    let mut listeners = Vec::new();
    for _ in 0..2 {
        listeners.push(server.connect_welcomed("/chat").await);
    }
    eventually("five members", || async {
        stats(&server).await.1.get("/chat") == Some(&5)
    })
    .await;

    // Each receiver collects every message and checks each sender's sequence increases.
    let receive_all = |mut stream: futures_util::stream::SplitStream<Client>| async move {
        let mut last_seen: HashMap<String, i64> = HashMap::new();
        for _ in 0..3 * PER_SENDER {
            let text = match within("a broadcast", stream.next()).await.unwrap().unwrap() {
                Message::Text(text) => text.to_string(),
                other => panic!("unexpected {other:?}"),
            };
            let (sender, sequence) = text.split_once(':').unwrap();
            let sequence: i64 = sequence.parse().unwrap();
            let last = last_seen.entry(sender.to_owned()).or_insert(-1);
            assert_eq!(sequence, *last + 1, "{sender}'s messages out of order");
            *last = sequence;
        }
        last_seen
    };
    let mut tasks = Vec::new();
    for (n, sender) in senders.into_iter().enumerate() {
        let (mut sink, stream) = sender.split();
        tasks.push(tokio::spawn(receive_all(stream)));
        tokio::spawn(async move {
            for sequence in 0..PER_SENDER {
                sink.feed(Message::text(format!("sender{n}:{sequence}")))
                    .await
                    .unwrap();
            }
            sink.flush().await.unwrap();
            // Keep the connection open until the test ends.
            std::future::pending::<()>().await;
        });
    }
    for listener in listeners {
        tasks.push(tokio::spawn(receive_all(listener.split().1)));
    }
    for task in tasks {
        let last_seen = within("a receiver to get everything", task).await.unwrap();
        assert_eq!(last_seen.len(), 3);
        assert!(
            last_seen
                .values()
                .all(|&last| last == PER_SENDER as i64 - 1)
        );
    }
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_reads_is_closed_with_1013_while_others_get_everything() {
    // 600 x 64 KiB is several times what the kernel buffers for a socket that is not read.
    const MESSAGES: usize = 600;
    let server = TestServer::start(Config {
        mode: Mode::Broadcast,
        max_queue: 8,
        close_timeout: Duration::from_secs(10),
        ..Config::default()
    })
    .await;
    let mut reader = server.connect_welcomed("/").await;
    let mut stalled = server.connect_welcomed("/").await;

    let payload = vec![0x5au8; 64 * 1024];
    // The sender stays at most WINDOW messages ahead of the reader, well inside the queue, and
    // reads its own copy of each message before sending the next, so neither of them can be
    // the one that falls behind.
    const WINDOW: u64 = 4;
    let (progress, mut reader_progress) = tokio::sync::watch::channel(0u64);
    let mut sender = server.connect_welcomed("/").await;
    eventually("three members", || async {
        stats(&server).await.1.get("/") == Some(&3)
    })
    .await;
    let sending = tokio::spawn(async move {
        for n in 0..MESSAGES as u64 {
            reader_progress
                .wait_for(|&read| n < read + WINDOW)
                .await
                .unwrap();
            let mut message = payload.clone();
            message[..8].copy_from_slice(&n.to_be_bytes());
            sender.send(Message::binary(message.clone())).await.unwrap();
            assert_eq!(next_message(&mut sender).await, Message::binary(message));
        }
        sender
    });
    for n in 0..MESSAGES {
        match next_message(&mut reader).await {
            Message::Binary(bytes) => {
                assert_eq!(bytes.len(), 64 * 1024);
                assert_eq!(u64::from_be_bytes(bytes[..8].try_into().unwrap()), n as u64);
            }
            other => panic!("unexpected {other:?}"),
        }
        progress.send_replace(n as u64 + 1);
    }
    let _sender = within("the sender to finish", sending).await.unwrap();
    // Now the stalled client reads: some of the messages, then the close frame.
    let frame = expect_close_code(&mut stalled, CloseCode::Again).await;
    assert!(frame.reason.contains("too slow"), "{}", frame.reason);
    eventually("the stalled client to leave", || async {
        stats(&server).await.1.get("/") == Some(&2)
    })
    .await;
    drop((reader, stalled, _sender));
    server.shut_down().await;
}

#[tokio::test]
async fn rooms_count_joins_and_leaves_and_disappear_when_empty() {
    let server = broadcast_server().await;
    let first = server.connect_welcomed("/lobby").await;
    let mut second = server.connect_welcomed("/lobby").await;
    let other = server.connect_welcomed("/other").await;
    eventually("two rooms of 2 and 1", || async {
        let rooms = stats(&server).await.1;
        rooms.get("/lobby") == Some(&2) && rooms.get("/other") == Some(&1)
    })
    .await;
    within("close", second.close(None)).await.unwrap();
    drop(second);
    eventually("the lobby to shrink to 1", || async {
        stats(&server).await.1.get("/lobby") == Some(&1)
    })
    .await;
    drop(first);
    drop(other);
    eventually("both rooms to disappear", || async {
        let (connections, rooms) = stats(&server).await;
        // The /stats request itself holds a slot while it is answered.
        rooms.is_empty() && connections == 1
    })
    .await;
    server.shut_down().await;
}

#[tokio::test]
async fn shutdown_sends_1001_to_everyone_in_every_room() {
    let server = broadcast_server().await;
    let mut clients = Vec::new();
    for room in ["/", "/a", "/b", "/a"] {
        clients.push(server.connect_welcomed(room).await);
    }
    server.shut_down_expecting_1001(clients).await;
}

#[tokio::test]
async fn every_room_path_serves_the_page() {
    let server = broadcast_server().await;
    let response = get(server.addr, "/team-a").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, wsecho::CLIENT_HTML.as_bytes());
    server.shut_down().await;
}

/// A text message of `size` bytes that starts with its sequence number.
fn numbered(sequence: usize, size: usize) -> String {
    let mut text = format!("{sequence:08} ");
    text.extend(std::iter::repeat_n('x', size - text.len()));
    text
}

fn sequence_of(text: &str) -> usize {
    text[..8].parse().expect("a numbered message")
}

/// The room must keep moving when one member blocks in `send` while its own socket is full
/// in both directions (it reads only between sends, like a single-threaded client library),
/// and another member never reads at all: the never-reader is evicted with 1013, everyone
/// else gets every message in order, and nothing waits for a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_blocked_in_send_while_its_socket_is_full_does_not_stall_the_room() {
    const MESSAGES: usize = 2000;
    const SIZE: usize = 20_000;
    // The sender reads only between sends, and only once this many of its own messages wait
    // unread; then it reads them down to that many. It never reads while blocked in `send`.
    // (A count well under --max-queue: a client that keeps up in its own way is no slow
    // consumer; and far above what the kernel's buffers hold, so the sender's socket does
    // fill in both directions.)
    const MAX_UNREAD: usize = 500;
    let server = TestServer::start(Config {
        mode: Mode::Broadcast,
        // Long enough that a stall shows as this test's own timeout, not as a drop.
        ping_timeout: Duration::from_secs(120),
        // The never-reader reads at the end; its 1013 must still be waiting then.
        close_timeout: Duration::from_secs(120),
        ..Config::default()
    })
    .await;
    let mut never_reads = server.connect_with_buffers("/busy", Some(4096), None).await;
    let mut reads_all = server.connect_welcomed("/busy").await;
    // Small buffers both ways, so that the sender's socket fills in both directions within
    // a few messages whenever either side stops reading.
    let mut sender = server
        .connect_with_buffers("/busy", Some(64 * 1024), Some(64 * 1024))
        .await;
    assert_eq!(
        next_text(&mut sender).await,
        "Welcome to the WebSocket server!"
    );
    eventually("three members in /busy", || async {
        stats(&server).await.1.get("/busy") == Some(&3)
    })
    .await;

    let reader = tokio::spawn(async move {
        for expected in 0..MESSAGES {
            let text = next_text(&mut reads_all).await;
            assert_eq!(sequence_of(&text), expected);
            assert_eq!(text.len(), SIZE);
        }
        reads_all
    });
    let mut own_copies = 0;
    let take_copy = |message: Message, own_copies: &mut usize| {
        let Message::Text(text) = message else {
            panic!("expected text, got {message:?}")
        };
        assert_eq!(sequence_of(&text), *own_copies, "own copies in order");
        *own_copies += 1;
    };
    for sequence in 0..MESSAGES {
        within(
            "the sender's send (the room stalled)",
            sender.send(Message::text(numbered(sequence, SIZE))),
        )
        .await
        .unwrap();
        while sequence + 1 - own_copies > MAX_UNREAD {
            take_copy(next_message(&mut sender).await, &mut own_copies);
        }
    }
    within("the reader to get every message", reader)
        .await
        .unwrap();
    while own_copies < MESSAGES {
        take_copy(next_message(&mut sender).await, &mut own_copies);
    }
    expect_close_code(&mut never_reads, CloseCode::Again).await;
    // Send the answer to the close that the client library queued on reading it.
    let _ = within("the close reply", never_reads.close(None)).await;
    // The sender was not disconnected: it still talks to the room.
    sender
        .send(Message::text(numbered(MESSAGES, 16)))
        .await
        .unwrap();
    assert_eq!(sequence_of(&next_text(&mut sender).await), MESSAGES);
    drop((sender, never_reads));
    server.shut_down().await;
}

#[tokio::test]
async fn a_joining_member_that_asks_gets_a_notice_then_the_rooms_last_messages_then_live_ones() {
    let server = TestServer::start(Config {
        mode: Mode::Broadcast,
        history: 3,
        ..Config::default()
    })
    .await;
    let mut first = server.connect_welcomed("/chat").await;
    for number in 1..=5 {
        send_text(&mut first, &format!("message {number}")).await;
        assert_eq!(next_text(&mut first).await, format!("message {number}"));
    }
    // Another room's history is its own.
    let mut elsewhere = server.connect_welcomed("/other").await;
    send_text(&mut elsewhere, "elsewhere").await;
    assert_eq!(next_text(&mut elsewhere).await, "elsewhere");

    let mut joiner = server.connect_welcomed("/chat?history_notice=1").await;
    assert_eq!(
        next_text(&mut joiner).await,
        r#"{"wsecho":"history","count":3}"#
    );
    for number in 3..=5 {
        assert_eq!(next_text(&mut joiner).await, format!("message {number}"));
    }
    send_text(&mut first, "message 6").await;
    assert_eq!(next_text(&mut joiner).await, "message 6");
    assert_eq!(next_text(&mut first).await, "message 6");

    // Binary messages are replayed as they were sent.
    within("send", first.send(Message::binary(vec![0u8, 255])))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut first).await,
        Message::binary(vec![0u8, 255])
    );
    let mut late = server.connect_welcomed("/chat?history_notice=1").await;
    assert_eq!(
        next_text(&mut late).await,
        r#"{"wsecho":"history","count":3}"#
    );
    assert_eq!(next_text(&mut late).await, "message 5");
    assert_eq!(next_text(&mut late).await, "message 6");
    assert_eq!(
        next_message(&mut late).await,
        Message::binary(vec![0u8, 255])
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_joining_member_gets_the_history_as_plain_messages_unless_it_asks_for_the_notice() {
    let server = TestServer::start(Config {
        mode: Mode::Broadcast,
        history: 2,
        ..Config::default()
    })
    .await;
    let mut first = server.connect_welcomed("/chat").await;
    for text in ["one", "two"] {
        send_text(&mut first, text).await;
        assert_eq!(next_text(&mut first).await, text);
    }
    // As a chat client that shows every message would see it: the history, nothing else.
    for path in ["/chat", "/chat?history_notice=0", "/chat?other=1"] {
        let mut joiner = server.connect_welcomed(path).await;
        assert_eq!(next_text(&mut joiner).await, "one", "{path}");
        assert_eq!(next_text(&mut joiner).await, "two", "{path}");
        send_text(&mut first, "live").await;
        assert_eq!(next_text(&mut first).await, "live");
        assert_eq!(next_text(&mut joiner).await, "live", "{path}");
        joiner.close(None).await.unwrap();
        // The room's history now ends with "live": start it again for the next joiner.
        for text in ["one", "two"] {
            send_text(&mut first, text).await;
            assert_eq!(next_text(&mut first).await, text);
        }
    }
    server.shut_down().await;
}

#[tokio::test]
async fn without_history_or_in_an_empty_room_a_joiner_gets_only_live_messages() {
    for history in [0, 5] {
        let server = TestServer::start(Config {
            mode: Mode::Broadcast,
            history,
            ..Config::default()
        })
        .await;
        let mut first = server.connect_welcomed("/chat").await;
        send_text(&mut first, "before").await;
        assert_eq!(next_text(&mut first).await, "before");
        if history > 0 {
            // The room empties, and forgets.
            first.close(None).await.unwrap();
            eventually("the room to empty", || async {
                !stats(&server).await.1.contains_key("/chat")
            })
            .await;
            first = server.connect_welcomed("/chat").await;
        }
        let mut joiner = server.connect_welcomed("/chat").await;
        eventually("two members", || async {
            stats(&server).await.1.get("/chat") == Some(&2)
        })
        .await;
        send_text(&mut first, "after").await;
        assert_eq!(next_text(&mut joiner).await, "after", "history {history}");
        server.shut_down().await;
    }
}

/// A member of a room that never goes quiet is woken for nearly every delivery, and still
/// gets everything else it waits on: the keepalive's pings, its own messages read and sent
/// to the room, and the shutdown's 1001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_room_that_never_goes_quiet_is_pinged_heard_and_told_of_shutdown() {
    let mut server = TestServer::start(Config {
        mode: Mode::Broadcast,
        ping_interval: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut member = server.connect_welcomed("/busy").await;
    let mut sender = server.connect_welcomed("/busy").await;
    eventually("two members in /busy", || async {
        stats(&server).await.1.get("/busy") == Some(&2)
    })
    .await;

    // One message at a time, the next as soon as the sender's own copy is back, until the
    // server closes; the member's words are passed on when the sender sees them.
    let (heard, mut member_heard) = tokio::sync::mpsc::unbounded_channel();
    let flood = tokio::spawn(async move {
        let mut sequence = 0usize;
        loop {
            if sender
                .send(Message::text(format!("flood {sequence}")))
                .await
                .is_err()
            {
                return close_frame(&mut sender).await;
            }
            loop {
                match within("the sender's own copy", sender.next()).await {
                    Some(Ok(Message::Text(text))) if text.starts_with("flood ") => {
                        assert_eq!(text.as_str(), format!("flood {sequence}"));
                        break;
                    }
                    Some(Ok(Message::Text(text))) => heard.send(text.to_string()).unwrap(),
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => panic!("the sender's connection failed: {error}"),
                    None => return None,
                }
            }
            sequence += 1;
        }
    });

    // Pinged in the middle of the flood: messages before the ping and after it.
    within("a ping in the middle of the flood", async {
        let (mut before_ping, mut after_ping, mut pinged) = (0, 0, false);
        while after_ping < 10 {
            match member.next().await {
                Some(Ok(Message::Text(_))) if pinged => after_ping += 1,
                Some(Ok(Message::Text(_))) => before_ping += 1,
                Some(Ok(Message::Ping(_))) => pinged |= before_ping > 0,
                other => panic!("expected the flood, got {other:?}"),
            }
        }
    })
    .await;
    send_text(&mut member, "the member speaks").await;
    let said = within("the member's message to reach the room", async {
        loop {
            tokio::select! {
                said = member_heard.recv() => break said,
                received = member.next() => assert!(
                    matches!(received, Some(Ok(Message::Text(_) | Message::Ping(_)))),
                    "expected the flood, got {received:?}"
                ),
            }
        }
    })
    .await;
    assert_eq!(said.as_deref(), Some("the member speaks"));

    server.begin_shutdown();
    expect_close_code(&mut member, CloseCode::Away).await;
    let sender_closed = within("the sender's close", flood).await.unwrap();
    assert_eq!(sender_closed.map(|frame| frame.code), Some(CloseCode::Away));
    drop(member);
    server.shut_down().await;
}

/// A room of a few members hands each member the message; a larger room formats each small
/// message once for all of them, and from 4 KiB on each member writes it from the shared
/// payload instead. In both, at every length where the frame's header changes and on both
/// sides of 4 KiB, text (multi-byte UTF-8 too) and binary reach every member byte for byte,
/// and `/metrics` counts every copy sent.
#[tokio::test]
async fn messages_of_every_length_reach_every_member_exactly_and_every_copy_is_counted() {
    for room_size in [2, 12] {
        every_length_reaches_every_member(room_size).await;
    }
}

async fn every_length_reaches_every_member(room_size: usize) {
    let server = broadcast_server().await;
    let mut members = Vec::new();
    for _ in 0..room_size {
        members.push(server.connect_welcomed("/sizes").await);
    }
    eventually("every member in the room", || async {
        stats(&server).await.1.get("/sizes") == Some(&room_size)
    })
    .await;
    let mut messages = Vec::new();
    for length in [0, 1, 125, 126, 127, 4095, 4096, 4097, 65535, 65536, 70_000] {
        messages.push(Message::binary(vec![(length % 251) as u8; length]));
        // Text of the same length in bytes, ending in a two-byte character where it fits.
        let text = match length {
            0 | 1 => "x".repeat(length),
            _ => format!("{}é", "x".repeat(length - 2)),
        };
        messages.push(Message::text(text));
    }
    // One more binary message, so that text and binary counts differ.
    messages.push(Message::binary(vec![1u8, 2, 3]));
    for message in &messages {
        within("send", members[0].send(message.clone()))
            .await
            .unwrap();
        for member in &mut members {
            assert_eq!(
                &next_message(member).await,
                message,
                "{} bytes",
                message.len()
            );
        }
    }
    drop(members);
    let scrape = || async { String::from_utf8(get(server.addr, "/metrics").await.body).unwrap() };
    eventually("every session to end", || async {
        sample(
            &scrape().await,
            "wsecho_websocket_connections{mode=\"broadcast\"}",
        ) == 0.0
    })
    .await;
    let metrics = scrape().await;
    let welcome = "Welcome to the WebSocket server!".len();
    let members = room_size as f64;
    let (texts, binaries): (Vec<_>, Vec<_>) = messages.iter().partition(|m| m.is_text());
    let bytes = |of: &[&Message]| of.iter().map(|m| m.len()).sum::<usize>() as f64;
    for (name, value) in [
        (
            "wsecho_messages_sent_total{type=\"text\"}",
            members * (1 + texts.len()) as f64,
        ),
        (
            "wsecho_message_bytes_sent_total{type=\"text\"}",
            members * (welcome as f64 + bytes(&texts)),
        ),
        (
            "wsecho_messages_sent_total{type=\"binary\"}",
            members * binaries.len() as f64,
        ),
        (
            "wsecho_message_bytes_sent_total{type=\"binary\"}",
            members * bytes(&binaries),
        ),
    ] {
        assert_eq!(sample(&metrics, name), value, "{name}, {room_size} members");
    }
    server.shut_down().await;
}
