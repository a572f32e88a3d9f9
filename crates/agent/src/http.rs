//! The agent's HTTP/1.1 client: requests to the pipeline's STT, LLM and TTS endpoints,
//! over plain TCP (`http://`) or the agent's rustls config (`https://`: ring, webpki
//! roots and the extra CA file), on hyper's client connection.
//!
//! - **Keep-alive.** Each [`HttpClient`] (one per call) keeps finished connections per
//!   origin for [`IDLE_FOR`] and reuses them: a turn's STT, LLM and TTS requests to the
//!   same server share one TCP (and TLS) handshake. A request that meets a connection
//!   the server has just closed is sent again once, on a new connection, when nothing of
//!   it can have been processed (hyper reports it canceled or closed before a response).
//! - **Streaming.** [`HttpResponse::chunk`] hands body bytes over as they arrive (SSE
//!   from an LLM, PCM from a TTS). A response read to its end gives its connection back;
//!   one dropped early (barge-in) takes its connection down with it.
//! - **Time.** The client sets no deadline of its own but the connect one
//!   ([`CONNECT_TIMEOUT`]); callers wrap each step in the timeout their stage needs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::{header, Method, Request, Uri};

/// How long connecting (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a finished connection is kept for reuse.
pub const IDLE_FOR: Duration = Duration::from_secs(15);
/// The most idle connections kept per client (all origins together).
const MAX_IDLE: usize = 4;

/// A failed request, one line.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("bad URL {0}")]
    Url(String),
    /// Connect, TLS, read or write.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Took longer than allowed.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// Not a usable HTTP response.
    #[error("unreadable HTTP response: {0}")]
    Protocol(String),
    /// A non-2xx status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the body as one line.
        body: String,
    },
    /// The body is larger than the reader allows.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Where a request goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    /// The host as in the URL (brackets kept for IPv6), for the `Host` header.
    host: String,
    port: u16,
    /// Whether the URL named the port (then `Host` carries it).
    explicit_port: bool,
}

impl Origin {
    fn of(uri: &Uri) -> Result<Origin, HttpError> {
        let bad = || HttpError::Url(uri.to_string());
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(bad)?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Origin { https, host, port, explicit_port: uri.port_u16().is_some() })
    }

    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    fn host_header(&self) -> String {
        if self.explicit_port {
            format!("{}:{}", self.host, self.port)
        } else {
            self.host.clone()
        }
    }
}

struct Idle {
    origin: Origin,
    send: SendRequest<Full<Bytes>>,
    since: Instant,
}

type Pool = Arc<Mutex<Vec<Idle>>>;

/// One call's HTTP client: cheap to clone (clones share the idle connections).
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    idle: Pool,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// A request body with its type: JSON, a multipart form, …
#[derive(Debug, Clone)]
pub struct Body {
    /// The `Content-Type` header.
    pub content_type: String,
    /// The bytes.
    pub bytes: Bytes,
}

impl Body {
    /// A JSON body.
    pub fn json(text: String) -> Body {
        Body { content_type: "application/json".into(), bytes: Bytes::from(text) }
    }
}

impl HttpClient {
    /// A client with no connections yet.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> HttpClient {
        HttpClient { tls, idle: Arc::new(Mutex::new(Vec::new())) }
    }

    /// POST `body` to `url` with these extra headers; returns once the response's head
    /// has arrived (any status: see [`HttpResponse::error_for_status`]).
    pub async fn post(
        &self,
        url: &Uri,
        headers: &[(String, String)],
        body: Body,
    ) -> Result<HttpResponse, HttpError> {
        let origin = Origin::of(url)?;
        let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let build = || -> Result<Request<Full<Bytes>>, HttpError> {
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(path.as_str())
                .header(header::HOST, origin.host_header())
                .header(header::CONTENT_TYPE, body.content_type.as_str())
                .header(header::USER_AGENT, concat!("voice-ua/", env!("CARGO_PKG_VERSION")));
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            request.body(Full::new(body.bytes.clone())).map_err(|e| HttpError::Url(format!("{url}: {e}")))
        };
        let (mut send, reused) = match self.take_idle(&origin) {
            Some(send) => (send, true),
            None => (self.connect(&origin).await?, false),
        };
        let response = match send.send_request(build()?).await {
            Ok(response) => response,
            // The server closed the kept connection as we used it: nothing was processed.
            Err(e) if reused && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) => {
                tracing::debug!(error = %e, "kept connection was closed; sending again on a new one");
                send = self.connect(&origin).await?;
                send.send_request(build()?).await.map_err(hyper_error)?
            }
            Err(e) => return Err(hyper_error(e)),
        };
        let (parts, body) = response.into_parts();
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            conn: Some((origin, send)),
            pool: Arc::clone(&self.idle),
        })
    }

    fn take_idle(&self, origin: &Origin) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|c| !c.send.is_closed() && c.since.elapsed() < IDLE_FOR);
        let at = idle.iter().rposition(|c| c.origin == *origin && c.send.is_ready())?;
        Some(idle.swap_remove(at).send)
    }

    async fn connect(&self, origin: &Origin) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let connect = async {
            let tcp = TcpStream::connect((origin.bare_host(), origin.port)).await?;
            tcp.set_nodelay(true)?;
            if origin.https {
                let name = rustls::pki_types::ServerName::try_from(origin.bare_host().to_owned())
                    .map_err(|_| HttpError::Url(origin.host.clone()))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls)).connect(name, tcp).await?;
                handshake(TokioIo::new(tls)).await
            } else {
                handshake(TokioIo::new(tcp)).await
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout(CONNECT_TIMEOUT.as_millis())),
        }
    }
}

