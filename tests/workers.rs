//! Several worker threads: connections spread over them are served, rooms span them, and
//! shutdown reaches every one of them.

mod common;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn clients_on_every_worker_are_answered_and_closed_with_1001_at_shutdown() {
    let server = TestServer::on_workers(Config::default(), 3).await;
    // Placed in turn: nine clients, three on each worker.
    let mut clients = Vec::new();
    for _ in 0..9 {
        clients.push(server.connect_welcomed("/").await);
    }
    for (index, client) in clients.iter_mut().enumerate() {
        send_text(client, &format!("client {index}")).await;
    }
    for (index, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            next_text(client).await,
            format!("Hello from server, you said: \"client {index}\"")
        );
    }
    server.shut_down_expecting_1001(clients).await;
}

#[tokio::test]
async fn a_room_spread_over_workers_gets_every_message_in_each_senders_order() {
    let server = TestServer::on_workers(
        Config {
            mode: Mode::Broadcast,
            ..Config::default()
        },
        3,
    )
    .await;
    let mut members = Vec::new();
    for _ in 0..6 {
        members.push(server.connect_welcomed("/room").await);
    }
    const EACH: usize = 50;
    for round in 0..EACH {
        for sender in [0, 1] {
            within(
                "send",
                members[sender].send(Message::text(format!("{sender}:{round}"))),
            )
            .await
            .unwrap();
        }
    }
    for member in &mut members {
        let mut next_from = [0usize; 2];
        for _ in 0..2 * EACH {
            let text = next_text(member).await;
            let (sender, round) = text.split_once(':').expect("sender:round");
            let sender: usize = sender.parse().unwrap();
            assert_eq!(round.parse::<usize>().unwrap(), next_from[sender], "{text}");
            next_from[sender] += 1;
        }
        assert_eq!(next_from, [EACH, EACH]);
    }
    drop(members);
    server.shut_down().await;
}
