//! The load generator: opens WebSocket (or plain TCP) connections to one server on loopback
//! and drives them in one of four ways, then prints one JSON line of results.
//!
//! - `echo`: request/response; each connection sends one message and waits for the answer.
//!   Reports msg/s and latency percentiles.
//! - `pipelined`: each connection keeps `--in-flight` messages outstanding.
//! - `idle`: opens `--connections` connections (handshakes timed) and holds them; with
//!   `--server-pid`, reports the server's memory per connection.
//! - `fanout`: `--senders` senders and `--connections` receivers in one broadcast room;
//!   reports deliveries per second and any message out of its sender's order.
//!
//! Frames are written by hand (precomputed, masked with a fixed key) so that the generator
//! spends as little CPU as possible per message; the server under test does the real work.
//! With `--server-pid`, the server's CPU time over the measured window is reported too.
//! With `--tls-ca`, every connection is TLS first (a full handshake each: no resumption).
//! Every loop is bounded by `--duration`; only loopback addresses are accepted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Echo,
    Pipelined,
    Idle,
    Fanout,
}

#[derive(Parser, Clone)]
struct Args {
    /// Server address (loopback only), e.g. 127.0.0.1:8080.
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Message payload size in bytes.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Fan-out mode: how many members send (each also receives).
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Messages outstanding per connection (pipelined mode) or per sender (fan-out).
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Seconds to measure for.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Speak plain TCP (no handshake): for the TCP echo ceiling.
    #[arg(long)]
    tcp: bool,
    /// Read and drop one frame after the handshake (a server that sends a welcome).
    #[arg(long)]
    welcome: bool,
    /// URL path to connect to (the room, in broadcast mode).
    #[arg(long, default_value = "/")]
    path: String,
    /// Local source addresses to spread connections over (127.0.0.1 .. 127.0.0.N), for more
    /// connections than one address has ports.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Take the source addresses from 127.B.0.1 on instead: a run that is given a block of
    /// its own meets none of the TIME_WAIT sockets that earlier runs left on theirs. With
    /// tens of thousands of those on one address, finding a free port slows each connect
    /// down until handshakes run at a tenth of their rate (bench/run.sh gives every run
    /// a new block).
    #[arg(long, value_name = "B", default_value_t = 0)]
    source_block: u8,
    /// Handshakes in progress at once while opening connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The server's process id, to report its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Create this file when the measured window starts, so that a script can start
    /// counting then (bench/instructions.sh zeroes callgrind's counters).
    #[arg(long, value_name = "PATH")]
    mark_start: Option<std::path::PathBuf>,
    /// Idle mode: create this file once every connection is open, so that a script can stop
    /// counting the handshakes then (bench/instructions.sh handshake).
    #[arg(long, value_name = "PATH")]
    mark_opened: Option<std::path::PathBuf>,
    /// Echo and pipelined modes: run the load in this many worker processes, each with its
    /// share of the connections, so that one process's core does not cap it. This process
    /// coordinates: it starts the workers' measured windows together, reads the server's
    /// CPU time over them, and sums the results; client_cpu_share is then the workers'
    /// total (above 1.0 when they use more than one core).
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Fan-out mode: a second server (another node sharing the room); half the receivers
    /// connect there.
    #[arg(long)]
    remote_addr: Option<SocketAddr>,
    /// Fan-out mode: the remote node's process id; its CPU time counts with the server's.
    #[arg(long)]
    remote_pid: Option<u32>,
    /// Fan-out mode: a process the servers depend on (Redis), whose CPU time is reported
    /// apart.
    #[arg(long)]
    backend_pid: Option<u32>,
    /// Fan-out mode: messages per second each sender sends, at an even pace, instead of
    /// keeping `--in-flight` outstanding.
    #[arg(long)]
    rate: Option<f64>,
    /// Speak TLS, trusting the certificate in this PEM file (the server's self-signed one).
    #[arg(long, value_name = "PATH")]
    tls_ca: Option<std::path::PathBuf>,
    /// The client side of TLS, made from `--tls-ca` once.
    #[arg(skip)]
    tls: Option<TlsConnector>,
    /// Internal: run as one of a coordinator's workers (report "ready" once connected, wait
    /// for a line on stdin, print the latency samples before the result).
    #[arg(long, hide = true)]
    worker: bool,
}

