//! A fake Deepgram Voice Agent server for tests, and as the `fake-deepgram` binary for benchmarks.
//! A crate of its own (`publish = false`), so the production `voice-ua-agent` neither
//! contains nor compiles it; tests take it as a dev-dependency.
//!
//! It listens on 127.0.0.1 only, over `ws://` or `wss://` (a test CA and a server
//! certificate for `127.0.0.1`/`localhost` are generated with rcgen when it starts), and
//! enforces the protocol strictly, the way the reference describes Deepgram's:
//!
//! - the upgrade needs `Authorization: Token <key>` on `/v1/agent/converse`, else HTTP 401
//!   with a `dg-error` header (404 for another path);
//! - `Welcome` first; `Settings` must be the client's first message
//!   (`NON_SETTINGS_MESSAGE_BEFORE_SETTINGS`) and come once (`SETTINGS_ALREADY_APPLIED`);
//!   settings whose audio the bridge cannot use get `INVALID_SETTINGS`;
//! - binary audio before `SettingsApplied` is an error (`NON_SETTINGS_MESSAGE_BEFORE_SETTINGS`
//!   before `Settings`; `AUDIO_BEFORE_SETTINGS_APPLIED`, a code of this fake, between the
//!   two when [`FakeConfig::settings_applied_delay`] holds `SettingsApplied` back);
//! - an unparsable text frame gets `UNPARSABLE_CLIENT_MESSAGE`;
//! - no client message for [`FakeConfig::idle_timeout`] gets `CLIENT_MESSAGE_TIMEOUT`;
//!
//! each error is followed by a normal close. After `SettingsApplied` it plays its
//! [`Step`] script and records what each connection sent ([`Record`]).
//!
//! ```ignore
//! let fake = FakeDeepgram::start(FakeConfig::new("test-key").tls(true).script(vec![
//!     Step::speak("Hello", 400, true),
//!     Step::WaitAudio { frames: 10, min_dbfs: None },
//!     Step::user_says("hi"),
//!     Step::speak("How can I help?", 200, true),
//! ])).await?;
//! let mut config = DeepgramConfig::new("test-key");
//! config.url = fake.url();
//! config.extra_ca_file = fake.ca_file().map(Path::to_path_buf);
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use voice_ua_agent::deepgram::messages::{
    AudioSettings, ClientMessage, ConversationRole, FunctionCall, FunctionCallResponse, ServerMessage,
    Settings,
};
use voice_ua_agent::echo::level_dbfs;
use voice_ua_agent::AudioFormat;

/// The path Deepgram serves the agent on.
pub const AGENT_PATH: &str = "/v1/agent/converse";
/// The `dg-error` text of a refused key.
pub const BAD_KEY_TEXT: &str = "INVALID_AUTH: Invalid credentials.";

/// One scripted action, run after `SettingsApplied`, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// `ConversationText(assistant)`, `AgentStartedSpeaking`, `ms` of a 440 Hz tone in the
    /// session's output format (100 ms per binary frame), then `AgentAudioDone` if `done`.
    Speak {
        /// The agent's words.
        text: String,
        /// Audio length.
        ms: u32,
        /// Send `AgentAudioDone` after the audio.
        done: bool,
    },
    /// Wait for this many more client audio frames, counting only frames at least
    /// `min_dbfs` loud when given.
    WaitAudio {
        /// Frames to wait for.
        frames: usize,
        /// Energy threshold.
        min_dbfs: Option<f32>,
    },
    /// `UserStartedSpeaking` then `ConversationText(user)`.
    UserSays(String),
    /// A client-side `FunctionCallRequest`; waits for the `FunctionCallResponse` with the
    /// same id (a wrong name is recorded as a violation).
    CallFunction {
        /// Call id.
        id: String,
        /// Function name.
        name: String,
        /// Arguments (a JSON object, sent as a string).
        arguments: String,
    },
    /// Send this message.
    Send(ServerMessage),
    /// Send this text frame as it is (unknown types, garbage).
    SendRaw(String),
    /// Wait.
    Pause(Duration),
    /// Send `Error {code, description}` and close.
    Error {
        /// Error code.
        code: String,
        /// Description.
        description: String,
    },
    /// Drop the connection without a close frame.
    CloseAbruptly,
}

