//! A tokio-tungstenite echo server written the way its own examples are (accept, then
//! `next()`/`send()` per message), on one thread. `--read-buffer BYTES` shrinks
//! tungstenite's buffers from the 128 KiB default, the usual fix for its memory use.

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// tungstenite's read (and write) buffer size; default: tungstenite's own default.
    #[arg(long)]
    read_buffer: Option<usize>,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = args.read_buffer.map(|size| {
        WebSocketConfig::default()
            .read_buffer_size(size)
            .write_buffer_size(size)
    });
    wsecho_bench::serve_on_one_thread(args.port, "ws", move |stream| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, config).await else {
            return;
        };
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                return;
            }
        }
    })
}
