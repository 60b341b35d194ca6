//! Which pages may open a WebSocket here (`--allowed-origin`).

use tokio_tungstenite::tungstenite::http;

/// Whether the request's Origin may open a WebSocket. An absent Origin is allowed: only
/// browsers send one, and the check exists to stop other sites' pages from using a visitor's
/// browser against this server. Scheme and host compare without regard to case (RFC 6454),
/// and a trailing slash on either side is ignored, since an origin has no path.
pub(super) fn origin_allowed(head: &http::Request<()>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = head.headers().get(http::header::ORIGIN) else {
        return true;
    };
    let origin = origin.as_bytes();
    let origin = origin.strip_suffix(b"/").unwrap_or(origin);
    allowed.iter().any(|listed| {
        let listed = listed.as_bytes();
        listed
            .strip_suffix(b"/")
            .unwrap_or(listed)
            .eq_ignore_ascii_case(origin)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_request as request;

    fn allowed(origin: Option<&str>, list: &[&str]) -> bool {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        origin_allowed(&request(&headers), &list)
    }

    #[test]
    fn any_origin_passes_when_none_are_listed() {
        assert!(allowed(Some("https://evil.example"), &[]));
    }

    #[test]
    fn a_request_without_origin_passes_a_list() {
        assert!(allowed(None, &["https://app.example"]));
    }

    #[test]
    fn origins_match_without_regard_to_case_or_a_trailing_slash() {
        let list = ["https://App.Example/", "http://localhost:3000"];
        assert!(allowed(Some("https://app.example"), &list));
        assert!(allowed(Some("HTTP://LOCALHOST:3000"), &list));
        assert!(allowed(Some("http://localhost:3000/"), &list));
    }

    #[test]
    fn other_origins_are_refused() {
        let list = ["https://app.example"];
        assert!(!allowed(Some("https://app.example.evil"), &list));
        assert!(!allowed(Some("http://app.example"), &list));
        assert!(!allowed(Some("https://app.example:8443"), &list));
        assert!(!allowed(Some("null"), &list));
    }
}
