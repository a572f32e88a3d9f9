//! The speech request, checked strictly ([`validate`] → [`SpeechRequest`] or the 400),
//! and what the answer is ([`Speech`]: rate, length, tone): raw PCM16 LE mono, as long as
//! the text (ms per character, a minimum, divided by `speed`).

use serde_json::Value;

use crate::{ApiError, TtsSettings};

/// Fields accepted (others: 400).
const KNOWN: &[&str] =
    &["model", "input", "voice", "response_format", "speed", "stream_format", "instructions", "sample_rate"];

/// OpenAI's input limit, in characters.
pub const MAX_INPUT: usize = 4096;

/// A speech request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechRequest {
    /// `model`.
    pub model: String,
    /// `input`.
    pub input: String,
    /// `voice`.
    pub voice: String,
    /// `speed` (1.0 when absent).
    pub speed: f64,
    /// `stream_format`, when given (`audio`).
    pub stream_format: Option<String>,
    /// `instructions`, when given.
    pub instructions: Option<String>,
    /// speaches' `sample_rate`, when given.
    pub sample_rate: Option<u32>,
}

/// Check `body` strictly under `settings`.
pub fn validate(body: &[u8], settings: &TtsSettings) -> Result<SpeechRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(None, format!("We could not parse the JSON body of your request. ({e})"))
    })?;
    let body = value
        .as_object()
        .ok_or_else(|| ApiError::invalid(None, "The request body must be a JSON object."))?;
    let known = |k: &str| KNOWN.contains(&k) && (k != "sample_rate" || settings.accept_sample_rate);
    if let Some(unknown) = body.keys().find(|k| !known(k)) {
        return Err(ApiError::invalid(
            Some(unknown),
            format!("Unrecognized request argument supplied: {unknown}"),
        ));
    }
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => {
                Err(ApiError::invalid(Some(key), format!("Invalid type for '{key}': expected a string.")))
            }
        }
    };
    let model = text("model")?.filter(|m| !m.is_empty());
    let model =
        model.ok_or_else(|| ApiError::invalid(Some("model"), "Missing required parameter: 'model'."))?;
    let input = text("input")?
        .ok_or_else(|| ApiError::invalid(Some("input"), "Missing required parameter: 'input'."))?;
    if input.trim().is_empty() {
        return Err(ApiError::invalid(
            Some("input"),
            "Invalid 'input': empty string. Expected a non-empty string.",
        ));
    }
    let chars = input.chars().count();
    if chars > MAX_INPUT {
        return Err(ApiError::invalid(
            Some("input"),
            format!("Invalid 'input': string too long. Expected a string with maximum length {MAX_INPUT}, but got a string with length {chars} instead."),
        ));
    }
    let voice = text("voice")?.filter(|v| !v.is_empty());
    let voice =
        voice.ok_or_else(|| ApiError::invalid(Some("voice"), "Missing required parameter: 'voice'."))?;
    if !settings.voices.is_empty() && !settings.voices.contains(&voice) {
        return Err(ApiError::invalid(
            Some("voice"),
            format!(
                "Invalid value for 'voice': '{voice}'. Supported values are: {}.",
                settings.voices.join(", ")
            ),
        ));
    }
    match text("response_format")?.as_deref() {
        Some("pcm") => {}
        None => {
            return Err(ApiError::invalid(
                Some("response_format"),
                "response_format defaults to mp3, which this fake does not encode: ask for 'pcm'",
            ));
        }
        Some(other @ ("mp3" | "opus" | "aac" | "flac" | "wav")) => {
            return Err(ApiError::invalid(
                Some("response_format"),
                format!("response_format '{other}' is not supported by this fake: ask for 'pcm'"),
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(
                Some("response_format"),
                format!("Invalid value: '{other}'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'."),
            ));
        }
    }
    let speed = match body.get("speed") {
        None | Some(Value::Null) => 1.0,
        Some(v) => match v.as_f64() {
            Some(s) if (0.25..=4.0).contains(&s) => s,
            _ => {
                return Err(ApiError::invalid(
                    Some("speed"),
                    format!("Invalid 'speed': {v}. Expected a number from 0.25 to 4.0."),
                ));
            }
        },
    };
    let stream_format = text("stream_format")?;
    match stream_format.as_deref() {
        None | Some("audio") => {}
        Some("sse") => {
            return Err(ApiError::invalid(
                Some("stream_format"),
                "stream_format 'sse' is not supported for this model (as for tts-1): use 'audio'",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(
                Some("stream_format"),
                format!("Invalid value: '{other}'. Supported values are: 'sse' and 'audio'."),
            ));
        }
    }
    let instructions = text("instructions")?;
    let sample_rate = match body.get("sample_rate") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(r) if (8000..=48_000).contains(&r) => Some(r as u32),
            _ => {
                return Err(ApiError::invalid(
                    Some("sample_rate"),
                    format!("Invalid 'sample_rate': {v}. Expected an integer from 8000 to 48000."),
                ));
            }
        },
    };
    Ok(SpeechRequest { model, input, voice, speed, stream_format, instructions, sample_rate })
}

