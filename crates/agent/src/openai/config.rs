//! The OpenAI agent's configuration: [`OpenAiConfig`] (endpoint, model, key, voice,
//! instructions, functions, transcription, noise reduction, turn detection, prices,
//! renewal) with its defaults, the `session.update` built from it for a call's law, and
//! the cost of a response's usage at the configured [`Prices`]. The key is masked in
//! `Debug`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::messages::{
    AudioFormatSpec, AudioInputSpec, AudioOutputSpec, AudioSpec, ClientEvent, NoiseReductionSpec,
    ResponseParams, SessionConfig, ToolSpec, TranscriptionSpec, TurnDetectionSpec, UsageInfo,
};
use crate::provider::{AudioFormat, Usage};
use crate::reconnect::ReconnectPolicy;
use crate::tools::FunctionSpec;
use crate::ws::mask;

/// OpenAI's Realtime endpoint; the model is its `model` query parameter.
pub const DEFAULT_URL: &str = "wss://api.openai.com/v1/realtime";
/// The GA realtime model.
pub const DEFAULT_MODEL: &str = "gpt-realtime";
/// One of the two voices OpenAI recommends.
pub const DEFAULT_VOICE: &str = "marin";
/// The caller's words as text for the record and the history.
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "gpt-4o-mini-transcribe";
/// OpenAI ends a session at 60 minutes; renew before.
pub const DEFAULT_RENEW_AFTER: Duration = Duration::from_secs(55 * 60);
/// The latest a session is kept: a renewal is forced by then, leaving two minutes for
/// the new connection before OpenAI's 60-minute cap.
pub const RENEW_HARD_LIMIT: Duration = Duration::from_secs(58 * 60);
/// Caller frames (20 ms each) per `input_audio_buffer.append`: 2 halves the events (and
/// their JSON, WebSocket and TLS overhead) for 10 ms more latency on average (measured
/// in `benches/bridge_latency.rs`).
pub const DEFAULT_APPEND_FRAMES: usize = 2;
/// The most caller frames one append carries (100 ms).
pub const MAX_APPEND_FRAMES: usize = 5;

/// The OpenAI Realtime agent's settings for every call.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// WebSocket URL without the model (`ws://` only for loopback hosts: tests). A URL
    /// that already carries `model=` is used as it is.
    pub url: String,
    /// `gpt-realtime`, `gpt-realtime-mini`, ...
    pub model: String,
    /// API key, sent as `Authorization: Bearer <key>`. Never logged.
    pub api_key: String,
    /// A PEM file of CA certificates trusted in addition to the webpki roots.
    pub extra_ca_file: Option<PathBuf>,
    /// The system prompt.
    pub instructions: String,
    /// The voice (`marin`, `cedar`, `alloy`, ...); fixed once the agent has spoken.
    pub voice: String,
    /// Said when the call is answered.
    pub greeting: Option<String>,
    /// Client-side functions.
    pub functions: Vec<FunctionSpec>,
    /// Whether and which function the model must call.
    pub tool_choice: ToolChoice,
    /// The caller's words as text; `None` turns it off (no user lines in the record).
    pub transcription: Option<Transcription>,
    /// Input noise reduction.
    pub noise_reduction: NoiseReduction,
    /// How the end of the caller's turn is found.
    pub turn_detection: TurnDetection,
    /// What tokens cost, for the record.
    pub prices: Prices,
    /// When a session is renewed (before OpenAI's 60-minute cap), at a quiet moment; it is
    /// forced by [`RENEW_HARD_LIMIT`].
    pub renew_after: Duration,
    /// Caller frames per append, 1..=[`MAX_APPEND_FRAMES`].
    pub append_frames: usize,
    /// How a session that drops mid-call is opened again.
    pub reconnect: ReconnectPolicy,
    /// A DTMF key that sends the digits typed before it at once, when set (OpenAI's
    /// server VAD ends spoken turns itself).
    pub end_of_turn_key: Option<char>,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &mask(&self.api_key))
            .field("extra_ca_file", &self.extra_ca_file)
            .field("voice", &self.voice)
            .field("greeting", &self.greeting)
            .field("functions", &self.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>())
            .field("tool_choice", &self.tool_choice)
            .field("transcription", &self.transcription)
            .field("noise_reduction", &self.noise_reduction)
            .field("turn_detection", &self.turn_detection)
            .field("prices", &self.prices)
            .field("renew_after", &self.renew_after)
            .field("append_frames", &self.append_frames)
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

/// `audio.input.transcription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcription {
    /// `gpt-4o-mini-transcribe`, `gpt-4o-transcribe`, `whisper-1`, ...
    pub model: String,
    /// ISO-639-1 (`en`, `es`); `None`: detected per utterance.
    pub language: Option<String>,
}