/// A client frame: FIN, the opcode, the mask bit, the length, a fixed mask key and the
/// masked payload.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        len if len < 126 => frame.push(0x80 | len as u8),
        len if len < 65536 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&KEY);
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ KEY[i % 4]),
    );
    frame
}

/// Reads frames and counts the complete ones, without keeping their payloads.
struct FrameReader {
    buffer: Vec<u8>,
    filled: usize,
}

impl FrameReader {
    fn new() -> Self {
        FrameReader {
            buffer: vec![0; 256 * 1024],
            filled: 0,
        }
    }

    /// Reads once from `stream` and returns how many frames completed (0 at end of stream is
    /// reported as an error).
    async fn read(&mut self, stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<usize> {
        self.read_with(stream, |_| {}).await
    }

    /// [`FrameReader::read`], handing each completed frame's payload to `each` (server
    /// frames are not masked).
    async fn read_with(
        &mut self,
        stream: &mut (impl AsyncRead + Unpin),
        mut each: impl FnMut(&[u8]),
    ) -> std::io::Result<usize> {
        let read = stream.read(&mut self.buffer[self.filled..]).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.filled += read;
        let mut start = 0;
        let mut frames = 0;
        while let Some(length) = frame_length(&self.buffer[start..self.filled]) {
            if self.filled - start < length {
                if length > self.buffer.len() {
                    self.buffer.resize(length, 0);
                }
                break;
            }
            let header = length - payload_length(&self.buffer[start..]);
            each(&self.buffer[start + header..start + length]);
            start += length;
            frames += 1;
        }
        self.buffer.copy_within(start..self.filled, 0);
        self.filled -= start;
        Ok(frames)
    }
}

/// The payload length of the frame whose complete header starts `bytes`.
fn payload_length(bytes: &[u8]) -> usize {
    match bytes[1] & 0x7f {
        126 => u16::from_be_bytes([bytes[2], bytes[3]]) as usize,
        127 => u64::from_be_bytes(bytes[2..10].try_into().unwrap_or_default()) as usize,
        short => short as usize,
    }
}

/// The whole length of the frame at the start of `bytes`, if its header is complete.
fn frame_length(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 2 {
        return None;
    }
    let mask = if bytes[1] & 0x80 != 0 { 4 } else { 0 };
    let (header, payload) = match bytes[1] & 0x7f {
        126 => (
            4,
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            10,
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
        ),
        short => (2, short as usize),
    };
    Some(header + mask + payload)
}

/// A TLS client that trusts `ca` and nothing else, and does a full handshake every time, as
/// a new client would: resumption would make later handshakes cheaper than a first visit.
fn tls_connector(ca: &std::path::Path) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).expect("read --tls-ca") {
        roots
            .add(certificate.expect("a PEM certificate in --tls-ca"))
            .expect("a usable certificate in --tls-ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// One connection to the server under test.
enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// Runs `drive` on this connection in a task of its own.
    fn drive(self, frame: Arc<[u8]>, window: usize, counters: Arc<Counters>) -> JoinHandle<Served> {
        match self {
            Connection::Plain(stream) => tokio::spawn(drive(stream, frame, window, counters)),
            Connection::Tls(stream) => tokio::spawn(drive(stream, frame, window, counters)),
        }
    }

    /// Runs `fanout_member` on this connection in a task of its own.
    fn member(
        self,
        me: Option<u32>,
        args: &Args,
        counters: Arc<Counters>,
        deliveries: Arc<Deliveries>,
    ) -> JoinHandle<()> {
        let (size, in_flight, rate) = (args.size, args.in_flight, args.rate);
        match self {
            Connection::Plain(stream) => tokio::spawn(fanout_member(
                stream, me, size, in_flight, rate, counters, deliveries,
            )),
            Connection::Tls(stream) => tokio::spawn(fanout_member(
                stream, me, size, in_flight, rate, counters, deliveries,
            )),
        }
    }
}

async fn connect(args: &Args, index: usize) -> std::io::Result<Connection> {
    let host = 1 + (index % args.sources.max(1) as usize) as u8;
    let source = Ipv4Addr::new(127, args.source_block, 0, host);
    let socket = TcpSocket::new_v4()?;
    if args.sources > 1 || args.source_block != 0 {
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    }
    let stream = socket.connect(args.addr).await?;
    stream.set_nodelay(true)?;
    match &args.tls {
        None => {
            let mut stream = stream;
            upgrade(args, &mut stream).await?;
            Ok(Connection::Plain(stream))
        }
        Some(connector) => {
            let name = ServerName::IpAddress(args.addr.ip().into());
            let mut stream = Box::new(connector.connect(name, stream).await?);
            upgrade(args, &mut stream).await?;
            Ok(Connection::Tls(stream))
        }
    }
}

/// The WebSocket handshake (and the welcome frame, with `--welcome`); nothing with `--tcp`.
async fn upgrade(
    args: &Args,
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
) -> std::io::Result<()> {
    if args.tcp {
        return Ok(());
    }
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.path, args.addr
    );
    stream.write_all(request.as_bytes()).await?;
    let mut received = Vec::with_capacity(512);
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if stream.read_buf(&mut received).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    };
    if !received.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&received).into_owned(),
        ));
    }
    if args.welcome {
        // The welcome frame may have arrived with the head, whole or in part.
        while frame_length(&received[head_end..]).is_none_or(|len| received.len() - head_end < len)
        {
            if stream.read_buf(&mut received).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
    Ok(())
}

/// How long one connection may take to connect and finish its handshake: a server that
/// does not answer must make the load generator fail, not wait.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connections get, once the measured window is over, to take the answers still
/// on their way: a server that has stopped answering must not keep the run from ending.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// Opens `count` connections, `concurrency` at a time, returning them and the time taken.
async fn open_all(args: &Arc<Args>, count: usize) -> (Vec<Connection>, Duration) {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.min(count).max(1) {
        let args = args.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut opened = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                if index >= count {
                    return opened;
                }
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect(&args, index)).await {
                    Ok(Ok(stream)) => opened.push(stream),
                    Ok(Err(error)) => panic!("connection {index} failed: {error}"),
                    Err(_) => panic!("connection {index}: no answer within {HANDSHAKE_TIMEOUT:?}"),
                }
            }
        }));
    }
    let mut streams = Vec::with_capacity(count);
    for worker in workers {
        streams.extend(worker.await.expect("connect worker"));
    }
    (streams, started.elapsed())
}

