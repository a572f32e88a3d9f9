//! Just enough HTTP/1.1 for a webhook: one request per connection, a `Content-Length`
//! body, a JSON answer, `Connection: close`. voice-ua's HTTP tools and curl both speak this.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most header bytes accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most body bytes accepted (function arguments are small).
pub const MAX_BODY: usize = 64 * 1024;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without any query string.
    pub path: String,
    /// Header names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read; each maps to one status and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The peer closed before sending a whole request (nothing to answer).
    Closed,
    /// The request cannot be parsed (400).
    Malformed(String),
    /// Headers or body too large (413 / 431).
    TooLarge(&'static str),
    /// A body without `Content-Length` (411).
    NoLength,
}

impl ReadError {
    /// Status code and reason for the reply, or `None` when there is no one to answer.
    pub fn status(&self) -> Option<(u16, String)> {
        match self {
            ReadError::Closed => None,
            ReadError::Malformed(why) => Some((400, format!("malformed HTTP request: {why}"))),
            ReadError::TooLarge(what) => {
                let status = if *what == "headers" { 431 } else { 413 };
                Some((status, format!("{what} too large")))
            }
            ReadError::NoLength => {
                Some((411, "send the body with a Content-Length header (no chunked encoding)".into()))
            }
        }
    }
}

/// Read one request: the head up to the blank line, then `Content-Length` body bytes.
/// Answers `Expect: 100-continue` (curl sends it for larger bodies).
pub async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<Request, ReadError> {
    let mut raw = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            break end;
        }
        if raw.len() > MAX_HEAD {
            return Err(ReadError::TooLarge("headers"));
        }
        let n = stream.read(&mut buf).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        raw.extend_from_slice(&buf[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(ReadError::TooLarge("headers"));
    }
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| ReadError::Malformed("head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed(format!("bad request line {request_line:?}")));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(ReadError::Malformed(format!("bad request line {request_line:?}")));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Malformed(format!("bad header line {line:?}")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let mut request = Request { method: method.to_owned(), path, headers, body: Vec::new() };

    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::NoLength);
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| ReadError::Malformed(format!("Content-Length {v:?}")))?,
    };
    if length > MAX_BODY {
        return Err(ReadError::TooLarge("body"));
    }
    let mut body = raw.split_off(head_end + 4);
    if body.len() < length && request.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.map_err(|_| ReadError::Closed)?;
    }
    while body.len() < length {
        let n = stream.read(&mut buf).await.map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return Err(ReadError::Malformed(format!("body ended after {} of {length} bytes", body.len())));
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(request)
}

/// A whole response with a JSON body and `Connection: close`.
pub fn response(status: u16, extra_headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        reason_phrase(status),
        body.len()
    );
    for (name, value) in extra_headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &[u8]) -> Result<Request, ReadError> {
        let (mut client, mut server) = tokio::io::duplex(256 * 1024);
        client.write_all(raw).await.map_err(|_| ReadError::Closed)?;
        drop(client);
        read_request(&mut server).await
    }

    #[tokio::test]
    async fn reads_a_post_with_a_body() {
        let raw = b"POST /open_gate?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Api-Key:  k \r\n\r\n{}";
        let request = parse(raw).await.expect("parsed");
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/open_gate");
        assert_eq!(request.header("x-api-key"), Some("k"));
        assert_eq!(request.body, b"{}");
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_read() {
        assert!(matches!(parse(b"nonsense\r\n\r\n").await, Err(ReadError::Malformed(_))));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").await,
            Err(ReadError::NoLength)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n").await,
            Err(ReadError::TooLarge("body"))
        );
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}").await,
            Err(ReadError::Malformed(_))
        ));
        assert_eq!(parse(b"POST / HTT").await, Err(ReadError::Closed));
    }

    #[test]
    fn a_response_has_its_length() {
        let text = String::from_utf8(response(401, &[], "{\"ok\":false}")).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(text.contains("Content-Length: 12\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"ok\":false}"));
    }
}
