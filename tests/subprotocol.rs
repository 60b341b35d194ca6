//! Subprotocol negotiation: the server picks the client's first offer it accepts.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn server_accepting(protocols: &[&str]) -> TestServer {
    TestServer::start(Config {
        subprotocols: protocols.iter().map(|p| p.to_string()).collect(),
        ..Config::default()
    })
    .await
}

/// Sends an upgrade offering `offer` and returns the status and the chosen protocol.
async fn negotiate(addr: SocketAddr, offer: &str) -> (u16, Option<String>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = UPGRADE_REQUEST.replacen(
        "\r\n\r\n",
        &format!("\r\nSec-WebSocket-Protocol: {offer}\r\n\r\n"),
        1,
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if within("the answer", stream.read(&mut byte)).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let chosen = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|(_, value)| value.trim().to_owned());
    (status, chosen)
}

#[tokio::test]
async fn the_one_accepted_protocol_is_chosen() {
    let server = server_accepting(&["graphql-transport-ws"]).await;
    assert_eq!(
        negotiate(server.addr, "graphql-transport-ws").await,
        (101, Some("graphql-transport-ws".into()))
    );
    server.shut_down().await;
}

#[tokio::test]
async fn among_several_matches_the_clients_order_wins() {
    let server = server_accepting(&["chat", "mqtt"]).await;
    assert_eq!(
        negotiate(server.addr, "stomp, mqtt, chat").await,
        (101, Some("mqtt".into()))
    );
    server.shut_down().await;
}

#[tokio::test]
async fn a_star_accepts_the_first_offer() {
    let server = server_accepting(&["*"]).await;
    assert_eq!(
        negotiate(server.addr, "v12.stomp, chat").await,
        (101, Some("v12.stomp".into()))
    );
    server.shut_down().await;
}

#[tokio::test]
async fn no_match_upgrades_without_a_protocol() {
    let server = server_accepting(&["chat"]).await;
    assert_eq!(negotiate(server.addr, "mqtt").await, (101, None));
    let plain = TestServer::with_mode(Mode::Echo).await;
    assert_eq!(negotiate(plain.addr, "mqtt").await, (101, None));
    server.shut_down().await;
    plain.shut_down().await;
}

#[tokio::test]
async fn a_malformed_offer_is_400() {
    let server = server_accepting(&["*"]).await;
    for offer in ["chat,,mqtt", "a b", "x/y"] {
        assert_eq!(negotiate(server.addr, offer).await.0, 400, "{offer:?}");
    }
    server.shut_down().await;
}

#[tokio::test]
async fn a_client_library_that_requires_its_protocol_connects_and_is_echoed() {
    let server = server_accepting(&["chat"]).await;
    let mut request = server.url("/").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat".parse().unwrap());
    let (mut client, response) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .expect("the handshake (tungstenite checks the chosen protocol)");
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "chat"
    );
    next_text(&mut client).await;
    send_text(&mut client, "hi").await;
    assert_eq!(
        next_text(&mut client).await,
        "Hello from server, you said: \"hi\""
    );
    drop(client);
    server.shut_down().await;
}
