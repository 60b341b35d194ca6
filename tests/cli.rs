//! The built binary: its help, its errors, and shutdown on SIGTERM.

mod common;

use std::process::Command;

use common::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const BINARY: &str = env!("CARGO_BIN_EXE_wsecho");

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
    let (mut client, _) = within(
        "connect",
        tokio_tungstenite::connect_async(format!("ws://{}", server.addr)),
    )
    .await
    .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        "Welcome to the WebSocket server!"
    );
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
    let mut child = Command::new(BINARY)
        .args(["--host", "127.0.0.1"])
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first_line = within(
        "the listening line",
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
