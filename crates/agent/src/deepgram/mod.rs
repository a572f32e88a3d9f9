//! The Deepgram Voice Agent bridge: one WebSocket per call to
//! `wss://agent.deepgram.com/v1/agent/converse`, caller audio in the call's own G.711 or
//! linear16 format (nothing is transcoded), agent audio back as seam events.
//!
//! - [`arguments`]: a function call's arguments checked against its JSON Schema (sans-IO).
//! - [`messages`]: serde types for every JSON message (sans-IO).
//! - [`session`]: the state machine that decides what to send and what the call sees.
//! - this module: [`DeepgramConfig`], [`DeepgramProvider`] (the async shell: tokio-tungstenite
//!   over rustls with the ring provider), client-side tools and [`check_key`].

pub mod arguments;
pub mod messages;
pub mod session;

#[doc(hidden)]
pub mod http;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use self::messages::{AgentSettings, AudioSettings, FunctionDef, Listen, Provider, Settings, Speak, Think};
use self::session::{DeepgramSession, Output, State, ToolCall, PROVIDER};
use crate::provider::{
    AgentEvent, AgentIo, AgentProvider, AgentSession, AudioFormat, CallFacts, CallInput, Digit, SessionEnd,
};
use crate::AgentError;

/// Deepgram's Voice Agent endpoint.
pub const DEFAULT_URL: &str = "wss://agent.deepgram.com/v1/agent/converse";
/// How long the TCP + TLS + WebSocket handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The Deepgram agent's settings for every call.
#[derive(Clone)]
pub struct DeepgramConfig {
    /// WebSocket URL; `ws://` only for loopback hosts (tests).
    pub url: String,
    /// API key, sent as `Authorization: Token <key>`. Never logged.
    pub api_key: String,
    /// A PEM file of CA certificates trusted in addition to the webpki roots.
    pub extra_ca_file: Option<PathBuf>,
    /// What the agent listens with, thinks with, says.
    pub settings: AgentConfig,
}

impl fmt::Debug for DeepgramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramConfig")
            .field("url", &self.url)
            .field("api_key", &mask(&self.api_key))
            .field("extra_ca_file", &self.extra_ca_file)
            .field("settings", &self.settings)
            .finish()
    }
}

/// `"****"` plus the last four characters when the key is long enough to spare them.
fn mask(key: &str) -> String {
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

impl DeepgramConfig {
    /// The default endpoint and agent with this key.
    pub fn new(api_key: impl Into<String>) -> Self {
        DeepgramConfig {
            url: DEFAULT_URL.into(),
            api_key: api_key.into(),
            extra_ca_file: None,
            settings: AgentConfig::default(),
        }
    }

    /// The `Settings` message for a call in `format`.
    pub fn settings_message(&self, format: AudioFormat) -> Settings {
        let s = &self.settings;
        Settings {
            audio: AudioSettings::for_format(format),
            agent: AgentSettings {
                listen: Listen {
                    provider: Provider {
                        kind: "deepgram".into(),
                        model: Some(s.listen_model.clone()),
                        language: Some(s.language.clone()),
                        temperature: None,
                    },
                },
                think: Think {
                    provider: Provider {
                        kind: s.think_provider.clone(),
                        model: Some(s.think_model.clone()),
                        language: None,
                        temperature: None,
                    },
                    prompt: Some(s.prompt.clone()),
                    functions: s
                        .functions
                        .iter()
                        .map(|f| FunctionDef {
                            name: f.name.clone(),
                            description: f.description.clone(),
                            parameters: f.parameters.clone(),
                        })
                        .collect(),
                },
                speak: Speak {
                    provider: Provider {
                        kind: "deepgram".into(),
                        model: Some(s.speak_model.clone()),
                        language: None,
                        temperature: None,
                    },
                },
                greeting: s.greeting.clone(),
                context: None,
            },
            experimental: s.experimental,
            mip_opt_out: false,
        }
    }
}

/// The agent itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Listen language (`en`, `es`, `multi`).
    pub language: String,
    /// Speech-to-text model (`nova-3`).
    pub listen_model: String,
    /// LLM provider (`open_ai`, `anthropic`, `google`, `groq`).
    pub think_provider: String,
    /// LLM model (`gpt-4o-mini`).
    pub think_model: String,
    /// System prompt.
    pub prompt: String,
    /// Voice (`aura-2-thalia-en`, `aura-2-celeste-es`).
    pub speak_model: String,
    /// Said when the call is answered.
    pub greeting: Option<String>,
    /// Client-side functions.
    pub functions: Vec<FunctionSpec>,
    /// Ask for experimental messages (Deepgram's own latency figures).
    pub experimental: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            language: "en".into(),
            listen_model: "nova-3".into(),
            think_provider: "open_ai".into(),
            think_model: "gpt-4o-mini".into(),
            prompt: "You answer the phone for a small business. Keep every answer short.".into(),
            speak_model: "aura-2-thalia-en".into(),
            greeting: None,
            functions: Vec::new(),
            experimental: false,
        }
    }
}

