//! Broadcast across nodes through a real Redis (`--redis`): delivery between nodes, one order
//! for every member on every node, and nothing lost or repeated when Redis goes away and
//! comes back. Each test starts its own `redis-server` on a free loopback port with its own
//! data directory, and stops it by PID. Without `redis-server` these tests are skipped with
//! one line (and fail under `WSECHO_REQUIRE_TOOLS=1`, as in CI).

mod common;

use std::process::Command;
use std::time::Duration;

use common::redis_server::*;
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_nodes_see_every_message_in_one_order() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = two_nodes(&redis.url(), &[]).await;
    let mut senders = vec![member(a.addr, "/room").await, member(b.addr, "/room").await];
    let mut readers = [member(a.addr, "/room").await, member(b.addr, "/room").await];
    let mut elsewhere = member(b.addr, "/other").await;
    assert_eq!(health(a.addr).await, 200);

    // Two senders on two nodes, 300 messages each, at once.
    const EACH: usize = 300;
    let mut sending = Vec::new();
    for (index, mut sender) in senders.drain(..).enumerate() {
        sending.push(tokio::spawn(async move {
            for number in 0..EACH {
                sender
                    .send(Message::text(format!("{index}-{number}")))
                    .await
                    .unwrap();
            }
            sender
        }));
    }
    let mut senders = Vec::new();
    for task in sending {
        senders.push(within("the senders", task).await.unwrap());
    }
    let mut sequences = Vec::new();
    for client in senders.iter_mut().chain(readers.iter_mut()) {
        sequences.push(texts(client, 2 * EACH).await);
    }
    for sequence in &sequences[1..] {
        assert_eq!(sequence, &sequences[0], "every member sees the same order");
    }
    for index in 0..2 {
        let own: Vec<&String> = sequences[0]
            .iter()
            .filter(|text| text.starts_with(&format!("{index}-")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|n| format!("{index}-{n}")).collect();
        assert_eq!(
            own,
            expected.iter().collect::<Vec<_>>(),
            "sender {index}'s order"
        );
    }
    // Another room heard none of it.
    send_text(&mut elsewhere, "only here").await;
    assert_eq!(next_text(&mut elsewhere).await, "only here");
    a.assert_no_errors_logged();
    b.assert_no_errors_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_repeated_when_redis_crashes_and_comes_back() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let (a, b) = two_nodes(&redis.url(), &[]).await;
    let mut sender = member(a.addr, "/chat").await;
    let mut reader = member(b.addr, "/chat").await;
    for number in 0..50 {
        send_text(&mut sender, &format!("m{number}")).await;
    }
    let expected: Vec<String> = (0..50).map(|n| format!("m{n}")).collect();
    assert_eq!(texts(&mut reader, 50).await, expected);

    redis.kill();
    eventually("/healthz to say 503 on both nodes", || async {
        health(a.addr).await == 503 && health(b.addr).await == 503
    })
    .await;
    // Sent while Redis is down: kept, and appended once it is back.
    for number in 50..100 {
        send_text(&mut sender, &format!("m{number}")).await;
    }
    redis.restart().await;
    eventually("/healthz to say 200 again", || async {
        health(a.addr).await == 200 && health(b.addr).await == 200
    })
    .await;
    let expected: Vec<String> = (50..100).map(|n| format!("m{n}")).collect();
    assert_eq!(texts(&mut reader, 50).await, expected);
    // The sender sees its own messages once each, in order, across the outage.
    let all: Vec<String> = (0..100).map(|n| format!("m{n}")).collect();
    assert_eq!(texts(&mut sender, 100).await, all);
    // And nothing more arrives: a fresh message is the next one.
    send_text(&mut sender, "after").await;
    assert_eq!(next_text(&mut reader).await, "after");
    assert!(a.log().contains("lost Redis at redis://127.0.0.1:"));
    assert!(a.log().contains("connected to Redis at"));
}

