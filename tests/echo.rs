//! The tutorial behaviour and the raw echo, as a WebSocket client sees them.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn sends_the_welcome_then_prefixes_each_text_message() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    for text in ["hello", "héllo wörld ✓ 🎉", "", "quote \" inside"] {
        send_text(&mut client, text).await;
        assert_eq!(
            next_text(&mut client).await,
            format!("Hello from server, you said: \"{text}\"")
        );
    }
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn answers_a_one_megabyte_message() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    let big: String = (0..1_000_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    send_text(&mut client, &big).await;
    let reply = next_text(&mut client).await;
    assert_eq!(reply, format!("Hello from server, you said: \"{big}\""));
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn echoes_binary_messages_as_binary() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    within("send", client.send(Message::binary(payload.clone())))
        .await
        .unwrap();
    assert_eq!(next_message(&mut client).await, Message::binary(payload));
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn answers_500_pipelined_messages_in_order() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    for i in 0..500 {
        within("feed", client.feed(Message::text(format!("message {i}"))))
            .await
            .unwrap();
    }
    within("flush", client.flush()).await.unwrap();
    for i in 0..500 {
        assert_eq!(
            next_text(&mut client).await,
            format!("Hello from server, you said: \"message {i}\"")
        );
    }
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn answers_a_ping_with_a_pong_carrying_the_same_payload() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    within("send", client.send(Message::Ping("are you there".into())))
        .await
        .unwrap();
    match within("the pong", client.next()).await.unwrap().unwrap() {
        Message::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn answers_a_close_frame_with_the_same_code_and_ends_the_connection() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let mut client = server.connect_welcomed("/").await;
    let request = CloseFrame {
        code: CloseCode::Library(4000),
        reason: "done here".into(),
    };
    within("close", client.close(Some(request))).await.unwrap();
    let reply = close_frame(&mut client).await.expect("a close frame back");
    assert_eq!(reply.code, CloseCode::Library(4000));
    // After the close handshake the stream ends cleanly.
    assert!(
        within("the end of the stream", client.next())
            .await
            .is_none()
    );
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn raw_mode_echoes_verbatim_without_a_welcome() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let mut client = server.connect("/").await;
    send_text(&mut client, "verbatim ✓").await;
    // The first thing received is the echo, so there was no welcome.
    assert_eq!(next_text(&mut client).await, "verbatim ✓");
    within("send", client.send(Message::binary(vec![0u8, 1, 2, 255])))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut client).await,
        Message::binary(vec![0u8, 1, 2, 255])
    );
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn sends_a_custom_welcome() {
    let server = TestServer::start(Config {
        welcome: "hi there".into(),
        ..Config::default()
    })
    .await;
    let mut client = server.connect("/").await;
    assert_eq!(next_text(&mut client).await, "hi there");
    drop(client);
    server.shut_down().await;
}

#[tokio::test]
async fn an_empty_welcome_sends_none() {
    let server = TestServer::start(Config {
        welcome: String::new(),
        ..Config::default()
    })
    .await;
    let mut client = server.connect("/").await;
    send_text(&mut client, "first").await;
    assert_eq!(
        next_text(&mut client).await,
        "Hello from server, you said: \"first\""
    );
    drop(client);
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_200_concurrent_clients() {
    let server = TestServer::with_mode(Mode::Echo).await;
    let url = server.url("/");
    let clients: Vec<_> = (0..200)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move {
                let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                assert_eq!(
                    next_text(&mut client).await,
                    "Welcome to the WebSocket server!"
                );
                for round in 0..5 {
                    let text = format!("client {n} round {round}");
                    send_text(&mut client, &text).await;
                    assert_eq!(
                        next_text(&mut client).await,
                        format!("Hello from server, you said: \"{text}\"")
                    );
                }
                client.close(None).await.unwrap();
            })
        })
        .collect();
    for client in clients {
        within("a client to finish", client).await.unwrap();
    }
    server.shut_down().await;
}

/// Replies of every size (small ones are copied into tungstenite's buffer, large ones are
/// written from their own payloads) and pongs, through a socket whose small buffers make the
/// server's writes stop part-way all the time: every reply arrives whole and in order, every
/// pong answers a ping that was sent, and the close handshake comes after the last reply.
#[tokio::test]
async fn replies_of_every_size_and_pongs_interleave_whole_and_in_order() {
    let server = TestServer::with_mode(Mode::Raw).await;
    let client = server
        .connect_with_buffers("/", Some(4096), Some(4096))
        .await;
    let (mut sink, mut stream) = client.split();
    let sizes = [10usize, 5_000, 200_000, 3_000, 70_000, 0, 4_096, 4_095];
    let messages: Vec<Message> = (0..120)
        .map(|i| {
            let size = sizes[i % sizes.len()];
            let mut payload: Vec<u8> = (0..size).map(|j| (i * 7 + j) as u8).collect();
            payload.splice(0..size.min(4), (i as u32).to_be_bytes());
            if i % 3 == 0 {
                let text: String = payload.iter().map(|b| (b'a' + b % 26) as char).collect();
                Message::text(format!("{i}:{text}"))
            } else {
                Message::binary(payload)
            }
        })
        .collect();
    let to_send = messages.clone();
    let writer = tokio::spawn(async move {
        for (i, message) in to_send.into_iter().enumerate() {
            sink.feed(message).await.unwrap();
            if i % 5 == 0 {
                let ping = format!("ping {i}");
                sink.feed(Message::Ping(ping.into_bytes().into()))
                    .await
                    .unwrap();
            }
        }
        sink.flush().await.unwrap();
        sink
    });
    let mut pongs = Vec::new();
    for (i, expected) in messages.iter().enumerate() {
        let reply = loop {
            match within("a reply", stream.next()).await.unwrap().unwrap() {
                Message::Pong(payload) => pongs.push(String::from_utf8(payload.to_vec()).unwrap()),
                other => break other,
            }
        };
        assert!(&reply == expected, "reply {i} differs from message {i}");
    }
    let mut sink = within("the writer", writer).await.unwrap();
    within("close", sink.send(Message::Close(None)))
        .await
        .unwrap();
    loop {
        match within("the close reply", stream.next()).await {
            Some(Ok(Message::Pong(payload))) => {
                pongs.push(String::from_utf8(payload.to_vec()).unwrap())
            }
            Some(Ok(Message::Close(_))) => break,
            other => panic!("expected only pongs before the close reply, got {other:?}"),
        }
    }
    // A pong may stand for several pings (RFC 6455 §5.5.3), but each answers one that was
    // sent, in the order they were sent.
    assert!(!pongs.is_empty(), "no pong came back");
    let sent: Vec<usize> = pongs
        .iter()
        .map(|pong| pong.strip_prefix("ping ").unwrap().parse().unwrap())
        .collect();
    assert!(
        sent.iter().all(|i| i % 5 == 0) && sent.is_sorted(),
        "pongs: {sent:?}"
    );
    server.shut_down().await;
}