impl Step {
    /// [`Step::Speak`].
    pub fn speak(text: &str, ms: u32, done: bool) -> Self {
        Step::Speak { text: text.into(), ms, done }
    }

    /// [`Step::UserSays`].
    pub fn user_says(text: &str) -> Self {
        Step::UserSays(text.into())
    }

    /// [`Step::CallFunction`].
    pub fn call(id: &str, name: &str, arguments: &str) -> Self {
        Step::CallFunction { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    /// [`Step::Error`].
    pub fn error(code: &str, description: &str) -> Self {
        Step::Error { code: code.into(), description: description.into() }
    }
}

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The only key accepted.
    pub api_key: String,
    /// Serve `wss://` with a generated certificate.
    pub tls: bool,
    /// Close sessions the client leaves silent this long.
    pub idle_timeout: Duration,
    /// Hold `SettingsApplied` back this long (audio in between is an error).
    pub settings_applied_delay: Duration,
    /// Played by every connection after `SettingsApplied`.
    pub script: Vec<Step>,
}

impl FakeConfig {
    /// ws://, a 10 s idle timeout, no delay, an empty script.
    pub fn new(api_key: &str) -> Self {
        FakeConfig {
            api_key: api_key.into(),
            tls: false,
            idle_timeout: Duration::from_secs(10),
            settings_applied_delay: Duration::ZERO,
            script: Vec::new(),
        }
    }

    /// Serve wss://.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// The script.
    pub fn script(mut self, steps: Vec<Step>) -> Self {
        self.script = steps;
        self
    }

    /// The idle timeout.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }

    /// The `SettingsApplied` delay.
    pub fn settings_applied_delay(mut self, t: Duration) -> Self {
        self.settings_applied_delay = t;
        self
    }
}

/// What one connection did, recorded when it ends.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The upgrade was refused (401/404).
    pub refused: Option<u16>,
    /// The `Settings` received.
    pub settings: Option<Settings>,
    /// Every client text frame, in order.
    pub texts: Vec<String>,
    /// Binary frames received.
    pub audio_frames: usize,
    /// Binary bytes received.
    pub audio_bytes: usize,
    /// `KeepAlive`s received.
    pub keepalives: usize,
    /// `FunctionCallResponse`s received.
    pub function_responses: Vec<FunctionCallResponse>,
    /// Error codes the fake sent.
    pub errors_sent: Vec<String>,
    /// Other protocol faults the fake noticed.
    pub violations: Vec<String>,
    /// The script ran to its end.
    pub script_done: bool,
    /// How the connection ended.
    pub end: String,
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeDeepgram {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    ca_file: Option<PathBuf>,
    records: Arc<Mutex<Vec<Record>>>,
    task: JoinHandle<()>,
}

impl Drop for FakeDeepgram {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(path) = &self.ca_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A fake failed to start.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// Bind or write.
    #[error("fake Deepgram: {0}")]
    Io(#[from] std::io::Error),
    /// Certificate generation or TLS setup.
    #[error("fake Deepgram TLS: {0}")]
    Tls(String),
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

impl FakeDeepgram {
    /// Bind 127.0.0.1 on a free port and serve until dropped.
    pub async fn start(config: FakeConfig) -> Result<FakeDeepgram, FakeError> {
        voice_ua_agent::install_crypto_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (acceptor, ca_pem, ca_file) = if config.tls {
            let (acceptor, pem) = tls_acceptor()?;
            let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "voice-ua-fake-deepgram-ca-{}-{}-{n}.pem",
                std::process::id(),
                addr.port()
            ));
            std::fs::write(&path, &pem)?;
            (Some(acceptor), Some(pem), Some(path))
        } else {
            (None, None, None)
        };
        let records = Arc::new(Mutex::new(Vec::new()));
        let config = Arc::new(config);
        let task = tokio::spawn(serve(listener, acceptor, config, Arc::clone(&records)));
        Ok(FakeDeepgram { addr, tls: ca_pem.is_some(), ca_pem, ca_file, records, task })
    }

