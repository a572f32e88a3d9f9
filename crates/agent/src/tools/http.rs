//! A minimal HTTP/1.1 client for HTTP tools: one `POST` of a JSON body per call, with
//! `Connection: close`, over plain TCP (`http://`) or the agent's own rustls config
//! (`https://`, ring, the same roots and extra CA file).
//!
//! Why not reqwest or hyper-util: a tool call is one small request to a webhook a few
//! times per call. That takes ~150 lines on tokio's `TcpStream` and tokio-rustls, which
//! the WebSocket already needs, while reqwest/hyper would add some forty crates to a
//! Raspberry-Pi build and a second place where rustls features must be kept to ring.
//! It reads `Content-Length`, chunked, and close-delimited bodies, up to [`MAX_BODY`].

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::Uri;

/// The most response bytes kept (the LLM gets this much of the tool's answer).
pub const MAX_BODY: usize = 64 * 1024;

/// A failed tool request, one line.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("bad tool URL {0}")]
    Url(String),
    /// Connect, TLS, read or write.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Took longer than the tool's timeout.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// Not an HTTP response.
    #[error("unreadable HTTP response: {0}")]
    Protocol(String),
    /// A non-2xx status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body as one line ([`error_excerpt`]).
        body: String,
    },
}

/// POST `body` (JSON) to `url`; the response body as text when the status is 2xx.
pub async fn post_json(
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> Result<String, HttpError> {
    match tokio::time::timeout(timeout, post(url, headers, body, tls)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout(timeout.as_millis())),
    }
}

async fn post(
    url: &str,
    headers: &[(String, String)],
    body: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<String, HttpError> {
    let uri: Uri = url.parse().map_err(|_| HttpError::Url(url.to_owned()))?;
    let host = uri.host().ok_or_else(|| HttpError::Url(url.to_owned()))?.to_owned();
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(HttpError::Url(url.to_owned())),
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let bare_host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}{}\r\nContent-Type: application/json\r\nAccept: application/json, text/plain\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: voice-ua\r\n",
        uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default(),
        body.len()
    );
    for (name, value) in headers {
        if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
            return Err(HttpError::Url(format!("{url}: header {name:?} holds a line break")));
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);

    let tcp = TcpStream::connect((bare_host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone())
            .map_err(|_| HttpError::Url(url.to_owned()))?;
        let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
        exchange(stream, request.as_bytes()).await
    } else {
        exchange(tcp, request.as_bytes()).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<String, HttpError> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // Servers that close without TLS close_notify: keep what arrived.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(done) = complete(&raw) {
            raw.truncate(done);
            break;
        }
        if raw.len() > MAX_BODY + 16 * 1024 {
            break;
        }
    }
    parse_response(&raw)
}

/// The end of a full response in `raw`, when its length is known and it has all arrived.
fn complete(raw: &[u8]) -> Option<usize> {
    let head = parse_head(raw).ok()??;
    match head.framing {
        Framing::Length(n) => {
            let end = head.len.checked_add(n)?;
            (raw.len() >= end).then_some(end)
        }
        Framing::Chunked | Framing::Close => None,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Most characters of a tool's error body kept for the LLM and the log line.
pub const MAX_ERROR_BODY: usize = 200;
/// Most characters of an unreadable status line or chunk size quoted in an error.
const MAX_QUOTED: usize = 64;

/// How the body of a response ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// At the end of the connection.
    Close,
}

/// A response's status line and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the head, blank line included.
    len: usize,
    framing: Framing,
}

/// The head at the start of `raw`; `Ok(None)` while its blank line has not arrived.
fn parse_head(raw: &[u8]) -> Result<Option<Head>, HttpError> {
    let Some(blank) = find(raw, b"\r\n\r\n") else { return Ok(None) };
    let len = blank + 4;
    let head = String::from_utf8_lossy(raw.get(..blank).unwrap_or_default());
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status_line(status_line)
        .ok_or_else(|| HttpError::Protocol(format!("status line {:?}", clip(status_line, MAX_QUOTED))))?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= value.split(',').any(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(value).ok_or_else(|| {
                HttpError::Protocol(format!("Content-Length {:?}", clip(value, MAX_QUOTED)))
            })?;
            if length.is_some_and(|m| m != n) {
                return Err(HttpError::Protocol("two different Content-Length headers".into()));
            }
            length = Some(n);
        }
    }
    // Chunked wins over any Content-Length (RFC 9112 §6.3, rule 3).
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::Close,
    };
    Ok(Some(Head { status, len, framing }))
}

