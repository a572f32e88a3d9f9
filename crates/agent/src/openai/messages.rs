//! OpenAI Realtime API (GA) events, sans-IO: serde types for the client events voice-ua
//! sends and the server events it reads. Names and shapes follow openai-python's
//! generated types (`src/openai/types/realtime/`) as summarised in
//! `shared/openai-realtime.md` (§2-§6): GA names only (`response.output_audio.delta`,
//! `conversation.item.added`, `session.type = "realtime"`).
//!
//! Parsing a server event never panics: an unknown `type` is [`ServerEvent::Unknown`],
//! malformed JSON a [`ParseError`]. The one event on the hot path, the agent's audio
//! (`response.output_audio.delta`), has its own parser, [`AudioDelta::parse`], that
//! borrows from the frame and allocates nothing. Both directions derive `Serialize` and
//! `Deserialize`, so the fake server in the tests speaks the same types.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use serde::Deserializer;

use crate::provider::AudioFormat;
pub use crate::ws::ParseError;
use crate::ws::{parse_tagged, Tagged};

/// `audio.input.format` / `audio.output.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AudioFormatSpec {
    /// G.711 μ-law, 8 kHz.
    #[serde(rename = "audio/pcmu")]
    Pcmu,
    /// G.711 A-law, 8 kHz.
    #[serde(rename = "audio/pcma")]
    Pcma,
    /// 16-bit PCM; only at 24 kHz.
    #[serde(rename = "audio/pcm")]
    Pcm {
        /// Samples per second (24000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<u32>,
    },
}

/// OpenAI's PCM rate.
pub const PCM_RATE: u32 = 24_000;

impl AudioFormatSpec {
    /// The call's own G.711 law, so nothing is transcoded; PCM at 24 kHz (the only PCM
    /// rate OpenAI takes) for a linear16 call at 8 or 16 kHz, which the session resamples
    /// both ways; `None` for other rates.
    pub fn for_call(format: AudioFormat) -> Option<Self> {
        match format {
            AudioFormat::Ulaw8k => Some(AudioFormatSpec::Pcmu),
            AudioFormat::Alaw8k => Some(AudioFormatSpec::Pcma),
            AudioFormat::Linear16 { rate_hz: 8000 | 16_000 } => {
                Some(AudioFormatSpec::Pcm { rate: Some(PCM_RATE) })
            }
            AudioFormat::Linear16 { .. } => None,
        }
    }

    /// The call format this is, when the bridge streams it.
    pub fn call_format(self) -> Option<AudioFormat> {
        match self {
            AudioFormatSpec::Pcmu => Some(AudioFormat::Ulaw8k),
            AudioFormatSpec::Pcma => Some(AudioFormat::Alaw8k),
            AudioFormatSpec::Pcm { .. } => None,
        }
    }
}

/// `audio.input.noise_reduction` (`null` turns it off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NoiseReductionSpec {
    /// A handset or headset.
    NearField,
    /// A speakerphone, a door intercom.
    FarField,
}

/// `audio.input.transcription`: the caller's words as text, asynchronously.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionSpec {
    /// `gpt-4o-mini-transcribe`, `gpt-4o-transcribe`, `whisper-1`, ...
    pub model: String,
    /// ISO-639-1 (`en`); absent: detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `audio.input.turn_detection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnDetectionSpec {
    /// Voice activity by level.
    ServerVad {
        /// 0.0-1.0; higher needs louder speech.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<f64>,
        /// Audio kept before the detected start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix_padding_ms: Option<u32>,
        /// Silence that ends a turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        silence_duration_ms: Option<u32>,
        /// Answer each turn on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_response: Option<bool>,
        /// Cancel the reply in progress when the caller speaks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupt_response: Option<bool>,
    },
    /// End of turn by meaning.
    SemanticVad {
        /// `low`, `medium`, `high` or `auto`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eagerness: Option<String>,
        /// Answer each turn on its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_response: Option<bool>,
        /// Cancel the reply in progress when the caller speaks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupt_response: Option<bool>,
    },
}

/// `audio.input`. `null` turns noise reduction, transcription and turn detection off, so
/// they are always written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInputSpec {
    /// What the client appends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormatSpec>,
    /// Noise reduction, or `null`.
    #[serde(default)]
    pub noise_reduction: Option<NoiseReductionSpec>,
    /// Transcription of the caller, or `null`.
    #[serde(default)]
    pub transcription: Option<TranscriptionSpec>,
    /// Turn detection, or `null` (the client commits).
    #[serde(default)]
    pub turn_detection: Option<TurnDetectionSpec>,
}

