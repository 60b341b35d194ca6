//! The built binary: its help, its errors, and shutdown on SIGTERM.

mod common;

use std::process::Command;

use common::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const BINARY: &str = env!("CARGO_BIN_EXE_wsecho");

/// Starts `command`, returns the first line it writes to stderr, and kills it.
async fn first_stderr_line(mut command: Command) -> String {
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first_line = within(
        "the first line on stderr",
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).unwrap();
            line
        }),
    )
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    first_line
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let output = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--host",
        "[default: localhost]",
        "--port",
        "[default: 8080]",
        "[env: PORT=",
        "--mode",
        "echo",
        "raw",
        "broadcast",
        "--welcome",
        "[default: \"Welcome to the WebSocket server!\"]",
        "--threads",
        "--max-message-size",
        "[default: 64MiB]",
        "--handshake-timeout",
        "--ping-interval",
        "--ping-timeout",
        "--close-timeout",
        "--max-connections",
        "[default: 10000]",
        "--allowed-origin",
        "--max-queue",
        "[default: 1024]",
        "--max-memory",
        "--history",
        "Broadcast:",
    ] {
        assert!(
            help.contains(expected),
            "--help lacks {expected:?}:\n{help}"
        );
    }
}

#[test]
fn a_bad_flag_exits_nonzero() {
    for (flag, named) in [
        ("--mode=shout", "shout"),
        ("--threads=0", "0"),
        ("--max-message-size=lots", "lots"),
        ("--ping-interval=1e19", "1e19"),
        ("--handshake-timeout=-1", "-1"),
    ] {
        let output = Command::new(BINARY).arg(flag).output().unwrap();
        assert!(!output.status.success(), "{flag} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_port_in_use_is_one_clear_line_and_exit_code_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = Command::new(BINARY)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn logs_the_port_it_picked_serves_and_exits_0_on_sigterm_after_closing_with_1001() {
    let server = ServerProcess::start(&[]).await;
    let mut client = member(server.addr, "/").await;
    // The log is read by another thread, so the line may land just after the welcome does.
    eventually("the connect line in the log", || async {
        server.log().contains("INFO") && server.log().contains("connected")
    })
    .await;
    let exit = tokio::join!(server.terminate(), async {
        expect_close_code(&mut client, CloseCode::Away).await;
        // Answer the close, as a client library does on its next read.
        let _ = futures_util::StreamExt::next(&mut client).await;
    })
    .0;
    assert_eq!(exit, Some(0));
}

#[tokio::test]
async fn the_port_can_come_from_the_port_environment_variable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(BINARY);
    command
        .args(["--host", "127.0.0.1"])
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info");
    let first_line = first_stderr_line(command).await;
    assert!(
        first_line.contains(&format!("listening on ws://127.0.0.1:{port}")),
        "{first_line}"
    );
}

#[test]
fn a_history_longer_than_the_queue_is_a_start_up_error() {
    let output = Command::new(BINARY)
        .args([
            "--mode",
            "broadcast",
            "--history",
            "20",
            "--max-queue",
            "10",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--history 20 is more than --max-queue 10"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn help_wraps_to_an_80_column_terminal() {
    let output = Command::new(BINARY)
        .arg("--help")
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let long: Vec<&str> = help
        .lines()
        .filter(|line| line.chars().count() > 80)
        .collect();
    assert!(long.is_empty(), "lines over 80 columns: {long:#?}");
    assert!(help.contains("--max-message-size"), "{help}");
}

#[test]
fn completions_and_the_manual_page_come_from_the_same_flags() {
    let run = |args: &[&str]| {
        let output = Command::new(BINARY).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.contains("_wsecho()"), "{bash}");
    assert!(bash.contains("--max-message-size"), "{bash}");
    assert!(run(&["completions", "zsh"]).starts_with("#compdef wsecho"));
    assert!(run(&["completions", "fish"]).contains("complete -c wsecho"));
    let man = run(&["man"]);
    assert!(man.contains(".TH wsecho 1"), "{man}");
    assert!(man.contains("max\\-message\\-size"), "{man}");
}

/// Every start-up mistake a newcomer makes gets one line naming the flag or variable, the
/// value, and what would be accepted.
#[test]
fn start_up_errors_are_one_line_naming_the_flag_the_value_and_the_accepted_form() {
    let cases: [(&[&str], Option<&str>, &[&str]); 6] = [
        (
            &["--tls-cert", "/nope.pem", "--tls-key", "/nope.pem"],
            None,
            &["--tls-cert /nope.pem", "No such file", "PEM"],
        ),
        (
            &["--tls-cert", "Cargo.toml", "--tls-key", "Cargo.toml"],
            None,
            &[
                "--tls-cert Cargo.toml",
                "no PEM certificate",
                "BEGIN CERTIFICATE",
            ],
        ),
        (
            &["--mode", "broadcast", "--redis", "redis//127.0.0.1:6379"],
            None,
            &[
                "--redis redis//127.0.0.1:6379",
                "redis://[user:password@]host:port[/db]",
            ],
        ),
        (&[], Some("abc"), &["PORT", "abc", "0 to 65535"]),
        (
            &["--port", "99999"],
            None,
            &["--port", "99999", "0 to 65535"],
        ),
        (
            &["--mode", "shout"],
            None,
            &["shout", "echo, raw, broadcast"],
        ),
    ];
    for (args, port_variable, expected) in cases {
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env_remove("PORT")
            .env("RUST_LOG", "info");
        if let Some(port) = port_variable {
            command.env("PORT", port);
        } else if !args.contains(&"--port") {
            command.args(["--port", "0"]);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("wsecho: "), "{stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{args:?}: {stderr} lacks {part:?}");
        }
    }
}

#[tokio::test]
async fn a_default_start_warns_of_nothing_and_names_the_page_to_open() {
    let server = ServerProcess::start(&[]).await;
    let log = server.log();
    assert!(
        log.contains(&format!(
            "listening on ws://{0} (the page: http://{0}/)",
            server.addr
        )),
        "{log}"
    );
    eventually("the start-up lines", || async {
        server.log().contains("memory budget for clients")
    })
    .await;
    let log = server.log();
    let budget_line = log
        .lines()
        .find(|line| line.contains("memory budget for clients"))
        .unwrap();
    assert!(budget_line.contains("INFO"), "{budget_line}");
    assert!(
        !log.lines()
            .any(|line| line.contains("WARN") && line.contains("--max-")),
        "a warning about the defaults:\n{log}"
    );
    assert!(log.contains(&format!("pid {}", server.pid())), "{log}");
}

#[tokio::test]
async fn the_address_is_shown_even_when_rust_log_hides_info() {
    let mut command = Command::new(BINARY);
    command
        .args(["--host", "127.0.0.1", "--port", "0"])
        .env("RUST_LOG", "warn");
    let first_line = first_stderr_line(command).await;
    assert!(
        first_line.starts_with("wsecho: listening on ws://127.0.0.1:"),
        "{first_line}"
    );
    assert!(
        first_line.contains("(the page: http://127.0.0.1:"),
        "{first_line}"
    );
}

#[tokio::test]
async fn sighup_without_tls_is_logged_and_ignored() {
    let server = ServerProcess::start(&[]).await;
    server.signal("HUP");
    eventually("the SIGHUP line", || async {
        server
            .log()
            .contains("SIGHUP: no TLS certificate to reload")
    })
    .await;
    // Still serving after the signal.
    drop(member(server.addr, "/").await);
    assert_eq!(server.terminate().await, Some(0));
}

#[tokio::test]
async fn a_second_signal_during_shutdown_exits_at_once() {
    // A client that never answers the close frame would hold shutdown for the close
    // timeout, far longer than the test waits.
    let server = ServerProcess::start(&["--close-timeout", "600"]).await;
    let mut silent = raw_websocket(server.addr).await;
    let _welcome = read_server_frame(&mut silent).await;
    server.signal("TERM");
    eventually("shutdown to begin", || async {
        server.log().contains("shutting down")
    })
    .await;
    server.signal("INT");
    assert_eq!(server.exit_code().await, Some(130));
    drop(silent);
}

/// The example client (`cargo run --example client`), built beside the tests.
fn example_client() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("client"))
        .expect("the test binary sits in target/<profile>/deps")
}

#[tokio::test]
async fn the_example_client_says_who_closed() {
    let server = ServerProcess::start(&[]).await;
    let url = format!("ws://{}", server.addr);
    // Input ends after one line (as with Ctrl-D): the client closes, the server answers.
    let output = within(
        "the example client",
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(example_client())
                .arg(&url)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("the example client is built by cargo test");
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"hello\n").unwrap();
            child.wait_with_output().unwrap()
        }),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("Welcome to the WebSocket server!"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Hello from server, you said: \"hello\""),
        "{stdout}"
    );
    assert!(
        stderr.contains("closed (you ended input; the server answered)"),
        "{stderr}"
    );
    assert!(!stderr.contains("the server closed"), "{stderr}");
}
