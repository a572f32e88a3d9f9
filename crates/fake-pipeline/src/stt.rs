//! The transcription request, checked strictly: [`validate`] turns the form's parts into
//! an [`SttRequest`] (its WAV parsed) or the 400 a server answers; [`transcribe`] decides
//! the text from the [`SttSettings`] and the audio.

use std::collections::BTreeMap;

use crate::multipart::Part;
use crate::wav::{self, Wav};
use crate::{ApiError, SttSettings};

/// Fields accepted beside `file` (others: 400).
const KNOWN: &[&str] = &[
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "stream",
    "chunking_strategy",
    "include[]",
];

/// OpenAI's minimum audio length.
const MIN_MS: u32 = 100;

/// How the text is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `{"text": …}` (the default).
    Json,
    /// The text itself, `text/plain`.
    Text,
}

/// A transcription request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct SttRequest {
    /// Every text field, by name (repeated `…[]` fields joined with ",").
    pub fields: BTreeMap<String, String>,
    /// The file's name.
    pub filename: String,
    /// The file part's Content-Type, when given.
    pub file_content_type: Option<String>,
    /// The audio.
    pub wav: Wav,
    /// `response_format`.
    pub response_format: ResponseFormat,
}

/// Check the form strictly.
pub fn validate(parts: Vec<Part>) -> Result<SttRequest, ApiError> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut file = None;
    for part in parts {
        if part.name == "file" {
            if file.is_some() {
                return Err(ApiError::invalid(Some("file"), "more than one 'file' part"));
            }
            file = Some(part);
            continue;
        }
        if !KNOWN.contains(&part.name.as_str()) {
            return Err(ApiError::invalid(
                Some(&part.name),
                format!("Unrecognized request argument supplied: {}", part.name),
            ));
        }
        if part.filename.is_some() {
            return Err(ApiError::invalid(
                Some(&part.name),
                format!("'{}' must be a text field, not a file", part.name),
            ));
        }
        let value = String::from_utf8(part.data)
            .map_err(|_| ApiError::invalid(Some(&part.name), format!("'{}' is not UTF-8 text", part.name)))?;
        match fields.get_mut(&part.name) {
            Some(old) if part.name.ends_with("[]") => {
                old.push(',');
                old.push_str(&value);
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    Some(&part.name),
                    format!("'{}' is given more than once", part.name),
                ));
            }
            None => {
                fields.insert(part.name, value);
            }
        }
    }
    if fields.get("model").is_none_or(|m| m.is_empty()) {
        return Err(ApiError::invalid(Some("model"), "you must provide a model parameter"));
    }
    if let Some(language) = fields.get("language") {
        if language.len() != 2 || !language.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ApiError::invalid(
                Some("language"),
                format!("Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format."),
            ));
        }
    }
    if let Some(t) = fields.get("temperature") {
        if !t.parse::<f64>().is_ok_and(|t| (0.0..=1.0).contains(&t)) {
            return Err(ApiError::invalid(
                Some("temperature"),
                format!("Invalid 'temperature' {t:?}: a number from 0 to 1"),
            ));
        }
    }
    if fields.get("stream").is_some_and(|s| s == "true") {
        return Err(ApiError::invalid(Some("stream"), "this fake does not stream transcriptions"));
    }
    let response_format = match fields.get("response_format").map(String::as_str) {
        None | Some("json") => ResponseFormat::Json,
        Some("text") => ResponseFormat::Text,
        Some(other @ ("srt" | "vtt" | "verbose_json" | "diarized_json")) => {
            return Err(ApiError::invalid(
                Some("response_format"),
                format!("response_format '{other}' is not supported by this fake (json or text)"),
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(
                Some("response_format"),
                format!(
                    "Invalid value '{other}' for 'response_format': json, text, srt, verbose_json or vtt"
                ),
            ));
        }
    };
    let file = file.ok_or_else(|| ApiError::invalid(Some("file"), "Missing required parameter: 'file'."))?;
    let filename = file.filename.clone().filter(|f| !f.is_empty());
    let filename =
        filename.ok_or_else(|| ApiError::invalid(Some("file"), "the 'file' part has no filename"))?;
    if !filename.to_ascii_lowercase().ends_with(".wav") {
        return Err(ApiError::invalid(
            Some("file"),
            format!("Invalid file format of '{filename}': this fake takes .wav files only"),
        ));
    }
    let wav = wav::parse(&file.data).map_err(|e| {
        ApiError::invalid(Some("file"), format!("Invalid file format: {e}")).with_code("invalid_value")
    })?;
    if wav.duration_ms() < MIN_MS {
        return Err(ApiError::invalid(
            Some("file"),
            "Audio file is too short. Minimum audio length is 0.1 seconds.",
        )
        .with_code("audio_too_short"));
    }
    Ok(SttRequest { fields, filename, file_content_type: file.content_type, wav, response_format })
}

/// The text for `request`: silence says nothing; else the next scripted transcript
/// (taken from `settings`); else the words of its tones.
pub fn transcribe(settings: &mut SttSettings, wav: &Wav) -> String {
    if wav::rms_dbfs(&wav.samples) < settings.silence_dbfs {
        return String::new();
    }
    if !settings.transcripts.is_empty() {
        return settings.transcripts.remove(0);
    }
    wav::tone_words(&wav.samples, wav.sample_rate, &settings.tone_words, settings.silence_dbfs).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, value: &str) -> Part {
        Part { name: name.into(), filename: None, content_type: None, data: value.as_bytes().to_vec() }
    }

    fn file(samples: &[i16]) -> Part {
        Part {
            name: "file".into(),
            filename: Some("turn.wav".into()),
            content_type: Some("audio/wav".into()),
            data: wav::encode(8000, samples),
        }
    }

    #[test]
    fn fields_and_file_are_checked() {
        let speech = wav::tone(8000, 440.0, 300);
        let ok =
            validate(vec![part("model", "whisper-1"), part("language", "uk"), file(&speech)]).expect("valid");
        assert_eq!(
            (ok.response_format, ok.fields.get("language").map(String::as_str)),
            (ResponseFormat::Json, Some("uk"))
        );
        for (parts, needle) in [
            (vec![file(&speech)], "model"),
            (vec![part("model", "m")], "'file'"),
            (vec![part("model", "m"), part("language", "english"), file(&speech)], "ISO-639-1"),
            (vec![part("model", "m"), part("response_format", "srt"), file(&speech)], "not supported"),
            (vec![part("model", "m"), part("bogus", "1"), file(&speech)], "Unrecognized"),
            (vec![part("model", "m"), part("model", "n"), file(&speech)], "more than once"),
            (vec![part("model", "m"), file(&wav::tone(8000, 440.0, 50))], "too short"),
        ] {
            let e = validate(parts).expect_err("refused");
            assert!(e.message.contains(needle), "{}", e.message);
        }
        let mut mp3 = file(&speech);
        mp3.filename = Some("turn.mp3".into());
        assert!(validate(vec![part("model", "m"), mp3]).is_err());
    }

    #[test]
    fn silence_says_nothing_and_keeps_the_script() {
        let mut settings = SttSettings { transcripts: vec!["hello".into()], ..SttSettings::default() };
        let quiet = Wav { sample_rate: 8000, samples: wav::silence(8000, 500) };
        let loud = Wav { sample_rate: 8000, samples: wav::tone(8000, 440.0, 500) };
        assert_eq!(transcribe(&mut settings, &quiet), "");
        assert_eq!(transcribe(&mut settings, &loud), "hello");
        assert_eq!(transcribe(&mut settings, &loud), "", "exhausted, no tone words");
    }
}