/// `HTTP/1.x NNN reason`: the three-digit status.
fn parse_status_line(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("HTTP/1.")?;
    let mut parts = rest.splitn(3, ' ');
    let minor = parts.next()?;
    let code = parts.next()?;
    if minor.len() != 1 || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=999).contains(c))
}

/// A `Content-Length` value: digits only (a list of equal values is also accepted).
fn parse_content_length(value: &str) -> Option<usize> {
    let mut result = None;
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = part.parse().ok()?;
        if result.is_some_and(|m| m != n) {
            return None;
        }
        result = Some(n);
    }
    result
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// A tool's error body as one short line: [`one_line`] of at most [`MAX_ERROR_BODY`] bytes.
pub fn error_excerpt(body: &str) -> String {
    one_line(body, MAX_ERROR_BODY)
}

/// Untrusted text as one line for a log or a record: control characters (line breaks,
/// escapes that could forge or garble a log line) become spaces, runs of spaces one
/// space, trimmed, at most `max` bytes, cut on a character boundary.
pub fn one_line(text: &str, max: usize) -> String {
    let mut line = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() { ' ' } else { c };
        if c == ' ' && (line.is_empty() || line.ends_with(' ')) {
            continue;
        }
        if line.len() + c.len_utf8() > max {
            break;
        }
        line.push(c);
    }
    line.truncate(line.trim_end().len());
    line
}

/// Status line, headers, then the body (`Content-Length`, chunked, or to the end): the
/// body as text when the status is 2xx (`ok` when empty; at most [`MAX_BODY`] bytes of
/// it, invalid UTF-8 replaced), else [`HttpError::Status`] with [`error_excerpt`] of it.
/// Interim 1xx responses before the final one are skipped. Never panics.
#[doc(hidden)]
pub fn parse_response(raw: &[u8]) -> Result<String, HttpError> {
    let mut raw = raw;
    let head = loop {
        let head = parse_head(raw)?.ok_or_else(|| HttpError::Protocol("no end of headers".into()))?;
        // 100 Continue and friends come before the real answer (101 is not for us).
        if (100..200).contains(&head.status) && head.status != 101 {
            raw = raw.get(head.len..).unwrap_or_default();
            continue;
        }
        break head;
    };
    let rest = raw.get(head.len..).unwrap_or_default();
    let body = match head.framing {
        Framing::Chunked => dechunk(rest)?,
        Framing::Length(n) => rest.get(..n).unwrap_or(rest).to_vec(),
        Framing::Close => rest.to_vec(),
    };
    let kept = body.get(..MAX_BODY).unwrap_or(&body);
    let text = String::from_utf8_lossy(kept);
    if (200..300).contains(&head.status) {
        if text.trim().is_empty() {
            return Ok("ok".into());
        }
        Ok(text.into_owned())
    } else {
        Err(HttpError::Status { status: head.status, body: error_excerpt(&text) })
    }
}

/// A chunked body (RFC 9112 §7.1), up to [`MAX_BODY`] bytes; chunk extensions and
/// trailers are ignored. A body cut short before [`MAX_BODY`] is an error.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        if body.len() >= MAX_BODY {
            return Ok(body);
        }
        let line_end = find(rest, b"\r\n").ok_or_else(|| HttpError::Protocol("truncated chunk".into()))?;
        let size_line = String::from_utf8_lossy(rest.get(..line_end).unwrap_or_default());
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = parse_chunk_size(size_text)
            .ok_or_else(|| HttpError::Protocol(format!("chunk size {:?}", clip(size_text, MAX_QUOTED))))?;
        rest = rest.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(body);
        }
        let take = size.min(rest.len()).min(MAX_BODY - body.len());
        body.extend_from_slice(rest.get(..take).unwrap_or_default());
        // Past the chunk's data and its CRLF (a chunk larger than what arrived ends it all).
        rest = size.checked_add(2).and_then(|skip| rest.get(skip..)).unwrap_or_default();
    }
}

