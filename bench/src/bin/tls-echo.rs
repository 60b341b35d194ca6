//! The TLS ceiling: a bare tokio-rustls server that accepts, does the TLS handshake and
//! echoes the decrypted bytes back, with no WebSocket at all, on one thread. It uses the same
//! rustls set-up as `wsecho --tls-self-signed` (ring, TLS 1.3 and 1.2, an rcgen ECDSA P-256
//! certificate, ALPN `http/1.1`), so that what is left between the two is wsecho's own cost.
//!
//! Like the TCP ceiling it keeps no buffer of its own per connection: plaintext is read into
//! one scratch buffer per thread and handed straight to rustls, whose buffers are all that a
//! connection holds.

use std::cell::RefCell;
use std::future::poll_fn;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the generated certificate, for the load generator's `--tls-ca`.
    #[arg(long)]
    cert_out: PathBuf,
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// How long a client may take over its TLS handshake, as wsecho's default allows.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let acceptor = acceptor(&args)?;
    wsecho_bench::serve_on_one_thread(args.port, "wss", move |stream| {
        echo(acceptor.clone(), stream)
    })
}

fn acceptor(args: &Args) -> std::io::Result<TlsAcceptor> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let made = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
    std::fs::write(&args.cert_out, made.cert.pem())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What one read did.
enum Echoed {
    All,
    /// Plaintext rustls would not take at once, to be written before reading again.
    Partly(Vec<u8>),
    /// Everything is with rustls, but not all of it on the socket yet.
    Unflushed,
    Closed,
}

async fn echo(acceptor: TlsAcceptor, stream: TcpStream) {
    let Ok(Ok(mut stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
    else {
        return;
    };
    loop {
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
                    match Pin::new(&mut stream).poll_write(context, &scratch[written..read]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            return Poll::Ready(Echoed::Closed);
                        }
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Pending => {
                            return Poll::Ready(Echoed::Partly(scratch[written..read].to_vec()));
                        }
                    }
                }
                Poll::Ready(match Pin::new(&mut stream).poll_flush(context) {
                    Poll::Ready(Ok(())) => Echoed::All,
                    Poll::Ready(Err(_)) => Echoed::Closed,
                    Poll::Pending => Echoed::Unflushed,
                })
            })
        })
        .await;
        let finished = match echoed {
            Echoed::All => Ok(()),
            Echoed::Partly(rest) => match stream.write_all(&rest).await {
                Ok(()) => stream.flush().await,
                Err(error) => Err(error),
            },
            Echoed::Unflushed => stream.flush().await,
            Echoed::Closed => return,
        };
        if finished.is_err() {
            return;
        }
    }
}
