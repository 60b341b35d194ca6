//! Subprotocol negotiation (RFC 6455 §4.2.2): which of the protocols a client offers in
//! `Sec-WebSocket-Protocol` the server speaks, if any.

use tokio_tungstenite::tungstenite::http;

/// The protocols a request offers, in the client's order of preference. Each must be an
/// HTTP token (RFC 7230 §3.2.6); anything else makes the request malformed.
pub(crate) fn offered(head: &http::Request<()>) -> Result<Vec<&str>, &'static str> {
    let mut protocols = Vec::new();
    for value in head.headers().get_all(http::header::SEC_WEBSOCKET_PROTOCOL) {
        let value = value
            .to_str()
            .map_err(|_| "a Sec-WebSocket-Protocol header that is not text")?;
        for protocol in value.split(',').map(str::trim) {
            if protocol.is_empty() || !protocol.bytes().all(is_token_character) {
                return Err("a malformed Sec-WebSocket-Protocol (empty or not a token)");
            }
            protocols.push(protocol);
        }
    }
    Ok(protocols)
}

/// The first protocol in the client's offer that the server accepts: any at all when the
/// server's list holds `*`. Names compare exactly, as RFC 6455 asks.
pub(crate) fn choose<'a>(offered: &[&'a str], accepted: &[String]) -> Option<&'a str> {
    let any = accepted.iter().any(|name| name == "*");
    offered
        .iter()
        .copied()
        .find(|protocol| any || accepted.iter().any(|name| name == protocol))
}

/// RFC 7230's `tchar`.
fn is_token_character(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(values: &[&str]) -> http::Request<()> {
        let mut builder = http::Request::get("/");
        for value in values {
            builder = builder.header("Sec-WebSocket-Protocol", *value);
        }
        builder.body(()).unwrap()
    }

    fn accepted(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn offers_are_read_in_order_across_header_lines() {
        let head = request(&["graphql-ws, mqtt", "v2.stomp"]);
        assert_eq!(offered(&head).unwrap(), ["graphql-ws", "mqtt", "v2.stomp"]);
        assert!(offered(&request(&[])).unwrap().is_empty());
    }

    #[test]
    fn empty_or_non_token_offers_are_malformed() {
        for value in ["", "a,,b", "chat, ", "a b", "x/y", "\"quoted\""] {
            assert!(offered(&request(&[value])).is_err(), "{value:?}");
        }
    }

    #[test]
    fn the_clients_order_decides_among_matches() {
        let offer = ["mqtt", "graphql-ws", "chat"];
        assert_eq!(
            choose(&offer, &accepted(&["chat", "graphql-ws"])),
            Some("graphql-ws")
        );
        assert_eq!(choose(&offer, &accepted(&["chat"])), Some("chat"));
    }

    #[test]
    fn a_star_accepts_the_first_offer_and_no_match_chooses_none() {
        assert_eq!(choose(&["mqtt", "chat"], &accepted(&["*"])), Some("mqtt"));
        assert_eq!(choose(&["mqtt"], &accepted(&["chat"])), None);
        assert_eq!(
            choose(&["Chat"], &accepted(&["chat"])),
            None,
            "names are exact"
        );
        assert_eq!(choose(&[], &accepted(&["*"])), None);
    }
}
