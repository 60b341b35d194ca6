//! A byte-stream fuzzer against a running server: after a real handshake, each connection
//! sends random and mutated frames, then its end of the stream. Every connection must end
//! with a close code the README documents (or the code the client itself sent), or a plain
//! close; the server must keep serving everyone else, log no error or panic, and hold no
//! descriptor for a connection that is gone.
//!
//! The generator is seeded: a failure prints its seed, and `WSECHO_FUZZ_SEED=N cargo test
//! --test fuzz` replays it; `WSECHO_FUZZ_CONNECTIONS` runs more.

mod common;

use std::collections::BTreeMap;

use common::*;
use tokio::io::AsyncWriteExt;

/// A small deterministic generator (xorshift64*): reproducible runs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// The largest message the fuzzed server accepts; some frames claim more.
const MAX_MESSAGE: usize = 64 * 1024;

/// One frame: mostly well-formed, sometimes with a reserved opcode, reserved bits, no mask,
/// a control frame that is too long or fragmented, invalid UTF-8, or a huge length.
fn random_frame(rng: &mut Rng, close_codes_sent: &mut Vec<u16>) -> Vec<u8> {
    let opcode = match rng.below(10) {
        0..=2 => 0x1,
        3..=4 => 0x2,
        5 => 0x0,
        6 => 0x9,
        7 => 0xA,
        8 => 0x8,
        _ => rng.below(16) as u8,
    };
    let mut payload = match opcode {
        0x1 if rng.chance(70) => "wsecho ✓ fuzz".repeat(rng.below(40) as usize).into_bytes(),
        0x8 => {
            let code = match rng.below(4) {
                0 => 1000,
                1 => rng.below(5000) as u16,
                _ => [1001, 1002, 1003, 1007, 1008, 1009, 1011, 3000, 4999][rng.below(9) as usize],
            };
            let mut payload = code.to_be_bytes().to_vec();
            if rng.chance(30) {
                let reason_len = rng.below(20) as usize;
                payload.extend(rng.bytes(reason_len));
            }
            if rng.chance(10) {
                payload.truncate(1);
            }
            if payload.len() >= 2 {
                close_codes_sent.push(code);
            }
            payload
        }
        _ => {
            let longest = if rng.chance(10) { 3000 } else { 130 };
            let len = rng.below(longest) as usize;
            rng.bytes(len)
        }
    };
    if opcode >= 0x8 && rng.chance(70) {
        payload.truncate(125);
    }
    let fin = if opcode >= 0x8 {
        rng.chance(95)
    } else {
        rng.chance(75)
    };
    let rsv = if rng.chance(5) {
        (rng.below(7) as u8 + 1) << 4
    } else {
        0
    };
    let mut bytes = vec![(u8::from(fin) << 7) | rsv | opcode];
    let mask_bit = if rng.chance(95) { 0x80 } else { 0 };
    let claimed = if rng.chance(3) {
        MAX_MESSAGE as u64 * 4
    } else {
        payload.len() as u64
    };
    match claimed {
        len if len < 126 && rng.chance(95) => bytes.push(mask_bit | len as u8),
        len if len < 65536 && rng.chance(90) => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(mask_bit | 127);
            bytes.extend_from_slice(&len.to_be_bytes());
        }
    }
    if mask_bit != 0 {
        let mask = rng.bytes(4);
        bytes.extend_from_slice(&mask);
        bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        bytes.extend_from_slice(&payload);
    }
    bytes
}

/// What one connection's stream sends: a few frames, then perhaps flipped bits or a cut.
/// `close_codes_sent` is emptied and set to `None` when bits were flipped: the codes the
/// client really sent are then unknown.
fn random_stream(rng: &mut Rng, close_codes_sent: &mut Option<Vec<u16>>) -> Vec<u8> {
    let mut codes = Vec::new();
    let mut bytes = Vec::new();
    for _ in 0..=rng.below(8) {
        bytes.extend(random_frame(rng, &mut codes));
    }
    *close_codes_sent = Some(codes);
    if rng.chance(30) && !bytes.is_empty() {
        *close_codes_sent = None;
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
    }
    if rng.chance(20) {
        bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
    }
    bytes
}

/// How one fuzzed connection ended.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    CloseCode(u16),
    CloseWithoutCode,
    /// The server closed the TCP connection with no close frame (the client had stopped
    /// mid-frame, or the server's close was lost to a reset caused by unread input).
    Closed,
}

/// Whether RFC 6455 lets an endpoint send `code` in a close frame (tungstenite answers a
/// close carrying any other code with 1002).
fn may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

async fn fuzz_one(addr: std::net::SocketAddr, stream_bytes: Vec<u8>) -> Ending {
    let mut stream = raw_websocket(addr).await;
    let _ = stream.write_all(&stream_bytes).await;
    let _ = stream.shutdown().await;
    loop {
        match read_server_frame(&mut stream).await {
            Some((0x8, payload)) if payload.len() >= 2 => {
                return Ending::CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            }
            Some((0x8, _)) => return Ending::CloseWithoutCode,
            Some(_) => continue,
            None => return Ending::Closed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_frames_end_with_documented_codes_and_harm_no_one_else() {
    let seed: u64 = std::env::var("WSECHO_FUZZ_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_2026_1123);
    let connections: usize = std::env::var("WSECHO_FUZZ_CONNECTIONS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(1000);
    eprintln!("fuzz seed {seed} ({connections} connections)");
    let server = ServerProcess::start(&["--mode", "raw", "--max-message-size", "64KiB"]).await;
    let mut bystander = within(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{}", server.addr)),
    )
    .await
    .unwrap()
    .0;
    let baseline_fds = server.open_fds();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut endings: BTreeMap<Ending, usize> = BTreeMap::new();
    for batch in 0..connections.div_ceil(16) {
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let mut sent_codes = None;
            let bytes = random_stream(&mut rng, &mut sent_codes);
            tasks.push((sent_codes, tokio::spawn(fuzz_one(server.addr, bytes))));
        }
        for (sent_codes, task) in tasks {
            let ending = task.await.unwrap();
            if let Ending::CloseCode(code) = ending {
                // The server's own codes, or an echo of the client's close.
                let echoed = match &sent_codes {
                    Some(codes) => codes.contains(&code),
                    None => may_be_sent(code),
                };
                assert!(
                    [1000, 1002, 1007, 1009].contains(&code) || echoed,
                    "seed {seed}: close code {code} is not documented (client sent {sent_codes:?})"
                );
            }
            *endings.entry(ending).or_default() += 1;
        }
        let text = format!("still served after batch {batch}");
        send_text(&mut bystander, &text).await;
        assert_eq!(next_text(&mut bystander).await, text, "seed {seed}");
    }
    eprintln!("endings: {endings:?}");
    // The fuzzer reaches the protocol checks, not just the handshake.
    for code in [1002, 1009] {
        assert!(
            endings.contains_key(&Ending::CloseCode(code)),
            "seed {seed}: no connection ended with {code}: {endings:?}"
        );
    }
    eventually(
        "every fuzzed connection's descriptor to be released",
        || async { server.open_fds() <= baseline_fds },
    )
    .await;
    server.assert_no_errors_logged();
}
