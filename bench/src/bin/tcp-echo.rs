//! The ceiling: a plain tokio TCP echo server (no WebSocket at all) on one thread. The load
//! generator's frames come back byte for byte, so it can talk to this like to a WebSocket
//! server minus the handshake.
//!
//! It keeps no buffer per connection: each readable socket is read into one scratch buffer
//! per thread and written straight back, and only bytes the socket would not take at once
//! are copied out to wait.

use std::cell::RefCell;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

fn main() -> std::io::Result<()> {
    wsecho_bench::serve_on_one_thread(wsecho_bench::port_argument(), echo)
}

async fn echo(mut stream: TcpStream) {
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        let leftover = SCRATCH.with_borrow_mut(|scratch| {
            let read = match stream.try_read(scratch) {
                Ok(0) => return Err(()),
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(_) => return Err(()),
            };
            let mut written = 0;
            while written < read {
                match stream.try_write(&scratch[written..read]) {
                    Ok(n) => written += n,
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        return Ok(Some(scratch[written..read].to_vec()));
                    }
                    Err(_) => return Err(()),
                }
            }
            Ok(None)
        });
        match leftover {
            Err(()) => return,
            Ok(Some(rest)) => {
                if stream.write_all(&rest).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
        }
    }
}
