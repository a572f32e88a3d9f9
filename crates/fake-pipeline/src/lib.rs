//! Strict fakes of the three OpenAI-compatible endpoints the pipeline agent calls, on one
//! port, for tests and (as the `fake-pipeline` binary) benchmarks and the interop ring. A
//! crate of its own (`publish = false`): the production crates neither contain nor
//! compile it.
//!
//! - `POST /v1/audio/transcriptions` ([`stt`]): a strict `multipart/form-data` form
//!   ([`multipart`]) with `model` and a `file` that is a WAV of PCM16 mono at 8000 or
//!   16000 Hz ([`wav`]); answers `{"text": …}` (or plain text) from a script of
//!   transcripts, silence as `""`, or the audio's tones mapped to words.
//! - `POST /v1/chat/completions` ([`chat`], [`completion`], [`script`]): the request
//!   checked the way OpenAI checks it (tool messages answer the previous assistant
//!   message's calls, …); a scripted model ([`ChatScript`]: keyword → tool call, reply
//!   after the result, default reply) streamed as SSE in the [`Dialect`]'s shape, or one
//!   JSON completion.
//! - `POST /v1/audio/speech` ([`tts`]): `response_format: "pcm"` only; raw PCM16 LE mono
//!   as a chunked body, as long as the text, a tone per request, faster than real time.
//!
//! The fake names what it makes in order, per fake: completions `chatcmpl-1`, `chatcmpl-2`,
//! …; tool calls `call_1`, `call_2`, … (across requests); TTS requests take tones that
//! step through 8 notes from 330 Hz, so consecutive sentences sound different.
//!
//! A request a real server would refuse gets that server's 4xx with an OpenAI-style
//! error body and is recorded as refused ([`Exchange::refused`], [`Records::refused`]), so
//! tests can assert the client never sends one. [`Failure`]s can be injected per stage,
//! for the next request or for all. Every request is recorded ([`Records`]), with whether
//! the client closed the connection before the response's end (a barge-in cut).
//!
//! ```ignore
//! let fake = FakePipeline::start(
//!     Settings::new()
//!         .transcripts(&["what's the weather in Kyiv"])
//!         .script(ChatScript::new().rule(
//!             ToolRule::new("weather", "get_weather", r#"{"city":"Kyiv"}"#)
//!                 .then_reply("It is {result}. Anything else?"),
//!         )),
//! )
//! .await?;
//! config.base_url = fake.base_url(); // http://127.0.0.1:PORT/v1
//! // … a call …
//! assert!(fake.records().refused().is_empty());
//! fake.fail_next(Stage::Tts, Failure::Status(503));
//! ```

pub mod chat;
pub mod completion;
mod error;
pub mod multipart;
mod records;
pub mod script;
mod server;
mod settings;
pub mod stt;
pub mod tts;
pub mod wav;

mod body;

pub use chat::{ChatMessage, ChatRequest, Role, ToolCall};
pub use completion::{Answer, Usage};
pub use error::ApiError;
pub use records::{ChatRecord, Connection, Exchange, Records, SpeechRecord, TranscriptionRecord};
pub use script::{ChatScript, Reply, ToolRule};
pub use settings::{ChatSettings, Dialect, Failure, Settings, Stage, SttSettings, TtsSettings};
pub use voice_ua_fake_server::FakeError;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use voice_ua_fake_server::FakeServer;

use crate::server::Shared;

/// A running fake. Dropping it stops the server (and removes the test CA's file).
pub struct FakePipeline {
    server: FakeServer<Connection>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FakePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakePipeline").field("server", &self.server).finish()
    }
}

impl FakePipeline {
    /// Bind 127.0.0.1 ([`Settings::port`], or a free port) and serve until dropped.
    pub async fn start(settings: Settings) -> Result<FakePipeline, FakeError> {
        let (tls, port) = (settings.tls, settings.port);
        let shared = Arc::new(Shared::new(settings));
        let for_server = Arc::clone(&shared);
        let server = FakeServer::start("fake-pipeline", tls, port, move |conn, n| {
            server::connection(conn, n, Arc::clone(&for_server))
        })
        .await?;
        Ok(FakePipeline { server, shared })
    }

    /// `http://127.0.0.1:PORT/v1` (`https://` with TLS): the client's base URL.
    pub fn base_url(&self) -> String {
        let scheme = if self.server.ca_pem().is_some() { "https" } else { "http" };
        format!("{scheme}://{}/v1", self.server.addr())
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// The test CA (PEM), with TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.server.ca_pem()
    }

    /// A temp file holding the test CA (removed on drop), with TLS: the client's extra CA.
    pub fn ca_file(&self) -> Option<&Path> {
        self.server.ca_file()
    }

    /// Every request so far.
    pub fn records(&self) -> Records {
        self.shared.lock().records.clone()
    }

    /// The transcription requests so far.
    pub fn transcriptions(&self) -> Vec<TranscriptionRecord> {
        self.shared.lock().records.transcriptions.clone()
    }

    /// The chat requests so far.
    pub fn chats(&self) -> Vec<ChatRecord> {
        self.shared.lock().records.chats.clone()
    }

    /// The speech requests so far.
    pub fn speeches(&self) -> Vec<SpeechRecord> {
        self.shared.lock().records.speeches.clone()
    }

    /// The TCP connections that have ended, with the requests each served.
    pub fn connections(&self) -> Vec<Connection> {
        self.server.records()
    }

    /// Wait until `done` holds for the records (checked every 10 ms), or `timeout`;
    /// whether it held.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&Records) -> bool) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if done(&self.shared.lock().records) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The settings now.
    pub fn settings(&self) -> Settings {
        self.shared.lock().settings.clone()
    }

    /// Change the settings; later requests see the change (`tls`, `port` and
    /// `idle_timeout` apply to new connections only).
    pub fn update(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.shared.lock().settings);
    }

    /// The chat script from now on.
    pub fn set_script(&self, script: ChatScript) {
        self.update(|s| s.chat.script = script);
    }

    /// Add a transcript to the end of the script of transcripts.
    pub fn push_transcript(&self, text: &str) {
        self.update(|s| s.stt.transcripts.push(text.into()));
    }

    /// The next chat request (whatever it says) gets this reply; several queue up in
    /// order, before the script decides again.
    pub fn push_reply(&self, reply: Reply) {
        self.shared.lock().replies.push_back(reply);
    }

    /// The next tool call sent gets arguments that are not valid JSON.
    pub fn break_next_tool_call(&self) {
        self.shared.lock().break_next_call = true;
    }

    /// The next request of `stage` that passes the checks fails so (queued in order).
    pub fn fail_next(&self, stage: Stage, failure: Failure) {
        self.shared.lock().faults.entry(stage).or_default().next.push_back(failure);
    }

    /// Every request of `stage` that passes the checks fails so (`None`: none does),
    /// after any queued by [`FakePipeline::fail_next`].
    pub fn fail_always(&self, stage: Stage, failure: Option<Failure>) {
        self.shared.lock().faults.entry(stage).or_default().always = failure;
    }

    /// No failures queued or standing, for any stage.
    pub fn clear_failures(&self) {
        self.shared.lock().faults.clear();
    }
}
