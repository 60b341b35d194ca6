//! The benchmark runner: starts each server pinned to CPU 0, drives it with `loadgen`
//! (which runs where this runner runs: CPU 1 under `bench/run.sh`), alternates the servers'
//! order from round to round, and prints the medians as one table. Every run's raw result is
//! also written as a JSON line.
//!
//! The headline figure is server CPU time per message, read from /proc/PID/stat: on a
//! 2-core machine the load generator saturates its own core first, so msg/s mostly measures
//! the generator; CPU per message measures the server.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use wsecho_bench::{field, wait_for_listening};

#[derive(Parser)]
struct Args {
    /// Rounds; each runs every scenario against every server, in a rotated order.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 4.0)]
    duration: f64,
    /// A quick smoke run: one short round with fewer connections.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (repeat the flag): echo64, echo1000, pipe1k, pipe64k,
    /// pipe64k64, idle, fanout (1 sender), fanout10 (10 senders).
    #[arg(long = "only", value_name = "SCENARIO")]
    only: Vec<String>,
    /// Load generator processes for the echo and pipelined scenarios (loadgen --processes),
    /// on machines where one generator process cannot keep a server busy. They all run
    /// where this runner runs (bench/run.sh: CPU 1).
    #[arg(long, default_value_t = 1)]
    loadgen_processes: usize,
    /// Directory holding the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where to append one JSON line per run.
    #[arg(long, default_value = "target/bench/results.jsonl")]
    json: PathBuf,
}

/// A server under test: how to start it, and how the load generator must talk to it.
#[derive(Clone, Copy)]
struct Server {
    name: &'static str,
    binary: &'static str,
    args: &'static [&'static str],
    /// Plain TCP, no handshake.
    tcp: bool,
    /// Sends a welcome frame first.
    welcome: bool,
    /// Serves TLS with a self-signed certificate it writes for the load generator to trust.
    tls: bool,
}

/// A WebSocket echo server the load generator reaches with a handshake and no welcome.
const fn websocket(
    name: &'static str,
    binary: &'static str,
    args: &'static [&'static str],
) -> Server {
    Server {
        name,
        binary,
        args,
        tcp: false,
        welcome: false,
        tls: false,
    }
}

const TCP: Server = Server {
    name: "tokio TCP echo (ceiling)",
    binary: "tcp-echo",
    args: &[],
    tcp: true,
    welcome: false,
    tls: false,
};
const TUNGSTENITE: Server = websocket("tokio-tungstenite, default config", "tungstenite-echo", &[]);
const TUNGSTENITE_8K: Server = websocket(
    "tokio-tungstenite, 8 KiB buffers",
    "tungstenite-echo",
    &["--read-buffer", "8192"],
);
const FASTWEBSOCKETS: Server =
    websocket("fastwebsockets (hyper upgrade)", "fastwebsockets-echo", &[]);
const WSECHO_RAW: Server = websocket(
    "wsecho --mode raw",
    "wsecho",
    &["--mode", "raw", "--threads", "1"],
);
/// wsecho as a user starts it: no `--threads`, so one single-threaded worker per CPU it may
/// run on (one here, pinned to CPU 0: the same configuration as `--threads 1`).
const WSECHO_RAW_DEFAULT_RUNTIME: Server = websocket(
    "wsecho --mode raw, default runtime",
    "wsecho",
    &["--mode", "raw"],
);
const WSECHO_ECHO: Server = Server {
    name: "wsecho (default echo mode)",
    binary: "wsecho",
    args: &["--threads", "1"],
    tcp: false,
    welcome: true,
    tls: false,
};
const WSECHO_BROADCAST: Server = websocket(
    "wsecho --mode broadcast",
    "wsecho",
    &[
        "--mode",
        "broadcast",
        "--welcome",
        "",
        "--max-queue",
        "4096",
        "--threads",
        "1",
    ],
);

const TLS_CEILING: Server = Server {
    name: "tokio-rustls echo (TLS ceiling)",
    binary: "tls-echo",
    args: &[],
    tcp: true,
    welcome: false,
    tls: true,
};
const WSECHO_RAW_TLS: Server = Server {
    name: "wsecho --mode raw over wss://",
    binary: "wsecho",
    args: &["--mode", "raw", "--tls-self-signed", "--threads", "1"],
    tcp: false,
    welcome: false,
    tls: true,
};