async fn handshake<T>(io: TokioIo<T>) -> Result<SendRequest<Full<Bytes>>, HttpError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(io).await.map_err(hyper_error)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP connection ended");
        }
    });
    Ok(send)
}

fn hyper_error(e: hyper::Error) -> HttpError {
    if let Some(io) = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        return HttpError::Io(std::io::Error::new(io.kind(), io.to_string()));
    }
    HttpError::Protocol(e.to_string())
}

/// A response whose head has arrived; its body is read as it streams.
pub struct HttpResponse {
    status: u16,
    headers: hyper::HeaderMap,
    body: Incoming,
    /// The connection, given back to the pool when the body has been read to its end.
    conn: Option<(Origin, SendRequest<Full<Bytes>>)>,
    pool: Pool,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse").field("status", &self.status).finish_non_exhaustive()
    }
}

impl HttpResponse {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Ok(Some(data)),
                    // Trailers: nothing we read.
                    Err(_) => continue,
                },
                Some(Err(e)) => return Err(hyper_error(e)),
                None => {
                    self.give_back();
                    return Ok(None);
                }
            }
        }
    }

    /// The whole body, refusing more than `max` bytes.
    pub async fn bytes(mut self, max: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() + chunk.len() > max {
                return Err(HttpError::TooLarge(max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The whole body as text (invalid UTF-8 replaced), refusing more than `max` bytes.
    pub async fn text(self, max: usize) -> Result<String, HttpError> {
        let bytes = self.bytes(max).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Self when the status is 2xx; otherwise the status and the start of the body as one
    /// line ([`crate::tools::http::error_excerpt`]).
    pub async fn error_for_status(self) -> Result<HttpResponse, HttpError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let status = self.status;
        let body = self.text(16 * 1024).await.unwrap_or_default();
        Err(HttpError::Status { status, body: crate::tools::http::error_excerpt(&body) })
    }

    fn give_back(&mut self) {
        let Some((origin, send)) = self.conn.take() else { return };
        if send.is_closed() {
            return;
        }
        let mut idle = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle { origin, send, since: Instant::now() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn client() -> HttpClient {
        crate::ws::install_crypto_provider();
        let tls = crate::ws::tls_config("test", None).expect("tls config");
        HttpClient::new(Arc::new(tls))
    }

    /// A server that answers each request on a connection with `answer`, counting
    /// connections; it closes a connection after `per_conn` requests.
    async fn server(answer: &'static str, per_conn: usize) -> (Uri, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    for _ in 0..per_conn {
                        let mut got = Vec::new();
                        // Read one request: head plus Content-Length body.
                        loop {
                            let n = s.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            got.extend_from_slice(&buf[..n]);
                            let text = String::from_utf8_lossy(&got);
                            if let Some(end) = text.find("\r\n\r\n") {
                                let len = text[..end]
                                    .lines()
                                    .find_map(|l| {
                                        l.to_ascii_lowercase()
                                            .strip_prefix("content-length:")
                                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                    })
                                    .unwrap_or(0);
                                if got.len() >= end + 4 + len {
                                    break;
                                }
                            }
                        }
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/v1/x").parse().expect("uri"), conns)
    }

    const CHUNKED: &str =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

    #[tokio::test]
    async fn a_chunked_body_streams_and_its_connection_is_reused() {
        let (url, conns) = server(CHUNKED, 10).await;
        let c = client();
        for _ in 0..3 {
            let mut r = c.post(&url, &[], Body::json("{}".into())).await.expect("post");
            assert_eq!(r.status(), 200);
            let mut got = Vec::new();
            while let Some(chunk) = r.chunk().await.expect("chunk") {
                got.extend_from_slice(&chunk);
            }
            assert_eq!(got, b"hello world");
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1, "one connection for three requests");
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_and_the_request_sent_again() {
        let (url, conns) = server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1).await;
        let c = client();
        for _ in 0..3 {
            let r = c.post(&url, &[], Body::json("{}".into())).await.expect("post");
            assert_eq!(r.text(100).await.expect("text"), "ok");
            // Let the server's close reach the client half of the time.
            tokio::task::yield_now().await;
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_error_status_is_one_line_with_the_start_of_the_body() {
        let (url, _) = server(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 24\r\n\r\n{\"error\":\"model\nloading\"}",
            1,
        )
        .await;
        let r = client().post(&url, &[], Body::json("{}".into())).await.expect("post");
        match r.error_for_status().await {
            Err(HttpError::Status { status: 503, body }) => {
                assert!(!body.contains('\n'), "{body}");
                assert!(body.contains("model"), "{body}");
            }
            other => panic!("expected a 503 error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (url, _) = server(CHUNKED, 1).await;
        let r = client().post(&url, &[], Body::json("{}".into())).await.expect("post");
        assert!(matches!(r.bytes(4).await, Err(HttpError::TooLarge(4))));
    }

    #[tokio::test]
    async fn nothing_listening_is_an_io_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let url: Uri = format!("http://{addr}/v1").parse().expect("uri");
        let e = client().post(&url, &[], Body::json("{}".into())).await.expect_err("refused");
        assert!(matches!(e, HttpError::Io(_)), "{e}");
    }

    #[test]
    fn only_http_and_https_urls_are_used() {
        for bad in ["ftp://x/y", "/relative"] {
            let uri: Uri = bad.parse().expect("uri");
            assert!(matches!(Origin::of(&uri), Err(HttpError::Url(_))), "{bad}");
        }
        let o = Origin::of(&"https://[::1]:8443/v1".parse().expect("uri")).expect("origin");
        assert_eq!((o.bare_host(), o.port, o.host_header().as_str()), ("::1", 8443, "[::1]:8443"));
    }
}