/// `audio.input.noise_reduction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseReduction {
    /// Handsets and headsets (the default).
    NearField,
    /// Speakerphones, door intercoms, conference rooms.
    FarField,
    /// None.
    Off,
}

/// `semantic_vad`'s eagerness: how soon it takes a pause as the end of the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eagerness {
    /// Waits longest (up to 8 s).
    Low,
    /// Between (up to 4 s).
    Medium,
    /// Answers soonest (up to 2 s).
    High,
    /// OpenAI's choice (medium).
    Auto,
}

impl Eagerness {
    /// The word OpenAI uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Eagerness::Low => "low",
            Eagerness::Medium => "medium",
            Eagerness::High => "high",
            Eagerness::Auto => "auto",
        }
    }
}

/// `audio.input.turn_detection`. Either way the model answers each turn by itself and the
/// caller's speech interrupts its reply (barge-in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TurnDetection {
    /// By level: the turn ends after `silence_duration_ms` of silence.
    ServerVad {
        /// 0.0-1.0 (0.5); higher needs louder speech (noisy lines).
        threshold: f64,
        /// Audio kept before the detected start (300 ms).
        prefix_padding_ms: u32,
        /// Silence that ends the turn (500 ms).
        silence_duration_ms: u32,
    },
    /// By meaning: the model judges whether the caller has finished.
    SemanticVad {
        /// How soon.
        eagerness: Eagerness,
    },
}

/// `server_vad`'s default threshold (OpenAI's).
pub const VAD_THRESHOLD: f64 = 0.5;
/// `server_vad`'s default audio kept before the detected start, ms (OpenAI's).
pub const VAD_PREFIX_PADDING_MS: u32 = 300;
/// `server_vad`'s default silence that ends a turn, ms (OpenAI's).
pub const VAD_SILENCE_DURATION_MS: u32 = 500;

impl Default for TurnDetection {
    fn default() -> Self {
        TurnDetection::ServerVad {
            threshold: VAD_THRESHOLD,
            prefix_padding_ms: VAD_PREFIX_PADDING_MS,
            silence_duration_ms: VAD_SILENCE_DURATION_MS,
        }
    }
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No function calls.
    None,
    /// Some function, every response.
    Required,
    /// This function, every response.
    Function(String),
}

impl ToolChoice {
    fn to_json(&self) -> Value {
        match self {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "name": name}),
        }
    }
}

/// What tokens cost, in US dollars per million tokens (OpenAI's price list).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Input audio (the caller, and the conversation re-read).
    pub audio_in: f64,
    /// Input served from the cache (audio or text).
    pub cached_in: f64,
    /// Output audio (the agent's speech).
    pub audio_out: f64,
    /// Input text (instructions, tools, transcripts, tool results).
    pub text_in: f64,
    /// Output text (the transcript of its speech, function arguments).
    pub text_out: f64,
}

impl Prices {
    /// `gpt-realtime` (and -1.5): audio $32 in, $0.40 cached, $64 out; text $4 in, $16
    /// out, per 1M tokens (shared/openai-realtime.md §7).
    pub const GPT_REALTIME: Prices =
        Prices { audio_in: 32.0, cached_in: 0.40, audio_out: 64.0, text_in: 4.0, text_out: 16.0 };

    /// A response's usage as the seam's [`Usage`], costed: at dollars per million tokens, a
    /// token costs the price in millionths of a dollar. Cached tokens are a subset of the
    /// input and cost the cached price; without their split, they are taken as audio
    /// first.
    pub fn usage(&self, u: &UsageInfo) -> Usage {
        // Without the split by kind (OpenAI sends it), input is taken as text and output
        // as audio.
        let (input_text, input_audio, cached, split) = match u.input_token_details {
            Some(d) => (d.text_tokens, d.audio_tokens, d.cached_tokens, d.cached_tokens_details),
            None => (u.input_tokens, 0, 0, None),
        };
        let (output_text, output_audio) = match u.output_token_details {
            Some(d) => (d.text_tokens, d.audio_tokens),
            None => (0, u.output_tokens),
        };
        let (cached_text, cached_audio) = match split {
            Some(c) => (c.text_tokens.min(input_text), c.audio_tokens.min(input_audio)),
            None => {
                let audio = cached.min(input_audio);
                (cached.saturating_sub(audio).min(input_text), audio)
            }
        };
        let t = |n: u64| n as f64;
        let cost = t(input_audio - cached_audio) * self.audio_in
            + t(input_text - cached_text) * self.text_in
            + t(cached_audio + cached_text) * self.cached_in
            + t(output_audio) * self.audio_out
            + t(output_text) * self.text_out;
        Usage {
            input_audio_tokens: input_audio,
            input_text_tokens: input_text,
            cached_input_tokens: cached_audio + cached_text,
            output_audio_tokens: output_audio,
            output_text_tokens: output_text,
            cost_micro_usd: cost.round().clamp(0.0, u64::MAX as f64) as u64,
        }
    }
}

