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
//! - a Flux (`v2`) listen provider without a model, or with `smart_format`, gets
//!   `INVALID_SETTINGS`; `ForceEndTurn` with a Nova (`v1`) listener is answered with
//!   `Warning FORCE_END_TURN_UNSUPPORTED`;
//! - `InjectAgentMessage` is recorded and, with [`FakeConfig::refuse_injections`],
//!   answered with `InjectionRefused`;
//!
//! each error is followed by a normal close. After `SettingsApplied` it plays its
//! [`Step`] script and records what each connection sent ([`Record`]).
//!
//! Failure modes for reconnect tests: a connection dropped mid-turn
//! ([`Step::SpeakThenDrop`], [`Step::drop_after_audio`]), the first K connections
//! dropped right after the handshake ([`FakeConfig::close_after_handshake`]), upgrades
//! refused from the Nth connection on ([`FakeConfig::refuse_from`]), and a script per
//! connection ([`FakeConfig::script_for`]).
//!
//! This file holds the running server ([`FakeDeepgram`]) and its [`Record`]s; `config`
//! holds [`FakeConfig`], `script` the [`Step`]s, `session` one connection
//! (upgrade, protocol checks, script run). The listener and the wss:// certificates are
//! `voice-ua-fake-server`'s, shared with the fake OpenAI server.
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

mod config;
mod script;
mod session;

pub use config::FakeConfig;
pub use script::Step;
pub use voice_ua_fake_server::tone;

use std::sync::Arc;

use voice_ua_agent::deepgram::messages::{FunctionCallResponse, Settings};
pub use voice_ua_fake_server::FakeError;
pub use voice_ua_fake_server::FakeServer;

/// The path Deepgram serves the agent on.
pub const AGENT_PATH: &str = "/v1/agent/converse";
/// The `dg-error` text of a refused key.
pub const BAD_KEY_TEXT: &str = "INVALID_AUTH: Invalid credentials.";

/// What one connection did, recorded when it ends.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Which connection this was: 1 for the first.
    pub connection: u32,
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
    /// `InjectAgentMessage`s received: `(message, behavior)`, each with when it arrived.
    pub injected_agent: Vec<(String, Option<String>, std::time::Instant)>,
    /// `InjectUserMessage` contents received.
    pub injected_user: Vec<String>,
    /// `ForceEndTurn`s received.
    pub force_end_turns: usize,
    /// Warning codes the fake sent.
    pub warnings_sent: Vec<String>,
    /// Error codes the fake sent.
    pub errors_sent: Vec<String>,
    /// Other protocol faults the fake noticed.
    pub violations: Vec<String>,
    /// When the fake began writing each `UserStartedSpeaking` (the barge-in signal), on
    /// the process's monotonic clock: benchmarks time the cut of the agent's audio from it.
    pub barge_ins: Vec<std::time::Instant>,
    /// The script ran to its end.
    pub script_done: bool,
    /// How the connection ended.
    pub end: String,
}

impl voice_ua_fake_server::Record for Record {
    fn tls_failed(error: String) -> Self {
        Record { end: error, ..Record::default() }
    }
}

/// A running fake. Dropping it stops the server. Its address, test CA (`ca_file()`:
/// pass it as `DeepgramConfig::extra_ca_file`) and the records of its connections
/// (`records()`, `wait_records()`) are its [`FakeServer`]'s.
#[derive(Debug)]
pub struct FakeDeepgram {
    server: FakeServer<Record>,
}

impl std::ops::Deref for FakeDeepgram {
    type Target = FakeServer<Record>;

    fn deref(&self) -> &FakeServer<Record> {
        &self.server
    }
}

impl FakeDeepgram {
    /// Bind 127.0.0.1 on a free port and serve until dropped.
    pub async fn start(config: FakeConfig) -> Result<FakeDeepgram, FakeError> {
        let tls = config.tls;
        let config = Arc::new(config);
        let server = FakeServer::start("fake-deepgram", tls, 0, move |conn, n| {
            let config = Arc::clone(&config);
            async move { session::connection(conn, &config, n).await }
        })
        .await?;
        Ok(FakeDeepgram { server })
    }

    /// `ws://127.0.0.1:PORT/v1/agent/converse` (or `wss://`).
    pub fn url(&self) -> String {
        format!("{}://{}{AGENT_PATH}", self.server.scheme(), self.server.addr())
    }
}