/// `audio.output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioOutputSpec {
    /// What the server sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormatSpec>,
    /// `marin`, `cedar`, `alloy`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
}

/// `audio`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioSpec {
    /// Caller → agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<AudioInputSpec>,
    /// Agent → caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutputSpec>,
}

/// A function in `tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name the model calls it by.
    pub name: String,
    /// When to call it.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(default)]
    pub parameters: Value,
}

/// The `session` of `session.update` (only the fields sent change), and of
/// `session.created` / `session.updated` (the whole effective configuration; fields this
/// type does not model are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// `realtime` (required by the GA shape), or `transcription`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The server's id for the session (`sess_…`), in its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `["audio"]` (audio and its transcript) or `["text"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<String>>,
    /// Formats, voice, transcription, turn detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioSpec>,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
    /// `auto`, `none`, `required` or `{"type":"function","name":…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// 1-4096 or `"inf"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<Value>,
}

/// One part of a message item's `content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentPart {
    /// `input_text`, `input_audio` (user); `output_text`, `output_audio` (assistant).
    #[serde(rename = "type")]
    pub kind: String,
    /// For text parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For audio parts, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

/// A conversation item: a message, a function call or a function call's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The item's id (the server's, or one the client gives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `message`, `function_call` or `function_call_output`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `completed`, `incomplete`, `in_progress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `user`, `assistant`, `system` (messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A message's parts.
    #[serde(default, deserialize_with = "or_default", skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ContentPart>,
    /// A function call's (and its output's) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// A function call's function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A function call's arguments, a JSON-encoded string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// A function call output's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl Item {
    fn blank(kind: &str) -> Item {
        Item {
            id: None,
            kind: kind.into(),
            status: None,
            role: None,
            content: Vec::new(),
            call_id: None,
            name: None,
            arguments: None,
            output: None,
        }
    }

    /// A message of `role` holding one text part of `kind`.
    fn text(role: &str, kind: &str, text: &str) -> Item {
        let part = ContentPart { kind: kind.into(), text: Some(text.into()), transcript: None };
        Item { role: Some(role.into()), content: vec![part], ..Item::blank("message") }
    }

    /// What the caller said, as text (`input_text`).
    pub fn user_text(text: &str) -> Item {
        Item::text("user", "input_text", text)
    }

    /// What the agent said, as text: GA names the assistant's text part `output_text`
    /// (openai-python `realtime_conversation_item_assistant_message_param.py`).
    pub fn assistant_text(text: &str) -> Item {
        Item::text("assistant", "output_text", text)
    }

    /// The result of function call `call_id`.
    pub fn function_call_output(call_id: &str, output: &str) -> Item {
        Item {
            call_id: Some(call_id.into()),
            output: Some(output.into()),
            ..Item::blank("function_call_output")
        }
    }

    /// A function call (what the server reports).
    pub fn function_call(id: &str, call_id: &str, name: &str, arguments: &str) -> Item {
        Item {
            id: Some(id.into()),
            call_id: Some(call_id.into()),
            name: Some(name.into()),
            arguments: Some(arguments.into()),
            ..Item::blank("function_call")
        }
    }

    /// An assistant message that speaks (what the server reports).
    pub fn assistant_audio(id: &str) -> Item {
        let part = ContentPart { kind: "output_audio".into(), text: None, transcript: None };
        Item {
            id: Some(id.into()),
            role: Some("assistant".into()),
            content: vec![part],
            ..Item::blank("message")
        }
    }
}

/// Per-response overrides in `response.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResponseParams {
    /// Instructions for this response only (a greeting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// An event from voice-ua to OpenAI.
// Rare events (the audio goes as `append_json`): their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ClientEvent {
    /// Configure the session.
    #[serde(rename = "session.update")]
    SessionUpdate {
        /// Echoed in an `error` this event causes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
        /// The fields to set.
        session: Box<SessionConfig>,
    },
    /// Caller audio, base64 of the session's input format. (voice-ua writes this one
    /// without serde: [`append_json`].)
    #[serde(rename = "input_audio_buffer.append")]
    InputAudioBufferAppend {
        /// Base64.
        audio: String,
    },
    /// Commit the buffer as a user turn (only without server VAD).
    #[serde(rename = "input_audio_buffer.commit")]
    InputAudioBufferCommit,
    /// Drop the buffer.
    #[serde(rename = "input_audio_buffer.clear")]
    InputAudioBufferClear,
    /// Add an item: a function call's output, or history on a renewal.
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate {
        /// Insert after this item; absent: at the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_item_id: Option<String>,
        /// The item.
        item: Item,
    },
    /// The caller heard only `audio_end_ms` of this assistant item's audio.
    #[serde(rename = "conversation.item.truncate")]
    ConversationItemTruncate {
        /// The assistant message item.
        item_id: String,
        /// Its audio part: 0.
        content_index: u32,
        /// Milliseconds heard.
        audio_end_ms: u64,
    },
    /// Make the model respond.
    #[serde(rename = "response.create")]
    ResponseCreate {
        /// Overrides for this response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<ResponseParams>,
    },
    /// Cancel the response in progress.
    #[serde(rename = "response.cancel")]
    ResponseCancel {
        /// Which one; absent: the one in progress.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response_id: Option<String>,
    },
}

