//! A `redis-server` of a test's own, on a free loopback port with its own data directory,
//! stopped by PID; and the helpers the cluster tests share. Without `redis-server`, starting
//! one says so in one line and returns `None` (a failure under `WSECHO_REQUIRE_TOOLS=1`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

pub const INSTALL: &str = "apt-get install redis-server";

/// A `redis-server` of the test's own, with append-only persistence so that a restart keeps
/// the streams.
pub struct Redis {
    binary: PathBuf,
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Redis {
    /// Starts one, or returns `None` (having said so) where `redis-server` is not installed.
    pub async fn start() -> Option<Redis> {
        Self::start_with(&[]).await
    }

    /// [`Redis::start`] with more `redis-server` flags, such as `--maxmemory 64mb`.
    pub async fn start_with(extra: &[&str]) -> Option<Redis> {
        let binary = required_tool("redis-server", INSTALL)?;
        let (port, dir) = port_and_dir();
        let mut listen = vec!["--port".to_owned(), port.to_string()];
        listen.extend(extra.iter().map(|flag| flag.to_string()));
        let listen: Vec<&str> = listen.iter().map(String::as_str).collect();
        let child = Self::spawn_with(&binary, &listen, &dir);
        let redis = Redis {
            binary,
            child,
            port,
            dir,
        };
        redis.wait_until_up().await;
        Some(redis)
    }

    pub fn spawn(binary: &Path, port: u16, dir: &Path) -> Child {
        Self::spawn_with(binary, &["--port", &port.to_string()], dir)
    }

    pub fn spawn_with(binary: &Path, listen: &[&str], dir: &Path) -> Child {
        Command::new(binary)
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            // Last, so that a test's own flags win.
            .args(listen)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server")
    }

    /// Starts one that speaks only TLS, with a self-signed certificate for 127.0.0.1;
    /// returns it and the certificate's PEM file.
    pub async fn start_tls() -> Option<(Redis, PathBuf)> {
        let binary = required_tool("redis-server", INSTALL)?;
        let (port, dir) = port_and_dir();
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let child = Self::spawn_with(
            &binary,
            &[
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                cert.to_str().unwrap(),
                "--tls-key-file",
                key.to_str().unwrap(),
                "--tls-auth-clients",
                "no",
            ],
            &dir,
        );
        let redis = Redis {
            binary,
            child,
            port,
            dir,
        };
        // Up once it accepts TCP on its TLS port.
        eventually("redis-server to listen for TLS", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Some((redis, cert))
    }

    pub async fn wait_until_up(&self) {
        let port = self.port;
        eventually("redis-server to answer", || async move { ping(port).await }).await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.child = Self::spawn(&self.binary, self.port, &self.dir);
        self.wait_until_up().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port for a Redis, and a fresh data directory of its own.
pub fn port_and_dir() -> (u16, PathBuf) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("wsecho-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    (port, dir)
}

/// Whether a Redis answers `PING` on `port`.
pub async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut answer)).await,
        Ok(Ok(_))
    ) && &answer == b"+PONG\r\n"
}

pub async fn node(redis: &Redis) -> ServerProcess {
    node_with(&redis.url(), &[]).await
}

/// Two nodes sharing the Redis at `url`, both with `extra` flags.
pub async fn two_nodes(url: &str, extra: &[&str]) -> (ServerProcess, ServerProcess) {
    (node_with(url, extra).await, node_with(url, extra).await)
}

/// A broadcast node sharing rooms through the Redis at `url`, with more flags.
pub async fn node_with(url: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--mode", "broadcast", "--redis", url];
    args.extend_from_slice(extra);
    ServerProcess::start(&args).await
}

/// Reads `count` text messages.
pub async fn texts(client: &mut Client, count: usize) -> Vec<String> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        seen.push(next_text(client).await);
    }
    seen
}

pub async fn health(addr: SocketAddr) -> u16 {
    get(addr, "/healthz").await.status
}

/// Sends one command to the Redis on `port` in RESP and returns its raw answer.
pub async fn redis_command(port: u16, words: &[&str]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut request = format!("*{}\r\n", words.len());
    for word in words {
        request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 64 * 1024];
    let read = within("Redis's answer", stream.read(&mut answer))
        .await
        .unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

/// A number from `INFO`'s `section`, e.g. `total_connections_received` from `stats`.
pub async fn redis_stat(port: u16, section: &str, name: &str) -> u64 {
    let info = redis_command(port, &["INFO", section]).await;
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in INFO {section}:\n{info}"))
}

/// Raises this process's open-files limit to the hard limit; returns the limit in force.
pub fn raise_own_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}
