//! The plain-HTTP answers that read the server's live state: `/healthz`, `/stats` and
//! `/metrics`. The `http` module routes to them; what they say is decided here, where the
//! state is.

use std::net::SocketAddr;

use tokio_tungstenite::tungstenite::http::StatusCode;

use super::state::ServerState;
use crate::http::Response;
use crate::observe::stats::Stats;
use crate::rooms::Rooms;

/// `/healthz`: `200 ok`, or `503` while the node cannot reach the Redis it shares rooms
/// through (so a load balancer drains it).
pub(super) fn health(rooms: &Rooms) -> Response {
    if rooms.is_healthy() {
        Response::text(StatusCode::OK, "ok")
    } else {
        Response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot reach Redis (--redis); retrying\n",
        )
    }
}

/// `/stats`: connections, rooms, the memory budget and, with `--redis`, the cluster. Room
/// names are chosen by clients: they are listed only to the networks `--metrics-allow`
/// lists, and only the largest rooms; everyone gets the counts.
pub(super) fn stats(peer: SocketAddr, state: &ServerState) -> Response {
    let stats = Stats {
        mode: state.config.mode,
        connections: state.connections.open(),
        rooms: state.rooms.sizes(),
        memory: state.budget.usage(),
        cluster: state.rooms.cluster_view(),
        show_rooms: metrics_allowed(peer, &state.config.metrics_allow),
    };
    Response::stats(stats.to_json())
}

/// `/metrics`, for the networks `--metrics-allow` lists; `403` for anyone else.
pub(super) fn metrics(peer: SocketAddr, state: &ServerState) -> Response {
    if !metrics_allowed(peer, &state.config.metrics_allow) {
        return Response::text(
            StatusCode::FORBIDDEN,
            "Forbidden: /metrics is not open to this address (--metrics-allow)\n",
        );
    }
    Response::metrics(state.metrics.render(
        state.connections.open(),
        &state.rooms.sizes(),
        state.budget.usage(),
    ))
}

/// Whether `peer` may read `/metrics`. An IPv4 client on an IPv6 socket is matched as IPv4.
fn metrics_allowed(peer: SocketAddr, allowed: &[ipnet::IpNet]) -> bool {
    let address = peer.ip().to_canonical();
    allowed.iter().any(|network| network.contains(&address))
}