    /// `ws://127.0.0.1:PORT/v1/agent/converse` (or `wss://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{AGENT_PATH}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The test CA (PEM), for wss://.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A temp file holding [`FakeDeepgram::ca_pem`] (removed on drop): pass it as
    /// `DeepgramConfig::extra_ca_file`.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Records of the connections that have ended so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Wait until `n` connections have ended (or `timeout`); their records.
    pub async fn wait_records(&self, n: usize, timeout: Duration) -> Vec<Record> {
        let until = Instant::now() + timeout;
        loop {
            let records = self.records();
            if records.len() >= n || Instant::now() >= until {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn tls_acceptor() -> Result<(tokio_rustls::TlsAcceptor, String), FakeError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let tls = |e: &dyn std::fmt::Display| FakeError::Tls(e.to_string());
    let ca_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "voice-ua fake Deepgram test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| tls(&e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).map_err(|e| tls(&e))?;
    leaf_params.distinguished_name.push(DnType::CommonName, "fake Deepgram");
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(|e| tls(&e))?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
        .map_err(|e| tls(&e))?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(server)), ca_cert.pem()))
}

async fn serve(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    config: Arc<FakeConfig>,
    records: Arc<Mutex<Vec<Record>>>,
) {
    let mut n = 0u32;
    while let Ok((tcp, _)) = listener.accept().await {
        n += 1;
        let (acceptor, config, records) = (acceptor.clone(), Arc::clone(&config), Arc::clone(&records));
        tokio::spawn(async move {
            let record = match acceptor {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => connection(tls, &config, n).await,
                    Err(e) => Record { end: format!("TLS handshake failed: {e}"), ..Record::default() },
                },
                None => connection(tcp, &config, n).await,
            };
            if let Ok(mut all) = records.lock() {
                all.push(record);
            }
        });
    }
}

/// What the script is waiting for.
#[derive(Debug)]
enum Wait {
    Nothing,
    Audio { remaining: usize, min_dbfs: Option<f32> },
    Response { id: String, name: String },
    Until(Instant),
}

struct Conn<S> {
    ws: WebSocketStream<S>,
    record: Record,
    format: AudioFormat,
}

/// How long the fake waits for the client's Close after its own.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, message: &ServerMessage) -> bool {
        self.ws.send(Message::text(message.to_json())).await.is_ok()
    }

    /// Send an Error and close normally.
    async fn fail(&mut self, code: &str, description: &str) {
        self.record.errors_sent.push(code.to_owned());
        let error = ServerMessage::Error { code: code.into(), description: description.into() };
        let _ = self.send(&error).await;
        let _ = self.ws.close(None).await;
        // A normal close, as a real server does it: read on until the client's Close.
        // Dropping a socket with the caller's audio still unread makes the kernel send a
        // reset, which can overtake the Error on its way to the client.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            while let Some(Ok(message)) = self.ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        })
        .await;
        self.record.end = format!("error {code}");
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, config: &FakeConfig, n: u32) -> Record {
    let mut auth = None;
    let mut refused = None;
    let expected = format!("Token {}", config.api_key);
    // The signature tungstenite's `Callback` wants; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        auth = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (status, text) = if request.uri().path() != AGENT_PATH {
            (StatusCode::NOT_FOUND, "NOT_FOUND: no such endpoint")
        } else if auth.as_deref() != Some(expected.as_str()) {
            (StatusCode::UNAUTHORIZED, BAD_KEY_TEXT)
        } else {
            return Ok(response);
        };
        refused = Some(status.as_u16());
        let mut error = ErrorResponse::new(Some(text.to_owned()));
        *error.status_mut() = status;
        if let Ok(value) = text.parse() {
            error.headers_mut().insert("dg-error", value);
        }
        Err(error)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(e) => {
            return Record {
                authorization: auth,
                refused,
                end: format!("upgrade refused: {e}"),
                ..Record::default()
            };
        }
    };
    let record = Record { authorization: auth, ..Record::default() };
    let mut conn = Conn { ws, record, format: AudioFormat::Ulaw8k };
    run_session(&mut conn, config, n).await;
    conn.record
}