/// A function the agent may call, run by voice-ua.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// Name the LLM calls it by.
    pub name: String,
    /// When to call it.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
    /// What running it means.
    pub kind: ToolKind,
}

/// How a function runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolKind {
    /// POST the arguments JSON to `url`; the response body is the result.
    Http {
        /// `http://` or `https://` URL.
        url: String,
        /// Extra request headers.
        headers: Vec<(String, String)>,
        /// Whole-request limit.
        timeout: Duration,
    },
    /// Something the call does.
    Builtin(Builtin),
}

/// Call actions the agent can take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// Blind-transfer the caller to `target` (extension or SIP URI).
    Transfer {
        /// Where to.
        target: String,
    },
    /// Hang up once the agent's last words have played.
    Hangup,
    /// Send the DTMF digits in the `digits` argument.
    SendDtmf,
}

/// The Deepgram Voice Agent as an [`AgentProvider`].
#[derive(Clone)]
pub struct DeepgramProvider {
    config: Arc<DeepgramConfig>,
    tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for DeepgramProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramProvider").field("config", &self.config).finish_non_exhaustive()
    }
}

fn provider_error(detail: impl Into<String>) -> AgentError {
    AgentError::Provider { provider: PROVIDER.into(), detail: detail.into() }
}

impl DeepgramProvider {
    /// Check the URL and load the extra CA file. Installs the ring crypto provider.
    pub fn new(config: DeepgramConfig) -> Result<Self, AgentError> {
        install_crypto_provider();
        check_url(&config.url)?;
        if config.api_key.trim().is_empty() {
            return Err(provider_error(
                "no Deepgram API key configured: set one (agent.api_key or its environment variable)",
            ));
        }
        let tls = Arc::new(tls_config(config.extra_ca_file.as_ref())?);
        Ok(DeepgramProvider { config: Arc::new(config), tls })
    }

    /// The configuration.
    pub fn config(&self) -> &DeepgramConfig {
        &self.config
    }
}

