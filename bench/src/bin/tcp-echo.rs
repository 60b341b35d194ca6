//! The ceiling: a plain tokio TCP echo server (no WebSocket at all) on one thread. The load
//! generator's frames come back byte for byte, so it can talk to this like to a WebSocket
//! server minus the handshake.
//!
//! It keeps no buffer per connection: each readable socket is read into one scratch buffer
//! per thread and written straight back, and only bytes the socket would not take at once
//! are copied out to wait.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

fn main() -> std::io::Result<()> {
    wsecho_bench::serve_on_one_thread(wsecho_bench::port_argument(), "ws", echo)
}

/// What one read did.
enum Echoed {
    All,
    /// Bytes the socket would not take at once, to be written before reading again.
    Partly(Vec<u8>),
    Closed,
}

async fn echo(mut stream: TcpStream) {
    loop {
        // `poll_read`, not `readable()` + `try_read`: a read that comes back short clears the
        // socket's readiness, so the next wait costs no system call that would only say
        // "would block". That is what the tokio echo example (`read` then `write_all`) does,
        // minus its buffer per connection.
        let echoed = poll_fn(|context| {
            SCRATCH.with_borrow_mut(|scratch| {
                let mut buffer = ReadBuf::new(scratch);
                match Pin::new(&mut stream).poll_read(context, &mut buffer) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_)) => return Poll::Ready(Echoed::Closed),
                    Poll::Ready(Ok(())) => {}
                }
                let read = buffer.filled().len();
                if read == 0 {
                    return Poll::Ready(Echoed::Closed);
                }
                let mut written = 0;
                while written < read {
                    match stream.try_write(&scratch[written..read]) {
                        Ok(n) => written += n,
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            return Poll::Ready(Echoed::Partly(scratch[written..read].to_vec()));
                        }
                        Err(_) => return Poll::Ready(Echoed::Closed),
                    }
                }
                Poll::Ready(Echoed::All)
            })
        })
        .await;
        match echoed {
            Echoed::All => {}
            Echoed::Partly(rest) => {
                if stream.write_all(&rest).await.is_err() {
                    return;
                }
            }
            Echoed::Closed => return,
        }
    }
}
