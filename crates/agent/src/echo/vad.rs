//! The level of a frame in the agent's audio format, for the echo agent's speech detector
//! (the detector itself lives in `voice_ua_media::vad`).

use voice_ua_media::vad::samples_level_dbfs;

use crate::provider::AudioFormat;

/// Mean power of `bytes` (in `format`) relative to a full-scale square wave, in dB.
pub fn level_dbfs(format: AudioFormat, bytes: &[u8]) -> f32 {
    let samples = bytes.len() / format.bytes_per_sample();
    samples_level_dbfs((0..samples).map(|i| format.sample(bytes, i).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use voice_ua_media::pcm_level_dbfs;
    use voice_ua_media::vad::SILENCE_DBFS;

    use super::*;

    #[test]
    fn levels() {
        let silence = [0xFFu8; 160];
        assert_eq!(level_dbfs(AudioFormat::Ulaw8k, &silence), SILENCE_DBFS);
        assert_eq!(level_dbfs(AudioFormat::Ulaw8k, &[]), SILENCE_DBFS);
        // Full-scale square wave in linear16: 0 dBFS, as its samples measure.
        let pcm: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { i16::MAX } else { -i16::MAX }).collect();
        let square: Vec<u8> = pcm.iter().flat_map(|x| x.to_le_bytes()).collect();
        let db = level_dbfs(AudioFormat::Linear16 { rate_hz: 8000 }, &square);
        assert!(db.abs() < 0.01, "{db}");
        assert_eq!(db, pcm_level_dbfs(&pcm));
    }
}
