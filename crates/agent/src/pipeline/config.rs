//! The pipeline's settings: where its three OpenAI-compatible endpoints are (STT, LLM,
//! TTS) and how each is asked, the turn-taking knobs, the prompt, greeting and functions.
//! Checked once at start ([`PipelineConfig::check`]), so a call never meets a bad URL.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio_tungstenite::tungstenite::http::Uri;
use voice_ua_media::EndpointSettings;

use crate::openai::ToolChoice;
use crate::tools::FunctionSpec;
use crate::ws::provider_error;
use crate::AgentError;

/// The provider's name in logs, errors and records.
pub(crate) const PROVIDER: &str = "pipeline";

/// Speech to text: `POST {url}/audio/transcriptions` with the utterance as a WAV file.
#[derive(Clone, PartialEq)]
pub struct SttConfig {
    /// Base URL (`http://127.0.0.1:8000/v1`) or the whole endpoint URL.
    pub url: String,
    /// `whisper-1`, `Systran/faster-whisper-small`, …
    pub model: String,
    /// Sent as `Authorization: Bearer`, when set.
    pub api_key: Option<String>,
    /// ISO-639-1 language of the caller (`en`), when known: faster and more accurate.
    pub language: Option<String>,
    /// Words the STT should expect (names, places): Whisper's `prompt`.
    pub prompt: Option<String>,
    /// The WAV's rate: 8000 (the call's own audio) or 16000 (upsampled: Whisper's rate).
    pub sample_rate: u32,
    /// The whole request, upload to transcript.
    pub timeout: Duration,
}

/// The LLM: `POST {url}/chat/completions`, streamed, with the functions as tools.
#[derive(Clone, PartialEq)]
pub struct LlmConfig {
    /// Base URL (`http://127.0.0.1:11434/v1` for Ollama) or the whole endpoint URL.
    pub url: String,
    /// The model name the server knows.
    pub model: String,
    /// Sent as `Authorization: Bearer`, when set.
    pub api_key: Option<String>,
    /// Sampling temperature, when set.
    pub temperature: Option<f32>,
    /// The most tokens per answer, when set (`max_tokens`).
    pub max_tokens: Option<u32>,
    /// `tool_choice` as sent; omitted when unset, since Ollama ignores it and vLLM
    /// refuses `auto` unless started with tool parsing.
    pub tool_choice: Option<ToolChoice>,
    /// From the request to the first token.
    pub first_token_timeout: Duration,
    /// The longest silence between two pieces of the stream.
    pub idle_timeout: Duration,
    /// Prices per million tokens, for the record's cost estimate.
    pub prices: Option<LlmPrices>,
}

/// What the LLM's tokens cost, in US dollars per million.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlmPrices {
    /// Input tokens.
    pub input: f64,
    /// Input tokens served from the provider's cache.
    pub cached_input: f64,
    /// Output tokens.
    pub output: f64,
}

/// Text to speech: `POST {url}/audio/speech` with `response_format: pcm`, streamed.
#[derive(Clone, PartialEq)]
pub struct TtsConfig {
    /// Base URL (`http://127.0.0.1:8880/v1` for Kokoro-FastAPI) or the whole endpoint URL.
    pub url: String,
    /// `kokoro`, `tts-1`, `gpt-4o-mini-tts`, …
    pub model: String,
    /// The voice (`af_heart`, `alloy`, …).
    pub voice: String,
    /// Sent as `Authorization: Bearer`, when set.
    pub api_key: Option<String>,
    /// The rate of the PCM the server sends: 24000 (OpenAI, Kokoro), 22050 (piper), 16000.
    pub sample_rate: u32,
    /// Ask for `sample_rate` in the request (speaches' extension); off for servers that
    /// refuse unknown fields.
    pub send_sample_rate: bool,
    /// Speaking speed (0.25–4.0), when set.
    pub speed: Option<f32>,
    /// How to speak (gpt-4o-mini-tts's `instructions`), when set.
    pub instructions: Option<String>,
    /// From the request to the first audio byte.
    pub first_byte_timeout: Duration,
}

