//! A fake OpenAI Realtime server (GA shape) for tests, and as the `fake-openai` binary for
//! benchmarks. A crate of its own (`publish = false`), so the production
//! `voice-ua-agent` neither contains nor compiles it; tests take it as a dev-dependency.
//!
//! It listens on 127.0.0.1 only, over `ws://` or `wss://` (the test CA comes from
//! `voice-ua-fake-server`), and enforces the protocol strictly, the way
//! shared/openai-realtime.md describes OpenAI's:
//!
//! - the upgrade needs `Authorization: Bearer <key>` on `/v1/realtime?model=…`, else
//!   HTTP 401 with OpenAI's JSON error body (404 for another path, 400 without a model);
//! - an `OpenAI-Beta` header (the retired beta shape) gets an `error` and a close with
//!   code 4000 `beta_api_shape_disabled`;
//! - `session.created` first; the client's first event must be a `session.update` with
//!   `session.type = "realtime"` and G.711 formats (else an `error`, as the real server
//!   sends); `session.updated` answers it;
//! - `conversation.item.truncate` must name an assistant audio item of this connection,
//!   content 0, and end within its audio (else an `error`); `conversation.item.create`
//!   messages must use GA content types (`input_text`, `output_text`); a
//!   `function_call_output` must answer a call the fake made; `response.create` while a
//!   response runs is an `error`; an unknown event type or malformed JSON is an `error`;
//!
//! errors are recorded, and the session goes on as the real one does. Once the session is
//! configured it plays its [`Step`] script (replies as `response.output_audio.delta`s in
//! the session's format, faster than real time, with transcripts and usage) or, in echo
//! mode, answers each utterance with the caller's own audio; and it records what each
//! connection sent ([`Record`]).
//!
//! Failure modes for reconnect tests: a connection dropped mid-turn
//! ([`Step::SpeakThenDrop`], [`Step::drop_after_audio`]), the first K connections
//! dropped right after the handshake ([`FakeConfig::close_after_handshake`]), upgrades
//! refused from the Nth connection on ([`FakeConfig::refuse_from`]), and a script per
//! connection ([`FakeConfig::script_for`]).
//!
//! ```ignore
//! let fake = FakeOpenAi::start(FakeConfig::new("test-key").tls(true).script(vec![
//!     Step::AwaitResponseCreate,          // the greeting
//!     Step::speak("Hello", 1000),
//!     Step::WaitAudio { frames: 10, min_dbfs: None },
//!     Step::user_says("hi"),
//!     Step::speak("How can I help?", 400),
//! ])).await?;
//! let mut config = OpenAiConfig::new("test-key");
//! config.url = fake.url();
//! config.extra_ca_file = fake.ca_file().map(Path::to_path_buf);
//! ```

mod config;
mod script;
mod session;

pub use config::FakeConfig;
pub use script::Step;
pub use voice_ua_fake_server::{tone, tone_hz, FakeError};

use std::sync::Arc;

use voice_ua_agent::openai::messages::{Item, ResponseParams, SessionConfig};
pub use voice_ua_fake_server::FakeServer;

/// The path OpenAI serves the Realtime API on.
pub const REALTIME_PATH: &str = "/v1/realtime";
/// The `error.message` of a refused key.
pub const BAD_KEY_MESSAGE: &str = "Incorrect API key provided.";

/// A `conversation.item.truncate` the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The item named.
    pub item_id: String,
    /// Milliseconds kept.
    pub audio_end_ms: u64,
    /// The item's audio, in ms, when it is an assistant audio item of this connection.
    pub item_ms: Option<u64>,
    /// It was valid and applied (`conversation.item.truncated` sent).
    pub accepted: bool,
}

/// What one connection did, recorded when it ends.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Which connection this was: 1 for the first.
    pub connection: u32,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `OpenAI-Beta` header, when the client sent one.
    pub beta_header: Option<String>,
    /// The request's path and query.
    pub request: String,
    /// The upgrade was refused (401/404/400).
    pub refused: Option<u16>,
    /// The first accepted `session.update`'s session.
    pub session: Option<SessionConfig>,
    /// `session.update`s accepted.
    pub session_updates: usize,
    /// Every client text frame but the appends, in order.
    pub texts: Vec<String>,
    /// `input_audio_buffer.append` events.
    pub appends: usize,
    /// Caller audio bytes appended.
    pub audio_bytes: usize,
    /// The items of `conversation.item.create`, in order.
    pub items: Vec<Item>,
    /// `(call_id, output)` of each `function_call_output` item.
    pub function_outputs: Vec<(String, String)>,
    /// The `response` of each `response.create`.
    pub response_creates: Vec<Option<ResponseParams>>,
    /// Every `conversation.item.truncate`.
    pub truncates: Vec<Truncation>,
    /// `response.cancel` events.
    pub cancels: usize,
    /// The items the fake spoke: `(item id, audio ms)`, in order.
    pub spoken: Vec<(String, u64)>,
    /// `error.code` of each error the fake sent.
    pub errors_sent: Vec<String>,
    /// Protocol faults the fake noticed.
    pub violations: Vec<String>,
    /// When the fake began writing each `input_audio_buffer.speech_started` (the barge-in
    /// signal), on the process's monotonic clock: benchmarks time the cut from it.
    pub barge_ins: Vec<std::time::Instant>,
    /// The close the fake sent: `(code, reason)`.
    pub close_sent: Option<(u16, String)>,
    /// The script ran to its end.
    pub script_done: bool,
    /// How the connection ended.
    pub end: String,
}

impl Record {
    /// The `type` of every client event but the appends, in order.
    pub fn event_types(&self) -> Vec<String> {
        self.texts
            .iter()
            .map(|t| {
                serde_json::from_str::<serde_json::Value>(t)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "(not JSON)".into())
            })
            .collect()
    }
}

impl voice_ua_fake_server::Record for Record {
    fn tls_failed(error: String) -> Self {
        Record { end: error, ..Record::default() }
    }
}

/// A running fake. Dropping it stops the server. Its address, test CA (`ca_file()`:
/// pass it as `OpenAiConfig::extra_ca_file`) and the records of its connections
/// (`records()`, `wait_records()`) are its [`FakeServer`]'s.
#[derive(Debug)]
pub struct FakeOpenAi {
    server: FakeServer<Record>,
}

impl std::ops::Deref for FakeOpenAi {
    type Target = FakeServer<Record>;

    fn deref(&self) -> &FakeServer<Record> {
        &self.server
    }
}

impl FakeOpenAi {
    /// Bind 127.0.0.1 (on [`FakeConfig::port`], or a free port) and serve until dropped.
    pub async fn start(config: FakeConfig) -> Result<FakeOpenAi, FakeError> {
        let (tls, port) = (config.tls, config.port);
        let config = Arc::new(config);
        let server = FakeServer::start("fake-openai", tls, port, move |conn, n| {
            let config = Arc::clone(&config);
            async move { session::connection(conn, &config, n).await }
        })
        .await?;
        Ok(FakeOpenAi { server })
    }

    /// `ws://127.0.0.1:PORT/v1/realtime` (or `wss://`), without the model: the client adds
    /// `?model=`.
    pub fn url(&self) -> String {
        format!("{}://{}{REALTIME_PATH}", self.server.scheme(), self.server.addr())
    }
}