/// What the answer to one request is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speech {
    /// Its sample rate.
    pub sample_rate: u32,
    /// Its length in ms.
    pub ms: u32,
    /// Its tone.
    pub hz: f64,
    /// Its length in bytes.
    pub bytes: usize,
}

impl Speech {
    /// The answer to `request`, the `n`th (from 1) of this server: its pitch steps
    /// through 8 notes from 330 Hz so consecutive sentences differ.
    pub fn plan(request: &SpeechRequest, settings: &TtsSettings, n: usize) -> Speech {
        let sample_rate = request.sample_rate.unwrap_or(settings.sample_rate).max(1);
        let chars = request.input.chars().count() as u64;
        let base = (chars * u64::from(settings.ms_per_char)).max(u64::from(settings.min_ms));
        let ms = (base as f64 / request.speed).round() as u32;
        let samples = u64::from(sample_rate) * u64::from(ms) / 1000;
        let hz = 330.0 * 2f64.powf(((n.max(1) - 1) % 8) as f64 / 12.0);
        Speech { sample_rate, ms, hz, bytes: samples as usize * 2 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<SpeechRequest, ApiError> {
        validate(body.as_bytes(), &TtsSettings::default())
    }

    #[test]
    fn fields_are_checked() {
        let ok = check(r#"{"model":"tts-1","input":"Hello there.","voice":"alloy","response_format":"pcm","speed":2,"sample_rate":8000}"#)
            .expect("valid");
        assert_eq!((ok.speed, ok.sample_rate), (2.0, Some(8000)));
        let long =
            format!(r#"{{"model":"m","input":"{}","voice":"v","response_format":"pcm"}}"#, "a".repeat(4097));
        for (body, needle) in [
            (r#"{"input":"x","voice":"v","response_format":"pcm"}"#.to_owned(), "'model'"),
            (r#"{"model":"m","input":"  ","voice":"v","response_format":"pcm"}"#.to_owned(), "empty"),
            (long, "too long"),
            (r#"{"model":"m","input":"x","voice":"v"}"#.to_owned(), "mp3"),
            (r#"{"model":"m","input":"x","voice":"v","response_format":"wav"}"#.to_owned(), "not supported"),
            (
                r#"{"model":"m","input":"x","voice":"v","response_format":"pcm","speed":5}"#.to_owned(),
                "speed",
            ),
            (
                r#"{"model":"m","input":"x","voice":"v","response_format":"pcm","stream_format":"sse"}"#
                    .to_owned(),
                "sse",
            ),
            (
                r#"{"model":"m","input":"x","voice":"v","response_format":"pcm","sample_rate":96000}"#
                    .to_owned(),
                "sample_rate",
            ),
            (
                r#"{"model":"m","input":"x","voice":"v","response_format":"pcm","lang":"en"}"#.to_owned(),
                "Unrecognized",
            ),
        ] {
            let e = check(&body).expect_err("refused");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        let strict =
            TtsSettings { accept_sample_rate: false, voices: vec!["alloy".into()], ..TtsSettings::default() };
        let speaches =
            r#"{"model":"m","input":"x","voice":"alloy","response_format":"pcm","sample_rate":8000}"#;
        assert!(validate(speaches.as_bytes(), &strict).is_err());
        assert!(validate(br#"{"model":"m","input":"x","voice":"nova","response_format":"pcm"}"#, &strict)
            .is_err());
    }

    #[test]
    fn length_follows_text_rate_and_speed() {
        let settings = TtsSettings::default();
        let request = check(r#"{"model":"m","input":"0123456789","voice":"v","response_format":"pcm"}"#)
            .expect("valid");
        let s = Speech::plan(&request, &settings, 1);
        assert_eq!((s.ms, s.sample_rate, s.bytes, s.hz), (550, 24_000, 26_400, 330.0));
        let fast = SpeechRequest { speed: 2.0, sample_rate: Some(8000), ..request.clone() };
        assert_eq!(Speech::plan(&fast, &settings, 2).bytes, 275 * 16);
        let short = SpeechRequest { input: "Hi".into(), ..request };
        assert_eq!(Speech::plan(&short, &settings, 9).ms, 200, "the minimum");
        assert_eq!(Speech::plan(&short, &settings, 9).hz, 330.0, "the pitch cycles through 8 notes");
    }
}
