//! HTTP tools' requests: one `POST` of the checked arguments (JSON) per call, on the
//! agent's one HTTP client ([`crate::http`]: hyper over tokio's TCP and the agent's
//! rustls config), and the text helpers for what comes back into a log line or to the
//! LLM ([`one_line`], [`error_excerpt`], [`clip`]). At most [`MAX_BODY`] bytes of an
//! answer are kept; an error answer becomes one short line.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::http::Uri;

pub use crate::http::HttpError;
use crate::http::{Body, HttpClient};

/// The most response bytes kept (the LLM gets this much of the tool's answer).
pub const MAX_BODY: usize = 64 * 1024;
/// Most characters of a tool's error body kept for the LLM and the log line.
pub const MAX_ERROR_BODY: usize = 200;

/// POST `body` (JSON) to `url`; the response body as text when the status is 2xx (`ok`
/// when empty; at most [`MAX_BODY`] bytes of it, invalid UTF-8 replaced), else
/// [`HttpError::Status`] with [`error_excerpt`] of it. The whole exchange within `timeout`.
pub async fn post_json(
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> Result<String, HttpError> {
    let uri: Uri = url.parse().map_err(|_| HttpError::Url(url.to_owned()))?;
    for (name, value) in headers {
        if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
            return Err(HttpError::Url(format!("{url}: header {name:?} holds a line break")));
        }
    }
    let mut headers = headers.to_vec();
    headers.push(("Accept".into(), "application/json, text/plain".into()));
    let body =
        Body { content_type: "application/json".into(), bytes: Bytes::copy_from_slice(body.as_bytes()) };
    let exchange = async {
        let mut response = HttpClient::new(tls).post(&uri, &headers, body).await?.error_for_status().await?;
        let mut kept = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_BODY - kept.len();
            kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            if kept.len() >= MAX_BODY {
                break;
            }
        }
        let text = String::from_utf8_lossy(&kept).into_owned();
        Ok(if text.trim().is_empty() { "ok".into() } else { text })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout(timeout.as_millis())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A webhook on loopback that answers one request with `answer` and closes.
    async fn webhook(answer: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
            }
        });
        format!("http://{addr}/tool")
    }

    async fn post(answer: &[u8]) -> Result<String, HttpError> {
        crate::ws::install_crypto_provider();
        let tls = Arc::new(crate::ws::tls_config("test", None).expect("tls"));
        let url = webhook(answer.to_vec()).await;
        post_json(&url, &[], "{}", Duration::from_secs(5), tls).await
    }

    #[tokio::test]
    async fn an_error_body_is_cut_on_a_character_boundary() {
        // 199 ASCII bytes, then 'é' (2 bytes) straddles byte 200: this once aborted the process.
        let body = format!("{}é and more", "x".repeat(199));
        let raw = format!("HTTP/1.1 500 Oops\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        match post(raw.as_bytes()).await {
            Err(HttpError::Status { status: 500, body }) => assert_eq!(body, "x".repeat(199)),
            other => panic!("{other:?}"),
        }
        // A 4-byte character across the limit, from a chunked body.
        let body = format!("{}🦀🦀", "y".repeat(198));
        let raw = format!(
            "HTTP/1.1 502 Bad\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        match post(raw.as_bytes()).await {
            Err(HttpError::Status { status: 502, body }) => assert_eq!(body, "y".repeat(198)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_error_body_becomes_one_short_line() {
        let body = "  first\r\n2026-01-01 INFO forged line\x1b[31m\tred  ";
        let raw = format!("HTTP/1.1 500 Oops\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        match post(raw.as_bytes()).await {
            Err(HttpError::Status { status: 500, body }) => {
                assert_eq!(body, "first 2026-01-01 INFO forged line [31m red");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn bodies_by_length_chunks_and_close_and_empty_is_ok() {
        let r = post(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").await;
        assert_eq!(r.ok().as_deref(), Some("hello"));
        let r = post(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(r.ok().as_deref(), Some("abcde"));
        let r = post(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end").await;
        assert_eq!(r.ok().as_deref(), Some("to the end"));
        let r = post(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(r.ok().as_deref(), Some("ok"));
        assert!(matches!(post(b"garbage\r\n\r\n").await, Err(HttpError::Protocol(_))));
    }

    #[tokio::test]
    async fn bodies_are_kept_up_to_max_body() {
        let body = "z".repeat(MAX_BODY + 10);
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        assert_eq!(post(raw.as_bytes()).await.map(|t| t.len()).ok(), Some(MAX_BODY));
    }

    #[tokio::test]
    async fn a_silent_webhook_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _hold = tokio::spawn(async move {
            let conn = listener.accept().await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        });
        crate::ws::install_crypto_provider();
        let tls = Arc::new(crate::ws::tls_config("test", None).expect("tls"));
        let r = post_json(&format!("http://{addr}/t"), &[], "{}", Duration::from_millis(200), tls).await;
        assert!(matches!(r, Err(HttpError::Timeout(200))), "{r:?}");
    }

    #[test]
    fn a_header_with_a_line_break_is_refused_before_sending() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        crate::ws::install_crypto_provider();
        let tls = Arc::new(crate::ws::tls_config("test", None).expect("tls"));
        let headers = vec![("X-A".to_owned(), "v\r\nInjected: 1".to_owned())];
        let r = rt.block_on(post_json("http://127.0.0.1:9/t", &headers, "{}", Duration::from_secs(1), tls));
        assert!(matches!(r, Err(HttpError::Url(_))), "{r:?}");
    }

    proptest::proptest! {
        #[test]
        fn error_excerpts_are_one_bounded_line(body in "\\PC{0,300}") {
            let line = error_excerpt(&body);
            proptest::prop_assert!(line.len() <= MAX_ERROR_BODY);
            proptest::prop_assert!(!line.chars().any(char::is_control));
            proptest::prop_assert!(!line.contains("  ") && line.trim() == line);
            // What is kept is the body's start, spaces aside.
            let squeeze = |s: &str| s.split(|c: char| c.is_control() || c.is_whitespace()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
            proptest::prop_assert!(squeeze(&body).starts_with(&line));
            proptest::prop_assert_eq!(error_excerpt(&line), line.clone(), "an excerpt is its own excerpt");
        }

        #[test]
        fn clip_keeps_a_prefix_on_a_character_boundary(text in "\\PC{0,80}", max in 0usize..100) {
            let cut = clip(&text, max);
            proptest::prop_assert!(text.starts_with(cut));
            proptest::prop_assert!(cut.len() <= max);
            proptest::prop_assert!(cut.len() == text.len() || cut.len() + 4 > max);
        }
    }
}
