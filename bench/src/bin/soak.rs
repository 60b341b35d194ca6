//! The soak test: one wsecho per mode (echo, raw, broadcast, and echo again with a small
//! `--max-memory`), each attacked by a mixed
//! population at once for `--duration` seconds, while well-behaved clients check everything
//! they get back. Run it with `bench/soak.sh --duration SECS`.
//!
//! The population: echo clients that check every reply and time it; pipeliners; 1 MiB
//! messages; fragmented messages; slow readers; never-readers; clients that reset mid-frame
//! or mid-handshake; garbage senders; pingers; connect/disconnect churn; broadcast members
//! joining and leaving rooms and checking each sender's sequence; and, against a fourth
//! server with a small memory budget, a flood of the largest messages it takes, clients
//! that stop in the middle of one, and checking echo clients beside them.
//!
//! It fails (exit status 1, with the reasons) if a well-behaved client loses, reorders or
//! duplicates a message; if any client gets a close code the README does not document for
//! what it did; if the echo clients' p99 round trip exceeds `--max-p99-ms`; if, once every
//! client has gone, a server's open descriptors or RSS have not come back near their
//! baseline or its `/stats` does not count zero clients; or if a log shows a panic or an
//! error line. Every loop ends at the deadline; only loopback addresses are used.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use wsecho_bench::{open_fds, peak_rss, read_server_frame, rss, wait_for_listening};

#[derive(Parser)]
struct Args {
    /// Seconds the attack lasts.
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// The wsecho binary to soak.
    #[arg(long, default_value = "target/release/wsecho")]
    wsecho: PathBuf,
    /// Largest acceptable p99 round trip of the checking echo clients, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    max_p99_ms: f64,
    /// Where the servers' logs go.
    #[arg(long, default_value = "target/soak")]
    log_dir: PathBuf,
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the run counted, shared by every client task.
#[derive(Default)]
struct Tally {
    connections: AtomicU64,
    verified: AtomicU64,
    /// Bad clients handled, by kind.
    bad: Mutex<HashMap<&'static str, u64>>,
    /// Close codes seen, by population.
    codes: Mutex<HashMap<(&'static str, u16), u64>>,
    failures: Mutex<Vec<String>>,
    /// Round trips of the checking echo clients, in microseconds.
    round_trips: Mutex<Vec<u32>>,
}

impl Tally {
    fn fail(&self, what: String) {
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 50 {
            failures.push(what);
        }
    }

