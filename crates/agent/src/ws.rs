//! What every WebSocket agent provider (Deepgram, OpenAI) shares: rustls with the ring
//! provider only (the webpki roots plus an extra CA file), the URL rule (`wss://`, or
//! `ws://` to a loopback host only), the upgrade with its failures as one log line each,
//! the reusable buffer outgoing payloads are split off ([`AudioOut`]), a key masked for
//! `Debug`, and the shells' clock helpers.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tools::http;
use crate::AgentError;

/// How long the TCP + TLS + WebSocket handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A provider's WebSocket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An agent error of `provider` without a code of its own.
pub(crate) fn provider_error(provider: &str, detail: impl Into<String>) -> AgentError {
    AgentError::Provider { provider: provider.into(), detail: detail.into(), code: None }
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

/// webpki roots plus the extra CA file, ring only. Errors name `provider`.
pub(crate) fn tls_config(
    provider: &str,
    extra_ca_file: Option<&PathBuf>,
) -> Result<rustls::ClientConfig, AgentError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let error = |detail: String| provider_error(provider, detail);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| error(format!("cannot read extra CA file {shown}: {e}")))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| error(format!("extra CA file {shown} is not PEM: {e}")))?;
            roots.add(cert).map_err(|e| error(format!("extra CA file {shown}: bad certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(error(format!("extra CA file {shown} holds no CERTIFICATE block")));
        }
    }
    let crypto = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| error(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// `wss://` anywhere, `ws://` only to a loopback host (the key would travel in clear).
pub(crate) fn check_url(provider: &str, url: &str) -> Result<Uri, AgentError> {
    let uri: Uri =
        url.parse().map_err(|e| provider_error(provider, format!("agent URL {url:?} is not a URL ({e})")))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("wss") => Ok(uri),
        Some("ws") if is_loopback(host) => Ok(uri),
        Some("ws") => Err(provider_error(
            provider,
            format!(
            "agent URL {url} is plain ws:// to a non-loopback host: use wss:// (the API key would travel in clear text)"
        ),
        )),
        _ => Err(provider_error(provider, format!("agent URL {url} must start with wss://"))),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A key for `Debug`: `"****"` plus the last four characters when the key is long enough
/// to spare them.
pub(crate) fn mask(key: &str) -> String {
    if key.is_empty() {
        return "(empty)".into();
    }
    let n = key.chars().count();
    if n >= 16 {
        let tail: String = key.chars().skip(n - 4).collect();
        format!("****{tail}")
    } else {
        "****".into()
    }
}

/// Who is at the other end of a connection, for its errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint {
    /// The provider's name in [`AgentError::Provider`] (`deepgram`, `openai`).
    pub provider: &'static str,
    /// How a sentence names it (`Deepgram`, `OpenAI`).
    pub label: &'static str,
    /// A response header that carries the refusal's reason (Deepgram's `dg-error`).
    pub error_header: Option<&'static str>,
}

/// Open a provider's WebSocket at `url` with `Authorization: <authorization>` (the key is
/// never in an error) within [`CONNECT_TIMEOUT`], messages capped at `max_message`
/// bytes. Errors are one line for the log.
pub(crate) async fn connect(
    endpoint: Endpoint,
    url: &str,
    authorization: &str,
    tls: &Arc<rustls::ClientConfig>,
    max_message: usize,
) -> Result<Ws, AgentError> {
    let Endpoint { provider, label, error_header } = endpoint;
    check_url(provider, url)?;
    let auth = HeaderValue::from_str(authorization).map_err(|_| {
        provider_error(provider, format!("the {label} API key holds characters a header cannot carry"))
    })?;
    let peer = Peer { name: label, error_header, credential: "API key", auth_fix: "check the key" };
    open(url, &[(AUTHORIZATION, auth)], tls, CONNECT_TIMEOUT, max_message, peer).await.map_err(|e| {
        let code = crate::ProviderCode::new(&e.kind.code());
        AgentError::Provider { provider: provider.into(), detail: e.detail, code }
    })
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

impl ConnectFailure {
    /// The failure as a provider code (`HTTP_401`, `CONNECT_TIMEOUT`, …): what the metrics
    /// count and what [`crate::reconnect::worth_retrying`] reads.
    pub(crate) fn code(self) -> String {
        match self {
            ConnectFailure::Timeout => "CONNECT_TIMEOUT".into(),
            ConnectFailure::Refused => "CONNECT_REFUSED".into(),
            ConnectFailure::Http(status) => format!("HTTP_{status}"),
            ConnectFailure::Tls => "TLS_FAILED".into(),
            ConnectFailure::Other => "CONNECT_FAILED".into(),
        }
    }
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
/// `timeout`, reading messages of at most `max_message` bytes; a failure is typed
/// ([`ConnectFailure`]) with one line for the log.
pub(crate) async fn open(
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
                .map(http::error_excerpt)
                .or_else(|| response.body().as_ref().map(|b| body_reason(&String::from_utf8_lossy(b))))
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

/// A refusal's body as one short line: the `error.message` of a JSON error body (as
/// OpenAI sends), else the start of the text.
fn body_reason(body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| {
        let error = v.get("error")?;
        error.get("message").or(Some(error)).and_then(|m| m.as_str()).map(str::to_owned)
    });
    http::error_excerpt(message.as_deref().unwrap_or(body))
}

/// Sleep until `deadline`; forever without one.
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What the shared handshake loop ([`handshake`]) needs of a provider's sans-IO session.
pub(crate) trait Handshake {
    /// The next thing the session decided, sorted for the handshake; `None` when there is
    /// nothing more for now.
    fn next_step(&mut self) -> Option<Step>;
    /// The handshake is done: the session streams.
    fn streaming(&self) -> bool;
    /// When [`Handshake::handle_timeout`] is next due.
    fn poll_timeout(&self) -> Option<std::time::Instant>;
    /// Time has passed.
    fn handle_timeout(&mut self, now: std::time::Instant);
    /// A frame from the socket, or its end (`open` cleared when it reads no more).
    fn on_frame(&mut self, frame: Option<Result<Message, tungstenite::Error>>, open: &mut bool);
    /// A write failed: the connection is closing.
    fn on_send_error(&mut self, error: tungstenite::Error);
}

/// What a provider's sans-IO session tells its shell to do; `A` is the caller audio it
/// sends (Deepgram: a 20 ms frame as a binary frame; OpenAI: a few frames as an append
/// event), by value: no heap per frame.
// Audio travels by value, like the seam's own `AgentEvent`: no heap per chunk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output<A> {
    /// Send this JSON as a text frame.
    SendText(String),
    /// Send this caller audio.
    SendAudio(A),
    /// Pass this event to the call.
    Event(crate::AgentEvent),
    /// Run this function and hand the result back to the session.
    RunTool(crate::tools::ToolCall),
    /// Close the WebSocket (normal close) and stop.
    Close,
    /// Open a fresh session to continue the call past the provider's cap and, once it is
    /// streaming, switch the call over to it and close this one; on failure, tell the
    /// session so.
    Renew,
    /// The socket dropped mid-call: open a fresh session the way [`Output::Renew`] does
    /// (the conversation carried over) as the next reconnect attempt, dropping any attempt
    /// still under way; once it streams, switch the call over to it; on failure, tell the
    /// session so. The old socket is dead: nothing more is written to it.
    Reconnect,
}

impl<A> Output<A> {
    /// What this output means during a handshake.
    pub(crate) fn handshake_step(self) -> Step {
        match self {
            Output::SendText(text) => Step::Send(Message::text(text)),
            Output::Event(crate::AgentEvent::Ended(crate::SessionEnd::Failed(e))) => Step::Failed(e),
            // No caller audio is fed during the handshake, so no SendAudio either.
            Output::SendAudio(_)
            | Output::Event(_)
            | Output::RunTool(_)
            | Output::Close
            | Output::Renew
            | Output::Reconnect => Step::Skip,
        }
    }
}

/// An output of a session during its handshake.
pub(crate) enum Step {
    /// Send this frame.
    Send(Message),
    /// The handshake failed.
    Failed(AgentError),
    /// Nothing to do during the handshake (no caller audio flows, the call sees nothing).
    Skip,
}

/// Run `session`'s handshake on `ws` (its opening messages already queued in it): the
/// socket and the session once it streams, or why not.
pub(crate) async fn handshake<S: Handshake>(mut ws: Ws, mut session: S) -> Result<(Ws, S), AgentError> {
    use futures_util::{SinkExt, StreamExt};
    let mut open = true;
    loop {
        while let Some(step) = session.next_step() {
            match step {
                Step::Send(message) => {
                    if let Err(e) = ws.send(message).await {
                        session.on_send_error(e);
                    }
                }
                Step::Failed(e) => {
                    let _ = ws.close(None).await;
                    return Err(e);
                }
                Step::Skip => {}
            }
        }
        if session.streaming() {
            return Ok((ws, session));
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            frame = ws.next(), if open => session.on_frame(frame, &mut open),
            _ = sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
}

/// A renewal task's result, once; pending while there is none (for a `select!` arm).
pub(crate) async fn join_renewal<T>(
    provider: &str,
    task: &mut Option<tokio::task::JoinHandle<Result<T, AgentError>>>,
) -> Result<T, AgentError> {
    let Some(t) = task.as_mut() else { return std::future::pending().await };
    let r = t.await;
    *task = None;
    r.map_err(|e| provider_error(provider, format!("renewal task: {e}")))?
}

/// The shells' clock: tokio's, so paused-time tests drive the sans-IO sessions too.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// One connection's reusable buffer for outgoing payloads. tungstenite takes each payload
/// as `Bytes`, copies it into its write buffer and drops it before `send` returns, so one
/// `BytesMut` per connection is split off for each message and reclaimed at the next:
/// no allocation per message while they do not grow.
#[derive(Debug, Default)]
pub struct AudioOut {
    buf: BytesMut,
}

impl AudioOut {
    /// A buffer with room for `bytes` at first.
    pub fn new(bytes: usize) -> AudioOut {
        AudioOut { buf: BytesMut::with_capacity(bytes) }
    }

    /// `audio` as a payload.
    pub fn payload(&mut self, audio: &[u8]) -> Bytes {
        self.build(audio.len(), |buf| buf.extend_from_slice(audio))
    }

    /// A payload of about `len` bytes written by `write` (which appends to the empty
    /// buffer it is given).
    pub fn build(&mut self, len: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        self.buf.reserve(len);
        write(&mut self.buf);
        self.buf.split().freeze()
    }
}

/// A provider's text frame that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Json(String),
    /// JSON without a string `type`.
    #[error("JSON message without a \"type\"")]
    NoType,
    /// A known type with fields that do not fit.
    #[error("{type_name} message does not match its schema: {detail}")]
    Schema {
        /// The `type`.
        type_name: String,
        /// serde's complaint.
        detail: String,
    },
}

/// A JSON message tagged by its `type`: one of the `known` types, parsed, or another.
pub(crate) enum Tagged<T> {
    /// A known type.
    Known(T),
    /// A type the caller does not model; never an error.
    Unknown {
        /// The `type` value.
        type_name: String,
        /// The whole message.
        raw: Value,
    },
}

/// Parse a message whose `type` names its shape; types not in `known` come back as
/// [`Tagged::Unknown`]. Nothing here panics.
pub(crate) fn parse_tagged<T: DeserializeOwned>(text: &str, known: &[&str]) -> Result<Tagged<T>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))?;
    let type_name = match value.get("type").and_then(Value::as_str) {
        Some(t) => t.to_owned(),
        None => return Err(ParseError::NoType),
    };
    if !known.contains(&type_name.as_str()) {
        return Ok(Tagged::Unknown { type_name, raw: value });
    }
    serde_json::from_value(value)
        .map(Tagged::Known)
        .map_err(|e| ParseError::Schema { type_name, detail: e.to_string() })
}
