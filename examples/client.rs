//! A terminal WebSocket client, like the Node `ws` tutorial's: prints what the server sends
//! and sends each line typed on stdin as a text message. End input (Ctrl-D) to close.
//!
//! ```sh
//! cargo run --example client -- ws://localhost:8080
//! cargo run --example client -- ws://localhost:8080 --protocol chat --protocol mqtt
//! cargo run --example client -- wss://localhost:8443 --ca /tmp/wsecho.pem
//! ```

use std::process::ExitCode;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::client_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A terminal WebSocket client: lines typed go out as text messages.
#[derive(Parser)]
struct Args {
    /// The server's URL.
    #[arg(default_value = "ws://localhost:8080")]
    url: String,
    /// Subprotocol to offer (repeat for several, in order of preference).
    #[arg(long = "protocol", value_name = "NAME")]
    protocols: Vec<String>,
    /// For wss:// URLs: the PEM certificate(s) to trust, e.g. what `wsecho --tls-self-signed
    /// --tls-cert-out FILE` wrote. Required for wss://: this example loads no system roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
}

/// A byte stream to the server: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A TLS connection to the request's host, trusting only the certificates in `ca`.
async fn connect_tls(
    request: &tokio_tungstenite::tungstenite::handshake::client::Request,
    ca: &std::path::Path,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    use std::sync::Arc;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
    let mut roots = RootCertStore::empty();
    let certificates =
        CertificateDer::pem_file_iter(ca).map_err(|error| format!("{}: {error}", ca.display()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|error| format!("{}: {error}", ca.display()))?;
        roots
            .add(certificate)
            .map_err(|error| format!("{}: {error}", ca.display()))?;
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let host = request
        .uri()
        .host()
        .unwrap_or("localhost")
        .trim_matches(['[', ']'])
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|error| error.to_string())?;
    let name = ServerName::try_from(host).map_err(|error| error.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|error| format!("TLS: {error}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Args { url, protocols, ca } = Args::parse();
    let mut request = match url.as_str().into_client_request() {
        Ok(request) => request,
        Err(error) => {
            eprintln!("not a WebSocket URL: {url}: {error}");
            return ExitCode::FAILURE;
        }
    };
    if !protocols.is_empty() {
        match HeaderValue::from_str(&protocols.join(", ")) {
            Ok(offer) => {
                request
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", offer);
            }
            Err(_) => {
                eprintln!("a subprotocol name must be plain text");
                return ExitCode::FAILURE;
            }
        }
    }
    let secure = url.starts_with("wss://");
    let stream: Result<Box<dyn Io>, String> = match (secure, ca) {
        (false, _) => {
            let host = request
                .uri()
                .host()
                .unwrap_or("localhost")
                .trim_matches(['[', ']']);
            let port = request.uri().port_u16().unwrap_or(80);
            tokio::net::TcpStream::connect((host, port))
                .await
                .map(|tcp| Box::new(tcp) as Box<dyn Io>)
                .map_err(|error| error.to_string())
        }
        (true, None) => Err("a wss:// URL needs --ca FILE (the certificate to trust)".into()),
        (true, Some(ca)) => connect_tls(&request, &ca)
            .await
            .map(|tls| Box::new(tls) as Box<dyn Io>),
    };
    let connected = match stream {
        Ok(stream) => client_async(request, stream)
            .await
            .map_err(|error| error.to_string()),
        Err(error) => Err(error),
    };
    let (socket, response) = match connected {
        Ok(connected) => connected,
        Err(error) => {
            eprintln!("cannot connect to {url}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match response.headers().get("sec-websocket-protocol") {
        Some(chosen) => eprintln!("connected to {url} with subprotocol {chosen:?}"),
        None => eprintln!("connected to {url}"),
    }
    eprintln!("type a message and press Enter (Ctrl-D to quit)");
    let (mut sink, mut stream) = socket.split();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line {
                Ok(Some(line)) => {
                    if let Err(error) = sink.send(Message::text(line)).await {
                        eprintln!("send failed: {error}");
                        return ExitCode::FAILURE;
                    }
                }
                _ => {
                    // Out of input: start the close handshake and wait for the server's answer.
                    input_open = false;
                    let _ = sink.close().await;
                }
            },
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => println!("{text}"),
                Some(Ok(Message::Binary(bytes))) => println!("<{} bytes of binary>", bytes.len()),
                Some(Ok(Message::Close(frame))) => {
                    // After Ctrl-D this is the server's answer to our close; otherwise the
                    // server closed first.
                    let who = if input_open { "the server closed" } else { "closed (you ended input; the server answered)" };
                    match frame {
                        Some(frame) if frame.reason.is_empty() => eprintln!("{who}: {}", frame.code),
                        Some(frame) => eprintln!("{who}: {} {}", frame.code, frame.reason),
                        None => eprintln!("{who}"),
                    }
                    return ExitCode::SUCCESS;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    eprintln!("connection error: {error}");
                    return ExitCode::FAILURE;
                }
                None => return ExitCode::SUCCESS,
            },
        }
    }
}
