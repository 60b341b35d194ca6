//! A terminal WebSocket client, like the Node `ws` tutorial's: prints what the server sends
//! and sends each line typed on stdin as a text message. End input (Ctrl-D) to close.
//!
//! ```sh
//! cargo run --example client -- ws://localhost:8080
//! ```

use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://localhost:8080".to_owned());
    let (socket, _) = match connect_async(url.as_str()).await {
        Ok(connected) => connected,
        Err(error) => {
            eprintln!("cannot connect to {url}: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("connected to {url}; type a message and press Enter (Ctrl-D to quit)");
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
