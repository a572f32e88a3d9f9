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
        /// The start of the body.
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
    let head_end = find(raw, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())?;
    (raw.len() >= head_end + length).then_some(head_end + length)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Status line, headers, then the body (`Content-Length`, chunked, or to the end).
pub fn parse_response(raw: &[u8]) -> Result<String, HttpError> {
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| HttpError::Protocol("no end of headers".into()))? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| HttpError::Protocol(format!("status line {status_line:?}")))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = value.parse::<usize>().ok();
        }
    }
    let rest = &raw[head_end..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    let mut text = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]).into_owned();
    if (200..300).contains(&status) {
        if text.trim().is_empty() {
            text = "ok".into();
        }
        Ok(text)
    } else {
        text.truncate(text.len().min(200));
        Err(HttpError::Status { status, body: text.trim().to_owned() })
    }
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or_else(|| HttpError::Protocol("truncated chunk".into()))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Protocol(format!("chunk size {size_text:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 || body.len() >= MAX_BODY {
            return Ok(body);
        }
        let take = size.min(rest.len());
        body.extend_from_slice(&rest[..take]);
        rest = rest.get(take + 2..).unwrap_or_default();
    }
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
}