/// The whole pipeline.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Speech to text.
    pub stt: SttConfig,
    /// The LLM.
    pub llm: LlmConfig,
    /// Text to speech.
    pub tts: TtsConfig,
    /// Turn-taking: the endpointer's knobs.
    pub turn: EndpointSettings,
    /// A DTMF key that ends the caller's turn at once (`#`), when set.
    pub end_of_turn_key: Option<char>,
    /// The system prompt.
    pub instructions: String,
    /// Said when the call is answered (not generated: no LLM round trip), when set.
    pub greeting: Option<String>,
    /// What the LLM may call.
    pub functions: Vec<FunctionSpec>,
    /// The most messages kept besides the system prompt.
    pub max_history_messages: usize,
    /// The most LLM rounds of tool calls in one turn.
    pub max_tool_rounds: u32,
    /// A PEM file of extra CAs for `https://` endpoints.
    pub extra_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach a log line.
        f.debug_struct("PipelineConfig")
            .field("stt", &(&self.stt.url, &self.stt.model))
            .field("llm", &(&self.llm.url, &self.llm.model))
            .field("tts", &(&self.tts.url, &self.tts.model, &self.tts.voice, self.tts.sample_rate))
            .field("functions", &self.functions.len())
            .finish_non_exhaustive()
    }
}

/// Default timeouts: a local CPU server can be slow, but a caller cannot wait forever.
pub const DEFAULT_STT_TIMEOUT: Duration = Duration::from_secs(8);
/// Default time to the LLM's first token.
pub const DEFAULT_FIRST_TOKEN_TIMEOUT: Duration = Duration::from_secs(8);
/// Default longest gap inside the LLM's stream.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time to TTS's first byte.
pub const DEFAULT_TTS_TIMEOUT: Duration = Duration::from_secs(6);
/// Default history bound.
pub const DEFAULT_MAX_HISTORY: usize = 24;
/// Default tool rounds per turn.
pub const DEFAULT_MAX_TOOL_ROUNDS: u32 = 4;

/// The stages, for URLs and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Speech to text.
    Stt,
    /// The LLM.
    Llm,
    /// Text to speech.
    Tts,
}

impl Stage {
    /// `stt`, `llm`, `tts`.
    pub const fn word(self) -> &'static str {
        match self {
            Stage::Stt => "stt",
            Stage::Llm => "llm",
            Stage::Tts => "tts",
        }
    }

    /// The path under the base URL.
    pub const fn path(self) -> &'static str {
        match self {
            Stage::Stt => "/audio/transcriptions",
            Stage::Llm => "/chat/completions",
            Stage::Tts => "/audio/speech",
        }
    }
}

/// The endpoint URL for a stage: `url` as is when it already ends with the stage's path,
/// else the path appended to it.
pub fn endpoint_url(stage: Stage, url: &str) -> Result<Uri, AgentError> {
    let trimmed = url.trim().trim_end_matches('/');
    let whole = if trimmed.ends_with(stage.path()) {
        trimmed.to_owned()
    } else {
        format!("{trimmed}{}", stage.path())
    };
    let what = stage.word();
    let uri: Uri = whole.parse().map_err(|e| {
        provider_error(
            PROVIDER,
            format!("pipeline.{what}.url {url:?} is not a URL ({e}): use e.g. http://127.0.0.1:8000/v1"),
        )
    })?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        _ => Err(provider_error(
            PROVIDER,
            format!("pipeline.{what}.url {url:?} must be an http:// or https:// URL with a host"),
        )),
    }
}

