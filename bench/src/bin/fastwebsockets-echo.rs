//! A fastwebsockets (Deno's WebSocket library) echo server on one thread, upgraded through
//! hyper as in that crate's examples: the fastest WebSocket library we compare against.

use fastwebsockets::upgrade::{UpgradeFut, upgrade};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

async fn echo(upgrading: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(upgrading.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn handle(mut request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgrading) = upgrade(&mut request)?;
    tokio::spawn(async move {
        let _ = echo(upgrading).await;
    });
    Ok(response)
}

fn main() -> std::io::Result<()> {
    wsecho_bench::serve_on_one_thread(wsecho_bench::port_argument(), "ws", |stream| async move {
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(handle))
            .with_upgrades()
            .await;
    })
}