/// wsecho's broadcast as a user starts it (no `--threads`).
const WSECHO_BROADCAST_DEFAULT_RUNTIME: Server = websocket(
    "wsecho --mode broadcast, default runtime",
    "wsecho",
    &[
        "--mode",
        "broadcast",
        "--welcome",
        "",
        "--max-queue",
        "4096",
    ],
);
const FANOUT_CEILING: Server = websocket("TCP fan-out (ceiling)", "fanout-ceiling", &[]);
const TUNGSTENITE_BROADCAST: Server = websocket(
    "tokio-tungstenite + broadcast channel",
    "tungstenite-broadcast",
    &[],
);
const NODE_BROADCAST: Server = websocket("Node ws, loop over clients", "node-broadcast.mjs", &[]);
const PYTHON_BROADCAST: Server =
    websocket("Python websockets.broadcast()", "python_broadcast.py", &[]);
const BUN_ECHO: Server = websocket("Bun (uWebSockets)", BUN_SERVER, &["--mode", "echo"]);
const BUN_PUBLISH: Server = websocket(
    "Bun server.publish (uWebSockets)",
    BUN_SERVER,
    &["--mode", "fanout"],
);

/// The servers of the fan-out scenarios, in the table's order.
const FANOUT_SERVERS: [Server; 7] = [
    FANOUT_CEILING,
    WSECHO_BROADCAST,
    WSECHO_BROADCAST_DEFAULT_RUNTIME,
    BUN_PUBLISH,
    TUNGSTENITE_BROADCAST,
    NODE_BROADCAST,
    PYTHON_BROADCAST,
];

/// The servers of the TLS rows, in the table's order.
const TLS_SERVERS: [Server; 2] = [TLS_CEILING, WSECHO_RAW_TLS];

/// The servers of the echo scenarios, in the table's order.
const SERVERS: [Server; 7] = [
    TCP,
    TUNGSTENITE,
    TUNGSTENITE_8K,
    FASTWEBSOCKETS,
    BUN_ECHO,
    WSECHO_RAW,
    WSECHO_ECHO,
];

/// Flags every wsecho run gets on top of its own.
const WSECHO_COMMON_ARGS: [&str; 6] = [
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--max-connections",
    "60000",
];

/// One load pattern and the servers it is run against.
struct Scenario {
    key: &'static str,
    loadgen: Vec<String>,
    servers: Vec<Server>,
}

/// Connections of the "echo1000" scenario: fewer in the quick smoke run.
fn many_connections(quick: bool) -> usize {
    if quick { 200 } else { 1000 }
}

fn scenarios(args: &Args) -> Vec<Scenario> {
    let quick = args.quick;
    let scale = |full: usize, smoke: usize| if quick { smoke } else { full }.to_string();
    let echo_servers = available(&SERVERS);
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        Scenario {
            key: "echo64",
            loadgen: strings(&["--mode", "echo", "--connections", "64", "--size", "32"]),
            servers: [&echo_servers[..], &TLS_SERVERS].concat(),
        },
        Scenario {
            key: "echo1000",
            loadgen: [
                strings(&["--mode", "echo", "--size", "32", "--connections"]),
                vec![many_connections(quick).to_string()],
            ]
            .concat(),
            servers: [&echo_servers[..], &[WSECHO_RAW_DEFAULT_RUNTIME]].concat(),
        },
        Scenario {
            key: "pipe1k",
            loadgen: strings(&[
                "--mode",
                "pipelined",
                "--connections",
                "64",
                "--in-flight",
                "16",
                "--size",
                "1024",
            ]),
            servers: echo_servers.clone(),
        },
        Scenario {
            key: "pipe64k",
            loadgen: strings(&[
                "--mode",
                "pipelined",
                "--connections",
                "16",
                "--in-flight",
                "4",
                "--size",
                "65536",
            ]),
            servers: [
                &echo_servers[..],
                &TLS_SERVERS,
                &[WSECHO_RAW_DEFAULT_RUNTIME],
            ]
            .concat(),
        },
        Scenario {
            key: "pipe64k64",
            loadgen: strings(&[
                "--mode",
                "pipelined",
                "--connections",
                "64",
                "--in-flight",
                "4",
                "--size",
                "65536",
            ]),
            servers: available(&[
                TCP,
                FASTWEBSOCKETS,
                BUN_ECHO,
                WSECHO_RAW,
                WSECHO_RAW_DEFAULT_RUNTIME,
            ]),
        },
        Scenario {
            key: "idle",
            loadgen: [
                strings(&["--mode", "idle", "--sources", "4", "--connections"]),
                vec![scale(10_000, 1000)],
            ]
            .concat(),
            servers: available(&[
                TCP,
                TUNGSTENITE,
                TUNGSTENITE_8K,
                FASTWEBSOCKETS,
                BUN_ECHO,
                WSECHO_RAW,
                TLS_CEILING,
                WSECHO_RAW_TLS,
            ]),
        },
        fanout_scenario("fanout", 1, scale(1000, 100)),
        fanout_scenario("fanout10", 10, scale(100, 20)),
    ]
}