impl ClientEvent {
    /// The JSON text of this event.
    pub fn to_json(&self) -> String {
        // Plain structs of strings, numbers and JSON values: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parse one client event (for the fake server): strict, an unknown type is an error.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        serde_json::from_str(text).map_err(|e| ParseError::Json(e.to_string()))
    }
}

/// What precedes the base64 audio in an `input_audio_buffer.append` event.
pub const APPEND_PREFIX: &str = r#"{"type":"input_audio_buffer.append","audio":""#;
/// What follows it.
pub const APPEND_SUFFIX: &str = r#""}"#;

/// The length of [`append_json`]'s event for `audio_len` bytes of audio.
pub const fn append_json_len(audio_len: usize) -> usize {
    APPEND_PREFIX.len() + audio_len.div_ceil(3) * 4 + APPEND_SUFFIX.len()
}

/// Write the `input_audio_buffer.append` event for `audio` into `out` (appended; no
/// allocation within its capacity): the same JSON serde writes for
/// [`ClientEvent::InputAudioBufferAppend`], without a `String` per frame.
pub fn append_json(audio: &[u8], out: &mut bytes::BytesMut) {
    use base64::Engine;
    out.extend_from_slice(APPEND_PREFIX.as_bytes());
    let start = out.len();
    out.resize(start + audio.len().div_ceil(3) * 4, 0);
    let written =
        base64::engine::general_purpose::STANDARD.encode_slice(audio, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.extend_from_slice(APPEND_SUFFIX.as_bytes());
}

/// `rate_limits[]` of `rate_limits.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// `requests` or `tokens`.
    #[serde(default)]
    pub name: String,
    /// The limit.
    #[serde(default)]
    pub limit: Option<f64>,
    /// What is left.
    #[serde(default)]
    pub remaining: Option<f64>,
    /// Seconds until it resets.
    #[serde(default)]
    pub reset_seconds: Option<f64>,
}

/// `error.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `server_error`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `invalid_value`, `session_expired`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human text.
    #[serde(default)]
    pub message: String,
    /// The parameter at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The client event at fault, when it had an id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `usage.input_token_details.cached_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CachedTokenDetails {
    /// Cached text tokens.
    #[serde(default, deserialize_with = "or_default")]
    pub text_tokens: u64,
    /// Cached audio tokens.
    #[serde(default, deserialize_with = "or_default")]
    pub audio_tokens: u64,
}

/// `usage.input_token_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InputTokenDetails {
    /// Text.
    #[serde(default, deserialize_with = "or_default")]
    pub text_tokens: u64,
    /// Audio.
    #[serde(default, deserialize_with = "or_default")]
    pub audio_tokens: u64,
    /// Served from the cache (a subset of the two above).
    #[serde(default, deserialize_with = "or_default")]
    pub cached_tokens: u64,
    /// The cached ones split by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens_details: Option<CachedTokenDetails>,
}

/// `usage.output_token_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OutputTokenDetails {
    /// Text (the transcript, function arguments).
    #[serde(default, deserialize_with = "or_default")]
    pub text_tokens: u64,
    /// Audio.
    #[serde(default, deserialize_with = "or_default")]
    pub audio_tokens: u64,
}

/// `response.usage`: what the response is billed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UsageInfo {
    /// All input tokens.
    #[serde(default, deserialize_with = "or_default")]
    pub input_tokens: u64,
    /// All output tokens.
    #[serde(default, deserialize_with = "or_default")]
    pub output_tokens: u64,
    /// Both.
    #[serde(default, deserialize_with = "or_default")]
    pub total_tokens: u64,
    /// Input by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_details: Option<InputTokenDetails>,
    /// Output by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_token_details: Option<OutputTokenDetails>,
}

