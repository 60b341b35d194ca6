//! Reading one HTTP request head from a fresh connection, within a size limit.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::http::{self, HeaderName, HeaderValue};

/// Largest request head accepted; a larger one gets `431`. Browsers' heads are well under
/// this even with cookies; nginx's default limit is of the same order.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header lines accepted; more gets `431`. tungstenite's own parser allows 124.
const MAX_HEADERS: usize = 64;

/// A parsed request head and the bytes that arrived after it.
pub(crate) struct Request {
    /// The head in the form tungstenite's handshake functions take.
    pub head: http::Request<()>,
    /// Bytes read past the end of the head: the start of the WebSocket stream, if a client
    /// sent frames without waiting for the 101.
    pub tail: Vec<u8>,
    /// The head as received, kept only for a request that may be asked to describe itself
    /// (`/inspect`, `?inspect`): its header lines in their order, duplicates and all.
    pub raw_head: Option<Vec<u8>>,
}

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Not HTTP, or HTTP that cannot be understood: answered with 400.
    Malformed(String),
    /// Head over [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`]: answered with 431.
    TooLarge,
    /// The client closed the connection before finishing the head.
    Closed,
    /// The socket failed.
    Io(io::Error),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Malformed(why) => write!(f, "malformed request: {why}"),
            HeadError::TooLarge => write!(f, "request head too large"),
            HeadError::Closed => write!(f, "closed before finishing the request"),
            HeadError::Io(error) => write!(f, "{error}"),
        }
    }
}

/// Reads one request head from `stream`, keeping any bytes that follow it.
pub(crate) async fn read_request(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Request, HeadError> {
    let mut buffer = BytesMut::with_capacity(1024);
    loop {
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
        buffer.reserve(1024.min(MAX_HEAD_BYTES - buffer.len()));
        let read = stream.read_buf(&mut buffer).await.map_err(HeadError::Io)?;
        if read == 0 {
            return Err(HeadError::Closed);
        }
        // Frozen, so that the parsed head's target and header values can share these bytes
        // rather than each being copied into an allocation of its own. Taken whole (not
        // `split`, which would leave `buffer` sharing the allocation), so that a head still
        // partial goes back to `buffer` without a copy: a client sending its head a byte at a
        // time must not make every read copy all that came before.
        let received = std::mem::take(&mut buffer).freeze();
        let Some((head, head_len)) = parse_head(&received)? else {
            buffer = received
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            continue;
        };
        let inspected = head.uri().path() == "/inspect"
            || head
                .uri()
                .query()
                .is_some_and(|query| query.contains("inspect"));
        return Ok(Request {
            raw_head: inspected.then(|| received[..head_len].to_vec()),
            tail: received[head_len..].to_vec(),
            head,
        });
    }
}

/// The header lines of a head as received: names as the client spelled them, values as
/// bytes, in order, duplicates kept.
pub(crate) fn header_lines(raw_head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(raw_head) {
        Ok(_) => request
            .headers
            .iter()
            .map(|header| (header.name.to_owned(), header.value.to_vec()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Parses a complete head out of `bytes`, or returns `None` if more bytes are needed. The
/// head's target and header values are slices of `bytes`.
pub(super) fn parse_head(bytes: &Bytes) -> Result<Option<(http::Request<()>, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(error) => return Err(HeadError::Malformed(error.to_string())),
    };
    let malformed = |what: &str| HeadError::Malformed(what.to_owned());
    // httparse accepts a bare LF as a line end; HTTP/1.1 wants CRLF, and a proxy in front
    // of this server may split lines differently than we would (request smuggling).
    let bare_line_feed =
        memchr::memchr_iter(b'\n', &bytes[..head_len]).any(|at| at == 0 || bytes[at - 1] != b'\r');
    if bare_line_feed {
        return Err(malformed("a line ends in a bare LF instead of CRLF"));
    }
    let mut head = http::Request::new(());
    *head.method_mut() = http::Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| malformed("bad method"))?;
    *head.uri_mut() =
        http::Uri::from_maybe_shared(bytes.slice_ref(parsed.path.unwrap_or("").as_bytes()))
            .map_err(|_| malformed("bad request target"))?;
    *head.version_mut() = match parsed.version {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let header_map = head.headers_mut();
    header_map.reserve(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| malformed("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(header.value))
            .map_err(|_| malformed("bad header value"))?;
        header_map.append(name, value);
    }
    Ok(Some((head, head_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<(http::Request<()>, usize)>, HeadError> {
        parse_head(&Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn a_complete_head_is_parsed_and_its_length_excludes_what_follows() {
        let bytes = b"GET /room?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n\x81\x00";
        let (head, len) = parse(bytes).unwrap().unwrap();
        assert_eq!(len, bytes.len() - 2);
        assert_eq!(head.method(), http::Method::GET);
        assert_eq!(head.uri().path(), "/room");
        assert_eq!(head.version(), http::Version::HTTP_11);
        assert_eq!(head.headers().get_all("x-two").iter().count(), 2);
    }

    /// Each piece is read before the next is written, so the head is parsed partial first.
    #[tokio::test]
    async fn a_head_read_in_pieces_is_put_together_and_what_follows_it_kept() {
        use futures_util::FutureExt;
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = tokio::io::duplex(4096);
        let mut reading = Box::pin(read_request(&mut server));
        for piece in [
            &b"GET /a?b=c HTTP/1.1\r\nHo"[..],
            b"st: x\r\nX-One: 1\r\n",
            b"\r",
        ] {
            client.write_all(piece).await.unwrap();
            assert!(
                (&mut reading).now_or_never().is_none(),
                "{piece:?}: not yet whole"
            );
        }
        client.write_all(b"\n\x81\x00").await.unwrap();
        let request = reading.await.unwrap();
        assert_eq!(request.head.uri(), "/a?b=c");
        assert_eq!(request.head.headers()["host"], "x");
        assert_eq!(request.head.headers()["x-one"], "1");
        assert_eq!(request.tail, b"\x81\x00");
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(parse(b"GE").unwrap().is_none());
    }

    #[test]
    fn http_1_0_is_recognised() {
        let (head, _) = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.version(), http::Version::HTTP_10);
    }

    #[test]
    fn garbage_and_bad_header_lines_are_malformed() {
        for bytes in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
            b"GET /\x00 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        ] {
            assert!(
                matches!(parse(bytes), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn too_many_headers_is_too_large() {
        let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            bytes.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&bytes), Err(HeadError::TooLarge)));
    }
}
