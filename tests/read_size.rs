//! A connection that starts carrying large messages reads them in larger pieces, and one
//! that goes back to small messages returns to the small size; the switch happens only at a
//! quiet moment when tungstenite holds nothing unparsed, so a frame or a fragmented message
//! that straddles such a moment, before or after a switch, arrives whole.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A payload of `length` bytes that differs from every other `seed`'s at every offset
/// a misplaced byte could land on.
fn payload(seed: u8, length: usize) -> Vec<u8> {
    (0..length)
        .map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) {
    within("write", stream.write_all(bytes)).await.unwrap();
}

/// Sends `payload` as one binary frame and expects it back unchanged.
async fn echoes(stream: &mut TcpStream, payload: &[u8]) {
    write(stream, &frame(BINARY, payload, MASK)).await;
    assert_eq!(
        read_server_frame(stream).await,
        Some((BINARY, payload.to_vec())),
        "a {}-byte message echoed",
        payload.len()
    );
}

/// Pings and waits for the pong: once it is back, the server has read everything sent
/// before it and found the socket empty, the moment it may rebuild tungstenite's state.
async fn round_trip_a_ping(stream: &mut TcpStream) {
    write(stream, &frame(PING, b"quiet", MASK)).await;
    assert_eq!(
        read_server_frame(stream).await,
        Some((PONG, b"quiet".to_vec()))
    );
}

/// Writes `message` followed by the first `cut` bytes of `next`'s frame, reads `message`'s
/// echo (the server then finds its socket empty in the middle of `next`, at the moment its
/// read size is due to change), pauses, and writes the rest: both must come back whole.
async fn echoes_with_the_next_frame_cut(
    stream: &mut TcpStream,
    message: &[u8],
    next: &[u8],
    cut: usize,
) {
    let next_frame = frame(BINARY, next, MASK);
    write(
        stream,
        &[frame(BINARY, message, MASK), next_frame[..cut].to_vec()].concat(),
    )
    .await;
    assert_eq!(
        read_server_frame(stream).await,
        Some((BINARY, message.to_vec()))
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    write(stream, &next_frame[cut..]).await;
    assert_eq!(
        read_server_frame(stream).await,
        Some((BINARY, next.to_vec())),
        "the cut frame"
    );
}

#[tokio::test]
async fn messages_straddling_quiet_moments_arrive_whole_across_read_size_switches() {
    let server = TestServer::start(Config {
        mode: Mode::Raw,
        ..Config::default()
    })
    .await;
    let mut stream = raw_websocket(server.addr).await;
    // The first large message makes the connection want the large size; the frame after it
    // is cut where the server would switch.
    echoes_with_the_next_frame_cut(
        &mut stream,
        &payload(1, 64 * 1024),
        &payload(2, 100_000),
        300,
    )
    .await;
    // Large messages pipelined, several in flight, then read back in order.
    let burst: Vec<Vec<u8>> = (30..38).map(|seed| payload(seed, 70_000)).collect();
    let frames: Vec<u8> = burst.iter().flat_map(|p| frame(BINARY, p, MASK)).collect();
    write(&mut stream, &frames).await;
    for expected in &burst {
        assert_eq!(
            read_server_frame(&mut stream).await,
            Some((BINARY, expected.clone()))
        );
    }
    // Small messages in a row take it back to the small size; the large frame after the
    // last of them is cut where the server would switch back.
    for seed in 0..99 {
        echoes(&mut stream, &payload(seed, 100)).await;
    }
    echoes_with_the_next_frame_cut(&mut stream, &payload(99, 100), &payload(3, 65_536), 5_000)
        .await;
    for seed in 0..100 {
        echoes(&mut stream, &payload(seed, 100)).await;
    }
    // A large message, then the first fragment of another, with a quiet moment (a ping,
    // answered) before the last fragment: the switch must wait for the message to end.
    let (first, second) = (payload(10, 40_000), payload(11, 30_000));
    let mut opening = frame(BINARY, &first, MASK);
    opening[0] = BINARY; // FIN cleared: more fragments follow.
    write(
        &mut stream,
        &[frame(BINARY, &payload(4, 64 * 1024), MASK), opening].concat(),
    )
    .await;
    assert_eq!(
        read_server_frame(&mut stream).await,
        Some((BINARY, payload(4, 64 * 1024)))
    );
    round_trip_a_ping(&mut stream).await;
    write(&mut stream, &frame(CONTINUATION, &second, MASK)).await;
    let whole = [first, second].concat();
    assert_eq!(read_server_frame(&mut stream).await, Some((BINARY, whole)));
    echoes(&mut stream, b"and after").await;
    drop(stream);
    server.shut_down().await;
}
