//! Helpers shared by the integration tests: a server on a loopback port, WebSocket and raw
//! TCP clients, and bounded waits so a broken server fails a test instead of hanging it.
#![allow(dead_code)]

pub mod redis_server;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub use wsecho::{Config, Mode};

/// Upper bound for anything a test waits on; generous so slow CI machines still pass.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Waits for `future`, failing the test with `what` if it takes longer than [`PATIENCE`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A wsecho server on 127.0.0.1 with a port the OS picked.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(wsecho::serve(vec![listener], config, None, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A server whose connections are spread over `workers` runtimes: the test's own and
    /// `workers - 1` threads.
    pub async fn on_workers(config: Config, workers: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let workers = std::sync::Arc::new(wsecho::Workers::start(workers).unwrap());
        let task = tokio::spawn(wsecho::serve_on(
            workers,
            vec![listener],
            config,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn with_mode(mode: Mode) -> Self {
        Self::start(Config {
            mode,
            ..Config::default()
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Starts shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the server down, checks that every one of `clients` is told so with 1001,
    /// and waits until `serve` has returned.
    pub async fn shut_down_expecting_1001(mut self, mut clients: Vec<Client>) {
        self.begin_shutdown();
        for client in &mut clients {
            expect_close_code(client, CloseCode::Away).await;
        }
        drop(clients);
        self.shut_down().await;
    }

    /// Shuts the server down and waits until `serve` has returned.
    pub async fn shut_down(mut self) {
        self.begin_shutdown();
        within("serve to return after shutdown", &mut self.task)
            .await
            .unwrap();
    }

    pub async fn connect(&self, path: &str) -> Client {
        within("connect", connect_async(self.url(path)))
            .await
            .expect("WebSocket handshake")
            .0
    }

    /// Connects through a socket with the given kernel buffer sizes (as small as the kernel
    /// allows; `None` keeps the default), like a client that sets SO_RCVBUF or SO_SNDBUF:
    /// the server's writes back up after a few KiB when the client does not read, and the
    /// client's writes block soon when the server does not read.
    pub async fn connect_with_buffers(
        &self,
        path: &str,
        receive: Option<u32>,
        send: Option<u32>,
    ) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(bytes) = receive {
            socket.set_recv_buffer_size(bytes).unwrap();
        }
        if let Some(bytes) = send {
            socket.set_send_buffer_size(bytes).unwrap();
        }
        let stream = within("connect", socket.connect(self.addr)).await.unwrap();
        within(
            "the handshake",
            tokio_tungstenite::client_async(self.url(path), MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("WebSocket handshake")
        .0
    }

    /// Connects and reads the welcome frame, checking it is the default one.
    pub async fn connect_welcomed(&self, path: &str) -> Client {
        let mut client = self.connect(path).await;
        assert_eq!(
            next_text(&mut client).await,
            "Welcome to the WebSocket server!"
        );
        client
    }
}

/// The next data message; fails the test on anything else.
pub async fn next_message(client: &mut Client) -> Message {
    loop {
        let message = within("a message", client.next())
            .await
            .expect("stream ended")
            .expect("read error");
        match message {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

pub async fn next_text(client: &mut Client) -> String {
    match next_message(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

pub async fn send_text(client: &mut Client, text: &str) {
    within("send", client.send(Message::text(text)))
        .await
        .unwrap();
}

/// Reads until the server's close frame and returns it (`None` if the server closed with no
/// frame or just dropped the connection).
pub async fn close_frame(client: &mut Client) -> Option<CloseFrame> {
    loop {
        match within("the close frame", client.next()).await {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

pub async fn expect_close_code(client: &mut Client, code: CloseCode) -> CloseFrame {
    let frame = close_frame(client)
        .await
        .unwrap_or_else(|| panic!("expected close code {code}, got no close frame"));
    assert_eq!(frame.code, code, "close reason: {}", frame.reason);
    frame
}

/// Sends `request` as raw bytes and returns the whole HTTP response (the server closes after
/// a plain-HTTP answer).
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    within("the HTTP response", stream.read_to_end(&mut bytes))
        .await
        .unwrap();
    HttpResponse::parse(&bytes)
}

/// The value of the sample `name` (labels included) in a Prometheus scrape.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    raw_http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .await
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn parse(bytes: &[u8]) -> Self {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        HttpResponse {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub const UPGRADE_REQUEST: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// Completes a handshake by hand and returns the bare TCP stream, so a test can write frames
/// the WebSocket client library would refuse to produce.
pub async fn raw_websocket(addr: SocketAddr) -> TcpStream {
    upgrade_by_hand(TcpStream::connect(addr).await.unwrap()).await
}

/// Sends [`UPGRADE_REQUEST`] on a connected stream and reads the 101, returning the stream.
pub async fn upgrade_by_hand(stream: TcpStream) -> TcpStream {
    upgrade_by_hand_to(stream, "/").await
}

/// [`upgrade_by_hand`] for the request target `target` (a path and query).
pub async fn upgrade_by_hand_to(mut stream: TcpStream, target: &str) -> TcpStream {
    let request = UPGRADE_REQUEST.replacen("GET / ", &format!("GET {target} "), 1);
    stream.write_all(request.as_bytes()).await.unwrap();
    read_101(&mut stream).await;
    stream
}

/// Reads the server's response head, byte by byte so that nothing after it is taken, and
/// checks that it is a 101.
pub async fn read_101(stream: &mut TcpStream) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        within("the 101 response", stream.read_exact(&mut byte))
            .await
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// Wraps a stream whose handshake was done by hand in a WebSocket client, to read what the
/// server sends back.
pub async fn as_client(stream: TcpStream) -> Client {
    WebSocketStream::from_raw_socket(MaybeTlsStream::Plain(stream), Role::Client, None).await
}

/// One client frame, encoded by hand: `opcode` with FIN set, masked with `mask` unless it
/// is `None`.
pub fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut bytes = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len if len < 126 => bytes.push(mask_bit | len as u8),
        len if len < 65536 => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(mask_bit | 127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            bytes.extend_from_slice(&mask);
            bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => bytes.extend_from_slice(payload),
    }
    bytes
}

pub const MASK: Option<[u8; 4]> = Some([0x12, 0x34, 0x56, 0x78]);

/// Connects to `path` on the server at `addr` (a process, or a broadcast room's node) and
/// reads the welcome.
pub async fn member(addr: SocketAddr, path: &str) -> Client {
    let (mut client, _) = within(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{addr}{path}")),
    )
    .await
    .expect("handshake");
    assert_eq!(
        next_text(&mut client).await,
        "Welcome to the WebSocket server!"
    );
    client
}

/// The bytes `/stats` says are held against the memory budget.
pub async fn held_bytes(addr: SocketAddr) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_slice(&get(addr, "/stats").await.body).expect("/stats is JSON");
    stats["memory"]["held_bytes"]
        .as_u64()
        .expect("memory.held_bytes")
}

/// Reads one frame the server sent (servers do not mask) from a bare stream, returning its
/// opcode and payload, or `None` if the server closed the connection (or sent nothing for
/// [`PATIENCE`]).
pub async fn read_server_frame(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Option<(u8, Vec<u8>)> {
    wsecho_bench::read_server_frame(stream, PATIENCE).await
}

/// Whether the server has closed `stream` (reads end-of-stream or a reset), discarding
/// anything still in flight before that.
pub async fn wait_for_eof(stream: &mut TcpStream) {
    let mut scratch = vec![0u8; 65536];
    loop {
        match within(
            "the server to close the connection",
            stream.read(&mut scratch),
        )
        .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// Runs `check` until it returns true, failing the test after [`PATIENCE`]. For conditions
/// the server reaches just after an event the test can see (a slot freed right after the
/// socket closes), where there is no event to wait on.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The built `wsecho` binary running as a child process, with its log collected.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServerProcess {
    /// Starts `wsecho --host 127.0.0.1 --port 0 ARGS` and waits for its listening line
    /// (`ws://` or `wss://`).
    pub async fn start(args: &[&str]) -> Self {
        Self::spawn(args, None).await
    }

    /// [`ServerProcess::start`] with both the soft and the hard open-files limit set to
    /// `limit`, so the server cannot raise it and runs out of descriptors early.
    pub async fn start_with_open_files_limit(args: &[&str], limit: u64) -> Self {
        Self::spawn(args, Some(limit)).await
    }

    async fn spawn(args: &[&str], open_files_limit: Option<u64>) -> Self {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wsecho"));
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped());
        if let Some(limit) = open_files_limit {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: setrlimit is async-signal-safe and only reads the struct.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (found, address) = std::sync::mpsc::channel();
        let collected = log.clone();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Logged before the address is handed on, so that a test that has the
                // address also finds the listening line in the log.
                collected.lock().unwrap().push_str(&line);
                collected.lock().unwrap().push('\n');
                // The address ends where the line (or, in JSON, the string) does.
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(rest) = rest.split("://").nth(1)
                    && let Some(found) = found.take()
                {
                    let address: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                        .collect();
                    let _ = found.send(address);
                }
            }
        });
        let addr = within(
            "the listening line",
            tokio::task::spawn_blocking(move || address.recv().expect("server exited early")),
        )
        .await
        .unwrap()
        .parse()
        .unwrap();
        ServerProcess { child, addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in bytes, from /proc.
    pub fn rss(&self) -> u64 {
        wsecho_bench::rss(self.child.id()).expect("the server's /proc status")
    }

    /// The most resident memory the server has had, in bytes (VmHWM).
    pub fn peak_rss(&self) -> u64 {
        wsecho_bench::peak_rss(self.child.id()).expect("the server's /proc status")
    }

    pub fn open_fds(&self) -> usize {
        wsecho_bench::open_fds(self.child.id()).expect("the server's /proc fd directory")
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, ...) to the server.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Sends SIGTERM and returns the exit code.
    pub async fn terminate(self) -> Option<i32> {
        self.signal("TERM");
        self.exit_code().await
    }

    /// Waits (within [`PATIENCE`]) for the process to exit, and returns its exit code.
    pub async fn exit_code(mut self) -> Option<i32> {
        let status = within(
            "the server process to exit",
            tokio::task::spawn_blocking(move || self.child.wait()),
        )
        .await
        .unwrap()
        .unwrap();
        status.code()
    }

    /// Fails the test if the log shows an error-level line or a panic.
    pub fn assert_no_errors_logged(&self) {
        let log = self.log();
        assert!(
            !log.contains(" ERROR ") && !log.contains("panicked"),
            "the server logged an error or panicked:\n{log}"
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Completes a handshake by hand, sends `bytes` as they are, and checks that the server
/// answers with a close frame carrying `code`.
pub async fn expect_close_after_sending(addr: SocketAddr, bytes: &[u8], code: CloseCode) {
    let mut stream = raw_websocket(addr).await;
    stream.write_all(bytes).await.unwrap();
    let mut client = as_client(stream).await;
    expect_close_code(&mut client, code).await;
}

/// The path of an external tool a test needs, or `None` after printing one line saying how
/// to install it. With `WSECHO_REQUIRE_TOOLS=1` (CI sets it) a missing tool fails the test
/// instead, so CI never skips.
pub fn required_tool(name: &str, install: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("WSECHO_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (WSECHO_REQUIRE_TOOLS=1); install it with: {install}"
        );
        println!("skipped: {name} is not installed ({install})");
    }
    found
}