/// Hex digits only (no sign, no `0x`), at most what fits a `usize`.
fn parse_chunk_size(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    usize::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        assert_eq!(parse_response(r).ok().as_deref(), Some("hello"));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).ok().as_deref(), Some("abcde"));
        let r = b"HTTP/1.0 200 OK\r\n\r\nto the end";
        assert_eq!(parse_response(r).ok().as_deref(), Some("to the end"));
        let r = b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy";
        assert!(matches!(parse_response(r), Err(HttpError::Status { status: 503, .. })));
        assert!(matches!(parse_response(b"garbage\r\n\r\n"), Err(HttpError::Protocol(_))));
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), Some(40));
    }

    #[test]
    fn an_error_body_is_cut_on_a_character_boundary() {
        // 199 ASCII bytes, then 'é' (2 bytes) straddles byte 200: this used to panic.
        let body = format!("{}é and more", "x".repeat(199));
        let raw = format!("HTTP/1.1 500 Oops\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        match parse_response(raw.as_bytes()) {
            Err(HttpError::Status { status: 500, body }) => assert_eq!(body, "x".repeat(199)),
            other => panic!("{other:?}"),
        }
        // A 4-byte character across the limit, from a chunked body.
        let body = format!("{}🦀🦀", "y".repeat(198));
        let raw = format!(
            "HTTP/1.1 502 Bad\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        match parse_response(raw.as_bytes()) {
            Err(HttpError::Status { status: 502, body }) => assert_eq!(body, "y".repeat(198)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_huge_content_length_neither_overflows_nor_waits_forever() {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\nshort", usize::MAX);
        assert_eq!(complete(raw.as_bytes()), None);
        assert_eq!(parse_response(raw.as_bytes()).ok().as_deref(), Some("short"));
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\nx";
        assert!(matches!(parse_response(raw), Err(HttpError::Protocol(_))));
        assert_eq!(complete(raw), None);
    }

    #[test]
    fn an_error_body_becomes_one_short_line() {
        let raw = b"HTTP/1.1 500 Oops\r\n\r\n  first\r\n2026-01-01 INFO forged line\x1b[31m\tred  ";
        match parse_response(raw) {
            Err(HttpError::Status { status: 500, body }) => {
                assert_eq!(body, "first 2026-01-01 INFO forged line [31m red");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        // Chunked wins over Content-Length.
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).ok().as_deref(), Some("ab"));
        assert_eq!(complete(r), None, "read a chunked body to the close");
        // Two different lengths: refuse rather than guess.
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nab";
        assert!(matches!(parse_response(r), Err(HttpError::Protocol(_))));
        assert_eq!(complete(r), None);
        // Signs and prefixes are not chunk sizes.
        for size in ["+2", "0x2", "-2", ""] {
            let r = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nab\r\n0\r\n\r\n");
            assert!(matches!(parse_response(r.as_bytes()), Err(HttpError::Protocol(_))), "{size}");
        }
        // A chunk larger than what arrived is a truncated body.
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab";
        assert!(matches!(parse_response(r), Err(HttpError::Protocol(_))));
        // Interim responses are skipped.
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(parse_response(r).ok().as_deref(), Some("hi"));
        // Status lines.
        for line in
            ["HTTP/1.1 2000 OK", "HTTP/1.1 20 OK", "HTTP/2 200 OK", "HTTP/1.1 +20 OK", "HTTP/1.10 200 OK"]
        {
            let r = format!("{line}\r\n\r\n");
            assert!(matches!(parse_response(r.as_bytes()), Err(HttpError::Protocol(_))), "{line}");
        }
        assert_eq!(parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").ok().as_deref(), Some("ok"));
    }

    #[test]
    fn bodies_are_kept_up_to_max_body() {
        let body = "z".repeat(MAX_BODY + 10);
        let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        assert_eq!(parse_response(r.as_bytes()).map(|t| t.len()).ok(), Some(MAX_BODY));
        let mut r = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for _ in 0..100 {
            r.push_str(&format!("400\r\n{}\r\n", "c".repeat(1024)));
        }
        // Cut short after MAX_BODY: what is kept is enough.
        r.truncate(r.len() - 10);
        assert_eq!(parse_response(r.as_bytes()).map(|t| t.len()).ok(), Some(MAX_BODY));
    }

    fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut rest = body;
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() {
            let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(n);
            out.extend_from_slice(format!("{n:X};ext=1\r\n").as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
            rest = tail;
        }
        out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        out
    }

    fn expected_ok(body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body).into_owned();
        if text.trim().is_empty() {
            "ok".into()
        } else {
            text
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic_and_stay_bounded(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            check_bounds(&raw);
        }

        #[test]
        fn header_like_bytes_never_panic_and_stay_bounded(
            head in "HTTP/1\\.[01] [0-9]{3}[ -~]{0,8}\r\n((Content-Length|Transfer-Encoding|content-length|X-A) ?:[ -~]{0,24}\r\n){0,4}\r\n",
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let mut raw = head.into_bytes();
            raw.extend_from_slice(&body);
            check_bounds(&raw);
        }

        #[test]
        fn chunked_and_length_bodies_round_trip(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            sizes in proptest::collection::vec(1usize..64, 1..8),
            status in 200u16..300,
        ) {
            proptest::prop_assert_eq!(parse_response(&chunked(&body, &sizes)).ok(), Some(expected_ok(&body)));
            let mut raw = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            raw.extend_from_slice(&body);
            let end = raw.len();
            raw.extend_from_slice(b"trailing junk");
            proptest::prop_assert_eq!(complete(&raw), Some(end));
            proptest::prop_assert_eq!(parse_response(&raw).ok(), Some(expected_ok(&body)));
        }

        #[test]
        fn error_bodies_are_formatted_as_one_bounded_line(body in "\\PC{0,300}", status in 400u16..600) {
            let raw = format!("HTTP/1.1 {status} Err\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let Err(HttpError::Status { status: got, body: line }) = parse_response(raw.as_bytes()) else {
                return Err(proptest::test_runner::TestCaseError::fail("not a Status error"));
            };
            proptest::prop_assert_eq!(got, status);
            proptest::prop_assert_eq!(&line, &error_excerpt(&body));
            proptest::prop_assert!(line.len() <= MAX_ERROR_BODY);
            proptest::prop_assert!(!line.chars().any(char::is_control));
            proptest::prop_assert!(!line.contains("  ") && line.trim() == line);
            // What is kept is the body's start, spaces aside.
            let squeeze = |s: &str| s.split(|c: char| c.is_control() || c.is_whitespace()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
            proptest::prop_assert!(squeeze(&body).starts_with(&line));
        }

        #[test]
        fn clip_keeps_a_prefix_on_a_character_boundary(text in "\\PC{0,80}", max in 0usize..100) {
            let cut = clip(&text, max);
            proptest::prop_assert!(text.starts_with(cut));
            proptest::prop_assert!(cut.len() <= max);
            proptest::prop_assert!(cut.len() == text.len() || cut.len() + 4 > max);
        }
    }

    /// What any input may produce: no panic, a bounded body, a one-line error.
    fn check_bounds(raw: &[u8]) {
        let _ = complete(raw);
        match parse_response(raw) {
            Ok(text) => assert!(text.chars().count() <= MAX_BODY),
            Err(HttpError::Status { status, body }) => {
                assert!((100..1000).contains(&status) && !(200..300).contains(&status));
                assert!(body.len() <= MAX_ERROR_BODY && !body.chars().any(char::is_control));
            }
            Err(HttpError::Protocol(detail)) => assert!(detail.len() < 4 * MAX_QUOTED),
            Err(other) => panic!("{other:?}"),
        }
    }
}
