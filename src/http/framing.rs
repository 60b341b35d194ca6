//! Request framing that two parts of a proxy chain could read differently, refused in every
//! request before anything else looks at it.

use tokio_tungstenite::tungstenite::http;

/// What RFC 9112 asks a server to refuse in any request, because two parts of a proxy chain
/// could read the request differently: on HTTP/1.1 a missing, repeated or invalid `Host`
/// (§3.2); `Content-Length` values that disagree or are not numbers (§6.3); a
/// `Transfer-Encoding` whose last coding is not `chunked` (§6.3).
pub(super) fn check_framing(head: &http::Request<()>) -> Result<(), &'static str> {
    let headers = head.headers();
    if head.version() == http::Version::HTTP_11 {
        let mut hosts = headers.get_all(http::header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) => return Err("an HTTP/1.1 request needs a Host header"),
            (Some(_), Some(_)) => return Err("more than one Host header"),
            (Some(host), None) => {
                let valid = host
                    .to_str()
                    .ok()
                    .filter(|host| !host.is_empty())
                    .and_then(|host| host.parse::<http::uri::Authority>().ok())
                    .is_some_and(|authority| !authority.as_str().contains('@'));
                if !valid {
                    return Err("a Host header that is not a host[:port]");
                }
            }
        }
    }
    let mut lengths = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(|value| value.trim_ascii());
    if let Some(first) = lengths.next() {
        let numeric = |value: &[u8]| !value.is_empty() && value.iter().all(u8::is_ascii_digit);
        if !numeric(first) {
            return Err("a Content-Length that is not a number");
        }
        if lengths.any(|other| other != first) {
            return Err("Content-Length values that disagree");
        }
    }
    let codings: Vec<&[u8]> = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(|coding| coding.trim_ascii())
        .filter(|coding| !coding.is_empty())
        .collect();
    if let Some(last) = codings.last()
        && !last.eq_ignore_ascii_case(b"chunked")
    {
        return Err("a Transfer-Encoding whose last coding is not chunked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::get("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn ambiguous_framing_is_refused_and_ordinary_requests_pass() {
        assert!(check_framing(&with(&[])).is_err(), "HTTP/1.1 without Host");
        let mut old = with(&[]);
        *old.version_mut() = http::Version::HTTP_10;
        assert!(check_framing(&old).is_ok(), "HTTP/1.0 may leave Host out");
        for headers in [
            &[("Host", "a"), ("Host", "b")][..],
            &[("Host", "a b")],
            &[("Host", "user@host")],
            &[("Host", "localhost"), ("Content-Length", "5, 6")],
            &[
                ("Host", "localhost"),
                ("Content-Length", "5"),
                ("Content-Length", "6"),
            ],
            &[("Host", "localhost"), ("Content-Length", "five")],
            &[
                ("Host", "localhost"),
                ("Transfer-Encoding", "chunked, gzip"),
            ],
        ] {
            assert!(check_framing(&with(headers)).is_err(), "{headers:?}");
        }
        for headers in [
            &[("Host", "localhost:8080"), ("Content-Length", "0, 0")][..],
            &[("Host", "[::1]:80"), ("Transfer-Encoding", "gzip, chunked")],
        ] {
            assert!(check_framing(&with(headers)).is_ok(), "{headers:?}");
        }
    }
}
