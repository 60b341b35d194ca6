//! A terminal WebSocket client, like the Node `ws` tutorial's: prints what the server sends
//! and sends each line typed on stdin as a text message. End input (Ctrl-D) to close.
//!
//! ```sh
//! cargo run --example client -- ws://localhost:8080
//! cargo run --example client -- ws://localhost:8080 --protocol chat --protocol mqtt
//! ```

use std::process::ExitCode;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::connect_async;
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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Args { url, protocols } = Args::parse();
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
    let (socket, response) = match connect_async(request).await {
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
                    match frame {
                        Some(frame) => eprintln!("server closed: {} {}", frame.code, frame.reason),
                        None => eprintln!("server closed"),
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