/// Counters the connection tasks share; `measuring` is set for the measured window only.
#[derive(Default)]
struct Counters {
    measuring: AtomicBool,
    stop: AtomicBool,
    messages: AtomicU64,
}

struct Window {
    seconds: f64,
    client_cpu: f64,
    server_cpu: Option<wsecho_bench::CpuTime>,
    /// The remote node's and the backend's CPU time, fan-out mode only.
    remote_cpu: Option<wsecho_bench::CpuTime>,
    backend_cpu: Option<wsecho_bench::CpuTime>,
}

/// Lets the load run for the warm-up, then measures for the duration, then stops it.
async fn measure(args: &Args, counters: &Counters) -> Window {
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let server_before = args.server_pid.and_then(wsecho_bench::cpu_time);
    let remote_before = args.remote_pid.and_then(wsecho_bench::cpu_time);
    let backend_before = args.backend_pid.and_then(wsecho_bench::cpu_time);
    let client_before = wsecho_bench::cpu_time(std::process::id());
    counters.measuring.store(true, Ordering::Release);
    if let Some(path) = &args.mark_start {
        let _ = std::fs::write(path, "");
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    counters.measuring.store(false, Ordering::Release);
    let seconds = started.elapsed().as_secs_f64();
    counters.stop.store(true, Ordering::Release);
    let server_after = args.server_pid.and_then(wsecho_bench::cpu_time);
    let remote_after = args.remote_pid.and_then(wsecho_bench::cpu_time);
    let backend_after = args.backend_pid.and_then(wsecho_bench::cpu_time);
    let client_after = wsecho_bench::cpu_time(std::process::id());
    Window {
        remote_cpu: remote_before
            .zip(remote_after)
            .map(|(before, after)| after.since(before)),
        backend_cpu: backend_before
            .zip(backend_after)
            .map(|(before, after)| after.since(before)),
        seconds,
        client_cpu: match (client_before, client_after) {
            (Some(before), Some(after)) => after.since(before).total().as_secs_f64(),
            _ => f64::NAN,
        },
        server_cpu: server_before
            .zip(server_after)
            .map(|(before, after)| after.since(before)),
    }
}

fn percentile(sorted: &[u32], fraction: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn main() {
    let mut args = Args::parse();
    args.tls = args.tls_ca.as_deref().map(tls_connector);
    let args = Arc::new(args);
    assert!(
        args.addr.ip().is_loopback(),
        "load goes to loopback addresses only"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = if args.processes > 1 {
        coordinate(&args)
    } else {
        runtime.block_on(run(args.clone()))
    };
    println!("{result}");
}

async fn run(args: Arc<Args>) -> String {
    let opcode = if args.tcp { 0x2 } else { 0x1 };
    let frame: Arc<[u8]> = client_frame(opcode, &vec![b'a'; args.size]).into();
    match args.mode {
        Mode::Idle => {
            let rss_before = args.server_pid.and_then(wsecho_bench::rss);
            let cpu_before = args.server_pid.and_then(wsecho_bench::cpu_time_exact);
            let (streams, took) = open_all(&args, args.connections).await;
            let cpu_after = args.server_pid.and_then(wsecho_bench::cpu_time_exact);
            if let Some(path) = &args.mark_opened {
                let _ = std::fs::write(path, "");
            }
            // Let the server settle (tasks parked, buffers freed) before reading its memory.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss_after = args.server_pid.and_then(wsecho_bench::rss);
            let per_connection = match (rss_before, rss_after) {
                (Some(before), Some(after)) => {
                    (after.saturating_sub(before)) as f64 / streams.len() as f64
                }
                _ => f64::NAN,
            };
            let handshake_cpu_us = match (cpu_before, cpu_after) {
                (Some(before), Some(after)) => {
                    after.saturating_sub(before).as_secs_f64() * 1e6 / streams.len() as f64
                }
                _ => f64::NAN,
            };
            let result = format!(
                "{{\"mode\":\"idle\",\"connections\":{},\"handshakes_per_sec\":{:.0},\
                 \"server_us_per_handshake\":{:.2},\"bytes_per_connection\":{:.0}}}",
                streams.len(),
                streams.len() as f64 / took.as_secs_f64(),
                handshake_cpu_us,
                per_connection
            );
            drop(streams);
            result
        }
        Mode::Echo | Mode::Pipelined => {
            let (streams, _) = open_all(&args, args.connections).await;
            if args.worker {
                wait_for_go();
            }
            let counters = Arc::new(Counters::default());
            let mut tasks = Vec::new();
            for stream in streams {
                let counters = counters.clone();
                let frame = frame.clone();
                let window = if args.mode == Mode::Echo {
                    1
                } else {
                    args.in_flight
                };
                tasks.push(stream.drive(frame, window, counters));
            }
            let window = measure(&args, &counters).await;
            let mut latencies = Vec::new();
            let mut per_connection = Vec::new();
            let deadline = tokio::time::Instant::now() + WIND_DOWN;
            for task in tasks {
                if let Ok(Ok(served)) = tokio::time::timeout_at(deadline, task).await {
                    latencies.extend(served.latencies);
                    per_connection.push(served.messages);
                }
            }
            latencies.sort_unstable();
            if args.worker {
                let samples: Vec<String> = latencies.iter().map(u32::to_string).collect();
                println!("latencies {}", samples.join(" "));
                let counts: Vec<String> = per_connection.iter().map(u64::to_string).collect();
                println!("per-connection {}", counts.join(" "));
            }
            report(
                &args,
                &window,
                counters.messages.load(Ordering::Relaxed),
                &latencies,
                &mut per_connection,
            )
        }
        Mode::Fanout => fanout(args).await,
    }
}

/// A worker's side of the start: say the connections are open, then wait for the go.
fn wait_for_go() {
    use std::io::{BufRead, Write};
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Runs the load in `--processes` workers (this executable with `--worker`), starts them
/// together once all are connected, measures the server over their common window, and
/// returns one result line for the whole.
fn coordinate(args: &Args) -> String {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    assert!(
        matches!(args.mode, Mode::Echo | Mode::Pipelined),
        "--processes applies to echo and pipelined modes"
    );
    let executable = std::env::current_exe().expect("this executable's path");
    let mut workers = Vec::new();
    for worker in 0..args.processes {
        let share = args.connections / args.processes
            + usize::from(worker < args.connections % args.processes);
        let mut command = Command::new(&executable);
        command
            .arg("--worker")
            .args(["--addr", &args.addr.to_string()])
            .args([
                "--mode",
                if args.mode == Mode::Echo {
                    "echo"
                } else {
                    "pipelined"
                },
            ])
            .args(["--connections", &share.max(1).to_string()])
            .args(["--size", &args.size.to_string()])
            .args(["--in-flight", &args.in_flight.to_string()])
            .args(["--duration", &args.duration.to_string()])
            .args(["--warmup", &args.warmup.to_string()])
            .args(["--path", &args.path])
            .args(["--sources", &args.sources.to_string()])
            .args(["--source-block", &args.source_block.to_string()])
            .args(["--concurrency", &args.concurrency.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if args.tcp {
            command.arg("--tcp");
        }
        if args.welcome {
            command.arg("--welcome");
        }
        if let Some(ca) = &args.tls_ca {
            command.arg("--tls-ca").arg(ca);
        }
        let mut child = command.spawn().expect("start a worker");
        let mut output = BufReader::new(child.stdout.take().expect("worker stdout"));
        let mut line = String::new();
        output.read_line(&mut line).expect("worker output");
        assert_eq!(line.trim(), "ready", "a worker failed to connect");
        workers.push((child, output));
    }
    for (child, _) in &mut workers {
        let stdin = child.stdin.as_mut().expect("worker stdin");
        stdin.write_all(b"go\n").expect("start a worker");
        stdin.flush().expect("start a worker");
    }
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let server_before = args.server_pid.and_then(wsecho_bench::cpu_time);
    if let Some(path) = &args.mark_start {
        let _ = std::fs::write(path, "");
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    let seconds = started.elapsed().as_secs_f64();
    let server_after = args.server_pid.and_then(wsecho_bench::cpu_time);
    let (mut messages, mut client_cpu, mut latencies) = (0u64, 0.0, Vec::new());
    let mut per_connection = Vec::new();
    for (mut child, output) in workers {
        for line in output.lines() {
            let line = line.expect("worker output");
            if let Some(counts) = line.strip_prefix("per-connection") {
                per_connection.extend(
                    counts
                        .split_whitespace()
                        .filter_map(|s| s.parse::<u64>().ok()),
                );
            } else if let Some(samples) = line.strip_prefix("latencies") {
                latencies.extend(
                    samples
                        .split_whitespace()
                        .filter_map(|s| s.parse::<u32>().ok()),
                );
            } else if line.starts_with('{') {
                messages += wsecho_bench::field(&line, "messages").unwrap_or(0.0) as u64;
                client_cpu += wsecho_bench::field(&line, "client_cpu_share").unwrap_or(f64::NAN)
                    * args.duration;
            }
        }
        let _ = child.wait();
    }
    latencies.sort_unstable();
    let window = Window {
        seconds,
        client_cpu,
        server_cpu: server_before
            .zip(server_after)
            .map(|(before, after)| after.since(before)),
        remote_cpu: None,
        backend_cpu: None,
    };
    report(args, &window, messages, &latencies, &mut per_connection)
}

/// What one connection saw in the measured window.
#[derive(Default)]
struct Served {
    /// Round-trip time of each answered message, µs.
    latencies: Vec<u32>,
    /// Messages answered.
    messages: u64,
}

/// Keeps `window` messages outstanding on one connection until told to stop. Each answer is
/// matched to the oldest message outstanding (the server answers in order), so pipelined
/// round trips are timed too.
async fn drive(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    frame: Arc<[u8]>,
    window: usize,
    counters: Arc<Counters>,
) -> Served {
    let mut reader = FrameReader::new();
    let mut served = Served::default();
    let burst: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * window)
        .collect();
    if stream.write_all(&burst).await.is_err() {
        return served;
    }
    let mut sent_at: std::collections::VecDeque<Instant> =
        std::iter::repeat_n(Instant::now(), window).collect();
    while !counters.stop.load(Ordering::Acquire) {
        let Ok(answered) = reader.read(&mut stream).await else {
            break;
        };
        if answered == 0 {
            continue;
        }
        let now = Instant::now();
        let measuring = counters.measuring.load(Ordering::Acquire);
        if measuring {
            counters
                .messages
                .fetch_add(answered as u64, Ordering::Relaxed);
            served.messages += answered as u64;
        }
        for sent in sent_at.drain(..answered.min(window)) {
            if measuring {
                served
                    .latencies
                    .push(now.duration_since(sent).as_micros() as u32);
            }
        }
        let refill_count = answered.min(window);
        let refill = &burst[..frame.len() * refill_count];
        let refilled_at = Instant::now();
        sent_at.extend(std::iter::repeat_n(refilled_at, refill_count));
        if stream.write_all(refill).await.is_err() {
            break;
        }
    }
    served
}

/// The result line. `latencies` is sorted; `per_connection` holds each connection's count
/// of answered messages, whose spread shows whether some connections were starved.
fn report(
    args: &Args,
    window: &Window,
    messages: u64,
    latencies: &[u32],
    per_connection: &mut [u64],
) -> String {
    per_connection.sort_unstable();
    let share = |fraction: f64| {
        per_connection
            .get(((per_connection.len().max(1) - 1) as f64 * fraction).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let per_second = messages as f64 / window.seconds;
    let per_message = |cpu: Duration| cpu.as_secs_f64() * 1e6 / messages.max(1) as f64;
    let server_us = window
        .server_cpu
        .map_or(f64::NAN, |cpu| per_message(cpu.total()));
    let server_user_us = window
        .server_cpu
        .map_or(f64::NAN, |cpu| per_message(cpu.user));
    format!(
        "{{\"mode\":\"{}\",\"connections\":{},\"size\":{},\"messages\":{messages},\
         \"msgs_per_sec\":{per_second:.0},\"mb_per_sec\":{:.1},\"server_us_per_msg\":{server_us:.3},\
         \"server_user_us_per_msg\":{server_user_us:.3},\"client_cpu_share\":{:.2},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\
         \"max_us\":{},\"conn_msgs_min\":{},\"conn_msgs_p50\":{},\"conn_msgs_max\":{}}}",
        match args.mode {
            Mode::Echo => "echo",
            Mode::Pipelined => "pipelined",
            Mode::Idle => "idle",
            Mode::Fanout => "fanout",
        },
        args.connections,
        args.size,
        per_second * args.size as f64 / 1e6,
        window.client_cpu / window.seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        percentile(latencies, 0.999),
        latencies.last().copied().unwrap_or(0),
        share(0.0),
        share(0.5),
        share(1.0),
    )
}

/// Fan-out counters shared by every member's task.
#[derive(Default)]
struct Deliveries {
    /// Messages received in the measured window, by every member.
    count: AtomicU64,
    /// Send-to-receipt times in the measured window, in microseconds.
    latencies: std::sync::Mutex<Vec<u32>>,
    /// Messages that arrived out of their sender's order (one missing shows as a gap).
    out_of_order: AtomicU64,
}

/// `--senders` senders and `--connections` receivers in one room. Each sender keeps
/// `--in-flight` messages outstanding, counted back through its own copies (broadcast
/// includes the sender). Every message carries its sender and sequence number, and every
/// member checks that each sender's messages arrive complete and in order.
async fn fanout(args: Arc<Args>) -> String {
    let (mut receivers, _) = open_all(&args, args.connections.div_ceil(2)).await;
    let remote_count = args.connections / 2;
    match args.remote_addr {
        Some(remote) => {
            let remote_args = Arc::new(Args {
                addr: remote,
                ..(*args).clone()
            });
            receivers.extend(open_all(&remote_args, remote_count).await.0);
        }
        None => receivers.extend(open_all(&args, remote_count).await.0),
    }
    let (senders, _) = open_all(&args, args.senders.max(1)).await;
    let counters = Arc::new(Counters::default());
    let deliveries = Arc::new(Deliveries::default());
    let mut tasks = Vec::new();
    for stream in receivers {
        tasks.push(stream.member(None, &args, counters.clone(), deliveries.clone()));
    }
    for (index, stream) in senders.into_iter().enumerate() {
        tasks.push(stream.member(
            Some(index as u32),
            &args,
            counters.clone(),
            deliveries.clone(),
        ));
    }
    let window = measure(&args, &counters).await;
    for task in tasks {
        task.abort();
    }
    let delivered = deliveries.count.load(Ordering::Relaxed);
    let per_delivery = |cpu: Option<wsecho_bench::CpuTime>| {
        cpu.map(|cpu| cpu.total().as_secs_f64() * 1e6 / delivered.max(1) as f64)
            .unwrap_or(f64::NAN)
    };
    let nodes_cpu = match (window.server_cpu, window.remote_cpu) {
        (Some(server), Some(remote)) => Some(wsecho_bench::CpuTime {
            user: server.user + remote.user,
            system: server.system + remote.system,
        }),
        (server, None) => server,
        (None, remote) => remote,
    };
    let mut latencies = std::mem::take(&mut *deliveries.latencies.lock().unwrap());
    latencies.sort_unstable();
    let percentile = |fraction: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * fraction) as usize)
                    .min(latencies.len().saturating_sub(1)),
            )
            .map_or(f64::NAN, |micros| *micros as f64 / 1000.0)
    };
    format!(
        "{{\"mode\":\"fanout\",\"senders\":{},\"receivers\":{},\"size\":{},\"deliveries\":{},\"deliveries_per_sec\":{:.0},\
         \"server_us_per_delivery\":{:.3},\"backend_us_per_delivery\":{:.3},\"p50_ms\":{:.3},\
         \"p99_ms\":{:.3},\"out_of_order\":{},\"client_cpu_share\":{:.2}}}",
        args.senders.max(1),
        args.connections,
        args.size,
        delivered,
        delivered as f64 / window.seconds,
        per_delivery(nodes_cpu),
        per_delivery(window.backend_cpu),
        percentile(0.5),
        percentile(0.99),
        deliveries.out_of_order.load(Ordering::Relaxed),
        window.client_cpu / window.seconds
    )
}

/// Microseconds since the Unix epoch: a clock every process on the machine shares, so a
/// receiver can time a message another process sent.
fn epoch_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// A fan-out text message: `SSSS:QQQQQQQQQQQQ:TTTTTTTTTTTTTTTT` (sender, sequence, send
/// time in microseconds since the epoch), padded to `size`.
fn fanout_frame(sender: u32, sequence: u64, size: usize) -> Vec<u8> {
    let mut payload = format!("{sender:04}:{sequence:012}:{:016}", epoch_micros()).into_bytes();
    payload.resize(size.max(payload.len()), b'a');
    client_frame(0x1, &payload)
}

/// The sender, sequence number and send time a fan-out message carries.
fn parse_fanout(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let text = std::str::from_utf8(payload.get(..34)?).ok()?;
    let mut fields = text.split(':');
    Some((
        fields.next()?.parse().ok()?,
        fields.next()?.parse().ok()?,
        fields.next()?.parse().ok()?,
    ))
}

/// One room member: counts what arrives, checks each sender's order and times each
/// message from its send; as sender `me`, also keeps `--in-flight` of its own messages
/// outstanding, or with `rate` sends that many a second at an even pace.
async fn fanout_member(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    me: Option<u32>,
    size: usize,
    in_flight: usize,
    rate: Option<f64>,
    counters: Arc<Counters>,
    deliveries: Arc<Deliveries>,
) {
    let (mut read_half, mut write_half) = tokio::io::split(stream);
    if let (Some(me), Some(rate)) = (me, rate) {
        // Paced: a writer of its own, and this task only reads.
        let writer_counters = counters.clone();
        tokio::spawn(async move {
            let counters = writer_counters;
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sequence = 0u64;
            while !counters.stop.load(Ordering::Acquire) {
                ticker.tick().await;
                if write_half
                    .write_all(&fanout_frame(me, sequence, size))
                    .await
                    .is_err()
                {
                    return;
                }
                sequence += 1;
            }
        });
        let no_writer: Option<&mut tokio::io::Sink> = None;
        return receive_fanout(
            &mut read_half,
            no_writer,
            None,
            &counters,
            &deliveries,
            |_| Vec::new(),
        )
        .await;
    }
    let mut sent = 0u64;
    if let Some(me) = me {
        let burst: Vec<u8> = (0..in_flight as u64)
            .flat_map(|sequence| fanout_frame(me, sequence, size))
            .collect();
        if write_half.write_all(&burst).await.is_err() {
            return;
        }
        sent = in_flight as u64;
    }
    receive_fanout(
        &mut read_half,
        Some(&mut write_half),
        me,
        &counters,
        &deliveries,
        |own| {
            let refill: Vec<u8> = (sent..sent + own)
                .flat_map(|sequence| fanout_frame(me.unwrap_or(0), sequence, size))
                .collect();
            sent += own;
            refill
        },
    )
    .await;
}

/// Reads a member's messages until told to stop, counting, checking and timing them; after
/// each read, `refill(own)` is given how many of the sender `me`'s own messages came back
/// and returns what to write to `writer` in their place.
async fn receive_fanout<W: AsyncWrite + Unpin>(
    stream: &mut (impl AsyncRead + Unpin),
    mut writer: Option<&mut W>,
    me: Option<u32>,
    counters: &Counters,
    deliveries: &Deliveries,
    mut refill: impl FnMut(u64) -> Vec<u8>,
) {
    let mut reader = FrameReader::new();
    let mut next_from: std::collections::HashMap<u32, u64> = Default::default();
    let mut samples = Vec::new();
    while !counters.stop.load(Ordering::Acquire) {
        let (mut received, mut own, mut disordered) = (0u64, 0u64, 0u64);
        let read = reader
            .read_with(stream, |payload| {
                received += 1;
                let Some((sender, sequence, sent_at)) = parse_fanout(payload) else {
                    disordered += 1;
                    return;
                };
                let took = epoch_micros().saturating_sub(sent_at);
                samples.push(took.min(u32::MAX as u64) as u32);
                let expected = next_from.entry(sender).or_insert(sequence);
                if sequence != *expected {
                    disordered += 1;
                }
                *expected = sequence + 1;
                if Some(sender) == me {
                    own += 1;
                }
            })
            .await;
        if read.is_err() {
            break;
        }
        if counters.measuring.load(Ordering::Acquire) {
            deliveries.count.fetch_add(received, Ordering::Relaxed);
            deliveries
                .latencies
                .lock()
                .unwrap()
                .extend(samples.drain(..));
        }
        samples.clear();
        if disordered > 0 {
            deliveries
                .out_of_order
                .fetch_add(disordered, Ordering::Relaxed);
        }
        if let Some(writer) = writer.as_mut() {
            let bytes = refill(own);
            if !bytes.is_empty() && writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    }
}