/// A host a key may reach over plain http: loopback, private (RFC 1918, ULA) or
/// link-local addresses, and `localhost`. Names other than `localhost` cannot be told.
fn inside_the_building(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00 || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

fn check_key_transport(stage: Stage, uri: &Uri, key: Option<&String>) -> Result<(), AgentError> {
    let (Some(_), Some("http")) = (key, uri.scheme_str()) else { return Ok(()) };
    let host = uri.host().unwrap_or_default();
    if host.parse::<IpAddr>().is_ok() && !inside_the_building(host) {
        return Err(provider_error(
            PROVIDER,
            format!(
                "pipeline.{} sends its API key over plain http:// to the public address {host}: use https://",
                stage.word()
            ),
        ));
    }
    if !inside_the_building(host) {
        tracing::warn!(stage = stage.word(), %host, "the API key travels over plain http://: use https:// unless this host is on your own network");
    }
    Ok(())
}

impl PipelineConfig {
    /// Check every setting a call would trip over; the three endpoint URLs in order.
    pub fn check(&self) -> Result<[Uri; 3], AgentError> {
        let err = |detail: String| Err(provider_error(PROVIDER, detail));
        let stt = endpoint_url(Stage::Stt, &self.stt.url)?;
        let llm = endpoint_url(Stage::Llm, &self.llm.url)?;
        let tts = endpoint_url(Stage::Tts, &self.tts.url)?;
        check_key_transport(Stage::Stt, &stt, self.stt.api_key.as_ref())?;
        check_key_transport(Stage::Llm, &llm, self.llm.api_key.as_ref())?;
        check_key_transport(Stage::Tts, &tts, self.tts.api_key.as_ref())?;
        for (what, model) in [("stt", &self.stt.model), ("llm", &self.llm.model), ("tts", &self.tts.model)] {
            if model.trim().is_empty() {
                return err(format!("pipeline.{what}.model is empty: name the model the server serves"));
            }
        }
        if !matches!(self.stt.sample_rate, 8000 | 16000) {
            return err(format!("pipeline.stt.sample_rate {} is not 8000 or 16000", self.stt.sample_rate));
        }
        if !matches!(self.tts.sample_rate, 8000 | 16000 | 22050 | 24000 | 44100 | 48000) {
            return err(format!(
                "pipeline.tts.sample_rate {} is not one of 8000, 16000, 22050, 24000, 44100, 48000",
                self.tts.sample_rate
            ));
        }
        if self.tts.voice.trim().is_empty() {
            return err("pipeline.tts.voice is empty: name a voice the TTS server has".into());
        }
        if let Some(speed) = self.tts.speed {
            if !(0.25..=4.0).contains(&speed) {
                return err(format!("pipeline.tts.speed {speed} is outside 0.25-4.0"));
            }
        }
        if let Some(key) = self.end_of_turn_key {
            crate::provider::Digit::new(key)?;
        }
        if self.max_history_messages < 2 {
            return err("pipeline.max_history_messages must be at least 2".into());
        }
        Ok([stt, llm, tts])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_stage_path_and_a_whole_url_is_kept() {
        let u = endpoint_url(Stage::Llm, "http://127.0.0.1:11434/v1/").expect("url");
        assert_eq!(u.to_string(), "http://127.0.0.1:11434/v1/chat/completions");
        let u = endpoint_url(Stage::Stt, "http://10.0.0.5:8080/v1/audio/transcriptions").expect("url");
        assert_eq!(u.path(), "/v1/audio/transcriptions");
        for bad in ["ws://x/v1", "127.0.0.1:8000", "http:///v1", "not a url"] {
            assert!(endpoint_url(Stage::Tts, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_never_crosses_the_internet_in_clear() {
        let key = Some("sk-x".to_owned());
        let public: Uri = "http://8.8.8.8/v1/chat/completions".parse().expect("uri");
        assert!(check_key_transport(Stage::Llm, &public, key.as_ref()).is_err());
        for ok in [
            "http://192.168.1.20:11434/v1",
            "http://127.0.0.1/v1",
            "http://[fd00::1]/v1",
            "https://8.8.8.8/v1",
        ] {
            let uri: Uri = ok.parse().expect("uri");
            assert!(check_key_transport(Stage::Llm, &uri, key.as_ref()).is_ok(), "{ok}");
        }
        // No key: nothing to leak.
        assert!(check_key_transport(Stage::Llm, &public, None).is_ok());
    }
}
