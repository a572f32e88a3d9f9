//! The tests' small HTTP/1.1 client: one connection (plain or TLS), several requests on
//! it, bodies sent whole (Content-Length) or chunked, responses read whole or frame by
//! frame.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type ReqBody = BoxBody<Bytes, Infallible>;

/// A body of several frames and no length: sent with `Transfer-Encoding: chunked`.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// `data` whole, with a Content-Length.
pub fn whole(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into()).boxed()
}

/// `data` in `pieces` chunks, chunked.
pub fn chunked(data: &[u8], pieces: usize) -> ReqBody {
    let size = data.len().div_ceil(pieces.max(1)).max(1);
    Chunks(data.chunks(size).map(Bytes::copy_from_slice).collect()).boxed()
}

/// One client connection.
pub struct Client {
    sender: SendRequest<ReqBody>,
    host: String,
    pub closed: tokio::sync::oneshot::Receiver<()>,
}

impl Client {
    /// A plain connection to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect to the fake");
        Client::over(TokioIo::new(tcp), addr).await
    }

    /// A TLS connection to `addr`, trusting `ca_pem`.
    pub async fn connect_tls(addr: SocketAddr, ca_pem: &str) -> Client {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("a PEM certificate")).expect("a CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await.expect("connect to the fake");
        let name = ServerName::try_from("127.0.0.1").expect("a server name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        Client::over(TokioIo::new(tls), addr).await
    }

    async fn over<T>(io: TokioIo<T>, addr: SocketAddr) -> Client
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("HTTP/1.1 handshake");
        let (tx, closed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = tx.send(());
        });
        Client { sender, host: addr.to_string(), closed }
    }

    /// Send `body` to `path` with `content_type` (and `extra` headers); the response head.
    pub async fn send(
        &mut self,
        path: &str,
        content_type: &str,
        extra: &[(&str, &str)],
        body: ReqBody,
    ) -> Response<Incoming> {
        let mut request = Request::post(path).header("host", &self.host).header("content-type", content_type);
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let request = request.body(body).expect("a request");
        self.sender.ready().await.expect("the connection is ready");
        self.sender.send_request(request).await.expect("a response")
    }

    /// POST JSON; status and whole body.
    pub async fn json(&mut self, path: &str, body: &serde_json::Value) -> (u16, Bytes) {
        let response = self.send(path, "application/json", &[], whole(body.to_string())).await;
        read(response).await
    }
}

/// Status and whole body.
pub async fn read(response: Response<Incoming>) -> (u16, Bytes) {
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("the whole body").to_bytes();
    (status, body)
}

/// The body's frames with the time each came, from now.
pub async fn frames(response: Response<Incoming>) -> Vec<(Duration, Bytes)> {
    let start = Instant::now();
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("a frame").into_data() {
            out.push((start.elapsed(), data));
        }
    }
    out
}

/// The SSE events' data lines of `body`, checking each event is `data: …` + blank line.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(body).expect("SSE is UTF-8");
    assert!(text.ends_with("\n\n"), "the stream ends with a whole event");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("every event is a data line").to_owned())
        .collect()
}

/// The error body's parts: (type, message).
pub fn error_of(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).expect("an error body is JSON");
    let e = &v["error"];
    (
        e["type"].as_str().expect("error.type").to_owned(),
        e["message"].as_str().expect("error.message").to_owned(),
    )
}
