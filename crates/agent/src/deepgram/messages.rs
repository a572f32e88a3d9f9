//! Deepgram Voice Agent V1 messages (`/v1/agent/converse`), sans-IO: serde types for
//! every JSON text frame both ways. Binary frames (raw audio) carry no JSON and are not
//! modelled here.
//!
//! Field names follow Deepgram's AsyncAPI spec and SDKs as summarised in
//! `shared/deepgram-voice-agent.md` (§3-§5). Parsing a server frame never panics: an
//! unknown `type` becomes [`ServerMessage::Unknown`], malformed JSON a [`ParseError`].
//! Both directions derive `Serialize` and `Deserialize`, so the fake server in the tests
//! speaks the same types.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::provider::AudioFormat;
pub use crate::ws::ParseError;
use crate::ws::{parse_tagged, Tagged};

/// Audio encodings the bridge uses (Deepgram accepts more; anything else parses as
/// [`Encoding::Other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Signed 16-bit little-endian PCM.
    Linear16,
    /// G.711 μ-law.
    Mulaw,
    /// G.711 A-law.
    Alaw,
    /// Any other encoding name.
    #[serde(other)]
    Other,
}

/// `audio.input`: what the client streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioInput {
    /// Encoding of the binary frames the client sends.
    pub encoding: Encoding,
    /// Samples per second.
    pub sample_rate: u32,
}

/// `audio.output`: what the agent streams back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioOutput {
    /// Encoding of the binary frames the agent sends.
    pub encoding: Encoding,
    /// Samples per second.
    pub sample_rate: u32,
    /// `none`: raw samples, no WAV header per segment (which would click).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Only for mp3/opus/aac; never used by the bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
}

/// `audio`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioSettings {
    /// Caller → agent.
    pub input: AudioInput,
    /// Agent → caller.
    pub output: AudioOutput,
}

impl AudioSettings {
    /// The call's own format both ways, so nothing is transcoded: PCMU ↔ `mulaw` 8000,
    /// PCMA ↔ `alaw` 8000, linear16 ↔ `linear16` at its rate; container `none`.
    pub fn for_format(format: AudioFormat) -> Self {
        let (encoding, sample_rate) = match format {
            AudioFormat::Ulaw8k => (Encoding::Mulaw, 8000),
            AudioFormat::Alaw8k => (Encoding::Alaw, 8000),
            AudioFormat::Linear16 { rate_hz } => (Encoding::Linear16, rate_hz),
        };
        AudioSettings {
            input: AudioInput { encoding, sample_rate },
            output: AudioOutput { encoding, sample_rate, container: Some("none".into()), bitrate: None },
        }
    }

    /// The call format these settings stream, when it is one the bridge handles.
    pub fn call_format(encoding: Encoding, sample_rate: u32) -> Option<AudioFormat> {
        match (encoding, sample_rate) {
            (Encoding::Mulaw, 8000) => Some(AudioFormat::Ulaw8k),
            (Encoding::Alaw, 8000) => Some(AudioFormat::Alaw8k),
            (Encoding::Linear16, rate) => AudioFormat::linear16(rate).ok(),
            _ => None,
        }
    }
}

/// A provider object: `{"type": "deepgram", "model": "nova-3", ...}`. The listen
/// provider comes in two versions (reference §3.2): `v1` (Nova: `language`, `keyterms`,
/// `smart_format`) and `v2` (Flux: `eot_threshold`, `eager_eot_threshold`,
/// `eot_timeout_ms`, `keyterms`; `smart_format` cannot be used with it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    /// `deepgram`, `open_ai`, `anthropic`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `v1` (Nova) or `v2` (Flux), for the listen provider; absent means `v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Language (listen provider only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Sampling temperature (think provider only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Flux: the end-of-turn confidence that ends a turn (0.5-0.9, Deepgram's default 0.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eot_threshold: Option<f64>,
    /// Flux: the confidence of an early end-of-turn guess (lower than `eot_threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eager_eot_threshold: Option<f64>,
    /// Flux: a turn ends after this much silence whatever the confidence (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eot_timeout_ms: Option<u32>,
    /// Words to listen for (names, products): both listen versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyterms: Vec<String>,
    /// Nova only: punctuation and formatting. Never sent with Flux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_format: Option<bool>,
}

impl Provider {
    /// A Flux (`version: "v2"`) listen provider.
    pub fn is_flux(&self) -> bool {
        self.version.as_deref() == Some("v2")
    }
}

/// `agent.listen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listen {
    /// Speech-to-text provider.
    pub provider: Provider,
}

