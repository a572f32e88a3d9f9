//! Fake WebSocket voice bots for tests, and as the `fake-bot` binary for benchmarks: a
//! Twilio Media Streams bot and an ASP agent (theo-ai-voice-agent's protocol), each
//! strict about what the client (voice-ua) sends and scriptable with [`Step`]s. A crate
//! of its own (`publish = false`): the production crates neither contain nor compile it.
//!
//! It listens on 127.0.0.1 only, over `ws://` or `wss://` (the test CA of the fake
//! Deepgram server), accepts any path, and records what each connection sent
//! ([`Record`]): every text frame, audio counts, what the dialect's checks found wrong
//! (`violations`), the headers of the upgrade.
//!
//! - **twilio** ([`twilio`]): `connected` then `start` first and exactly so; every later
//!   message's `sequenceNumber` one more than the last, the `streamSid` of `start`;
//!   `media` with `track` `inbound`, `chunk` counting from 1, `timestamp` 20 ms a chunk,
//!   160 bytes of μ-law; `mark` echoes only of marks it sent, in order; `stop` last.
//! - **asp** ([`asp`]): `protocol.capabilities` on connect (unless `legacy`), then
//!   `session.start` first (8000 Hz `pcm_s16le`, 20 ms, a `session_id`, a `call_id`),
//!   `session.started` (or `rejected`, or nothing), audio frames with the 12-byte header
//!   (magic, inbound, MD5(session_id)[..8], zero) of 20 ms PCM16 only after that,
//!   `session.end` answered with `session.ended`.
//!
//! ```ignore
//! let bot = FakeBot::start(BotConfig::twilio().script(vec![
//!     Step::speak("Hello", 1000),
//!     Step::mark("greeting"),
//!     Step::WaitAudio { frames: 10, min_dbfs: Some(-30.0) },
//!     Step::speak("Hi there", 500),
//! ])).await?;
//! let config = WebSocketConfig::new(bot.url(), Dialect::Twilio);
//! ```

pub mod asp;
mod run;
pub mod twilio;

pub use voice_ua_fake_server::tone;

use std::sync::Arc;
use std::time::Duration;

use voice_ua_fake_server::FakeServer;

/// Which bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotDialect {
    /// Twilio Media Streams.
    Twilio,
    /// ASP.
    Asp,
}

/// One scripted action, in order. Those a dialect has no message for are violations of
/// the script (recorded) and skipped.
#[derive(Debug, Clone)]
pub enum Step {
    /// `ms` of a 440 Hz tone as the bot's audio (Twilio: `media` of 100 ms each; ASP:
    /// `response.start {text}`, frames of 2000 bytes, `response.end`), sent at once.
    Speak {
        /// ASP's `response.start.text`.
        text: String,
        /// Audio length.
        ms: u32,
    },
    /// Twilio: a `mark` with this name.
    Mark(String),
    /// Wait for this many more caller frames of 20 ms, counting only those at least
    /// `min_dbfs` loud when given.
    WaitAudio {
        /// Frames to wait for.
        frames: usize,
        /// Energy threshold.
        min_dbfs: Option<f32>,
    },
    /// Twilio: wait until the mark with this name has been echoed.
    WaitMark(String),
    /// ASP: wait for the next `audio.end`.
    WaitAudioEnd,
    /// Twilio: wait for the next `transfer_result`.
    WaitTransferResult,
    /// Send back the caller audio heard since the last wait started (an echo reply).
    EchoBack,
    /// Twilio: `clear`.
    Clear,
    /// Twilio: the `hangup` extension event; ASP: `call.action` hangup.
    Hangup(String),
    /// Twilio: the `transfer` extension event; ASP: `call.action` transfer.
    Transfer(String),
    /// Send this text frame as it is (unknown events, garbage).
    SendRaw(String),
    /// Send this binary frame as it is.
    SendBinary(Vec<u8>),
    /// Wait.
    Pause(Duration),
    /// Close with this code and reason.
    Close(u16, String),
    /// Drop the connection without a close frame.
    CloseAbruptly,
}

impl Step {
    /// [`Step::Speak`].
    pub fn speak(text: &str, ms: u32) -> Step {
        Step::Speak { text: text.into(), ms }
    }

    /// [`Step::Mark`].
    pub fn mark(name: &str) -> Step {
        Step::Mark(name.into())
    }
}

