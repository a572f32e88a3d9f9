//! The WebSocket client plumbing every agent provider shares: the URL rule (`wss://`
//! anywhere, `ws://` to loopback only), rustls with the ring provider (webpki roots plus
//! an extra CA file), the connect with a timeout whose failure is one typed
//! [`ConnectError`], and [`AudioOut`], the reusable payload buffer.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::tools::http::error_excerpt;
use crate::AgentError;

/// A client WebSocket over TCP or TLS.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn error(provider: &str, detail: String) -> AgentError {
    AgentError::Provider { provider: provider.into(), detail, code: None }
}

/// Install ring as rustls' process-wide crypto provider. rustls panics when it has to pick
/// a default and more than one provider is linked; voice-ua links only ring, and installs
/// it explicitly anyway. Idempotent: a second call (or another provider installed first)
/// is left as it is.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `wss://` anywhere, `ws://` only to a loopback host (secrets in headers would travel in
/// clear text otherwise).
pub(crate) fn check_url(provider: &str, url: &str) -> Result<Uri, AgentError> {
    let uri: Uri =
        url.parse().map_err(|e| error(provider, format!("agent URL {url:?} is not a URL ({e})")))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("wss") => Ok(uri),
        Some("ws") if is_loopback(host) => Ok(uri),
        Some("ws") => Err(error(provider, format!(
            "agent URL {url} is plain ws:// to a non-loopback host: use wss:// (the API key would travel in clear text)"
        ))),
        _ => Err(error(provider, format!("agent URL {url} must start with wss://"))),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// webpki roots plus the extra CA file, ring only.
pub(crate) fn tls_config(
    provider: &str,
    extra_ca_file: Option<&PathBuf>,
) -> Result<rustls::ClientConfig, AgentError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| error(provider, format!("cannot read extra CA file {shown}: {e}")))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| error(provider, format!("extra CA file {shown} is not PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| error(provider, format!("extra CA file {shown}: bad certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(error(provider, format!("extra CA file {shown} holds no CERTIFICATE block")));
        }
    }
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(provider, format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Why a connect failed, as a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectFailure {
    /// No answer within the timeout.
    Timeout,
    /// TCP connection refused.
    Refused,
    /// The server answered the upgrade with this HTTP status.
    Http(u16),
    /// The TLS handshake failed.
    Tls,
    /// Anything else (DNS, reset, a broken upgrade).
    Other,
}

/// A connect that failed: its kind and one line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectError {
    pub kind: ConnectFailure,
    pub detail: String,
}

/// Who is being connected to, for the error lines: `Deepgram`, `the WebSocket bot`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer<'a> {
    /// The name in sentences.
    pub name: &'a str,
    /// A response header the peer explains its refusals in (Deepgram's `dg-error`).
    pub error_header: Option<&'a str>,
    /// What the peer rejects with a 401/403 (`API key`).
    pub credential: &'a str,
    /// What to do then (`check the key`).
    pub auth_fix: &'a str,
}

/// The largest message (and frame) read from a peer: 1 MiB. A bigger one fails the read
/// with a capacity error instead of being buffered.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Open the WebSocket to `url` with `headers` added to the upgrade request, within
/// `timeout`, reading messages of at most `max_message` bytes.
pub(crate) async fn connect(
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
    max_message: usize,
    peer: Peer<'_>,
) -> Result<Ws, ConnectError> {
    let other = |detail: String| ConnectError { kind: ConnectFailure::Other, detail };
    let uri: Uri = url.parse().map_err(|e| other(format!("agent URL {url:?} is not a URL ({e})")))?;
    let host = uri.host().unwrap_or_default().to_owned();
    let mut request =
        url.into_client_request().map_err(|e| other(format!("agent URL {url} is not usable: {e}")))?;
    for (name, value) in headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    let connector =
        if uri.scheme_str() == Some("wss") { Connector::Rustls(Arc::clone(tls)) } else { Connector::Plain };
    let config =
        WebSocketConfig::default().max_message_size(Some(max_message)).max_frame_size(Some(max_message));
    let attempt =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, Some(connector));
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ConnectError {
            kind: ConnectFailure::Timeout,
            detail: format!(
                "no answer from {} at {host} within {} ms: check the network and firewall",
                peer.name,
                timeout.as_millis()
            ),
        }),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(connect_error(&host, e, peer)),
    }
}

fn connect_error(host: &str, error: tungstenite::Error, peer: Peer<'_>) -> ConnectError {
    use tungstenite::Error as E;
    let name = peer.name;
    let (kind, detail) = match error {
        E::Http(response) => {
            let status = response.status();
            // Whatever answered (the peer, a proxy's error page): one short line.
            let why = peer
                .error_header
                .and_then(|h| response.headers().get(h))
                .and_then(|v| v.to_str().ok())
                .map(error_excerpt)
                .or_else(|| response.body().as_ref().map(|b| error_excerpt(&String::from_utf8_lossy(b))))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason").to_owned());
            let code = status.as_u16();
            let detail = if code == 401 || code == 403 {
                format!("{name} rejected the {} (HTTP {code}: {why}): {}", peer.credential, peer.auth_fix)
            } else {
                format!("{name} refused the WebSocket (HTTP {code}: {why})")
            };
            (ConnectFailure::Http(code), detail)
        }
        E::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            (ConnectFailure::Refused, format!("cannot connect to {name} at {host}: connection refused"))
        }
        // tokio-rustls reports handshake failures as io errors wrapping the rustls error.
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            (ConnectFailure::Tls, tls_failure(name, host, &e))
        }
        E::Io(e) => (ConnectFailure::Other, format!("cannot connect to {name} at {host}: {e}")),
        E::Tls(e) => (ConnectFailure::Tls, tls_failure(name, host, &e)),
        other => (ConnectFailure::Other, format!("WebSocket to {name} at {host} failed: {other}")),
    };
    ConnectError { kind, detail }
}

fn tls_failure(name: &str, host: &str, error: &dyn fmt::Display) -> String {
    format!("TLS with {name} at {host} failed ({error}): check the system clock, any TLS-inspecting proxy, or extra_ca_file")
}

/// One connection's reusable buffer for outgoing payloads: tungstenite takes each
/// payload as `Bytes`, copies it into its write buffer and drops it before `send`
/// returns, so one `BytesMut` per connection is split off for each message and
/// reclaimed at the next (no allocation per frame while messages do not grow).
#[derive(Debug, Default)]
pub struct AudioOut {
    buf: BytesMut,
}

impl AudioOut {
    /// A buffer with room for one message of `bytes`.
    pub fn new(bytes: usize) -> AudioOut {
        AudioOut { buf: BytesMut::with_capacity(bytes) }
    }

    /// `audio` as a payload. Once the previous payload has been dropped, its storage is
    /// reused.
    pub fn payload(&mut self, audio: &[u8]) -> Bytes {
        self.buf.reserve(audio.len());
        self.buf.extend_from_slice(audio);
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_only_to_loopback() {
        assert!(check_url("x", "wss://bot.example.com/media").is_ok());
        assert!(check_url("x", "ws://127.0.0.1:8080/ws").is_ok());
        assert!(check_url("x", "ws://[::1]:8080/ws").is_ok());
        assert!(check_url("x", "ws://localhost/ws").is_ok());
        let e = check_url("x", "ws://10.0.0.2/ws").expect_err("plain ws to a LAN host");
        assert!(e.to_string().contains("use wss://"), "{e}");
        assert!(check_url("x", "https://bot/ws").is_err());
        assert!(check_url("x", "not a url").is_err());
    }
}
