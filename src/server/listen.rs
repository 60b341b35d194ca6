//! Listening: every address a host name stands for, on one port.

use std::io;
use std::net::SocketAddr;

use log::warn;
use tokio::net::{TcpListener, lookup_host};

/// Resolves `host` and listens on `port` at every address it stands for.
///
/// With port 0 the first address picks a free port and the others use the same one, so one
/// port number reaches the server whichever address a client resolves the name to. An address
/// this machine does not have (e.g. `::1` with IPv6 off) is skipped with a warning; any other
/// failure is an error that names the address.
pub async fn bind(host: &str, port: u16) -> io::Result<Vec<TcpListener>> {
    let mut addresses: Vec<SocketAddr> = lookup_host((host, port))
        .await
        .map_err(|error| io::Error::new(error.kind(), format!("cannot resolve {host}: {error}")))?
        .collect();
    addresses.dedup();
    let mut listeners = Vec::with_capacity(addresses.len());
    let mut chosen_port = port;
    for mut address in addresses {
        address.set_port(chosen_port);
        match TcpListener::bind(address).await {
            Ok(listener) => {
                chosen_port = listener.local_addr()?.port();
                listeners.push(listener);
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
                ) || error.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                warn!("not listening on {address}: {error}");
            }
            Err(error) => {
                return Err(io::Error::new(
                    error.kind(),
                    format!("cannot listen on {address}: {error}"),
                ));
            }
        }
    }
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("cannot listen on {host}:{port}: no usable address"),
        ));
    }
    Ok(listeners)
}