/// A function the LLM may call. Without `endpoint` it runs client-side (in voice-ua).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// Name the LLM calls it by.
    pub name: String,
    /// When to call it, for the LLM.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// `agent.think`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Think {
    /// The LLM.
    pub provider: Provider,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Client-side functions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionDef>,
}

/// `agent.speak`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speak {
    /// Text-to-speech provider.
    pub provider: Provider,
}

/// `agent` (the object form; a saved agent's UUID is not used by voice-ua).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSettings {
    /// Speech-to-text.
    pub listen: Listen,
    /// LLM.
    pub think: Think,
    /// Text-to-speech.
    pub speak: Speak,
    /// Spoken once when the session starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// The conversation so far, when this session continues a call (reference §3.2,
    /// `agent.context.messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
}

/// `agent.context`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Earlier turns, oldest first.
    pub messages: Vec<HistoryMessage>,
}

/// One `{type:"History", role, content}` entry of `agent.context.messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// Always `History`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
}

impl HistoryMessage {
    /// A text entry.
    pub fn new(role: &str, content: &str) -> Self {
        HistoryMessage { kind: "History".into(), role: role.into(), content: content.into() }
    }
}

/// The `Settings` message: sent once, first, right after `Welcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Audio formats both ways.
    pub audio: AudioSettings,
    /// The agent.
    pub agent: AgentSettings,
    /// Enables experimental messages (`AgentStartedSpeaking` latency figures).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub experimental: bool,
    /// Opt out of Deepgram's Model Improvement Program.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mip_opt_out: bool,
}

/// `FunctionCallResponse` (client → server for client-side calls; server → client for
/// server-side ones, where `id` may be absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallResponse {
    /// The request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name.
    pub name: String,
    /// The result, a string (often JSON).
    pub content: String,
}

/// A JSON text frame from voice-ua to Deepgram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ClientMessage {
    /// The session's configuration.
    Settings(Box<Settings>),
    /// Keeps an idle socket open; only when audio cannot flow.
    KeepAlive,
    /// The result of a client-side function.
    FunctionCallResponse(FunctionCallResponse),
    /// Make the agent say something.
    InjectAgentMessage {
        /// What to say (the field is `message`, not `content`).
        message: String,
        /// `default` (refused while either side is mid-turn), `queue` (said after the
        /// current turn) or `interrupt`; absent is `default`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        behavior: Option<String>,
    },
    /// Act as if the user had said this.
    InjectUserMessage {
        /// The user's words.
        content: String,
    },
    /// Replace the system prompt.
    UpdatePrompt {
        /// The new prompt.
        prompt: String,
    },
    /// End the caller's turn now (Flux only; Nova answers
    /// `Warning FORCE_END_TURN_UNSUPPORTED`).
    ForceEndTurn,
}

impl ClientMessage {
    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Plain structs of strings, numbers and JSON values: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// `role` of a `ConversationText`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationRole {
    /// The caller.
    User,
    /// The agent.
    Assistant,
    /// Anything newer.
    #[serde(other)]
    Other,
}

/// One entry of a `FunctionCallRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Echo it in the response.
    pub id: String,
    /// Which function.
    pub name: String,
    /// The arguments as a JSON-encoded string.
    #[serde(default)]
    pub arguments: String,
    /// `true`: voice-ua must run it and answer. Absent is taken as `true`: an unanswered
    /// client-side call would stall the conversation.
    #[serde(default = "yes")]
    pub client_side: bool,
}

fn yes() -> bool {
    true
}

/// `{id, name}` of a cancelled call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelledCall {
    /// The request's id.
    pub id: String,
    /// The function's name.
    #[serde(default)]
    pub name: String,
}

