//! Worker threads: one single-threaded tokio runtime per thread, and the connections spread
//! over them as they are accepted.
//!
//! Why not tokio's multi-thread runtime: it serves many busy connections unevenly. Measured
//! with 1000 echo connections on one core (bench/run.sh's echo1000), the multi-thread
//! runtime answered half the round trips within 1.6 ms and the slowest percent after
//! 163 ms; some connections got three times as many answers as others. Its workers keep a
//! run queue of 256 tasks; when one socket-readiness pass wakes more, the older half moves to
//! a queue shared by all workers, which a worker looks at only every few dozen tasks, while
//! the connections still in its own queue keep being woken and served (tokio-rs/tokio#2702,
//! #4051 describe the same). Turning off its LIFO slot changed nothing; visiting the shared
//! queue on every task starved the local queue instead. A current-thread runtime runs woken
//! tasks in the order they woke, so every connection gets its turn: 1000 connections were
//! answered 465 or 466 times each, p99 within 1.2x of p50.
//!
//! Several such runtimes keep that on several cores. Connections are placed round-robin
//! when accepted and stay where they were placed: there is no work stealing, so a worker
//! with heavier clients is not relieved by an idle one (nginx's workers make the same
//! trade).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use log::warn;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How many tasks a worker runs between two polls of its sockets' readiness (tokio's default
/// is 61). A session that has handled a full batch goes to the back of the run queue at once
/// (see `session`); the connections whose data arrived meanwhile join that queue only when
/// the worker next polls for readiness, so the more often it does, the closer the turns
/// come to the order in which clients became ready. bench's load generator, pipelined
/// 64 KiB messages, alternated runs, p99 round trip against the default's: 16x4 2.6 against
/// 3.7 ms, 64x4 9.9 against 15.5 ms (where a few connections had got half the answers of
/// the others); echo with 1000 connections costs about 1.5% more CPU per message for the
/// extra polls.
const EVENT_INTERVAL: u32 = 16;

/// The runtimes that serve connections: the one running [`serve_on`](crate::serve_on)
/// (worker 0) and any number of threads of their own.
pub struct Workers {
    /// The other workers' runtimes.
    others: Vec<Handle>,
    /// The next worker to place a connection on.
    next: AtomicUsize,
    /// The other workers' threads, each running its runtime until its stop sender goes.
    threads: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Workers {
    /// Just the runtime that runs the server: every connection on it.
    pub fn current() -> Workers {
        Workers {
            others: Vec::new(),
            next: AtomicUsize::new(0),
            threads: Vec::new(),
        }
    }

    /// A new runtime for one worker, the one that accepts included: single-threaded, and
    /// looking at its sockets' readiness every [`EVENT_INTERVAL`] tasks.
    pub fn runtime() -> io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .event_interval(EVENT_INTERVAL)
            .build()
    }

    /// `count` workers in all: the runtime that runs the server and `count - 1` threads,
    /// each with a single-threaded runtime of its own.
    pub fn start(count: usize) -> io::Result<Workers> {
        let mut others = Vec::new();
        let mut threads = Vec::new();
        for index in 1..count.max(1) {
            let runtime = Self::runtime()?;
            others.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("wsecho-worker-{index}"))
                .spawn(move || {
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push((stop, thread));
        }
        Ok(Workers {
            others,
            next: AtomicUsize::new(0),
            threads,
        })
    }

    /// How many runtimes serve connections.
    pub fn count(&self) -> usize {
        self.others.len() + 1
    }

    /// Runs `serve` for an accepted connection on the next worker in turn. Called from the
    /// runtime that accepts (worker 0); a connection placed elsewhere moves its socket to
    /// that worker's runtime first.
    pub(crate) fn place<F, Fut>(&self, stream: TcpStream, peer: SocketAddr, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.count();
        let Some(worker) = turn.checked_sub(1).and_then(|index| self.others.get(index)) else {
            tokio::spawn(serve(stream));
            return;
        };
        // The socket leaves this runtime's reactor and joins the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                warn!(peer:% = peer; "peer {peer}: cannot hand the connection to a worker: {error}");
                return;
            }
        };
        worker.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(error) => {
                    warn!(peer:% = peer; "peer {peer}: a worker cannot take the connection: {error}")
                }
            }
        });
    }
}

impl Drop for Workers {
    /// Stops the worker threads' runtimes and waits for the threads to end. The server has
    /// already closed every connection by then; anything left on a worker is dropped.
    fn drop(&mut self) {
        for (stop, thread) in std::mem::take(&mut self.threads) {
            drop(stop);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Connections go to the workers in turn, each served on its worker's own thread, with
    /// a socket that works there.
    #[tokio::test]
    async fn connections_are_placed_on_each_worker_in_turn() {
        let workers = Workers::start(3).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (served, mut threads) = tokio::sync::mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for _ in 0..6 {
            clients.push(TcpStream::connect(address).await.unwrap());
            let (stream, peer) = listener.accept().await.unwrap();
            let served = served.clone();
            workers.place(stream, peer, move |stream| async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = stream;
                let wrote = stream.write_all(b"x").await.is_ok();
                let name = std::thread::current().name().map(str::to_owned);
                let _ = served.send((name, wrote));
            });
        }
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(threads.recv().await.unwrap());
        }
        assert!(seen.iter().all(|(_, wrote)| *wrote), "{seen:?}");
        let mut names: Vec<String> = seen
            .into_iter()
            .map(|(name, _)| name.unwrap_or_default())
            .collect();
        names.sort();
        let here = std::thread::current().name().unwrap_or_default().to_owned();
        let mut expected = vec![
            here.clone(),
            here,
            "wsecho-worker-1".to_owned(),
            "wsecho-worker-1".to_owned(),
            "wsecho-worker-2".to_owned(),
            "wsecho-worker-2".to_owned(),
        ];
        expected.sort();
        assert_eq!(names, expected);
    }
}