async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>, config: &FakeConfig, n: u32) {
    if !conn.send(&ServerMessage::Welcome { request_id: format!("fake-request-{n}") }).await {
        conn.record.end = "client gone before Welcome".into();
        return;
    }
    let mut applied = false;
    let mut applied_at: Option<Instant> = None;
    let mut last_client = Instant::now();
    let mut step = 0;
    let mut wait = Wait::Nothing;
    loop {
        // Run the script while nothing blocks it.
        loop {
            if !applied {
                break;
            }
            let ready = match &wait {
                Wait::Nothing => true,
                Wait::Audio { remaining, .. } => *remaining == 0,
                Wait::Response { .. } => false,
                Wait::Until(t) => Instant::now() >= *t,
            };
            if !ready {
                break;
            }
            let Some(next) = config.script.get(step).cloned() else {
                conn.record.script_done = true;
                break;
            };
            step += 1;
            wait = Wait::Nothing;
            match run_step(conn, next).await {
                Flow::Continue => {}
                Flow::Wait(w) => wait = w,
                Flow::Stop => return,
            }
            if config.script.len() == step {
                conn.record.script_done = true;
            }
        }
        let idle_at = last_client + config.idle_timeout;
        let timer = match (&wait, applied_at) {
            (_, Some(t)) => Some(t),
            (Wait::Until(t), None) => Some(*t),
            _ => None,
        };
        tokio::select! {
            frame = conn.ws.next() => {
                last_client = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        conn.record.texts.push(text.to_string());
                        let message = match ClientMessage::parse(text.as_str()) {
                            Ok(m) => m,
                            Err(e) => {
                                conn.fail("UNPARSABLE_CLIENT_MESSAGE", &format!("cannot parse the client message: {e}")).await;
                                return;
                            }
                        };
                        match message {
                            ClientMessage::Settings(settings) => {
                                if conn.record.settings.is_some() {
                                    conn.fail("SETTINGS_ALREADY_APPLIED", "Settings can only be sent once per session").await;
                                    return;
                                }
                                let input = AudioSettings::call_format(settings.audio.input.encoding, settings.audio.input.sample_rate);
                                let output = AudioSettings::call_format(settings.audio.output.encoding, settings.audio.output.sample_rate);
                                let (Some(_), Some(output)) = (input, output) else {
                                    conn.fail("INVALID_SETTINGS", "audio formats not supported by this fake").await;
                                    return;
                                };
                                conn.format = output;
                                conn.record.settings = Some(*settings);
                                if config.settings_applied_delay.is_zero() {
                                    applied = conn.send(&ServerMessage::SettingsApplied).await;
                                } else {
                                    applied_at = Some(Instant::now() + config.settings_applied_delay);
                                }
                            }
                            _ if conn.record.settings.is_none() => {
                                conn.fail("NON_SETTINGS_MESSAGE_BEFORE_SETTINGS", "the first message must be Settings").await;
                                return;
                            }
                            ClientMessage::KeepAlive => conn.record.keepalives += 1,
                            ClientMessage::FunctionCallResponse(response) => {
                                if let Wait::Response { id, name } = &wait {
                                    if response.id.as_deref() == Some(id.as_str()) {
                                        if &response.name != name {
                                            conn.record.violations.push(format!("FunctionCallResponse {id} named {:?}, expected {name:?}", response.name));
                                        }
                                        wait = Wait::Nothing;
                                    } else {
                                        conn.record.violations.push(format!("FunctionCallResponse with id {:?}, expected {id:?}", response.id));
                                    }
                                } else {
                                    conn.record.violations.push("FunctionCallResponse nobody asked for".into());
                                }
                                conn.record.function_responses.push(response);
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        if conn.record.settings.is_none() {
                            conn.fail("NON_SETTINGS_MESSAGE_BEFORE_SETTINGS", "audio arrived before Settings").await;
                            return;
                        }
                        if !applied {
                            conn.fail("AUDIO_BEFORE_SETTINGS_APPLIED", "audio arrived before SettingsApplied").await;
                            return;
                        }
                        if bytes.is_empty() {
                            conn.record.violations.push("empty binary frame".into());
                        }
                        conn.record.audio_frames += 1;
                        conn.record.audio_bytes += bytes.len();
                        if let Wait::Audio { remaining, min_dbfs } = &mut wait {
                            let loud = min_dbfs.is_none_or(|min| level_dbfs(conn.format, &bytes) >= min);
                            if loud && *remaining > 0 {
                                *remaining -= 1;
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) => {
                        conn.record.end = "client closed".into();
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        conn.record.end = format!("client broke the connection: {e}");
                        return;
                    }
                    None => {
                        conn.record.end = "client dropped the connection".into();
                        return;
                    }
                }
            }
            _ = tokio::time::sleep_until(idle_at) => {
                conn.fail("CLIENT_MESSAGE_TIMEOUT", "We waited too long for a websocket message. Please ensure that you're sending binary messages containing user speech.").await;
                return;
            }
            _ = sleep_opt(timer) => {
                if applied_at.is_some_and(|t| Instant::now() >= t) {
                    applied_at = None;
                    applied = conn.send(&ServerMessage::SettingsApplied).await;
                }
            }
        }
    }
}

async fn sleep_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

enum Flow {
    Continue,
    Wait(Wait),
    Stop,
}

async fn run_step<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>, step: Step) -> Flow {
    let ok = match step {
        Step::Speak { text, ms, done } => {
            let mut ok = conn
                .send(&ServerMessage::ConversationText { role: ConversationRole::Assistant, content: text })
                .await;
            let started = ServerMessage::AgentStartedSpeaking {
                total_latency: Some(0.8),
                tts_latency: Some(0.2),
                ttt_latency: Some(0.5),
            };
            ok &= conn.send(&started).await;
            let audio = tone(conn.format, ms);
            let per_frame = conn.format.bytes_per_second() / 10;
            for chunk in audio.chunks(per_frame.max(1)) {
                ok &= conn.ws.send(Message::binary(chunk.to_vec())).await.is_ok();
            }
            if done {
                ok &= conn.send(&ServerMessage::AgentAudioDone).await;
            }
            ok
        }
        Step::WaitAudio { frames, min_dbfs } => {
            return Flow::Wait(Wait::Audio { remaining: frames, min_dbfs })
        }
        Step::UserSays(text) => {
            conn.send(&ServerMessage::UserStartedSpeaking).await
                && conn
                    .send(&ServerMessage::ConversationText { role: ConversationRole::User, content: text })
                    .await
        }
        Step::CallFunction { id, name, arguments } => {
            let call = FunctionCall { id: id.clone(), name: name.clone(), arguments, client_side: true };
            if !conn.send(&ServerMessage::FunctionCallRequest { functions: vec![call] }).await {
                return Flow::Stop;
            }
            return Flow::Wait(Wait::Response { id, name });
        }
        Step::Send(message) => conn.send(&message).await,
        Step::SendRaw(text) => conn.ws.send(Message::text(text)).await.is_ok(),
        Step::Pause(d) => return Flow::Wait(Wait::Until(Instant::now() + d)),
        Step::Error { code, description } => {
            conn.fail(&code, &description).await;
            return Flow::Stop;
        }
        Step::CloseAbruptly => {
            conn.record.end = "closed abruptly by the script".into();
            return Flow::Stop;
        }
    };
    if ok {
        Flow::Continue
    } else {
        conn.record.end = "client gone while the script ran".into();
        Flow::Stop
    }
}

/// `ms` of a 440 Hz tone at about -12 dBFS in `format`.
pub fn tone(format: AudioFormat, ms: u32) -> Vec<u8> {
    let rate = format.sample_rate() as f64;
    let samples = (format.sample_rate() as u64 * u64::from(ms) / 1000) as usize;
    let mut out = Vec::with_capacity(samples * format.bytes_per_sample());
    for i in 0..samples {
        let x = (std::f64::consts::TAU * 440.0 * i as f64 / rate).sin() * 8000.0;
        format.push_sample(&mut out, x as i16);
    }
    out
}