impl Default for Prices {
    fn default() -> Self {
        Prices::GPT_REALTIME
    }
}

impl OpenAiConfig {
    /// The defaults with this key.
    pub fn new(api_key: impl Into<String>) -> Self {
        OpenAiConfig {
            url: DEFAULT_URL.into(),
            model: DEFAULT_MODEL.into(),
            api_key: api_key.into(),
            extra_ca_file: None,
            instructions: "You answer the phone for a small business. Keep every answer short.".into(),
            voice: DEFAULT_VOICE.into(),
            greeting: None,
            functions: Vec::new(),
            tool_choice: ToolChoice::Auto,
            transcription: Some(Transcription { model: DEFAULT_TRANSCRIPTION_MODEL.into(), language: None }),
            noise_reduction: NoiseReduction::NearField,
            turn_detection: TurnDetection::default(),
            prices: Prices::default(),
            renew_after: DEFAULT_RENEW_AFTER,
            append_frames: DEFAULT_APPEND_FRAMES,
            reconnect: ReconnectPolicy::default(),
            end_of_turn_key: None,
        }
    }

    /// The URL connected to: [`OpenAiConfig::url`] with `model=` added unless it has one.
    pub fn request_url(&self) -> String {
        let has_model = self
            .url
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|p| p.starts_with("model=")));
        if has_model {
            self.url.clone()
        } else {
            let sep = if self.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}model={}", self.url, self.model)
        }
    }

    /// The `session` of the `session.update` for a call in `format` (its own G.711 law
    /// both ways, so nothing is transcoded); `None` for a format OpenAI cannot take as it
    /// is (linear16).
    pub fn session(&self, format: AudioFormat) -> Option<SessionConfig> {
        let law = AudioFormatSpec::for_call(format)?;
        let turn_detection = match self.turn_detection {
            TurnDetection::ServerVad { threshold, prefix_padding_ms, silence_duration_ms } => {
                TurnDetectionSpec::ServerVad {
                    threshold: Some(threshold),
                    prefix_padding_ms: Some(prefix_padding_ms),
                    silence_duration_ms: Some(silence_duration_ms),
                    create_response: Some(true),
                    interrupt_response: Some(true),
                }
            }
            TurnDetection::SemanticVad { eagerness } => TurnDetectionSpec::SemanticVad {
                eagerness: Some(eagerness.as_str().into()),
                create_response: Some(true),
                interrupt_response: Some(true),
            },
        };
        let noise_reduction = match self.noise_reduction {
            NoiseReduction::NearField => Some(NoiseReductionSpec::NearField),
            NoiseReduction::FarField => Some(NoiseReductionSpec::FarField),
            NoiseReduction::Off => None,
        };
        let tools = self
            .functions
            .iter()
            .map(|f| ToolSpec {
                kind: "function".into(),
                name: f.name.clone(),
                description: f.description.clone(),
                parameters: f.parameters.clone(),
            })
            .collect();
        Some(SessionConfig {
            kind: "realtime".into(),
            id: None,
            model: Some(self.model.clone()),
            instructions: Some(self.instructions.clone()),
            output_modalities: Some(vec!["audio".into()]),
            audio: Some(AudioSpec {
                input: Some(AudioInputSpec {
                    format: Some(law),
                    noise_reduction,
                    transcription: self
                        .transcription
                        .as_ref()
                        .map(|t| TranscriptionSpec { model: t.model.clone(), language: t.language.clone() }),
                    turn_detection: Some(turn_detection),
                }),
                output: Some(AudioOutputSpec { format: Some(law), voice: Some(self.voice.clone()) }),
            }),
            tools: Some(tools),
            tool_choice: Some(self.tool_choice.to_json()),
            max_output_tokens: Some(json!("inf")),
        })
    }

    /// The `response.create` that says the greeting, when there is one.
    pub fn greeting_event(&self) -> Option<ClientEvent> {
        let greeting = self.greeting.as_deref()?;
        let instructions = format!(
            "Greet the caller: say exactly this, in the language it is written in, and nothing else: {greeting}"
        );
        Some(ClientEvent::ResponseCreate {
            response: Some(ResponseParams { instructions: Some(instructions) }),
        })
    }
}
