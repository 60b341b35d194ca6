//! Running wsecho as a service: the systemd unit in `contrib/` and the `Containerfile`.
//!
//! No container runtime can pull base images on the machines these tests run on, so the
//! image itself is not built here; what can be checked without it is: the unit file passes
//! `systemd-analyze verify`, the image runs as a non-root user, honours `PORT` and builds in
//! two stages, and its health check command, run as the image would run it, passes against a
//! serving wsecho and fails against a port with none.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_wsecho");

fn repository_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = required_tool("systemd-analyze", "apt-get install systemd") else {
        return;
    };
    let unit = repository_file("contrib/wsecho.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/wsecho "), "{unit}");
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
    // verify checks that ExecStart's program exists: point it at the binary just built.
    let dir = std::env::temp_dir().join(format!("wsecho-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wsecho.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/wsecho", BINARY)).unwrap();
    let output = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Unknown settings and bad values are warnings, not failures: none may be printed.
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_image_is_two_stages_runs_as_a_user_and_honours_port() {
    let file = repository_file("Containerfile");
    let instructions: Vec<&str> = file
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .collect();
    let count = |word: &str| {
        instructions
            .iter()
            .filter(|line| line.starts_with(word))
            .count()
    };
    assert_eq!(count("FROM "), 2, "a build stage and a runtime stage");
    assert!(file.contains("COPY --from=build"), "{file}");
    let user = instructions
        .iter()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("a USER line");
    assert!(!["root", "0"].contains(&user.trim()), "runs as {user}");
    assert!(file.contains("ENV PORT=8080"), "{file}");
    assert!(file.contains("EXPOSE 8080"), "{file}");
    assert!(!file.contains("--port"), "the port must come from PORT");
}

/// The HEALTHCHECK's command, as the JSON array the Containerfile gives it.
fn health_check_command() -> Vec<String> {
    let file = repository_file("Containerfile");
    let joined = file.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|line| line.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK line");
    let json = &line[line.find("CMD [").expect("CMD in exec form") + 4..];
    serde_json::from_str(json.trim()).expect("the CMD is a JSON array")
}

#[tokio::test]
async fn the_health_check_passes_on_a_serving_wsecho_and_fails_without_one() {
    let command = health_check_command();
    let run = |port: u16| {
        let command = command.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(&command[0])
                .args(&command[1..])
                .env("PORT", port.to_string())
                .status()
                .unwrap()
                .success()
        })
    };
    let server = ServerProcess::start(&[]).await;
    assert!(
        within("the health check", run(server.addr.port()))
            .await
            .unwrap(),
        "the health check failed against a serving wsecho"
    );
    let port = server.addr.port();
    assert_eq!(server.terminate().await, Some(0));
    assert!(
        !within("the health check", run(port)).await.unwrap(),
        "the health check passed with nothing listening"
    );
}