#[tokio::test]
async fn a_bad_redis_url_or_mode_is_a_start_up_error() {
    for args in [
        &["--mode", "broadcast", "--redis", "http://user:secret@host"][..],
        &["--mode", "echo", "--redis", "redis://127.0.0.1:1"][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_wsecho"))
            .args(args)
            .args(["--port", "0"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--redis"), "{stderr}");
        assert!(
            !stderr.contains("secret"),
            "the password is never shown: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_not_an_error_but_healthz_says_503() {
    // A port nothing listens on.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let server = node_with(&url, &[]).await;
    assert_eq!(health(server.addr).await, 503);
    eventually("the failure to connect logged once", || async {
        server.log().matches("cannot reach Redis at").count() == 1
    })
    .await;
    let body = get(server.addr, "/healthz").await.body;
    assert!(String::from_utf8_lossy(&body).contains("Redis"));
    // Clients are still served; their messages wait for Redis.
    let mut client = member(server.addr, "/room").await;
    send_text(&mut client, "waiting").await;
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_paused_for_5_seconds_is_a_blip_with_nothing_lost_or_repeated() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let history = ["--history", "30"];
    let (a, b) = two_nodes(&redis.url(), &history).await;
    let mut sender = member(a.addr, "/chat").await;
    let mut reader = member(b.addr, "/chat").await;
    send_text(&mut sender, "before").await;
    assert_eq!(next_text(&mut reader).await, "before");
    let pid = redis.child.id().to_string();
    let signal = |name: &str| {
        assert!(
            Command::new("kill")
                .args([name, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    // Messages sent into the pause: their appends may reach Redis and be made again.
    for number in 0..20 {
        send_text(&mut sender, &format!("p{number}")).await;
    }
    eventually("/healthz to say 503 during the pause", || async {
        health(a.addr).await == 503
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal("-CONT");
    eventually("/healthz to say 200 again", || async {
        health(a.addr).await == 200 && health(b.addr).await == 200
    })
    .await;
    send_text(&mut sender, "after").await;
    let mut expected: Vec<String> = (0..20).map(|n| format!("p{n}")).collect();
    expected.push("after".into());
    assert_eq!(
        texts(&mut reader, 21).await,
        expected,
        "each once, in order"
    );
    assert_eq!(next_text(&mut sender).await, "before");
    assert_eq!(texts(&mut sender, 21).await, expected);
    // The appends that timed out in the pause happened, and were made again: the stream
    // holds each message once, so a joiner on a node new to the room (its history read from
    // the stream) sees each once too.
    assert_eq!(
        redis_command(redis.port, &["XLEN", "wsecho:room:/chat"]).await,
        ":22\r\n"
    );
    let c = node_with(&redis.url(), &history).await;
    let mut joiner = member(c.addr, "/chat").await;
    expected.insert(0, "before".into());
    assert_eq!(texts(&mut joiner, 22).await, expected, "the history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_without_its_data_the_nodes_carry_on_and_say_so() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let (a, b) = two_nodes(&redis.url(), &[]).await;
    let mut sender = member(a.addr, "/chat").await;
    let mut reader = member(b.addr, "/chat").await;
    send_text(&mut sender, "before").await;
    assert_eq!(next_text(&mut reader).await, "before");
    redis.kill();
    std::fs::remove_dir_all(&redis.dir).unwrap();
    std::fs::create_dir_all(&redis.dir).unwrap();
    redis.restart().await;
    eventually("/healthz to say 200 again", || async {
        health(a.addr).await == 200 && health(b.addr).await == 200
    })
    .await;
    send_text(&mut sender, "after").await;
    assert_eq!(next_text(&mut reader).await, "after");
    eventually("a warning that history was lost", || async {
        b.log().contains("restarted without its data")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_history_a_joiner_on_another_node_gets_the_rooms_last_messages() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let history = ["--history", "5"];
    let (a, b) = two_nodes(&redis.url(), &history).await;
    let mut sender = member(a.addr, "/chat").await;
    for number in 1..=8 {
        send_text(&mut sender, &format!("m{number}")).await;
        assert_eq!(next_text(&mut sender).await, format!("m{number}"));
    }
    // Node B has never had a member in /chat: the history comes from the stream.
    let mut joiner = member(b.addr, "/chat?history_notice=1").await;
    assert_eq!(
        next_text(&mut joiner).await,
        r#"{"wsecho":"history","count":5}"#
    );
    let expected: Vec<String> = (4..=8).map(|n| format!("m{n}")).collect();
    assert_eq!(texts(&mut joiner, 5).await, expected);
    send_text(&mut sender, "live").await;
    assert_eq!(next_text(&mut joiner).await, "live");
    // A second joiner there gets the same, from the node's memory of the room.
    let mut second = member(b.addr, "/chat?history_notice=1").await;
    assert_eq!(
        next_text(&mut second).await,
        r#"{"wsecho":"history","count":5}"#
    );
    let expected: Vec<String> = (5..=8)
        .map(|n| format!("m{n}"))
        .chain(["live".to_owned()])
        .collect();
    assert_eq!(texts(&mut second, 5).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_nodes_and_each_rooms_members_on_all_of_them() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, b) = two_nodes(&redis.url(), &[]).await;
    let _members = [
        member(a.addr, "/x").await,
        member(a.addr, "/x").await,
        member(b.addr, "/x").await,
        member(b.addr, "/y").await,
    ];
    eventually("both nodes' rooms in /stats", || async {
        let stats: serde_json::Value =
            serde_json::from_slice(&get(a.addr, "/stats").await.body).unwrap();
        stats["cluster"]["nodes"] == 2
            && stats["cluster"]["rooms"]["/x"] == 3
            && stats["cluster"]["rooms"]["/y"] == 1
            && stats["cluster"]["redis_connected"] == true
            && stats["rooms"]["/x"] == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_reconnects_to_another_and_catches_up() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let history = ["--history", "10"];
    let (mut a, b) = two_nodes(&redis.url(), &history).await;
    let mut talker = member(b.addr, "/chat").await;
    let mut listener = member(a.addr, "/chat").await;
    send_text(&mut talker, "one").await;
    assert_eq!(next_text(&mut listener).await, "one");
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    // While the listener is away, the room goes on.
    send_text(&mut talker, "two").await;
    assert_eq!(next_text(&mut talker).await, "one");
    assert_eq!(next_text(&mut talker).await, "two");
    // A chat client that asked for no notice gets the history as plain messages.
    let mut back = member(b.addr, "/chat").await;
    assert_eq!(texts(&mut back, 2).await, ["one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_fills_the_queue_for_an_unreachable_redis_gets_1013() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let a = node(&redis).await;
    let mut sender = member(a.addr, "/chat").await;
    redis.kill();
    eventually("/healthz to say 503", || async {
        health(a.addr).await == 503
    })
    .await;
    // 10,000 wait for Redis; the next one has no room.
    for number in 0..10_050 {
        if sender
            .send(Message::text(format!("m{number}")))
            .await
            .is_err()
        {
            break;
        }
    }
    let frame = expect_close_code(&mut sender, CloseCode::Again).await;
    assert!(frame.reason.contains("cannot reach Redis"), "{frame:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_shared_over_rediss_trusting_the_given_certificate() {
    let Some((redis, cert)) = Redis::start_tls().await else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let trust = ["--redis-ca", cert.to_str().unwrap()];
    let (a, b) = two_nodes(&url, &trust).await;
    eventually("both nodes connected", || async {
        health(a.addr).await == 200 && health(b.addr).await == 200
    })
    .await;
    let mut sender = member(a.addr, "/secure").await;
    let mut reader = member(b.addr, "/secure").await;
    send_text(&mut sender, "over TLS").await;
    assert_eq!(next_text(&mut reader).await, "over TLS");
    // Without the certificate, the system's trust store does not know it: no connection.
    let untrusting = node_with(&url, &[]).await;
    eventually("the failure to connect logged", || async {
        untrusting
            .log()
            .contains("cannot reach Redis at rediss://127.0.0.1:")
    })
    .await;
    assert_eq!(health(untrusting.addr).await, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_messages_without_the_node_reconnecting_or_flooding_its_log() {
    let Some(redis) = Redis::start_with(&["--maxmemory", "64mb"]).await else {
        return;
    };
    let node = node(&redis).await;
    let mut other = member(node.addr, "/other").await;
    send_text(&mut other, "before").await;
    assert_eq!(next_text(&mut other).await, "before");
    let connections_before = redis_stat(redis.port, "stats", "total_connections_received").await;
    // One client fills Redis through one room: 80 messages of 1 MiB against 64 MB.
    let mut flooder = member(node.addr, "/flood").await;
    for number in 0..80u8 {
        within(
            "a send",
            flooder.send(Message::binary(vec![number; 1 << 20])),
        )
        .await
        .unwrap();
    }
    eventually("Redis to refuse appends", || async {
        node.log().contains("Redis refused an append")
    })
    .await;
    // Give the node the time it would need to storm, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connections_after = redis_stat(redis.port, "stats", "total_connections_received").await;
    assert!(
        connections_after - connections_before <= 3,
        "the node opened {} new Redis connections",
        connections_after - connections_before
    );
    let log = node.log();
    let redis_lines = log.lines().filter(|line| line.contains("Redis")).count();
    assert!(redis_lines <= 6, "{redis_lines} lines about Redis:\n{log}");
    assert_eq!(
        get(node.addr, "/healthz").await.status,
        200,
        "the link is up"
    );
    // Once Redis has room again, rooms flow at once: nothing was torn down.
    redis_command(redis.port, &["DEL", "wsecho:room:/flood"]).await;
    send_text(&mut other, "after").await;
    assert_eq!(next_text(&mut other).await, "after");
    node.assert_no_errors_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_rooms_do_not_slow_a_busy_one_and_a_new_room_delivers() {
    const ROOMS: usize = 5000;
    if raise_own_open_files_limit() < (ROOMS as u64) * 2 + 200 {
        assert!(
            std::env::var("WSECHO_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "this test needs an open-files limit of {} or more",
            ROOMS * 2 + 200
        );
        println!("skipped: the open-files limit is too low for {ROOMS} rooms");
        return;
    }
    let Some(redis) = Redis::start().await else {
        return;
    };
    let node = node(&redis).await;
    // Each idle room has one member, with a name as long as --max-path-length allows.
    let mut idle = Vec::with_capacity(ROOMS);
    for number in 0..ROOMS {
        let (client, _) = tokio_tungstenite::connect_async(format!(
            "ws://{}/{number:05}{}",
            node.addr,
            "n".repeat(900)
        ))
        .await
        .expect("handshake");
        idle.push(client);
    }
    let mut lobby = member(node.addr, "/lobby").await;
    let mut round_trips = Vec::new();
    for number in 0..20 {
        let started = std::time::Instant::now();
        send_text(&mut lobby, &number.to_string()).await;
        assert_eq!(next_text(&mut lobby).await, number.to_string());
        round_trips.push(started.elapsed());
    }
    round_trips.sort();
    // Timing is a benchmark's business; this bound only catches a stalled reader (it was
    // about a second with 1,000 rooms before reads were batched).
    println!(
        "/lobby round trip with {ROOMS} idle rooms: median {:?}",
        round_trips[10]
    );
    assert!(
        round_trips[10] < Duration::from_millis(500),
        "{round_trips:?}"
    );
    let mut newcomer = member(node.addr, "/new-room").await;
    send_text(&mut newcomer, "first").await;
    assert_eq!(next_text(&mut newcomer).await, "first");
    let stats: serde_json::Value =
        serde_json::from_slice(&get(node.addr, "/stats").await.body).unwrap();
    assert_eq!(stats["room_count"], ROOMS + 2);
    assert!(
        get(node.addr, "/stats").await.body.len() < 200 * 1024,
        "/stats is bounded"
    );
    drop(idle);
}