/// How the bot behaves.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Which protocol.
    pub dialect: BotDialect,
    /// Serve `wss://`.
    pub tls: bool,
    /// Refuse the upgrade (401) unless it carries this `Authorization` value.
    pub authorization: Option<String>,
    /// ASP: send no `protocol.capabilities` (a legacy agent).
    pub legacy: bool,
    /// ASP: answer `session.start` with `rejected`.
    pub reject: bool,
    /// ASP: never answer `session.start`.
    pub never_start: bool,
    /// Played by every connection (Twilio: after `start`; ASP: after `session.started`).
    pub script: Vec<Step>,
}

impl BotConfig {
    /// A Twilio bot over ws:// with an empty script.
    pub fn twilio() -> BotConfig {
        BotConfig::new(BotDialect::Twilio)
    }

    /// An ASP agent over ws:// with an empty script.
    pub fn asp() -> BotConfig {
        BotConfig::new(BotDialect::Asp)
    }

    /// A bot of `dialect` over ws:// with an empty script.
    pub fn new(dialect: BotDialect) -> BotConfig {
        BotConfig {
            dialect,
            tls: false,
            authorization: None,
            legacy: false,
            reject: false,
            never_start: false,
            script: Vec::new(),
        }
    }

    /// Serve wss://.
    pub fn tls(mut self, on: bool) -> BotConfig {
        self.tls = on;
        self
    }

    /// The script.
    pub fn script(mut self, steps: Vec<Step>) -> BotConfig {
        self.script = steps;
        self
    }

    /// Require this `Authorization` header.
    pub fn authorization(mut self, value: &str) -> BotConfig {
        self.authorization = Some(value.into());
        self
    }
}

/// What one connection did, recorded when it ends.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The upgrade request's path.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The upgrade was refused with this status.
    pub refused: Option<u16>,
    /// Every client text frame, in order.
    pub texts: Vec<String>,
    /// Twilio: the `start` message; ASP: the `session.start` message.
    pub start: Option<serde_json::Value>,
    /// Caller audio in 20 ms frames (Twilio `media`, ASP binary frames).
    pub audio_frames: usize,
    /// Caller audio bytes (μ-law for Twilio, PCM16 for ASP; headers excluded).
    pub audio_bytes: usize,
    /// Twilio: the digits of `dtmf` messages.
    pub digits: String,
    /// Twilio: the names of the marks echoed, in order.
    pub marks_echoed: Vec<String>,
    /// Twilio: `transfer_result` messages.
    pub transfer_results: Vec<serde_json::Value>,
    /// ASP: `audio.end` messages.
    pub audio_ends: usize,
    /// Twilio: `stop` came; ASP: `session.end` came.
    pub stopped: bool,
    /// Protocol faults the fake noticed.
    pub violations: Vec<String>,
    /// Twilio: when the fake began writing each `clear` (the barge-in signal), on the
    /// process's monotonic clock: benchmarks time the cut of the bot's audio from it.
    /// ASP has no such message (voice-ua's own VAD barges in).
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

/// A running fake bot: a [`FakeServer`] serving [`BotConfig`]'s script on every
/// connection. Dropping it stops the server. Its address, test CA (`ca_file()`) and the
/// records of its connections come from the server (`Deref`).
#[derive(Debug)]
pub struct FakeBot {
    server: FakeServer<Record>,
}

impl std::ops::Deref for FakeBot {
    type Target = FakeServer<Record>;

    fn deref(&self) -> &FakeServer<Record> {
        &self.server
    }
}

/// A fake failed to start.
pub type FakeBotError = voice_ua_fake_server::FakeError;

impl FakeBot {
    /// Bind 127.0.0.1 on a free port and serve until dropped.
    pub async fn start(config: BotConfig) -> Result<FakeBot, FakeBotError> {
        FakeBot::start_on(config, 0).await
    }

    /// [`FakeBot::start`] on `port` (0: a free one).
    pub async fn start_on(config: BotConfig, port: u16) -> Result<FakeBot, FakeBotError> {
        let tls = config.tls;
        let config = Arc::new(config);
        let server =
            FakeServer::start("fake-bot", tls, port, move |conn, _n| run::serve(conn, Arc::clone(&config)))
                .await?;
        Ok(FakeBot { server })
    }

    /// `ws://127.0.0.1:PORT/media` (or `wss://`).
    pub fn url(&self) -> String {
        format!("{}://{}/media", self.server.scheme(), self.server.addr())
    }
}
