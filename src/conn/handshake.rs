//! The handshake phase of a connection: read the HTTP request, then either answer it as
//! plain HTTP or complete the WebSocket upgrade, all within the handshake timeout.

use std::net::SocketAddr;

use log::{debug, info};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at};
use tokio_tungstenite::tungstenite::http::header;

use super::endpoints;
use super::inspect;
use super::state::ServerState;
use crate::http::{self, Route};
use crate::observe::escape::Escaped;
use crate::scenario::Scenario;
use crate::sync::shutdown::Shutdown;
use crate::wire::{ClientStream, Upgraded};

/// What the client asked for in its request's target: the path (in broadcast mode, the
/// room) and the options in its query string.
pub(super) struct Target {
    /// The path, without the query.
    pub path: String,
    /// `?history_notice=1`: a broadcast member wants the notice before a replayed history.
    pub history_notice: bool,
    /// What the client asked of its session in the query string (`?close=`, ...).
    pub scenario: Option<Box<Scenario>>,
    /// `?inspect`: the handshake described, to send before anything else.
    pub inspect: Option<String>,
}

/// An accepted upgrade, as `answer_or_upgrade` hands it on.
struct AcceptedRequest {
    request: http::Request,
    scenario: Option<Box<Scenario>>,
    inspect: Option<String>,
}

/// Within the handshake timeout (TLS included), either answers plain HTTP (`None`) or
/// upgrades, returning the upgraded connection and the request path. A client too slow to
/// finish its request gets `408`.
pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    state: &ServerState,
    shutdown: &mut Shutdown,
) -> Option<(Upgraded, Target)> {
    let limit = state.config.handshake_timeout;
    let started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    // Boxed, and only over TLS: rustls's handshake state would otherwise be built and moved
    // with every plain connection's handshake too.
    let mut stream = match &state.tls {
        None => ClientStream::Plain(stream),
        Some(_) => Box::pin(secure_within(stream, peer, state, deadline, shutdown)).await?,
    };
    let accepted = tokio::select! {
        outcome = timeout_at(deadline, answer_or_upgrade(&mut stream, peer, state)) => match outcome {
            Ok(Some(accepted)) => accepted,
            Ok(None) => return None,
            Err(_) => {
                debug!(peer:% = peer; "peer {peer}: no complete request within {limit:?}; answering 408");
                state.metrics.http_answer(408);
                let _ = timeout(limit, http::answer(&mut stream, &http::Response::timed_out())).await;
                return None;
            }
        },
        _ = shutdown.recv() => return None,
    };
    state.metrics.handshake_took(started.elapsed());
    let uri = accepted.request.head.uri();
    let target = Target {
        path: uri.path().to_owned(),
        history_notice: crate::scenario::query_flag(uri.query(), "history_notice"),
        scenario: accepted.scenario,
        inspect: accepted.inspect,
    };
    let upgraded = Upgraded {
        stream,
        tail: accepted.request.tail,
        account: state.budget.account_for(state.config.mode),
    };
    Some((upgraded, target))
}

/// The TLS handshake by `deadline`, unless the server shuts down first.
async fn secure_within(
    stream: TcpStream,
    peer: SocketAddr,
    state: &ServerState,
    deadline: tokio::time::Instant,
    shutdown: &mut Shutdown,
) -> Option<ClientStream> {
    tokio::select! {
        secured = timeout_at(deadline, secure(stream, peer, state)) => match secured {
            Ok(secured) => secured,
            Err(_) => {
                let limit = state.config.handshake_timeout;
                debug!(peer:% = peer; "peer {peer}: no TLS handshake within {limit:?}");
                state.metrics.tls_handshake_failures.increment(1);
                None
            }
        },
        _ = shutdown.recv() => None,
    }
}

/// The TLS handshake, when the server speaks TLS. A client that sends something other than
/// a TLS handshake (plain HTTP to an https port, say) is told so in plain HTTP.
async fn secure(stream: TcpStream, peer: SocketAddr, state: &ServerState) -> Option<ClientStream> {
    let Some(tls) = &state.tls else {
        return Some(ClientStream::Plain(stream));
    };
    // A TLS handshake starts with a handshake record: content type 22.
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(1) => {
            debug!(peer:% = peer; "peer {peer}: plain text on the TLS port; answering 400");
            state.metrics.tls_handshake_failures.increment(1);
            state.metrics.http_answer(400);
            let mut plain = ClientStream::Plain(stream);
            let response = http::Response::text(
                tokio_tungstenite::tungstenite::http::StatusCode::BAD_REQUEST,
                "Bad Request: this port expects TLS; connect with https:// or wss://\n",
            )
            .with_reason("Bad Request (this port expects TLS: use wss:// or https://)");
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
            state.metrics.tls_handshake_failures.increment(1);
            None
        }
    }
}

/// Reads the request and either answers it as plain HTTP (returning `None`) or sends the 101
/// that accepts the upgrade, returning the request.
async fn answer_or_upgrade(
    stream: &mut ClientStream,
    peer: SocketAddr,
    state: &ServerState,
) -> Option<AcceptedRequest> {
    let request = match http::read_request(stream).await {
        Ok(request) => request,
        Err(error) => {
            debug!(peer:% = peer;"peer {peer}: {error}");
            if let Some(response) = http::Response::for_error(&error) {
                state.metrics.http_answer(response.status.as_u16());
                let _ = http::answer(stream, &response).await;
            }
            return None;
        }
    };
    let response = match http::route(&request.head, &state.config) {
        Route::Upgrade(accepted, scenario) => {
            if accepted.declined_offer()
                && let Some(offer) = request.head.headers().get(header::SEC_WEBSOCKET_PROTOCOL)
            {
                info!(
                    peer:% = peer;
                    "peer {peer} offered subprotocol(s) {offer:?}, none of them accepted \
                     (--subprotocol); upgrading without one"
                );
            }
            let inspect = scenario
                .as_ref()
                .filter(|scenario| scenario.inspect)
                .map(|_| inspect::describe(&request, peer, stream, Some(&accepted)));
            return match http::send_upgrade(stream, &accepted).await {
                Ok(()) => {
                    state.metrics.http_answer(101);
                    let scenario = scenario.filter(|scenario| scenario.shapes_the_session());
                    Some(AcceptedRequest {
                        request,
                        scenario,
                        inspect,
                    })
                }
                Err(error) => {
                    debug!(peer:% = peer;"peer {peer}: gone during the handshake: {error}");
                    None
                }
            };
        }
        Route::Inspect => http::Response::json(inspect::describe(&request, peer, stream, None)),
        Route::Health => endpoints::health(&state.rooms),
        Route::Stats => endpoints::stats(peer, state),
        Route::Metrics => endpoints::metrics(peer, state),
        Route::Answer(response) => response,
    }
    .for_method(request.head.method());
    state.metrics.http_answer(response.status.as_u16());
    info!(
        peer:% = peer;
        "peer {peer}: {} {} -> {}",
        Escaped(request.head.method().as_str()),
        Escaped(&request.head.uri().to_string()),
        response.status
    );
    if let Err(error) = http::answer(stream, &response).await {
        debug!(peer:% = peer;"peer {peer}: could not send the HTTP answer: {error}");
    }
    None
}