/// A JSON text frame from Deepgram to voice-ua.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ServerMessage {
    /// First message of every session.
    Welcome {
        /// Deepgram's id for the session (early access called it `session_id`).
        #[serde(default, alias = "session_id")]
        request_id: String,
    },
    /// The `Settings` were accepted: audio may flow.
    SettingsApplied,
    /// What the user said or the agent is saying.
    ConversationText {
        /// Who.
        role: ConversationRole,
        /// What.
        content: String,
    },
    /// The user began an utterance: barge-in.
    UserStartedSpeaking,
    /// The agent is processing.
    AgentThinking {
        /// What it is thinking about.
        #[serde(default)]
        content: String,
    },
    /// Functions to call.
    FunctionCallRequest {
        /// One or more calls.
        functions: Vec<FunctionCall>,
    },
    /// The result of a server-side function.
    FunctionCallResponse(FunctionCallResponse),
    /// Calls revoked because the user spoke again: do not answer them.
    FunctionCallCancelled {
        /// Which.
        #[serde(default)]
        functions: Vec<CancelledCall>,
    },
    /// Agent audio begins. Seconds; may only come with `experimental: true`.
    AgentStartedSpeaking {
        /// Utterance received → reply produced.
        #[serde(default, deserialize_with = "lenient_seconds")]
        total_latency: Option<f64>,
        /// The TTS share.
        #[serde(default, deserialize_with = "lenient_seconds")]
        tts_latency: Option<f64>,
        /// The LLM share.
        #[serde(default, deserialize_with = "lenient_seconds")]
        ttt_latency: Option<f64>,
    },
    /// The server finished *sending* this reply's audio. Not sent after an interruption.
    AgentAudioDone,
    /// Per-stage latencies (newer servers; often one field per message).
    LatencyReport {
        /// Speech-to-text.
        #[serde(default, deserialize_with = "lenient_seconds")]
        stt_latency: Option<f64>,
        /// LLM.
        #[serde(default, deserialize_with = "lenient_seconds")]
        ttt_latency: Option<f64>,
        /// Text-to-speech.
        #[serde(default, deserialize_with = "lenient_seconds")]
        tts_latency: Option<f64>,
        /// Total.
        #[serde(default, deserialize_with = "lenient_seconds")]
        total_latency: Option<f64>,
    },
    /// `UpdatePrompt` applied.
    PromptUpdated,
    /// `UpdateSpeak` applied.
    SpeakUpdated,
    /// `UpdateThink` applied.
    ThinkUpdated,
    /// `UpdateListen` applied.
    ListenUpdated,
    /// An `InjectAgentMessage` was not spoken.
    InjectionRefused {
        /// The refused message.
        #[serde(default)]
        message: String,
    },
    /// History reporting (on by default).
    History {
        /// `user` or `assistant`, for a text entry.
        #[serde(default)]
        role: Option<String>,
        /// The text, for a text entry.
        #[serde(default)]
        content: Option<String>,
        /// Function calls, for a function entry.
        #[serde(default)]
        function_calls: Option<Vec<Value>>,
    },
    /// Non-fatal.
    Warning {
        /// `PROMPT_TOO_LONG`, `FUNCTION_CALL_FAILED`, ...
        #[serde(default)]
        code: String,
        /// Human text.
        #[serde(default, alias = "message")]
        description: String,
    },
    /// Fatal: the session ends.
    Error {
        /// `CLIENT_MESSAGE_TIMEOUT`, `INVALID_SETTINGS`, ...
        #[serde(default)]
        code: String,
        /// Human text (early access called it `message`).
        #[serde(default, alias = "message")]
        description: String,
    },
    /// A `type` this version does not know; never an error.
    #[serde(skip)]
    Unknown {
        /// The `type` value.
        type_name: String,
        /// The whole message.
        raw: Value,
    },
}

/// The types [`ServerMessage`] models; everything else is [`ServerMessage::Unknown`].
const KNOWN_SERVER_TYPES: &[&str] = &[
    "Welcome",
    "SettingsApplied",
    "ConversationText",
    "UserStartedSpeaking",
    "AgentThinking",
    "FunctionCallRequest",
    "FunctionCallResponse",
    "FunctionCallCancelled",
    "AgentStartedSpeaking",
    "AgentAudioDone",
    "LatencyReport",
    "PromptUpdated",
    "SpeakUpdated",
    "ThinkUpdated",
    "ListenUpdated",
    "InjectionRefused",
    "History",
    "Warning",
    "Error",
];

impl ServerMessage {
    /// Parse one text frame. Unknown types are `Ok(Unknown)`; nothing here panics.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Ok(match parse_tagged(text, KNOWN_SERVER_TYPES)? {
            Tagged::Known(message) => message,
            Tagged::Unknown { type_name, raw } => ServerMessage::Unknown { type_name, raw },
        })
    }

    /// The JSON text of this message (what the fake server sends). `Unknown` sends its raw value.
    pub fn to_json(&self) -> String {
        match self {
            ServerMessage::Unknown { raw, .. } => raw.to_string(),
            other => serde_json::to_string(other).unwrap_or_else(|_| String::from("{}")),
        }
    }
}

impl ClientMessage {
    /// Parse one client text frame (for the fake server): strict, any unknown type is an error.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))
    }
}

/// Seconds as a JSON number, or as a string holding one (a published spec typed them as
/// strings); anything else, and anything that is not a duration (negative, NaN,
/// infinite), is `None`.
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    let seconds = match value {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(seconds.filter(|s: &f64| s.is_finite() && *s >= 0.0))
}
