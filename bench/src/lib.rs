//! What the benchmark's binaries share: the baseline servers' accept loop, and reading a
//! process's CPU time and memory from /proc.

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Runs a baseline echo server on one thread: listens on 127.0.0.1:`port` (0 picks one),
/// logs `listening on SCHEME://ADDRESS` the way wsecho does (the runner waits for that
/// line), and gives each accepted connection, with Nagle off, to `serve` in a task of its
/// own.
pub fn serve_on_one_thread<F, Fut>(port: u16, scheme: &str, serve: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("listening on {scheme}://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    })
}

/// The port a baseline server was given as its first argument, or 0.
pub fn port_argument() -> u16 {
    std::env::args()
        .nth(1)
        .and_then(|port| port.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second for /proc/PID/stat's times; 100 on every Linux this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time a process has used, split the way /proc/PID/stat reports it. For an echo
/// server the system part is mostly the kernel's TCP work, which is about the same whichever
/// server runs; the user part is the server's own code, where servers differ.
#[derive(Clone, Copy, Debug)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// The time used between `earlier` and this reading.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing ')' do not.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> Option<Duration> {
        let ticks: f64 = fields.get(index)?.parse().ok()?;
        Some(Duration::from_secs_f64(ticks / TICKS_PER_SECOND))
    };
    Some(CpuTime {
        user: ticks(11)?,
        system: ticks(12)?,
    })
}

/// The CPU time all of a process's threads now running have used, to the nanosecond (the
/// scheduler's own count, /proc/PID/task/*/schedstat): `cpu_time` counts in clock ticks of
/// 10 ms, which over the third of a second that 10,000 handshakes take is a 4% step. A
/// thread that has ended is no longer counted, so this is for short windows in which the
/// server starts and ends none.
pub fn cpu_time_exact(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Resident memory of a process, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    memory_status(pid, "VmRSS:")
}

/// The most resident memory a process has had (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    memory_status(pid, "VmHWM:")
}

/// A memory field of /proc/PID/status (given in kB there), in bytes.
fn memory_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// A number field of a flat JSON object line such as the load generator prints.
pub fn field(json: &str, name: &str) -> Option<f64> {
    let start = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// How many descriptors a process has open.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Waits (up to `limit`) for a server's log file to say `listening on ws://ADDRESS` (or
/// `wss://`), as wsecho and the baseline servers do, and returns the first such address.
pub fn wait_for_listening(log: &std::path::Path, limit: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let after_scheme = ["listening on ws://", "listening on wss://"]
            .iter()
            .find_map(|announcement| text.split(announcement).nth(1));
        // The address ends at the first space or line end (wsecho names the page to open
        // after it); until one is written, the line may still be arriving.
        if let Some(rest) = after_scheme
            && let Some(end) = rest.find(char::is_whitespace)
        {
            return Some(rest[..end].to_owned());
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads one frame a server sent (servers do not mask) from a bare stream, returning its
/// first byte (FIN, reserved bits and opcode) and payload; `None` if the stream ends, fails,
/// or sends no frame header within `patience`.
pub async fn read_server_frame_with_fin(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    patience: Duration,
) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; 2];
    tokio::time::timeout(patience, stream.read_exact(&mut header))
        .await
        .ok()?
        .ok()?;
    let length = match header[1] & 0x7f {
        126 => {
            let mut bytes = [0u8; 2];
            stream.read_exact(&mut bytes).await.ok()?;
            u16::from_be_bytes(bytes) as usize
        }
        127 => {
            let mut bytes = [0u8; 8];
            stream.read_exact(&mut bytes).await.ok()?;
            u64::from_be_bytes(bytes) as usize
        }
        short => short as usize,
    };
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.ok()?;
    Some((header[0], payload))
}

/// [`read_server_frame_with_fin`], returning the opcode alone.
pub async fn read_server_frame(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    patience: Duration,
) -> Option<(u8, Vec<u8>)> {
    let (first_byte, payload) = read_server_frame_with_fin(stream, patience).await?;
    Some((first_byte & 0x0f, payload))
}
