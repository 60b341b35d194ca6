//! A tokio-tungstenite broadcast server in the pattern of tokio's chat example: one
//! `tokio::sync::broadcast` channel for the room; each connection forwards what it reads into
//! the channel and what the channel yields to its socket. One thread, like the other
//! baselines; every connection joins the same room whatever its path.

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

/// Messages the channel keeps for its slowest member before that member misses some (the
/// load generator would report them as out of order).
const CHANNEL_CAPACITY: usize = 4096;

fn main() -> std::io::Result<()> {
    let (room, _) = broadcast::channel::<Message>(CHANNEL_CAPACITY);
    wsecho_bench::serve_on_one_thread(wsecho_bench::port_argument(), "ws", move |stream| {
        let room = room.clone();
        async move {
            let Ok(websocket) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut sink, mut source) = websocket.split();
            let mut deliveries = room.subscribe();
            let forward = async {
                while let Ok(message) = deliveries.recv().await {
                    if sink.send(message).await.is_err() {
                        return;
                    }
                }
            };
            let collect = async {
                while let Some(Ok(message)) = source.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = room.send(message);
                    }
                }
            };
            tokio::select! {
                _ = forward => {}
                _ = collect => {}
            }
        }
    })
}
