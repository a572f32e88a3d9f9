//! Audio between the call's format and a dialect's wire format, both at 8 kHz: μ-law for
//! Twilio, PCM16 LE (or μ-law) for ASP. Appends into a buffer the caller reuses: no
//! allocation once it has grown to a frame.

use voice_ua_media::g711::{alaw_to_ulaw, ulaw_to_alaw};

use crate::provider::AudioFormat;
use crate::AgentError;

/// 8 kHz PCM16 LE, the wire format of ASP's default.
pub const PCM16_8K: AudioFormat = AudioFormat::Linear16 { rate_hz: 8000 };

/// The call formats the WebSocket bridge carries: G.711 either law, or linear16 at
/// 8 kHz (the bots speak 8 kHz; nothing is resampled).
pub fn check_format(format: AudioFormat) -> Result<(), AgentError> {
    match format {
        AudioFormat::Ulaw8k | AudioFormat::Alaw8k | PCM16_8K => Ok(()),
        other => Err(AgentError::UnsupportedFormat { format: other }),
    }
}

/// Append `bytes` in `from` to `out` in `to` (both 8 kHz). A trailing half sample of
/// linear16 is dropped.
pub fn convert(from: AudioFormat, to: AudioFormat, bytes: &[u8], out: &mut Vec<u8>) {
    match (from, to) {
        (a, b) if a == b => out.extend_from_slice(bytes),
        (AudioFormat::Ulaw8k, AudioFormat::Alaw8k) => out.extend(bytes.iter().map(|&c| ulaw_to_alaw(c))),
        (AudioFormat::Alaw8k, AudioFormat::Ulaw8k) => out.extend(bytes.iter().map(|&c| alaw_to_ulaw(c))),
        _ => {
            let samples = bytes.len() / from.bytes_per_sample();
            out.reserve(samples * to.bytes_per_sample());
            for i in 0..samples {
                if let Some(x) = from.sample(bytes, i) {
                    to.push_sample(out, x);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let mut out = Vec::new();
        convert(AudioFormat::Ulaw8k, AudioFormat::Ulaw8k, &[1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
        out.clear();
        convert(AudioFormat::Ulaw8k, AudioFormat::Alaw8k, &[0xFF], &mut out);
        assert_eq!(out, [0xD5], "μ-law silence is A-law silence");
        out.clear();
        convert(AudioFormat::Ulaw8k, PCM16_8K, &[0xFF, 0x80], &mut out);
        assert_eq!(out, [0, 0, 0x7C, 0x7D], "0 and +32124 little-endian");
        let mut back = Vec::new();
        convert(PCM16_8K, AudioFormat::Ulaw8k, &out, &mut back);
        assert_eq!(back, [0xFF, 0x80]);
        back.clear();
        convert(PCM16_8K, AudioFormat::Alaw8k, &[0, 0, 7], &mut back);
        assert_eq!(back, [0xD5], "the odd byte is dropped");
        assert!(check_format(AudioFormat::Linear16 { rate_hz: 16000 }).is_err());
        assert!(check_format(AudioFormat::Alaw8k).is_ok());
    }
}
