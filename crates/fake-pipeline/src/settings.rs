//! [`Settings`]: how the three fake stages behave (what they answer, how fast, in which
//! dialect), and the [`Failure`]s a test can inject into a [`Stage`].

use std::time::Duration;

use crate::script::ChatScript;

/// One of the three endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `POST /v1/audio/transcriptions`.
    Stt,
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/audio/speech`.
    Tts,
}

/// What a failing request gets instead of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// This HTTP status with an OpenAI-style error body (500, 503, 401, 429, …).
    Status(u16),
    /// Never answer: no status line, no headers, until the client gives up.
    Hang,
    /// Status 200 with a body the client cannot use: chat: bytes that are not SSE (or not
    /// JSON when not streamed); STT: not JSON; TTS: a JSON error body (with
    /// `Content-Type: application/json`) instead of audio.
    Garbage,
    /// The headers and this many body chunks (SSE events, PCM chunks), then nothing
    /// more, the connection kept open (a server stalled mid-answer). Answers that are not
    /// streamed (STT, chat with `stream: false`) stall right after their headers.
    StallAfter(usize),
    /// TTS only: the audio with one stray byte at its end (an odd byte count). The other
    /// stages answer normally.
    OddBytes,
}

/// How the chat stream is shaped, after a server family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI: content in small deltas; a tool call's first delta carries `index`, `id`,
    /// `type`, `function.name` and `arguments: ""`, later ones `index` and argument
    /// fragments; with `include_usage` every chunk has `"usage": null` and a last chunk
    /// has `choices: []` and `usage` with `prompt_tokens_details.cached_tokens`.
    OpenAi,
    /// Ollama's `/v1`: every delta has `role: "assistant"`, each tool call comes whole in
    /// one chunk, `usage` is absent from chunks but the last (`prompt_tokens`,
    /// `completion_tokens`, `total_tokens` only); `tool_choice` is refused (400, the
    /// strict stand-in for "not supported"), `max_completion_tokens` is ignored (only
    /// `max_tokens` is honoured), and an assistant tool call whose `arguments` is not
    /// JSON is refused ("invalid tool call arguments"), as Ollama does.
    Ollama,
}

/// The transcription endpoint.
#[derive(Debug, Clone)]
pub struct SttSettings {
    /// Transcripts returned in order, one per request with speech; when they run out,
    /// [`SttSettings::tone_words`] decide (and without those, the text is empty).
    pub transcripts: Vec<String>,
    /// Tone frequencies (Hz) and the word each stands for: the audio's steady tones,
    /// in order, become words (a repeat needs a gap of silence between), so a test
    /// "speaks" a phrase by playing tones.
    pub tone_words: Vec<(f64, String)>,
    /// Audio whose RMS level is below this (dBFS) is silence: text `""`, as Whisper
    /// says nothing; no scripted transcript is used up.
    pub silence_dbfs: f32,
    /// Time to answer (decode time).
    pub delay: Duration,
}

impl Default for SttSettings {
    fn default() -> Self {
        SttSettings {
            transcripts: Vec::new(),
            tone_words: Vec::new(),
            silence_dbfs: -50.0,
            delay: Duration::ZERO,
        }
    }
}

/// The chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Stream shape and strictness.
    pub dialect: Dialect,
    /// What it answers.
    pub script: ChatScript,
    /// Streamed: time from the request to the first chunk (headers go at once);
    /// not streamed: part of the time before the response.
    pub first_token_delay: Duration,
    /// Time between chunks (not streamed: added per chunk it would have sent).
    pub chunk_interval: Duration,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            dialect: Dialect::OpenAi,
            script: ChatScript::default(),
            first_token_delay: Duration::ZERO,
            chunk_interval: Duration::ZERO,
        }
    }
}

/// The speech endpoint.
#[derive(Debug, Clone)]
pub struct TtsSettings {
    /// The rate of the PCM it answers (24000 like OpenAI and Kokoro; 22050 or 16000 to
    /// mimic piper or others), unless the request's `sample_rate` is honoured.
    pub sample_rate: u32,
    /// Audio per character of input…
    pub ms_per_char: u32,
    /// …and at least this much (both before `speed`).
    pub min_ms: u32,
    /// Time to the first audio byte (headers go at once).
    pub first_byte_delay: Duration,
    /// How much faster than real time the audio is sent after the first chunk (4.0: a
    /// second of audio every 250 ms); 0 or less: all at once.
    pub speedup: f64,
    /// Bytes per body chunk; odd by default (4801), so chunks split samples.
    pub chunk_bytes: usize,
    /// Voices accepted; empty: any non-empty name.
    pub voices: Vec<String>,
    /// Honour speaches' `sample_rate` extension (8000–48000); off: refuse the field, as
    /// OpenAI refuses an unknown parameter.
    pub accept_sample_rate: bool,
}

impl Default for TtsSettings {
    fn default() -> Self {
        TtsSettings {
            sample_rate: 24_000,
            ms_per_char: 55,
            min_ms: 200,
            first_byte_delay: Duration::ZERO,
            speedup: 4.0,
            chunk_bytes: 4801,
            voices: Vec::new(),
            accept_sample_rate: true,
        }
    }
}

/// How the fake behaves; [`crate::FakePipeline::update`] changes it while it runs.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Serve https:// with the fake servers' generated test CA.
    pub tls: bool,
    /// Listen on this port of 127.0.0.1; 0: a free one.
    pub port: u16,
    /// Require `Authorization: Bearer KEY` (else 401 `invalid_api_key`); `None`: any or
    /// none, as local servers do.
    pub api_key: Option<String>,
    /// Close a keep-alive connection that sends no new request for this long (uvicorn
    /// closes after 5 s); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// `/v1/audio/transcriptions`.
    pub stt: SttSettings,
    /// `/v1/chat/completions`.
    pub chat: ChatSettings,
    /// `/v1/audio/speech`.
    pub tts: TtsSettings,
}

impl Settings {
    /// Plain http://, a free port, no key, the defaults of each stage.
    pub fn new() -> Settings {
        Settings::default()
    }

    /// Serve https://.
    pub fn tls(mut self, on: bool) -> Settings {
        self.tls = on;
        self
    }

    /// The port.
    pub fn port(mut self, port: u16) -> Settings {
        self.port = port;
        self
    }

    /// Require this API key.
    pub fn api_key(mut self, key: &str) -> Settings {
        self.api_key = Some(key.into());
        self
    }

    /// The chat dialect.
    pub fn dialect(mut self, dialect: Dialect) -> Settings {
        self.chat.dialect = dialect;
        self
    }

    /// The chat script.
    pub fn script(mut self, script: ChatScript) -> Settings {
        self.chat.script = script;
        self
    }

    /// Scripted transcripts, in order.
    pub fn transcripts(mut self, texts: &[&str]) -> Settings {
        self.stt.transcripts = texts.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// The TTS rate.
    pub fn tts_rate(mut self, rate: u32) -> Settings {
        self.tts.sample_rate = rate;
        self
    }
}
