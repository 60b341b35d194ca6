//! `wss://` and `https://`: a rustls client that trusts the server's certificate gets the
//! welcome and its echoes, plain HTTP on the TLS port gets a clear 400, and bad certificate
//! files stop the server before it listens.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A directory of its own for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wsecho-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client configuration that trusts only the certificates in `ca`.
fn trusting(ca: &Path) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A TLS handshake with `addr` as `localhost`, trusting only the certificate in `ca`.
async fn tls_handshake(
    addr: std::net::SocketAddr,
    ca: &Path,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = trusting(ca);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    within(
        "the TLS handshake",
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
}

/// A TLS connection to `addr` that trusts only the certificate in `ca`.
async fn tls_connect(addr: std::net::SocketAddr, ca: &Path) -> TlsStream<TcpStream> {
    tls_handshake(addr, ca)
        .await
        .expect("the server's certificate is trusted")
}

async fn wss_connect(
    addr: std::net::SocketAddr,
    ca: &Path,
) -> WebSocketStream<TlsStream<TcpStream>> {
    let stream = tls_connect(addr, ca).await;
    let url = format!("wss://localhost:{}/", addr.port());
    within(
        "the handshake",
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .unwrap()
    .0
}

/// A server with a self-signed certificate, and the file it wrote the certificate to.
async fn self_signed_server(name: &str) -> (ServerProcess, PathBuf) {
    let cert = scratch(name).join("cert.pem");
    let server = ServerProcess::start(&[
        "--tls-self-signed",
        "--tls-cert-out",
        cert.to_str().unwrap(),
    ])
    .await;
    (server, cert)
}

async fn next_data(client: &mut WebSocketStream<TlsStream<TcpStream>>) -> Message {
    loop {
        match within("a message", client.next()).await.unwrap().unwrap() {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_server_welcomes_and_echoes_over_wss() {
    let (server, cert) = self_signed_server("self-signed").await;
    assert!(server.log().contains("listening on wss://"));
    assert!(server.log().contains("SHA-256 fingerprint"));
    let written = std::fs::read_to_string(&cert).unwrap();
    assert!(written.contains("BEGIN CERTIFICATE") && !written.contains("PRIVATE KEY"));
    let mut client = wss_connect(server.addr, &cert).await;
    assert_eq!(
        next_data(&mut client).await,
        Message::text("Welcome to the WebSocket server!")
    );
    client.send(Message::text("over TLS")).await.unwrap();
    assert_eq!(
        next_data(&mut client).await,
        Message::text("Hello from server, you said: \"over TLS\"")
    );
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    client.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::binary(big));
    client.close(None).await.unwrap();
    server.assert_no_errors_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_port_serves_https_pages_with_alpn_http_1_1() {
    let (server, cert) = self_signed_server("https").await;
    let mut stream = tls_connect(server.addr, &cert).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = within("the answer", stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_gets_a_400_that_says_so() {
    let (server, cert) = self_signed_server("plain").await;
    let mut secure = wss_connect(server.addr, &cert).await;
    next_data(&mut secure).await;
    let answer = get(server.addr, "/").await;
    assert_eq!(answer.status, 400);
    assert!(String::from_utf8_lossy(&answer.body).contains("expects TLS"));
    // The status line says so too, for clients that show only that (websocat).
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = within("the answer", plain.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    let status_line = response.lines().next().unwrap_or_default();
    assert_eq!(
        status_line,
        "HTTP/1.1 400 Bad Request (this port expects TLS: use wss:// or https://)"
    );
    secure.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        next_data(&mut secure).await,
        Message::text("Hello from server, you said: \"still here\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_and_key_from_pem_files_are_served() {
    let dir = scratch("files");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let server = ServerProcess::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let mut client = wss_connect(server.addr, &cert).await;
    assert_eq!(
        next_data(&mut client).await,
        Message::text("Welcome to the WebSocket server!")
    );
}

/// Runs the binary with `args` and returns its exit status and what it printed to stderr.
fn start_up(args: &[&str]) -> (std::process::ExitStatus, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsecho"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_certificate_files_stop_the_server_before_it_listens() {
    let dir = scratch("bad");
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join("cert.pem");
    let other_key = dir.join("other-key.pem");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&cert, first.cert.pem()).unwrap();
    std::fs::write(&other_key, second.signing_key.serialize_pem()).unwrap();
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    for (cert, key, names) in [
        (path(&missing), path(&other_key), path(&missing)),
        (path(&garbage), path(&other_key), path(&garbage)),
        (path(&cert), path(&garbage), path(&garbage)),
        (
            path(&cert),
            path(&other_key),
            "do not go together".to_owned(),
        ),
    ] {
        let (status, stderr) = start_up(&["--tls-cert", &cert, "--tls-key", &key]);
        assert!(!status.success(), "{cert} {key}: started anyway");
        assert!(stderr.contains(&names), "{cert} {key}: {stderr}");
        assert!(!stderr.contains("listening on"), "{stderr}");
        assert_eq!(
            stderr
                .lines()
                .filter(|line| line.starts_with("wsecho:"))
                .count(),
            1,
            "one line: {stderr}"
        );
    }
}

/// Writes a new self-signed pair for localhost into `cert` and `key`.
fn write_pair(cert: &Path, key: &Path) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(cert, made.cert.pem()).unwrap();
    std::fs::write(key, made.signing_key.serialize_pem()).unwrap();
}

/// Whether a TLS handshake with `addr` succeeds trusting only the certificate in `ca`.
async fn trusts(addr: std::net::SocketAddr, ca: &Path) -> bool {
    tls_handshake(addr, ca).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_pair_for_new_clients_and_keeps_old_connections() {
    let dir = scratch("reload");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let old_cert = dir.join("old-cert.pem");
    write_pair(&cert, &key);
    std::fs::copy(&cert, &old_cert).unwrap();
    let server = ServerProcess::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let mut old_client = wss_connect(server.addr, &old_cert).await;
    next_data(&mut old_client).await;

    write_pair(&cert, &key);
    server.signal("HUP");
    eventually("the reload to be logged", || async {
        server.log().contains("reloaded the TLS certificate")
    })
    .await;
    assert!(
        trusts(server.addr, &cert).await,
        "new clients get the new certificate"
    );
    assert!(!trusts(server.addr, &old_cert).await, "and not the old one");
    old_client.send(Message::text("still")).await.unwrap();
    assert_eq!(
        next_data(&mut old_client).await,
        Message::text("Hello from server, you said: \"still\"")
    );

    // A bad new pair is reported, and the current one kept.
    std::fs::write(&key, "not a key\n").unwrap();
    server.signal("HUP");
    eventually("the failed reload to be logged", || async {
        server.log().contains("keeping the current certificate")
    })
    .await;
    assert!(trusts(server.addr, &cert).await);
    server.assert_no_errors_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_served_with_a_warning() {
    let dir = scratch("expired");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key_pair).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certificate.pem()).unwrap();
    std::fs::write(&key, key_pair.serialize_pem()).unwrap();
    let server = ServerProcess::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let log = server.log();
    assert!(
        log.contains("WARN") && log.contains("clients will refuse it"),
        "{log}"
    );
    assert!(
        !trusts(server.addr, &cert).await,
        "a client refuses the expired certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_over_wss_shows_the_tls_version_cipher_alpn_and_sni() {
    let (server, cert) = self_signed_server("inspect").await;
    let stream = tls_connect(server.addr, &cert).await;
    let url = format!("wss://localhost:{}/?inspect&close=4000", server.addr.port());
    let (mut client, _) = within(
        "the handshake",
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .unwrap();
    let Message::Text(text) = next_data(&mut client).await else {
        panic!("the description first")
    };
    let description: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tls = &description["tls"];
    assert!(
        tls["version"].as_str().unwrap().starts_with("TLSv1_"),
        "{tls}"
    );
    assert!(tls["cipher_suite"].as_str().is_some(), "{tls}");
    assert_eq!(tls["alpn"], "http/1.1");
    assert_eq!(tls["sni"], "localhost");
    assert_eq!(
        next_data(&mut client).await,
        Message::text("Welcome to the WebSocket server!")
    );
    match next_data(&mut client).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("{other:?}"),
    }
}
