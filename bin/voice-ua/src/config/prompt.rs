//! Prompt files the call plays itself (the consent prompt): a WAV file (8 kHz mono,
//! 16-bit PCM, μ-law or A-law) or raw μ-law at 8 kHz (like `agent.fallback_audio`), read
//! once at start into μ-law 8 kHz. Anything else is one clear line naming the key.

use super::error::{invalid, ConfigError};
use super::read::read_bounded;
use std::path::Path;
use voice_ua_media::g711;

/// The longest prompt read: 10 minutes of 16-bit audio.
const MAX_PROMPT_BYTES: u64 = 10 * 60 * 8000 * 2 + 4096;

/// Read `path` (for config key `key`) as μ-law 8 kHz.
pub fn read_ulaw(key: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let shown = path.display().to_string();
    let bytes = read_bounded(path, MAX_PROMPT_BYTES)
        .map_err(|e| invalid(key, &shown, &format!("cannot read it: {e}")))?;
    let ulaw = if bytes.starts_with(b"RIFF") {
        wav_to_ulaw(&bytes).map_err(|why| invalid(key, &shown, why))?
    } else {
        bytes
    };
    if ulaw.is_empty() {
        return Err(invalid(key, &shown, "the file holds no audio"));
    }
    Ok(ulaw)
}

/// A WAV file's audio as μ-law 8 kHz.
pub fn wav_to_ulaw(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    const WANT: &str = "a WAV file must be 8000 Hz mono, 16-bit PCM, μ-law or A-law";
    if bytes.len() < 12 || &bytes[8..12] != b"WAVE" {
        return Err("not a WAV file (no WAVE header)");
    }
    let mut format: Option<(u16, u16, u32, u16)> = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
        let body = bytes.get(at + 8..(at + 8).saturating_add(len).min(bytes.len())).unwrap_or_default();
        match id {
            b"fmt " if body.len() >= 16 => {
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                format = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            }
            b"data" => {
                let Some((tag, channels, rate, bits)) = format else {
                    return Err("no fmt chunk before the audio");
                };
                if channels != 1 || rate != 8000 {
                    return Err(WANT);
                }
                return match (tag, bits) {
                    (1, 16) => Ok(body
                        .chunks_exact(2)
                        .map(|s| g711::ulaw_encode(i16::from_le_bytes([s[0], s[1]])))
                        .collect()),
                    (7, 8) => Ok(body.to_vec()),
                    (6, 8) => Ok(body.iter().map(|&c| g711::alaw_to_ulaw(c)).collect()),
                    _ => Err(WANT),
                };
            }
            _ => {}
        }
        at = at.saturating_add(8).saturating_add(len).saturating_add(len & 1);
    }
    Err("no audio (data chunk) in the WAV file")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(tag: u16, bits: u16, rate: u32, data: &[u8]) -> Vec<u8> {
        let mut w = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&tag.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&rate.to_le_bytes());
        w.extend_from_slice(&(rate * u32::from(bits) / 8).to_le_bytes());
        w.extend_from_slice(&(bits / 8).to_le_bytes());
        w.extend_from_slice(&bits.to_le_bytes());
        w.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // an odd chunk, padded
        w.extend_from_slice(b"data");
        w.extend_from_slice(&(data.len() as u32).to_le_bytes());
        w.extend_from_slice(data);
        w
    }

    #[test]
    fn wav_files_become_ulaw_and_the_wrong_kind_is_refused() {
        let pcm: Vec<u8> = [1000i16, -1000, 0].iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(
            wav_to_ulaw(&wav(1, 16, 8000, &pcm)),
            Ok(vec![g711::ulaw_encode(1000), g711::ulaw_encode(-1000), g711::ulaw_encode(0)])
        );
        assert_eq!(wav_to_ulaw(&wav(7, 8, 8000, &[1, 2, 3])), Ok(vec![1, 2, 3]));
        assert_eq!(wav_to_ulaw(&wav(6, 8, 8000, &[0xd5])), Ok(vec![g711::alaw_to_ulaw(0xd5)]));
        assert!(wav_to_ulaw(&wav(1, 16, 16000, &pcm)).expect_err("16 kHz").contains("8000 Hz"));
        assert!(wav_to_ulaw(b"RIFF\0\0\0\0WAVE").is_err());
        assert!(wav_to_ulaw(b"RIFF").is_err());
    }
}