/// `senders` senders and `receivers` receivers in one room, 64-byte messages, 8 in flight
/// per sender, against every fan-out server that is installed.
fn fanout_scenario(key: &'static str, senders: usize, receivers: String) -> Scenario {
    let mut loadgen: Vec<String> = [
        "--mode",
        "fanout",
        "--size",
        "64",
        "--in-flight",
        "8",
        "--path",
        "/room",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    loadgen.extend(["--senders".to_owned(), senders.to_string()]);
    loadgen.extend(["--connections".to_owned(), receivers]);
    Scenario {
        key,
        loadgen,
        servers: available(&FANOUT_SERVERS),
    }
}

/// A server process pinned to CPU 0, the address it listens on, and for a TLS server the
/// certificate file to trust.
struct Running {
    child: Child,
    addr: String,
    certificate: Option<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Where the peers that are not Rust live: `bench/peers`, prepared by `bench/run.sh`.
const PEERS: &str = "bench/peers";
/// The Python with the peers' requirements, made by `bench/run.sh`.
const PEERS_PYTHON: &str = "target/bench/venv/bin/python";
/// Bun's binary, from the npm package `@oven/bun-linux-x64` that `bench/run.sh` installs.
const BUN: &str = "bench/peers/node_modules/@oven/bun-linux-x64/bin/bun";
/// The script Bun runs, echo or fan-out by its `--mode`.
const BUN_SERVER: &str = "bun-server.mjs";

/// The servers whose runtime and packages are here; the others are left out with a note,
/// so that a machine without Node or Python still runs the rest.
fn available(servers: &[Server]) -> Vec<Server> {
    servers
        .iter()
        .copied()
        .filter(|server| {
            let missing = if server.binary == BUN_SERVER {
                !Path::new(BUN).exists()
            } else if server.binary.ends_with(".mjs") {
                !Path::new(PEERS).join("node_modules/ws").exists()
            } else if server.binary.ends_with(".py") {
                !Path::new(PEERS_PYTHON).exists()
            } else {
                false
            };
            if missing {
                eprintln!(
                    "skipping {}: its packages are not installed (bench/run.sh installs them)",
                    server.name
                );
            }
            !missing
        })
        .collect()
}

/// The program and leading arguments that start `server`.
fn program(server: &Server, bin_dir: &Path) -> Vec<std::ffi::OsString> {
    let script = Path::new(PEERS).join(server.binary).into_os_string();
    if server.binary == BUN_SERVER {
        vec![BUN.into(), script]
    } else if server.binary.ends_with(".mjs") {
        vec!["node".into(), script]
    } else if server.binary.ends_with(".py") {
        vec![PEERS_PYTHON.into(), script]
    } else {
        vec![bin_dir.join(server.binary).into_os_string()]
    }
}

fn start(server: &Server, bin_dir: &Path, log_path: &Path) -> Running {
    // The log goes to a file: a pipe that this process (on the load generator's core) had to
    // drain would slow the server down whenever it logs.
    let log = std::fs::File::create(log_path).expect("create the server log");
    let certificate = server
        .tls
        .then(|| log_path.with_file_name("certificate.pem"));
    let mut command = Command::new("taskset");
    command
        .args(["-c", "0"])
        .args(program(server, bin_dir))
        .args(server.args)
        .args(match server.binary {
            "tcp-echo" | "fastwebsockets-echo" | "fanout-ceiling" | "tungstenite-broadcast" => {
                &["0"][..]
            }
            "wsecho" => &WSECHO_COMMON_ARGS[..],
            // tungstenite-echo, tls-echo and the peers in other languages.
            _ => &["--port", "0"][..],
        });
    if let Some(path) = &certificate {
        let flag = match server.binary {
            "tls-echo" => "--cert-out",
            _ => "--tls-cert-out",
        };
        command.arg(flag).arg(path);
    }
    let child = command
        .env("RUST_LOG", "info")
        .stderr(log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", server.binary));
    let addr = wait_for_listening(log_path, Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "{} did not start: {}",
            server.binary,
            std::fs::read_to_string(log_path).unwrap_or_default()
        )
    });
    Running {
        child,
        addr,
        certificate,
    }
}

/// A block of source addresses that no run of the last 255 used: the TIME_WAIT sockets a
/// run leaves behind (ten thousand for the idle scenario, for a minute) then never slow down
/// the next server's connects, whichever server that is.
fn next_source_block() -> u8 {
    static RUNS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 255 + 1
}

fn run_once(server: &Server, scenario: &Scenario, args: &Args) -> String {
    let log_path = args.json.with_file_name("server.log");
    let running = start(server, &args.bin_dir, &log_path);
    // taskset execs the server in place, so the child is the server process itself.
    let pid = running.child.id().to_string();
    let mut command = Command::new(args.bin_dir.join("loadgen"));
    command
        .args(["--addr", &running.addr, "--server-pid", &pid])
        .args(["--source-block", &next_source_block().to_string()])
        .args(&scenario.loadgen)
        .args(["--duration", &args.duration.to_string()])
        .args(["--warmup", if args.quick { "0.3" } else { "1" }]);
    if server.tcp {
        command.arg("--tcp");
    }
    if server.welcome {
        command.arg("--welcome");
    }
    if let Some(path) = &running.certificate {
        command.arg("--tls-ca").arg(path);
    }
    if scenario.key.starts_with("echo") || scenario.key.starts_with("pipe") {
        command.args(["--processes", &args.loadgen_processes.to_string()]);
    }
    let output = command.output().expect("run loadgen");
    if !output.status.success() {
        panic!(
            "loadgen failed against {}: {}",
            server.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The median of the finite values, or NaN when there are none (a cell no run filled).
fn median(values: &mut Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// Every run's result line, by (scenario, server), in round order.
struct Results {
    lines: BTreeMap<(&'static str, &'static str), Vec<String>>,
}

impl Results {
    /// One field's values over the rounds; NaN where a run lacks it.
    fn values(&self, scenario: &str, server: &str, name: &str) -> Vec<f64> {
        self.lines
            .iter()
            .find(|((s, n), _)| *s == scenario && *n == server)
            .map(|(_, lines)| {
                lines
                    .iter()
                    .map(|line| field(line, name).unwrap_or(f64::NAN))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The median of one field over the rounds.
    fn cell(&self, scenario: &str, server: &str, name: &str) -> f64 {
        median(&mut self.values(scenario, server, name))
    }

    /// The median over rounds of each round's ratio of `server` to `baseline`. Each round
    /// runs every server back to back, so a round's ratio shares that round's conditions;
    /// the median of those is steadier than a ratio of medians.
    fn paired_ratio(&self, scenario: &str, server: &str, baseline: &str, name: &str) -> f64 {
        median(&mut self.paired_ratios(scenario, server, baseline, name))
    }

    /// Each round's ratio of `server` to `baseline`.
    fn paired_ratios(&self, scenario: &str, server: &str, baseline: &str, name: &str) -> Vec<f64> {
        self.values(scenario, server, name)
            .iter()
            .zip(self.values(scenario, baseline, name))
            .map(|(value, base)| value / base)
            .collect()
    }
}

/// A number with `decimals` places, or `-` for a cell no run filled.
fn show(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "-".to_owned()
    }
}

/// The current UTC time, as the results file records it.
fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Runs every scenario against each of its servers, `args.rounds` times, rotating the
/// servers' order from round to round; appends each result to the JSON lines file.
fn run_rounds(scenarios: &[Scenario], args: &Args, date: &str) -> Results {
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent).expect("create the results directory");
    }
    let mut json = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.json)
        .expect("open the results file");
    let mut results = Results {
        lines: BTreeMap::new(),
    };
    for round in 0..args.rounds {
        for scenario in scenarios {
            let mut order = scenario.servers.clone();
            let len = order.len();
            order.rotate_left(round % len);
            for server in &order {
                let line = run_once(server, scenario, args);
                eprintln!(
                    "round {} {:<9} {:<36} {line}",
                    round + 1,
                    scenario.key,
                    server.name
                );
                writeln!(
                    json,
                    "{{\"date\":\"{date}\",\"round\":{},\"scenario\":\"{}\",\"server\":\"{}\",\"result\":{line}}}",
                    round + 1,
                    scenario.key,
                    server.name
                )
                .expect("write results");
                results
                    .lines
                    .entry((scenario.key, server.name))
                    .or_default()
                    .push(line);
                // Let sockets in TIME_WAIT and the scheduler settle between runs.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    results
}

/// The main table: server CPU per message in each scenario, idle memory and handshakes.
fn print_cpu_table(results: &Results, args: &Args, date: &str) {
    println!();
    println!(
        "wsecho benchmark, {date}: medians of {} round(s), {} s each; server on CPU 0, load on CPU 1.",
        args.rounds, args.duration
    );
    println!("µs = server CPU time per message (or per handshake); lower is better.");
    println!();
    println!(
        "| server | echo, 64 conns: µs/msg (msg/s) | echo, {} conns: µs/msg | pipelined 1 KiB, 64x16: µs/msg (msg/s) | pipelined 64 KiB, 16x4: µs/msg | idle memory per connection | handshakes/s (µs each) |",
        many_connections(args.quick)
    );
    println!("|---|---|---|---|---|---|---|");
    for server in SERVERS {
        let n = server.name;
        let idle = results.cell("idle", n, "bytes_per_connection");
        let (memory, handshakes) = if idle.is_finite() {
            (
                format!("{:.1} KB", idle / 1000.0),
                format!(
                    "{} ({})",
                    show(results.cell("idle", n, "handshakes_per_sec"), 0),
                    show(results.cell("idle", n, "server_us_per_handshake"), 1)
                ),
            )
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        println!(
            "| {n} | {} ({}) | {} | {} ({}) | {} | {memory} | {handshakes} |",
            show(results.cell("echo64", n, "server_us_per_msg"), 2),
            show(results.cell("echo64", n, "msgs_per_sec"), 0),
            show(results.cell("echo1000", n, "server_us_per_msg"), 2),
            show(results.cell("pipe1k", n, "server_us_per_msg"), 2),
            show(results.cell("pipe1k", n, "msgs_per_sec"), 0),
            show(results.cell("pipe64k", n, "server_us_per_msg"), 1),
        );
    }
}

/// The user-space share of the main table's CPU: the servers' own code.
fn print_user_table(results: &Results, args: &Args) {
    println!();
    println!(
        "Of that, user-space CPU per message (µs, medians): the server's own code. The rest is system time, mostly the kernel's TCP work, which is about the same whichever server runs, and which moves the most between runs."
    );
    println!();
    println!(
        "| server | echo, 64 conns | echo, {} conns | pipelined 1 KiB | pipelined 64 KiB |",
        many_connections(args.quick)
    );
    println!("|---|---|---|---|---|");
    for server in SERVERS {
        let n = server.name;
        let user = |scenario: &str, decimals| {
            show(
                results.cell(scenario, n, "server_user_us_per_msg"),
                decimals,
            )
        };
        println!(
            "| {n} | {} | {} | {} | {} |",
            user("echo64", 2),
            user("echo1000", 2),
            user("pipe1k", 2),
            user("pipe64k", 1)
        );
    }
}

/// The TLS rows: wsecho over `wss://` beside a bare tokio-rustls echo server.
fn print_tls_table(results: &Results) {
    let measured =
        |scenario, server: &Server, field| !results.values(scenario, server.name, field).is_empty();
    if !TLS_SERVERS.iter().any(|server| {
        measured("echo64", server, "server_us_per_msg")
            || measured("pipe64k", server, "server_us_per_msg")
            || measured("idle", server, "bytes_per_connection")
    }) {
        return;
    }
    println!();
    println!("TLS (server CPU per message or per handshake, µs; full handshakes, no resumption):");
    println!();
    println!(
        "| server | echo, 64 conns: µs/msg | pipelined 64 KiB, 16x4: µs/msg | idle memory per connection | handshakes/s (µs each) |"
    );
    println!("|---|---|---|---|---|");
    for server in TLS_SERVERS {
        let n = server.name;
        println!(
            "| {n} | {} | {} | {} KB | {} ({}) |",
            show(results.cell("echo64", n, "server_us_per_msg"), 2),
            show(results.cell("pipe64k", n, "server_us_per_msg"), 1),
            show(results.cell("idle", n, "bytes_per_connection") / 1000.0, 1),
            show(results.cell("idle", n, "handshakes_per_sec"), 0),
            show(results.cell("idle", n, "server_us_per_handshake"), 1),
        );
    }
    let (wss, ceiling) = (WSECHO_RAW_TLS.name, TLS_CEILING.name);
    println!();
    println!("TLS ratios, wsecho over wss:// / TLS ceiling (goals: ≤ 1.15, 1.15, 1.1, 1.2):");
    for (label, scenario, name) in [
        ("echo 64 conns, µs/msg", "echo64", "server_us_per_msg"),
        ("pipelined 64 KiB, µs/msg", "pipe64k", "server_us_per_msg"),
        ("µs per handshake", "idle", "server_us_per_handshake"),
        ("idle memory per connection", "idle", "bytes_per_connection"),
    ] {
        let ratio = results.paired_ratio(scenario, wss, ceiling, name);
        println!("- {label}: {}", show(ratio, 3));
    }
}

/// Fairness: round-trip percentiles and how evenly the connections were served, where many
/// connections compete (echo with many connections, pipelined 64 KiB).
fn print_latency_table(results: &Results, args: &Args) {
    let scenarios = [
        (
            "echo1000",
            format!("echo, {} conns", many_connections(args.quick)),
        ),
        ("pipe64k", "pipelined 64 KiB, 16x4".to_owned()),
        ("pipe64k64", "pipelined 64 KiB, 64x4".to_owned()),
    ];
    println!();
    println!(
        "Fairness: round trip p50 / p99 / max (ms), and messages answered per connection min / median / max (medians over rounds):"
    );
    for (key, label) in scenarios {
        let servers: Vec<&str> = results
            .lines
            .keys()
            .filter(|(scenario, _)| *scenario == key)
            .map(|(_, server)| *server)
            .collect();
        if servers.is_empty() {
            continue;
        }
        println!();
        println!("| {label} | p50 | p99 | max | per connection: min / median / max |");
        println!("|---|---|---|---|---|");
        let ms = |server: &str, name: &str| show(results.cell(key, server, name) / 1000.0, 2);
        for server in servers {
            println!(
                "| {server} | {} | {} | {} | {} / {} / {} |",
                ms(server, "p50_us"),
                ms(server, "p99_us"),
                ms(server, "max_us"),
                show(results.cell(key, server, "conn_msgs_min"), 0),
                show(results.cell(key, server, "conn_msgs_p50"), 0),
                show(results.cell(key, server, "conn_msgs_max"), 0),
            );
        }
    }
}

/// Broadcast fan-out against its peers: server CPU per delivery, and whether anything was
/// lost or reordered.
fn print_fanout_table(results: &Results, args: &Args) {
    let scenarios = [
        (
            "fanout",
            format!(
                "1 sender x {} receivers",
                if args.quick { 100 } else { 1000 }
            ),
        ),
        (
            "fanout10",
            format!(
                "10 senders x {} receivers",
                if args.quick { 20 } else { 100 }
            ),
        ),
    ];
    if scenarios.iter().all(|(key, _)| {
        results
            .values(key, FANOUT_CEILING.name, "deliveries_per_sec")
            .is_empty()
    }) {
        return;
    }
    println!();
    println!(
        "Broadcast fan-out, one room, 64-byte messages, 8 in flight per sender: µs of server CPU per delivery (deliveries/s), ratio to the ceiling (median of each round's ratio), messages out of order or missing (sum over rounds)."
    );
    println!();
    let header: Vec<&str> = scenarios.iter().map(|(_, label)| label.as_str()).collect();
    println!("| server | {} | {} |", header[0], header[1]);
    println!("|---|---|---|");
    for server in FANOUT_SERVERS {
        let n = server.name;
        let cell = |key: &str| {
            let lost: Vec<f64> = results.values(key, n, "out_of_order");
            let lost: f64 = lost.iter().filter(|v| v.is_finite()).sum::<f64>() + 0.0;
            format!(
                "{} ({}), {}x, {} out of order",
                show(results.cell(key, n, "server_us_per_delivery"), 3),
                show(results.cell(key, n, "deliveries_per_sec"), 0),
                show(
                    results.paired_ratio(key, n, FANOUT_CEILING.name, "server_us_per_delivery"),
                    2
                ),
                lost
            )
        };
        println!("| {n} | {} | {} |", cell("fanout"), cell("fanout10"));
    }
}

/// The goal ratios, and how busy the load generator was.
fn print_summary(results: &Results, args: &Args) {
    let raw = WSECHO_RAW.name;
    let echo = WSECHO_ECHO.name;
    println!();
    println!(
        "Ratios, median over rounds of each round's ratio, and the lowest and highest round (lower is better):"
    );
    let many_label = format!(
        "wsecho raw / TCP ceiling, echo {} conns",
        many_connections(args.quick)
    );
    let bun = BUN_ECHO.name;
    let us = "server_us_per_msg";
    let many_bun = format!(
        "wsecho raw / Bun, echo {} conns",
        many_connections(args.quick)
    );
    for (label, scenario, server, baseline, name) in [
        (
            "wsecho raw / TCP ceiling, echo 64 conns",
            "echo64",
            raw,
            TCP.name,
            us,
        ),
        (many_label.as_str(), "echo1000", raw, TCP.name, us),
        (
            "wsecho raw / fastwebsockets, pipelined 64 KiB",
            "pipe64k",
            raw,
            FASTWEBSOCKETS.name,
            us,
        ),
        ("wsecho raw / Bun, echo 64 conns", "echo64", raw, bun, us),
        (many_bun.as_str(), "echo1000", raw, bun, us),
        ("wsecho raw / Bun, pipelined 1 KiB", "pipe1k", raw, bun, us),
        (
            "wsecho raw / Bun, pipelined 64 KiB 16x4",
            "pipe64k",
            raw,
            bun,
            us,
        ),
        (
            "wsecho raw / Bun, pipelined 64 KiB 64x4",
            "pipe64k64",
            raw,
            bun,
            us,
        ),
        (
            "wsecho raw / Bun, idle memory per connection",
            "idle",
            raw,
            bun,
            "bytes_per_connection",
        ),
        (
            "wsecho raw / Bun, CPU per handshake",
            "idle",
            raw,
            bun,
            "server_us_per_handshake",
        ),
        (
            "wsecho broadcast / Bun server.publish, fan-out 1 sender",
            "fanout",
            WSECHO_BROADCAST_DEFAULT_RUNTIME.name,
            BUN_PUBLISH.name,
            "server_us_per_delivery",
        ),
        (
            "wsecho broadcast / Bun server.publish, fan-out 10 senders",
            "fanout10",
            WSECHO_BROADCAST_DEFAULT_RUNTIME.name,
            BUN_PUBLISH.name,
            "server_us_per_delivery",
        ),
        (
            "wsecho default echo mode / raw, echo 64 conns",
            "echo64",
            echo,
            raw,
            us,
        ),
        (
            "wsecho default echo mode / raw, pipelined 1 KiB",
            "pipe1k",
            echo,
            raw,
            us,
        ),
        (
            "wsecho default echo mode / raw, pipelined 64 KiB",
            "pipe64k",
            echo,
            raw,
            us,
        ),
    ] {
        let mut ratios = results.paired_ratios(scenario, server, baseline, name);
        let lowest = ratios.iter().copied().fold(f64::NAN, f64::min);
        let highest = ratios.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "- {label}: {} (rounds {}-{})",
            show(median(&mut ratios), 3),
            show(lowest, 3),
            show(highest, 3)
        );
    }
    let mut client_shares: Vec<f64> = results
        .lines
        .values()
        .flatten()
        .filter_map(|line| field(line, "client_cpu_share"))
        .collect();
    println!(
        "Load generator CPU use (share of its core), median over runs: {}; runs above ~0.9 are limited by the generator, which is why µs/msg is the figure to compare.",
        show(median(&mut client_shares), 2)
    );
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.rounds = 1;
        args.duration = args.duration.min(1.0);
    }
    let mut scenarios = scenarios(&args);
    if !args.only.is_empty() {
        scenarios.retain(|scenario| args.only.iter().any(|key| key == scenario.key));
    }
    let date = utc_now();
    let started = Instant::now();
    let results = run_rounds(&scenarios, &args, &date);
    print_cpu_table(&results, &args, &date);
    print_user_table(&results, &args);
    print_tls_table(&results);
    print_latency_table(&results, &args);
    print_fanout_table(&results, &args);
    print_summary(&results, &args);
    println!(
        "Raw results: {} ({} s in all).",
        args.json.display(),
        started.elapsed().as_secs()
    );
}
