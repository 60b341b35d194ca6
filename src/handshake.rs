//! The handshake phase of a connection: read the HTTP request, then either answer it as
//! plain HTTP or complete the WebSocket upgrade, all within the handshake timeout.

use std::net::SocketAddr;

use log::{debug, info};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at};
use tokio_tungstenite::tungstenite::http::header;

use crate::http::{self, Route};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::socket::Socket;
use crate::stream::ClientStream;

/// Within the handshake timeout (TLS included), either answers plain HTTP (`None`) or
/// upgrades, returning the WebSocket and the request path. A client too slow to finish its
/// request gets `408`.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &mut Shutdown,
) -> Option<(Socket, String)> {
    let limit = shared.config.handshake_timeout;
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    let mut stream = tokio::select! {
        secured = timeout_at(deadline, secure(stream, peer, shared)) => match secured {
            Ok(Some(stream)) => stream,
            Ok(None) => return None,
            Err(_) => {
                debug!(peer:% = peer; "peer {peer}: no TLS handshake within {limit:?}");
                shared.metrics.tls_handshake_failures.increment(1);
                return None;
            }
        },
        _ = shutdown.recv() => return None,
    };
    let request = tokio::select! {
        outcome = timeout_at(deadline, answer_or_upgrade(&mut stream, peer, shared)) => match outcome {
            Ok(Some(request)) => request,
            Ok(None) => return None,
            Err(_) => {
                debug!(peer:% = peer; "peer {peer}: no complete request within {limit:?}; answering 408");
                shared.metrics.http_answer(408);
                let _ = timeout(limit, http::answer(&mut stream, &http::Response::timed_out())).await;
                return None;
            }
        },
        _ = shutdown.recv() => return None,
    };
    shared.metrics.handshake_took(started.elapsed());
    let path = request.head.uri().path().to_owned();
    let socket = Socket::new(
        stream,
        request.tail,
        shared.websocket_config,
        shared.budget_account(),
    );
    Some((socket, path))
}

/// The TLS handshake, when the server speaks TLS. A client that sends something other than
/// a TLS handshake (plain HTTP to an https port, say) is told so in plain HTTP.
async fn secure(stream: TcpStream, peer: SocketAddr, shared: &Shared) -> Option<ClientStream> {
    let Some(tls) = &shared.tls else {
        return Some(ClientStream::Plain(stream));
    };
    // A TLS handshake starts with a handshake record: content type 22.
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(1) => {
            debug!(peer:% = peer; "peer {peer}: plain text on the TLS port; answering 400");
            shared.metrics.tls_handshake_failures.increment(1);
            shared.metrics.http_answer(400);
            let mut plain = ClientStream::Plain(stream);
            let response = http::Response::text(
                tokio_tungstenite::tungstenite::http::StatusCode::BAD_REQUEST,
                "Bad Request: this port expects TLS; connect with https:// or wss://\n",
            );
            // The request is read first, so that the answer is not lost to a reset.
            let _ = http::read_request(&mut plain).await;
            let _ = http::answer(&mut plain, &response).await;
            return None;
        }
        _ => return None,
    }
    match tls.acceptor().accept(stream).await {
        Ok(secured) => Some(ClientStream::Tls(Box::new(secured))),
        Err(error) => {
            debug!(peer:% = peer; "peer {peer}: TLS handshake failed: {error}");
            shared.metrics.tls_handshake_failures.increment(1);
            None
        }
    }
}

/// Reads the request and either answers it as plain HTTP (returning `None`) or sends the 101
/// that accepts the upgrade, returning the request.
async fn answer_or_upgrade(
    stream: &mut ClientStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<http::Request> {
    let request = match http::read_request(stream).await {
        Ok(request) => request,
        Err(error) => {
            debug!(peer:% = peer;"peer {peer}: {error}");
            if let Some(response) = http::Response::for_error(&error) {
                shared.metrics.http_answer(response.status.as_u16());
                let _ = http::answer(stream, &response).await;
            }
            return None;
        }
    };
    let response = match http::route(&request.head, &shared.config) {
        Route::Upgrade(response) => {
            let protocol = header::SEC_WEBSOCKET_PROTOCOL;
            if let Some(offer) = request.head.headers().get(&protocol)
                && !response.headers().contains_key(&protocol)
            {
                info!(
                    peer:% = peer;
                    "peer {peer} offered subprotocol(s) {offer:?}, none of them accepted \
                     (--subprotocol); upgrading without one"
                );
            }
            return match http::send_upgrade(stream, &response).await {
                Ok(()) => {
                    shared.metrics.http_answer(101);
                    Some(request)
                }
                Err(error) => {
                    debug!(peer:% = peer;"peer {peer}: gone during the handshake: {error}");
                    None
                }
            };
        }
        Route::Health => match &shared.cluster {
            Some(cluster) if !cluster.is_connected() => http::Response::text(
                tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE,
                "cannot reach Redis (--redis); retrying\n",
            ),
            _ => http::Response::text(tokio_tungstenite::tungstenite::http::StatusCode::OK, "ok"),
        },
        Route::Stats => http::Response::stats(
            shared.config.mode,
            shared.open_connections(),
            shared.hub.room_sizes(),
            shared.budget.usage(),
            shared
                .cluster
                .as_ref()
                .map(|cluster| (cluster.is_connected(), cluster.view())),
        ),
        Route::Metrics if metrics_allowed(peer, &shared.config.metrics_allow) => {
            http::Response::metrics(shared.metrics.render(
                shared.open_connections(),
                &shared.hub.room_sizes(),
                shared.budget.usage(),
            ))
        }
        Route::Metrics => http::Response::text(
            tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN,
            "Forbidden: /metrics is not open to this address (--metrics-allow)\n",
        ),
        Route::Answer(response) => response,
    }
    .for_method(request.head.method());
    shared.metrics.http_answer(response.status.as_u16());
    info!(
        peer:% = peer;
        "peer {peer}: {} {} -> {}",
        request.head.method(),
        request.head.uri(),
        response.status
    );
    if let Err(error) = http::answer(stream, &response).await {
        debug!(peer:% = peer;"peer {peer}: could not send the HTTP answer: {error}");
    }
    None
}

/// Whether `peer` may read `/metrics`. An IPv4 client on an IPv6 socket is matched as IPv4.
fn metrics_allowed(peer: SocketAddr, allowed: &[ipnet::IpNet]) -> bool {
    let address = peer.ip().to_canonical();
    allowed.iter().any(|network| network.contains(&address))
}