    fn bad_client(&self, kind: &'static str) {
        *self.bad.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// Records how a connection of `population` was closed; fails on a code the README does
    /// not document for it.
    fn closed(&self, population: &'static str, code: u16, allowed: &[u16]) {
        *self
            .codes
            .lock()
            .unwrap()
            .entry((population, code))
            .or_default() += 1;
        if !allowed.contains(&code) {
            self.fail(format!(
                "{population}: close code {code}, expected one of {allowed:?}"
            ));
        }
    }
}

/// A wsecho process with its log in a file.
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &Args, name: &'static str, mode: &str, extra: &[&str]) -> Server {
    std::fs::create_dir_all(&args.log_dir).expect("create the log directory");
    let log = args.log_dir.join(format!("{name}.log"));
    let child = Command::new(&args.wsecho)
        .args(["--host", "127.0.0.1", "--port", "0", "--mode", mode])
        // Short timeouts, so that the bad clients are dealt with within the run.
        .args([
            "--ping-interval",
            "2",
            "--ping-timeout",
            "2",
            "--handshake-timeout",
            "2",
        ])
        .args([
            "--close-timeout",
            "1",
            "--max-message-size",
            "2MiB",
            "--max-queue",
            "256",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).expect("create the log"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", args.wsecho.display()));
    let addr = wait_for_listening(&log, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{name} did not start"))
        .parse()
        .expect("a socket address");
    Server {
        name,
        child,
        addr,
        log,
    }
}

async fn connect(addr: SocketAddr, path: &str) -> Option<Client> {
    let url = format!("ws://{addr}{path}");
    match tokio::time::timeout(Duration::from_secs(10), connect_async(url)).await {
        Ok(Ok((client, _))) => Some(client),
        _ => None,
    }
}

/// The next data message or close code, skipping pings and pongs; `None` on a timeout or
/// a connection that ended without a close frame.
async fn next_data(client: &mut Client) -> Option<Result<Message, u16>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(Err(frame.map_or(1005, |frame| frame.code.into())));
            }
            Ok(Some(Ok(message))) => return Some(Ok(message)),
            _ => return None,
        }
    }
}

/// Echo mode, one message at a time: every reply checked and timed.
async fn echo_checker(addr: SocketAddr, id: usize, deadline: Instant, tally: Arc<Tally>) {
    let Some(mut client) = connect(addr, "/").await else {
        return tally.fail(format!("echo checker {id}: cannot connect"));
    };
    tally.connections.fetch_add(1, Ordering::Relaxed);
    if !matches!(next_data(&mut client).await, Some(Ok(Message::Text(_)))) {
        return tally.fail(format!("echo checker {id}: no welcome"));
    }
    let mut sequence = 0u64;
    while Instant::now() < deadline {
        let text = format!("checker {id} message {sequence}");
        let sent = Instant::now();
        if client.send(Message::text(text.clone())).await.is_err() {
            return tally.fail(format!("echo checker {id}: send failed"));
        }
        match next_data(&mut client).await {
            Some(Ok(Message::Text(reply)))
                if reply.as_str() == format!("Hello from server, you said: \"{text}\"") =>
            {
                let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                tally.round_trips.lock().unwrap().push(micros);
                tally.verified.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                return tally.fail(format!("echo checker {id}: reply {sequence}: {other:?}"));
            }
        }
        sequence += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = client.close(None).await;
}

/// A binary payload that carries its sequence number and length in its first bytes.
fn numbered_payload(sequence: u64, len: usize) -> Vec<u8> {
    let mut payload: Vec<u8> = (0..len).map(|i| (i as u64 ^ sequence) as u8).collect();
    payload[..8].copy_from_slice(&sequence.to_be_bytes());
    payload
}

/// Raw mode, `in_flight` messages outstanding: every echo checked byte for byte, in order.
/// With `read_pause`, reads slowly (a slow reader that still keeps up eventually).
async fn pipeliner(
    addr: SocketAddr,
    population: &'static str,
    size: usize,
    in_flight: u64,
    read_pause: Option<Duration>,
    deadline: Instant,
    tally: Arc<Tally>,
) {
    let Some(client) = connect(addr, "/").await else {
        return tally.fail(format!("{population}: cannot connect"));
    };
    tally.connections.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = client.split();
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel::<u64>(in_flight as usize);
    let writer = async move {
        let mut sequence = 0;
        while Instant::now() < deadline {
            if sent_tx.send(sequence).await.is_err()
                || sink
                    .send(Message::binary(numbered_payload(sequence, size)))
                    .await
                    .is_err()
            {
                break;
            }
            sequence += 1;
        }
        drop(sent_tx);
        let _ = sink.close().await;
    };
    let tally_reader = tally.clone();
    let reader = async move {
        while let Some(expected) = sent_rx.recv().await {
            if let Some(pause) = read_pause {
                tokio::time::sleep(pause).await;
            }
            let message = loop {
                match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                    other => break other,
                }
            };
            match message {
                Ok(Some(Ok(Message::Binary(payload))))
                    if payload[..] == numbered_payload(expected, size)[..] =>
                {
                    tally_reader.verified.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let code = frame.map_or(1005, |frame| frame.code.into());
                    // Only a slow reader may be dropped, as not reading (1008).
                    let allowed: &[u16] = if read_pause.is_some() { &[1008] } else { &[] };
                    tally_reader.closed(population, code, allowed);
                    return;
                }
                other => {
                    let shown = format!("{other:?}");
                    return tally_reader.fail(format!(
                        "{population}: echo {expected}: {}",
                        &shown[..shown.len().min(120)]
                    ));
                }
            }
        }
    };
    tokio::join!(writer, reader);
}

/// Raw mode: text messages sent as several fragments, each echoed whole.
async fn fragmenter(addr: SocketAddr, deadline: Instant, tally: Arc<Tally>) {
    let Some(mut client) = connect(addr, "/").await else {
        return tally.fail("fragmenter: cannot connect".into());
    };
    tally.connections.fetch_add(1, Ordering::Relaxed);
    let mut sequence = 0u64;
    while Instant::now() < deadline {
        let parts: Vec<String> = (0..5)
            .map(|part| format!("[{sequence}.{part} ✓]"))
            .collect();
        for (index, part) in parts.iter().enumerate() {
            let opcode = if index == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            let frame = Frame::from_payload(
                FrameHeader {
                    is_final: index == parts.len() - 1,
                    opcode,
                    ..FrameHeader::default()
                },
                part.as_bytes().to_vec().into(),
            );
            if client.send(Message::Frame(frame)).await.is_err() {
                return tally.fail("fragmenter: send failed".into());
            }
        }
        match next_data(&mut client).await {
            Some(Ok(Message::Text(text))) if text.as_str() == parts.concat() => {
                tally.verified.fetch_add(1, Ordering::Relaxed);
            }
            other => return tally.fail(format!("fragmenter: message {sequence}: {other:?}")),
        }
        sequence += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = client.close(None).await;
}

/// Raw mode: pings with a payload, each answered by a pong with the same payload.
async fn pinger(addr: SocketAddr, deadline: Instant, tally: Arc<Tally>) {
    let Some(mut client) = connect(addr, "/").await else {
        return tally.fail("pinger: cannot connect".into());
    };
    tally.connections.fetch_add(1, Ordering::Relaxed);
    let mut sequence = 0u64;
    while Instant::now() < deadline {
        let payload = sequence.to_be_bytes().to_vec();
        if client
            .send(Message::Ping(payload.clone().into()))
            .await
            .is_err()
        {
            return tally.fail("pinger: send failed".into());
        }
        match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
            Ok(Some(Ok(Message::Pong(pong)))) if pong[..] == payload[..] => {
                tally.verified.fetch_add(1, Ordering::Relaxed);
            }
            other => return tally.fail(format!("pinger: ping {sequence}: {other:?}")),
        }
        sequence += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = client.close(None).await;
}

/// Echo mode: connect, one checked message, a normal close; again and again.
async fn churner(addr: SocketAddr, deadline: Instant, tally: Arc<Tally>) {
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Some(mut client) = connect(addr, "/").await else {
            return tally.fail("churn: cannot connect".into());
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        let _welcome = next_data(&mut client).await;
        if client.send(Message::text("churn")).await.is_err() {
            return tally.fail("churn: send failed".into());
        }
        match next_data(&mut client).await {
            Some(Ok(Message::Text(text)))
                if text.as_str() == "Hello from server, you said: \"churn\"" =>
            {
                tally.verified.fetch_add(1, Ordering::Relaxed);
            }
            other => return tally.fail(format!("churn: {other:?}")),
        }
        let _ = client.close(None).await;
        // The server's answer to the close, then the end of the stream.
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_secs(10), client.next()).await
        {}
    }
}

/// Bad clients in turn: resets mid-handshake and mid-frame, and garbage before and after the
/// handshake. Each must be dealt with as documented.
async fn attacker(addr: SocketAddr, deadline: Instant, tally: Arc<Tally>) {
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        // Paced, so that a long run does not use up the loopback's ports in TIME_WAIT.
        tokio::time::sleep(Duration::from_millis(10)).await;
        tally.connections.fetch_add(1, Ordering::Relaxed);
        match round % 4 {
            0 => {
                // Half a request head, then a reset.
                if let Ok(stream) = TcpStream::connect(addr).await {
                    let mut stream = stream;
                    let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpg").await;
                    reset(stream);
                    tally.bad_client("reset mid-handshake");
                }
            }
            1 => {
                // Half a 1 KiB frame after the handshake, then a reset.
                if let Some(mut stream) = raw_upgrade(addr).await {
                    let mut frame = vec![0x82, 0x80 | 126, 0x04, 0x00, 1, 2, 3, 4];
                    frame.extend(vec![0x55u8; 300]);
                    let _ = stream.write_all(&frame).await;
                    reset(stream);
                    tally.bad_client("reset mid-frame");
                }
            }
            2 => {
                // Not HTTP at all: 400.
                if let Ok(mut stream) = TcpStream::connect(addr).await {
                    let _ = stream.write_all(b"\x16\x03\x01garbage\r\n\r\n").await;
                    let mut answer = Vec::new();
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        stream.read_to_end(&mut answer),
                    )
                    .await;
                    if !answer.starts_with(b"HTTP/1.1 400") {
                        tally.fail(format!(
                            "garbage before the handshake: {:?}",
                            String::from_utf8_lossy(&answer[..answer.len().min(40)])
                        ));
                    }
                    tally.bad_client("garbage before the handshake");
                }
            }
            _ => {
                // Garbage frames after the handshake: close 1002.
                if let Some(mut stream) = raw_upgrade(addr).await {
                    let _ = stream.write_all(&[0xf3, 0x85, 0, 0, 0, 0, 1, 2, 3]).await;
                    match read_close_code(&mut stream).await {
                        Some(code) => tally.closed("garbage after the handshake", code, &[1002]),
                        None => tally.fail("garbage after the handshake: no close frame".into()),
                    }
                    tally.bad_client("garbage after the handshake");
                }
            }
        }
    }
}