/// `response.status_details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusDetails {
    /// `completed`, `cancelled`, `incomplete`, `failed`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `turn_detected`, `client_cancelled`, `max_output_tokens`, `content_filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A failed response's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// The `response` of `response.created` / `response.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResponseInfo {
    /// `resp_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `in_progress`, `completed`, `cancelled`, `incomplete`, `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it ended so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// The items it produced.
    #[serde(default, deserialize_with = "or_default", skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<Item>,
    /// What it is billed for (in `response.done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageInfo>,
}

/// An event from OpenAI to voice-ua.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ServerEvent {
    /// The first event of a connection.
    #[serde(rename = "session.created")]
    SessionCreated {
        /// The effective configuration, with its id (`session.id`). Kept as JSON: voice-ua
        /// reads only the id, and a field OpenAI adds or reshapes must never make the
        /// handshake fail ([`SessionConfig`] reads it).
        session: Value,
    },
    /// A `session.update` applied.
    #[serde(rename = "session.updated")]
    SessionUpdated {
        /// The effective configuration, as JSON (see `session.created`).
        session: Value,
    },
    /// Server VAD heard the caller start: barge-in.
    #[serde(rename = "input_audio_buffer.speech_started")]
    SpeechStarted {
        /// Where in the session's input audio.
        #[serde(default, deserialize_with = "or_default")]
        audio_start_ms: u64,
        /// The user item it will become.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
    },
    /// Server VAD heard the caller stop.
    #[serde(rename = "input_audio_buffer.speech_stopped")]
    SpeechStopped {
        /// Where in the session's input audio.
        #[serde(default, deserialize_with = "or_default")]
        audio_end_ms: u64,
        /// The user item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
    },
    /// The buffer became a user item.
    #[serde(rename = "input_audio_buffer.committed")]
    InputAudioBufferCommitted {
        /// The item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
    },
    /// An item joined the conversation.
    #[serde(rename = "conversation.item.added")]
    ConversationItemAdded {
        /// The item.
        item: Item,
    },
    /// An item is complete.
    #[serde(rename = "conversation.item.done")]
    ConversationItemDone {
        /// The item.
        item: Item,
    },
    /// A piece of the caller's transcript (ignored: the whole one follows).
    #[serde(rename = "conversation.item.input_audio_transcription.delta")]
    InputTranscriptionDelta {
        /// The user item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
    },
    /// What the caller said.
    #[serde(rename = "conversation.item.input_audio_transcription.completed")]
    InputTranscriptionCompleted {
        /// The user item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
        /// Which part.
        #[serde(default, deserialize_with = "or_default")]
        content_index: u32,
        /// The words.
        #[serde(default, deserialize_with = "or_default")]
        transcript: String,
        /// Billed separately: tokens or `{"type":"duration","seconds":…}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Value>,
    },
    /// The caller's words could not be transcribed.
    #[serde(rename = "conversation.item.input_audio_transcription.failed")]
    InputTranscriptionFailed {
        /// The user item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
        /// Why.
        #[serde(default)]
        error: ErrorDetail,
    },
    /// A `conversation.item.truncate` applied.
    #[serde(rename = "conversation.item.truncated")]
    ConversationItemTruncated {
        /// The assistant item.
        item_id: String,
        /// Its part.
        #[serde(default, deserialize_with = "or_default")]
        content_index: u32,
        /// Where it now ends.
        audio_end_ms: u64,
    },
    /// A response begins.
    #[serde(rename = "response.created")]
    ResponseCreated {
        /// It.
        response: ResponseInfo,
    },
    /// A response's item begins.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
        /// Which item of the response.
        #[serde(default, deserialize_with = "or_default")]
        output_index: u32,
        /// The item (a message, a function call).
        item: Item,
    },
    /// A response's item is complete.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
        /// Which item of the response.
        #[serde(default, deserialize_with = "or_default")]
        output_index: u32,
        /// The item.
        item: Item,
    },
    /// A content part begins (ignored).
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
    },
    /// A content part is complete (ignored).
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
    },
    /// Agent audio, base64 in the output format. voice-ua reads these with
    /// [`AudioDelta::parse`]; this variant is for the fake server and tests.
    #[serde(rename = "response.output_audio.delta")]
    OutputAudioDelta {
        /// The response.
        response_id: String,
        /// The assistant item.
        item_id: String,
        /// Which item of the response.
        #[serde(default, deserialize_with = "or_default")]
        output_index: u32,
        /// Which part of the item.
        #[serde(default, deserialize_with = "or_default")]
        content_index: u32,
        /// Base64.
        delta: String,
    },
    /// An item's audio is all sent (not played).
    #[serde(rename = "response.output_audio.done")]
    OutputAudioDone {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
        /// The assistant item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
    },
    /// A piece of the agent's transcript (ignored: the whole one follows).
    #[serde(rename = "response.output_audio_transcript.delta")]
    OutputAudioTranscriptDelta {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
    },
    /// What the agent said.
    #[serde(rename = "response.output_audio_transcript.done")]
    OutputAudioTranscriptDone {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
        /// The assistant item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
        /// The words.
        #[serde(default, deserialize_with = "or_default")]
        transcript: String,
    },
    /// Text output (text-only sessions; ignored).
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
    },
    /// Text output (ignored).
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
    },
    /// Function arguments as they stream (ignored: the whole ones follow).
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
    },
    /// A function call, complete.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The response.
        #[serde(default, deserialize_with = "or_default")]
        response_id: String,
        /// The function call item.
        #[serde(default, deserialize_with = "or_default")]
        item_id: String,
        /// Echo it in the output.
        call_id: String,
        /// The function (the reference lists it; the generated types do not, so it may
        /// come only with `response.output_item.added`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// JSON-encoded.
        #[serde(default, deserialize_with = "or_default")]
        arguments: String,
    },
    /// A response ended: completed, cancelled (barge-in), incomplete or failed; with
    /// its usage.
    #[serde(rename = "response.done")]
    ResponseDone {
        /// It.
        response: ResponseInfo,
    },
    /// Limits after a response.
    #[serde(rename = "rate_limits.updated")]
    RateLimitsUpdated {
        /// The limits.
        #[serde(default, deserialize_with = "or_default")]
        rate_limits: Vec<RateLimit>,
    },
    /// Something went wrong; most are recoverable.
    #[serde(rename = "error")]
    Error {
        /// What.
        error: ErrorDetail,
    },
    /// WebRTC/SIP only (ignored).
    #[serde(rename = "output_audio_buffer.started")]
    OutputAudioBufferStarted,
    /// WebRTC/SIP only (ignored).
    #[serde(rename = "output_audio_buffer.stopped")]
    OutputAudioBufferStopped,
    /// WebRTC/SIP only (ignored).
    #[serde(rename = "output_audio_buffer.cleared")]
    OutputAudioBufferCleared,
    /// A `type` this version does not model; never an error.
    #[serde(skip)]
    Unknown {
        /// The `type` value.
        type_name: String,
        /// The whole event.
        raw: Value,
    },
}