/// `wss://` anywhere, `ws://` only to a loopback host.
fn check_url(url: &str) -> Result<Uri, AgentError> {
    let uri: Uri =
        url.parse().map_err(|e| provider_error(format!("agent URL {url:?} is not a URL ({e})")))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("wss") => Ok(uri),
        Some("ws") if is_loopback(host) => Ok(uri),
        Some("ws") => Err(provider_error(format!(
            "agent URL {url} is plain ws:// to a non-loopback host: use wss:// (the API key would travel in clear text)"
        ))),
        _ => Err(provider_error(format!("agent URL {url} must start with wss://"))),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// webpki roots plus the extra CA file, ring only.
fn tls_config(extra_ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, AgentError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| provider_error(format!("cannot read extra CA file {shown}: {e}")))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| provider_error(format!("extra CA file {shown} is not PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| provider_error(format!("extra CA file {shown}: bad certificate: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(provider_error(format!("extra CA file {shown} holds no CERTIFICATE block")));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| provider_error(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open the WebSocket with `Authorization: Token <key>`. Errors are one line for the log.
async fn connect(config: &DeepgramConfig, tls: &Arc<rustls::ClientConfig>) -> Result<Ws, AgentError> {
    let uri = check_url(&config.url)?;
    let host = uri.host().unwrap_or_default().to_owned();
    let mut request = config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| provider_error(format!("agent URL {} is not usable: {e}", config.url)))?;
    let auth = HeaderValue::from_str(&format!("Token {}", config.api_key.trim()))
        .map_err(|_| provider_error("the Deepgram API key holds characters a header cannot carry"))?;
    request.headers_mut().insert("Authorization", auth);
    let connector =
        if uri.scheme_str() == Some("wss") { Connector::Rustls(Arc::clone(tls)) } else { Connector::Plain };
    let attempt = tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Err(_) => Err(provider_error(format!(
            "no answer from Deepgram at {host} within {} s: check the network and firewall",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(e)) => Err(connect_error(&host, e)),
    }
}

fn connect_error(host: &str, error: tungstenite::Error) -> AgentError {
    use tungstenite::Error as E;
    let detail = match error {
        E::Http(response) => {
            let status = response.status();
            // Whatever answered (Deepgram, a proxy's error page): one short line.
            let dg_error = response
                .headers()
                .get("dg-error")
                .and_then(|v| v.to_str().ok())
                .map(http::error_excerpt)
                .or_else(|| {
                    response.body().as_ref().map(|b| http::error_excerpt(&String::from_utf8_lossy(b)))
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason").to_owned());
            if status.as_u16() == 401 || status.as_u16() == 403 {
                format!("Deepgram rejected the API key (HTTP {}: {dg_error}): check the key", status.as_u16())
            } else {
                format!("Deepgram refused the WebSocket (HTTP {}: {dg_error})", status.as_u16())
            }
        }
        E::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("cannot connect to Deepgram at {host}: connection refused")
        }
        // tokio-rustls reports handshake failures as io errors wrapping the rustls error.
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => tls_failure(host, &e),
        E::Io(e) => format!("cannot connect to Deepgram at {host}: {e}"),
        E::Tls(e) => tls_failure(host, &e),
        other => format!("WebSocket to Deepgram at {host} failed: {other}"),
    };
    provider_error(detail)
}

fn tls_failure(host: &str, error: &dyn fmt::Display) -> String {
    format!("TLS with Deepgram at {host} failed ({error}): check the system clock, any TLS-inspecting proxy, or extra_ca_file")
}

#[async_trait::async_trait]
impl AgentProvider for DeepgramProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError> {
        call.format.validate()?;
        tracing::info!(format = %call.format, url = %self.config.url, "Deepgram agent answering");
        let config = Arc::clone(&self.config);
        let tls = Arc::clone(&self.tls);
        Ok(AgentSession::spawn(self.name(), move |io| run(config, tls, call, io)))
    }
}

/// A finished tool: `(id, name, content)`.
type ToolResult = (String, String, String);

/// A `transfer` function call waiting for the call's [`crate::TransferOutcome`].
struct PendingTransfer {
    id: String,
    name: String,
    target: String,
}

/// The session task: connect, then shuttle frames between the call, the socket and the
/// state machine until one side ends.
async fn run(config: Arc<DeepgramConfig>, tls: Arc<rustls::ClientConfig>, call: CallFacts, mut io: AgentIo) {
    let settings = config.settings_message(call.format);
    let mut session = DeepgramSession::new(now(), call.format, settings);
    let mut ws = match connect(&config, &tls).await {
        Ok(ws) => ws,
        Err(error) => {
            tracing::warn!(%error, "Deepgram agent could not start");
            let _ = io.send(AgentEvent::Ended(SessionEnd::Failed(error))).await;
            return;
        }
    };
    let (tool_tx, mut tool_rx) = mpsc::channel::<ToolResult>(8);
    // A fresh session being opened to continue the call past Deepgram's 2 h cap.
    let mut renewal: Option<tokio::task::JoinHandle<Result<(Ws, DeepgramSession), AgentError>>> = None;
    // The transfer the call is carrying out: its function call waits for the outcome.
    let mut transfer: Option<PendingTransfer> = None;
    let mut call_open = true;
    loop {
        // Act on everything the state machine decided.
        while let Some(output) = session.poll_output() {
            match output {
                Output::SendText(text) => send_text(&mut ws, &mut session, text).await,
                Output::Event(event) => {
                    let last = matches!(event, AgentEvent::Ended(_));
                    if io.send(event).await.is_err() {
                        call_open = false;
                        session.call_ended();
                    }
                    if last {
                        let _ = ws.close(None).await;
                        log_drops(&session, &io);
                        return;
                    }
                }
                Output::RunTool(tool) => {
                    if let Some(result) = start_tool(&config, &tls, tool, &io, &tool_tx, &mut transfer).await
                    {
                        session.handle_tool_result(now(), result.0, result.1, result.2);
                    }
                }
                Output::Close => {
                    let _ = ws.close(None).await;
                    log_drops(&session, &io);
                    return;
                }
                Output::Renew => {
                    let settings = session.renewal_settings(config.settings_message(call.format));
                    let (config, tls, format) = (Arc::clone(&config), Arc::clone(&tls), call.format);
                    renewal =
                        Some(tokio::spawn(
                            async move { open_streaming(&config, &tls, format, settings).await },
                        ));
                }
            }
        }
        if !call_open {
            let _ = ws.close(None).await;
            return;
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            frame = ws.next() => on_frame(&mut session, frame),
            input = io.recv() => match input {
                Some(CallInput::Audio(frame)) => {
                    if session.handle_call_audio(now(), &frame) {
                        // tungstenite owns each outgoing payload: one 160-byte copy per frame.
                        if let Err(e) = ws.send(Message::binary(frame.as_bytes().to_vec())).await {
                            session.handle_closed(now(), &e.to_string());
                        }
                    }
                }
                Some(CallInput::Digit(digit)) => {
                    tracing::debug!(%digit, "caller pressed a key; Deepgram takes no DTMF, ignored");
                }
                Some(CallInput::TransferResult(outcome)) => match transfer.take() {
                    Some(t) => {
                        tracing::info!(target = %t.target, %outcome, "transfer result for the agent");
                        let content = if outcome.succeeded() {
                            format!("ok: the transfer to {} was {outcome}", t.target)
                        } else {
                            format!(
                                "error: the transfer to {} {outcome}; the caller is still with you: \
                                 tell them, and offer to help another way",
                                t.target
                            )
                        };
                        session.handle_tool_result(now(), t.id, t.name, content);
                    }
                    None => tracing::debug!(%outcome, "a transfer result nobody waits for"),
                },
                Some(CallInput::CallEnded) | None => session.call_ended(),
            },
            Some((id, name, content)) = tool_rx.recv() => {
                let ok = !content.starts_with("error:");
                let _ = io.send(AgentEvent::ToolFinished { name: name.clone(), ok }).await;
                session.handle_tool_result(now(), id, name, content);
            }
            opened = join_renewal(&mut renewal) => match opened {
                Ok((new_ws, mut new_session)) => {
                    // Lines said while it was being opened stay in the history too.
                    new_session.continue_from(&session);
                    tracing::info!(
                        request_id = new_session.request_id().unwrap_or_default(),
                        lines = new_session.history().count(),
                        "Deepgram session renewed: the call goes on with its history"
                    );
                    let _ = ws.close(None).await;
                    ws = new_ws;
                    session = new_session;
                }
                Err(e) => {
                    tracing::warn!("could not renew the Deepgram session (the current one goes on): {e}");
                    session.renew_failed(now());
                }
            },
            _ = sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
}

/// Send one JSON text frame; a failed write is the connection closing.
async fn send_text(ws: &mut Ws, session: &mut DeepgramSession, text: String) {
    if let Err(e) = ws.send(Message::text(text)).await {
        session.handle_closed(now(), &e.to_string());
    }
}

/// One frame (or the end) from Deepgram's socket, into the session.
fn on_frame(
    session: &mut DeepgramSession,
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) {
    match frame {
        Some(Ok(Message::Text(text))) => session.handle_text(now(), text.as_str()),
        Some(Ok(Message::Binary(bytes))) => session.handle_binary(now(), &bytes),
        Some(Ok(Message::Close(frame))) => {
            let why = match frame {
                Some(f) => format!("close code {} {:?}", u16::from(f.code), f.reason.as_str()),
                None => "close without a code".into(),
            };
            session.handle_closed(now(), &why);
        }
        Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
        Some(Err(e)) => session.handle_closed(now(), &e.to_string()),
        None => session.handle_closed(now(), "connection dropped"),
    }
}

/// The renewal task's result, once; pending while there is none.
async fn join_renewal(
    task: &mut Option<tokio::task::JoinHandle<Result<(Ws, DeepgramSession), AgentError>>>,
) -> Result<(Ws, DeepgramSession), AgentError> {
    let Some(t) = task.as_mut() else { return std::future::pending().await };
    let r = t.await;
    *task = None;
    r.map_err(|e| AgentError::Provider { provider: PROVIDER.into(), detail: format!("renewal task: {e}") })?
}

fn log_drops(session: &DeepgramSession, io: &AgentIo) {
    let (sent, dropped_early) = session.audio_counts();
    let skipped = io.stats().input_frames_dropped();
    tracing::debug!(sent, dropped_early, skipped, "Deepgram session audio counts");
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Run a tool: builtins at once (their result is returned), HTTP tools on their own task
/// (their result comes back through `results`).
async fn start_tool(
    config: &DeepgramConfig,
    tls: &Arc<rustls::ClientConfig>,
    call: ToolCall,
    io: &AgentIo,
    results: &mpsc::Sender<ToolResult>,
    transfer: &mut Option<PendingTransfer>,
) -> Option<ToolResult> {
    let ToolCall { id, name, arguments } = call;
    let Some(spec) = config.settings.functions.iter().find(|f| f.name == name) else {
        // A name the LLM made up: one short line in the log and the answer.
        let shown = http::one_line(&name, 64);
        tracing::warn!(name = %shown, "the agent called a function that is not configured");
        let _ = io.send(AgentEvent::ToolFinished { name: "unknown".into(), ok: false }).await;
        return Some((id, name, format!("error: there is no function named {shown}")));
    };
    match &spec.kind {
        // The answer waits for the call's transfer result (REFER response, NOTIFYs).
        ToolKind::Builtin(Builtin::Transfer { target }) => {
            if transfer.is_some() {
                let outcome = crate::TransferOutcome::AlreadyInProgress;
                return Some((id, name, format!("error: the transfer to {target} was {outcome}")));
            }
            tracing::info!(%target, "agent transfers the call");
            if io.send(AgentEvent::Transfer { target: target.clone() }).await.is_err() {
                return Some((id, name, "error: the call is already over".into()));
            }
            *transfer = Some(PendingTransfer { id, name, target: target.clone() });
            None
        }
        ToolKind::Builtin(builtin) => {
            let content = run_builtin(builtin, &arguments, io).await;
            Some((id, name, content))
        }
        ToolKind::Http { url, headers, timeout } => {
            // The webhook only ever sees arguments that fit the function's parameters.
            if let Err(e) = arguments::check(&spec.parameters, &arguments) {
                tracing::warn!(%name, error = %e, "the agent's arguments do not fit the function: not called");
                let _ = io.send(AgentEvent::ToolFinished { name: name.clone(), ok: false }).await;
                let content = format!(
                    "error: {e}; the {name} function was not called: call it again with arguments that fit its parameters"
                );
                return Some((id, name, content));
            }
            let (url, headers, timeout) = (url.clone(), headers.clone(), *timeout);
            let tls = Arc::clone(tls);
            let results = results.clone();
            tokio::spawn(async move {
                let body = if arguments.trim().is_empty() { "{}".to_owned() } else { arguments };
                let content = match http::post_json(&url, &headers, &body, timeout, tls).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        tracing::warn!(%name, error = %e, "function call failed");
                        format!("error: the {name} function failed ({e}); tell the caller it is unavailable")
                    }
                };
                let _ = results.send((id, name, content)).await;
            });
            None
        }
    }
}

/// The longest hang-up reason kept from the LLM.
pub const MAX_HANGUP_REASON: usize = 120;
/// The most DTMF keys one `send_dtmf` call may press.
pub const MAX_DTMF_DIGITS: usize = 32;

async fn run_builtin(builtin: &Builtin, arguments: &str, io: &AgentIo) -> String {
    let args: serde_json::Value = serde_json::from_str(arguments).unwrap_or(serde_json::Value::Null);
    let event = match builtin {
        Builtin::Transfer { .. } => return "error: transfers are run by the session".into(),
        Builtin::Hangup => {
            // The LLM's words go to the log and the call record: one short line.
            let reason = args
                .get("reason")
                .and_then(|r| r.as_str())
                .map(|r| http::one_line(r, MAX_HANGUP_REASON))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "agent ended the call".into());
            tracing::info!(%reason, "agent hangs up after its last words");
            AgentEvent::HangUp { after_playback: true, reason }
        }
        Builtin::SendDtmf => {
            let digits = args.get("digits").and_then(|d| d.as_str()).unwrap_or_default();
            if digits.chars().count() > MAX_DTMF_DIGITS {
                return format!("error: send at most {MAX_DTMF_DIGITS} keys at a time");
            }
            let valid: Result<String, AgentError> =
                digits.chars().map(|c| Digit::new(c).map(|d| d.as_char())).collect();
            match valid {
                Ok(d) if !d.is_empty() => AgentEvent::SendDigits(d),
                Ok(_) => return "error: pass the keys to press in \"digits\", e.g. \"123#\"".into(),
                Err(e) => return format!("error: {e}"),
            }
        }
    };
    let content = match &event {
        AgentEvent::HangUp { .. } => "ok: the call ends after your last words".into(),
        AgentEvent::SendDigits(d) => format!("ok: sent DTMF {d}"),
        _ => "ok".into(),
    };
    if io.send(event).await.is_err() {
        return "error: the call is already over".into();
    }
    content
}

/// `voice-ua check --agent`: connect, get `Welcome`, send `Settings` (for a PCMU call),
/// wait for `SettingsApplied`, close. Returns Deepgram's `request_id`.
pub async fn check_key(config: &DeepgramConfig) -> Result<String, AgentError> {
    install_crypto_provider();
    check_url(&config.url)?;
    let tls = Arc::new(tls_config(config.extra_ca_file.as_ref())?);
    let format = AudioFormat::Ulaw8k;
    let (mut ws, session) = open_streaming(config, &tls, format, config.settings_message(format)).await?;
    let id = session.request_id().unwrap_or_default().to_owned();
    let _ = ws.close(None).await;
    Ok(id)
}

/// Connect and run the handshake (Welcome, `settings`, SettingsApplied): a socket and a
/// session that is streaming. Messages before SettingsApplied other than the handshake's
/// are dropped (there are none in the protocol).
async fn open_streaming(
    config: &DeepgramConfig,
    tls: &Arc<rustls::ClientConfig>,
    format: AudioFormat,
    settings: Settings,
) -> Result<(Ws, DeepgramSession), AgentError> {
    let mut session = DeepgramSession::new(now(), format, settings);
    let mut ws = connect(config, tls).await?;
    loop {
        while let Some(output) = session.poll_output() {
            match output {
                Output::SendText(text) => send_text(&mut ws, &mut session, text).await,
                Output::Event(AgentEvent::Ended(SessionEnd::Failed(e))) => {
                    let _ = ws.close(None).await;
                    return Err(e);
                }
                Output::Event(_) | Output::RunTool(_) | Output::Close | Output::Renew => {}
            }
        }
        if session.state() == State::Streaming {
            return Ok((ws, session));
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            frame = ws.next() => on_frame(&mut session, frame),
            _ = sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
}