/// Sends 4 MiB of echoes without reading any, again and again: each must be closed with
/// 1008 once the server has waited `--ping-timeout` for it to read (the close frame follows
/// the echoes it has not read), or be reset if the server's close could not get through.
async fn never_reader(addr: SocketAddr, deadline: Instant, tally: Arc<Tally>) {
    while Instant::now() < deadline {
        let Some(stream) = raw_upgrade(addr).await else {
            return tally.fail("never-reader: cannot connect".into());
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = stream.into_split();
        let mut frame = vec![0x82, 0x80 | 126, 0x40, 0x00, 0, 0, 0, 0];
        frame.extend(vec![0u8; 0x4000]);
        let flood = async {
            for _ in 0..256 {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
        };
        // The flood blocks once the server stops reading.
        let _ = tokio::time::timeout(Duration::from_secs(8), flood).await;
        if let Some(code) = read_close_code(&mut reader).await {
            tally.closed("never-reader", code, &[1008]);
        }
        tally.bad_client("never-reader");
    }
}

/// Largest message the soak's servers take (`--max-message-size 2MiB`).
const LARGEST: usize = 2 << 20;

/// Sends the largest messages the server takes, one at a time, four per connection, each
/// echo checked byte for byte. Past the memory budget the server makes it wait; it may
/// also close it with 1013 when the budget stays full (it holds large buffers between
/// messages), after which it connects again.
async fn flooder(addr: SocketAddr, deadline: Instant, tally: Arc<Tally>) {
    let mut sequence = 0u64;
    while Instant::now() < deadline {
        let Some(mut client) = connect(addr, "/").await else {
            return tally.fail("flooder: cannot connect".into());
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        if !matches!(next_data(&mut client).await, Some(Ok(Message::Text(_)))) {
            return tally.fail("flooder: no welcome".into());
        }
        for _ in 0..4 {
            let payload = numbered_payload(sequence, LARGEST);
            sequence += 1;
            if client.send(Message::binary(payload.clone())).await.is_err() {
                break;
            }
            match next_data(&mut client).await {
                Some(Ok(Message::Binary(echo))) if echo[..] == payload[..] => {
                    tally.verified.fetch_add(1, Ordering::Relaxed);
                }
                Some(Err(code)) => {
                    tally.closed("flooder", code, &[1013]);
                    break;
                }
                other => {
                    let shown = format!("{other:?}");
                    return tally.fail(format!("flooder: {}", &shown[..shown.len().min(120)]));
                }
            }
        }
        let _ = client.close(None).await;
    }
}

/// Sends most of a large message and then nothing: the server must close it, with 1013
/// when the memory budget is stuck full, or with 1008 when it does not answer a ping.
async fn staller(addr: SocketAddr, deadline: Instant, tally: Arc<Tally>) {
    while Instant::now() < deadline {
        let Some(stream) = raw_upgrade(addr).await else {
            return tally.fail("staller: cannot connect".into());
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = stream.into_split();
        let mut frame = vec![0x82, 0x80 | 127];
        frame.extend_from_slice(&(LARGEST as u64).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend(vec![7u8; LARGEST * 3 / 4]);
        let _ = tokio::time::timeout(Duration::from_secs(8), writer.write_all(&frame)).await;
        if let Some(code) = read_close_code(&mut reader).await {
            tally.closed("staller", code, &[1013, 1008]);
        }
        tally.bad_client("staller");
    }
}

/// Closes `stream` with a reset (SO_LINGER 0) instead of a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Completes an upgrade by hand, returning the stream after the 101.
async fn raw_upgrade(addr: SocketAddr) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .ok()?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut byte))
            .await
            .ok()?
            .ok()?;
        head.push(byte[0]);
    }
    head.starts_with(b"HTTP/1.1 101").then_some(stream)
}

/// Reads frames until a close frame and returns its code.
async fn read_close_code(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<u16> {
    loop {
        let (opcode, payload) = read_server_frame(stream, Duration::from_secs(10)).await?;
        if opcode == 0x8 {
            return Some(if payload.len() >= 2 {
                u16::from_be_bytes([payload[0], payload[1]])
            } else {
                1005
            });
        }
    }
}

/// Broadcast mode: joins a room for a while, sending numbered messages and checking that
/// each sender's messages arrive consecutively (none lost, reordered or duplicated), then
/// leaves; again until the deadline.
async fn room_member(addr: SocketAddr, id: usize, deadline: Instant, tally: Arc<Tally>) {
    let mut visit = 0u64;
    while Instant::now() < deadline {
        visit += 1;
        let room = format!("/room-{}", (id + visit as usize) % 4);
        let Some(client) = connect(addr, &room).await else {
            return tally.fail(format!("member {id}: cannot connect"));
        };
        tally.connections.fetch_add(1, Ordering::Relaxed);
        let (mut sink, mut stream) = client.split();
        let stay = Duration::from_millis(500 + (id as u64 * 137 + visit * 91) % 2000);
        let leave_at = (Instant::now() + stay).min(deadline);
        let me = format!("{id}.{visit}");
        let sender = async {
            let mut sequence = 0u64;
            while Instant::now() < leave_at {
                let text = format!("{me} {sequence}");
                if sink.send(Message::text(text)).await.is_err() {
                    return;
                }
                sequence += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let tally_ref = &tally;
        let me_ref = &me;
        let receiver = async move {
            let mut last: HashMap<String, u64> = HashMap::new();
            let mut own_seen = 0u64;
            loop {
                let message = tokio::time::timeout(
                    leave_at.saturating_duration_since(Instant::now()) + Duration::from_millis(200),
                    stream.next(),
                )
                .await;
                let Ok(Some(Ok(message))) = message else {
                    return;
                };
                let Message::Text(text) = message else {
                    if let Message::Close(frame) = message {
                        let code = frame.map_or(1005, |frame| frame.code.into());
                        tally_ref.closed("broadcast member", code, &[]);
                    }
                    continue;
                };
                let Some((sender, sequence)) = text.split_once(' ') else {
                    continue; // the welcome
                };
                let Ok(sequence) = sequence.parse::<u64>() else {
                    continue;
                };
                if let Some(previous) = last.insert(sender.to_owned(), sequence)
                    && sequence != previous + 1
                {
                    tally_ref.fail(format!(
                        "member {me_ref}: from {sender}: {sequence} after {previous}"
                    ));
                }
                if sender == me_ref {
                    if sequence != own_seen {
                        tally_ref.fail(format!(
                            "member {me_ref}: own {sequence}, expected {own_seen}"
                        ));
                    }
                    own_seen += 1;
                }
                tally_ref.verified.fetch_add(1, Ordering::Relaxed);
            }
        };
        tokio::join!(sender, receiver);
    }
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

/// `GET /stats` on `addr`: the connection count (which includes the request itself).
async fn stats_connections(addr: SocketAddr) -> Option<u64> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .ok()?
    .ok()?;
    let body = response.split("\r\n\r\n").nth(1)?;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["connections"].as_u64()
}

/// Descriptors and memory a server may keep above its baseline once every client is gone:
/// the allocator keeps some freed memory for reuse, and the runtime's worker threads grow
/// their caches under load.
const RSS_MARGIN: u64 = 32 << 20;
/// The flood server's `--max-memory`.
const FLOOD_BUDGET: u64 = 16 << 20;
const FD_MARGIN: usize = 0;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let servers = [
        start(&args, "echo", "echo", &[]),
        start(&args, "raw", "raw", &[]),
        start(&args, "broadcast", "broadcast", &[]),
        // Eight flooders' 2 MiB messages and their echoes want 32 MiB: twice the budget.
        start(
            &args,
            "flood",
            "echo",
            &["--max-memory", &FLOOD_BUDGET.to_string()],
        ),
    ];
    let [echo, raw, broadcast, flood] =
        [&servers[0], &servers[1], &servers[2], &servers[3]].map(|s| s.addr);
    let baseline: Vec<(usize, u64)> = servers
        .iter()
        .map(|server| {
            let pid = server.child.id();
            (open_fds(pid).unwrap_or(0), rss(pid).unwrap_or(0))
        })
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let tally = Arc::new(Tally::default());
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..16 {
        tasks.spawn(echo_checker(echo, id, deadline, tally.clone()));
    }
    for _ in 0..4 {
        tasks.spawn(pipeliner(
            raw,
            "pipeliner",
            1024,
            16,
            None,
            deadline,
            tally.clone(),
        ));
    }
    tasks.spawn(pipeliner(
        raw,
        "1 MiB messages",
        1 << 20,
        2,
        None,
        deadline,
        tally.clone(),
    ));
    for _ in 0..2 {
        let pause = Some(Duration::from_millis(20));
        tasks.spawn(pipeliner(
            raw,
            "slow reader",
            16 << 10,
            8,
            pause,
            deadline,
            tally.clone(),
        ));
        tasks.spawn(fragmenter(raw, deadline, tally.clone()));
        tasks.spawn(pinger(raw, deadline, tally.clone()));
        tasks.spawn(attacker(raw, deadline, tally.clone()));
        tasks.spawn(attacker(echo, deadline, tally.clone()));
        tasks.spawn(never_reader(raw, deadline, tally.clone()));
    }
    for _ in 0..4 {
        tasks.spawn(churner(echo, deadline, tally.clone()));
    }
    for id in 0..24 {
        tasks.spawn(room_member(broadcast, id, deadline, tally.clone()));
    }
    // The memory budget under a flood of large messages: the small messages of the checkers
    // beside them must keep flowing.
    for id in 16..20 {
        tasks.spawn(echo_checker(flood, id, deadline, tally.clone()));
    }
    for _ in 0..8 {
        tasks.spawn(flooder(flood, deadline, tally.clone()));
    }
    for _ in 0..2 {
        tasks.spawn(staller(flood, deadline, tally.clone()));
    }
    let mut last_report = Instant::now();
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tally.fail(format!("a client task panicked: {error}"));
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "soak: {:.0} s, {} connections, {} messages verified",
                started.elapsed().as_secs_f64(),
                tally.connections.load(Ordering::Relaxed),
                tally.verified.load(Ordering::Relaxed)
            );
            last_report = Instant::now();
        }
    }

    // Everyone has gone: the servers must come back to where they started.
    let mut after = Vec::new();
    for (server, (fds_before, rss_before)) in servers.iter().zip(&baseline) {
        let pid = server.child.id();
        let settle = Instant::now() + Duration::from_secs(15);
        let settled = loop {
            let fds = open_fds(pid).unwrap_or(usize::MAX);
            let clients = stats_connections(server.addr).await;
            if (fds <= fds_before + FD_MARGIN && clients == Some(1)) || Instant::now() > settle {
                break (fds, clients);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let rss_after = rss(pid).unwrap_or(u64::MAX);
        if settled.0 > fds_before + FD_MARGIN {
            tally.fail(format!(
                "{}: {} descriptors open after, {fds_before} before",
                server.name, settled.0
            ));
        }
        if settled.1 != Some(1) {
            tally.fail(format!(
                "{}: /stats counts {:?} connections after (1 is the request itself)",
                server.name, settled.1
            ));
        }
        if rss_after > rss_before + RSS_MARGIN {
            tally.fail(format!(
                "{}: RSS {} MiB after, {} MiB before",
                server.name,
                rss_after >> 20,
                rss_before >> 20
            ));
        }
        if server.name == "flood" {
            let peak = peak_rss(pid).unwrap_or(u64::MAX);
            println!(
                "- flood server: peak RSS {:.1} MiB",
                peak as f64 / 1048576.0
            );
            if peak > FLOOD_BUDGET + RSS_MARGIN {
                tally.fail(format!(
                    "flood: peak RSS {} MiB, over its {} MiB budget plus {} MiB",
                    peak >> 20,
                    FLOOD_BUDGET >> 20,
                    RSS_MARGIN >> 20
                ));
            }
        }
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        if log.contains("panicked") || log.contains(" ERROR ") {
            tally.fail(format!(
                "{}: its log ({}) shows a panic or an error",
                server.name,
                server.log.display()
            ));
        }
        after.push((server.name, *fds_before, settled.0, *rss_before, rss_after));
    }

    let mut round_trips = std::mem::take(&mut *tally.round_trips.lock().unwrap());
    round_trips.sort_unstable();
    let (p50, p99) = (
        percentile(&round_trips, 0.5),
        percentile(&round_trips, 0.99),
    );
    let p99_within_limit = p99 <= args.max_p99_ms;
    if !p99_within_limit {
        tally.fail(format!(
            "echo checkers' p99 round trip {p99:.2} ms is over {} ms",
            args.max_p99_ms
        ));
    }
    println!(
        "soak: {:.0} s against echo, raw, broadcast and memory-flood servers at once",
        started.elapsed().as_secs_f64()
    );
    println!(
        "- connections served: {}",
        tally.connections.load(Ordering::Relaxed)
    );
    println!(
        "- messages verified (in order, byte for byte): {}",
        tally.verified.load(Ordering::Relaxed)
    );
    println!(
        "- echo checkers' round trip: p50 {p50:.2} ms, p99 {p99:.2} ms ({} samples)",
        round_trips.len()
    );
    let mut bad: Vec<_> = tally
        .bad
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    bad.sort();
    for (kind, count) in bad {
        println!("- bad clients handled, {kind}: {count}");
    }
    let mut codes: Vec<_> = tally
        .codes
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    codes.sort();
    for ((population, code), count) in codes {
        println!("- close {code} to {population}: {count}");
    }
    for (name, fds_before, fds_after, rss_before, rss_after) in after {
        println!(
            "- {name} server: descriptors {fds_before} before, {fds_after} after; RSS {:.1} MiB before, {:.1} MiB after",
            rss_before as f64 / 1048576.0,
            rss_after as f64 / 1048576.0
        );
    }
    let failures = tally.failures.lock().unwrap();
    if failures.is_empty() {
        println!("soak: PASS");
    } else {
        for failure in failures.iter() {
            println!("FAIL: {failure}");
        }
        println!("soak: FAIL ({} problem(s))", failures.len());
        std::process::exit(1);
    }
}