/// The types [`ServerEvent`] models; everything else is [`ServerEvent::Unknown`].
const KNOWN_SERVER_TYPES: &[&str] = &[
    "session.created",
    "session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.truncated",
    "response.created",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.done",
    "rate_limits.updated",
    "error",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
    "output_audio_buffer.cleared",
];

impl ServerEvent {
    /// Parse one text frame. Unknown types are `Ok(Unknown)`; nothing here panics.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Ok(match parse_tagged(text, KNOWN_SERVER_TYPES)? {
            Tagged::Known(event) => event,
            Tagged::Unknown { type_name, raw } => ServerEvent::Unknown { type_name, raw },
        })
    }

    /// The JSON text of this event (what the fake server sends). `Unknown` sends its raw value.
    pub fn to_json(&self) -> String {
        match self {
            ServerEvent::Unknown { raw, .. } => raw.to_string(),
            other => serde_json::to_string(other).unwrap_or_else(|_| String::from("{}")),
        }
    }
}

/// `response.output_audio.delta`, borrowed from the frame: the hot path. Parsing one
/// allocates nothing unless a field holds a JSON escape (base64 and OpenAI's ids do not).
#[derive(Debug, Deserialize)]
pub struct AudioDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    /// The response.
    #[serde(default, borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(default, borrow)]
    pub item_id: Cow<'a, str>,
    /// Base64 audio.
    #[serde(default, borrow)]
    pub delta: Cow<'a, str>,
}

impl<'a> AudioDelta<'a> {
    /// A delta from its parts.
    pub fn new(response_id: Cow<'a, str>, item_id: Cow<'a, str>, delta: Cow<'a, str>) -> Self {
        AudioDelta { kind: Cow::Borrowed("response.output_audio.delta"), response_id, item_id, delta }
    }

    /// The delta `text` holds, or `None` when it is another event (or not one at all).
    pub fn parse(text: &'a str) -> Option<AudioDelta<'a>> {
        let delta: AudioDelta<'a> = serde_json::from_str(text).ok()?;
        (delta.kind == "response.output_audio.delta").then_some(delta)
    }
}

/// A value, or its default when the field is `null`: the server's `null` for an empty
/// list or a count never fails an event.
fn or_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
