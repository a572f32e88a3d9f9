//! Energy-based speech detection for the echo agent: a frame's level in dBFS against an
//! adaptive noise floor, with an onset run and a hangover run.
//!
//! The floor follows quiet frames quickly (30 % of the gap per frame) and rises slowly
//! (at most [`FLOOR_RISE_DB_PER_FRAME`], 3 dB/s), so steady background noise becomes the
//! floor within seconds while a talker's pauses keep pulling it back down. A frame is loud
//! when it is `margin_db` above the floor and above `min_speech_dbfs`; speech starts after
//! `onset_frames` loud frames in a row and ends after `hangover_frames` quiet ones.

use crate::provider::AudioFormat;

/// The lowest level reported, for digital silence.
pub const SILENCE_DBFS: f32 = -100.0;
/// How fast the noise floor may rise, per 20 ms frame.
pub const FLOOR_RISE_DB_PER_FRAME: f32 = 0.06;
/// Fraction of the distance the floor falls towards a quieter frame, per frame.
const FLOOR_FALL: f32 = 0.3;
/// The floor a call starts with.
const INITIAL_FLOOR_DBFS: f32 = -70.0;

/// Mean power of `bytes` (in `format`) relative to a full-scale square wave, in dB.
pub fn level_dbfs(format: AudioFormat, bytes: &[u8]) -> f32 {
    let samples = bytes.len() / format.bytes_per_sample();
    if samples == 0 {
        return SILENCE_DBFS;
    }
    let mut sum: u64 = 0;
    for i in 0..samples {
        let x = i64::from(format.sample(bytes, i).unwrap_or(0));
        sum += (x * x) as u64;
    }
    let mean = sum as f64 / samples as f64;
    if mean < 1.0 {
        return SILENCE_DBFS;
    }
    let db = 10.0 * (mean / (32768.0 * 32768.0)).log10();
    (db as f32).max(SILENCE_DBFS)
}

/// Mean power of 16-bit PCM samples relative to a full-scale square wave, in dB (what
/// [`level_dbfs`] computes after decoding).
pub fn pcm_level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let sum: u64 = samples.iter().map(|&x| (i64::from(x) * i64::from(x)) as u64).sum();
    let mean = sum as f64 / samples.len() as f64;
    if mean < 1.0 {
        return SILENCE_DBFS;
    }
    ((10.0 * (mean / (32768.0 * 32768.0)).log10()) as f32).max(SILENCE_DBFS)
}

/// What one frame did to the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VadStep {
    /// The frame was above the threshold.
    pub loud: bool,
    /// Speech started with this frame (the onset run just completed).
    pub started: bool,
    /// Speech ended with this frame (the hangover run just completed).
    pub ended: bool,
}

/// The detector's state for one call.
#[derive(Debug, Clone)]
pub struct SpeechDetector {
    floor_dbfs: f32,
    margin_db: f32,
    min_speech_dbfs: f32,
    onset_frames: u32,
    hangover_frames: u32,
    loud_run: u32,
    quiet_run: u32,
    speaking: bool,
}

impl SpeechDetector {
    /// A detector that starts with a low floor and silence.
    pub fn new(margin_db: f32, min_speech_dbfs: f32, onset_frames: u32, hangover_frames: u32) -> Self {
        SpeechDetector {
            floor_dbfs: INITIAL_FLOOR_DBFS,
            margin_db,
            min_speech_dbfs,
            onset_frames: onset_frames.max(1),
            hangover_frames: hangover_frames.max(1),
            loud_run: 0,
            quiet_run: 0,
            speaking: false,
        }
    }

    /// Feed one frame's level; `extra_db` raises the threshold (used during playback).
    pub fn push(&mut self, level_dbfs: f32, extra_db: f32) -> VadStep {
        let threshold = (self.floor_dbfs + self.margin_db).max(self.min_speech_dbfs) + extra_db;
        let loud = level_dbfs > threshold;
        let mut step = VadStep { loud, ..VadStep::default() };

        if level_dbfs < self.floor_dbfs {
            self.floor_dbfs += (level_dbfs - self.floor_dbfs) * FLOOR_FALL;
        } else {
            self.floor_dbfs += (level_dbfs - self.floor_dbfs).min(FLOOR_RISE_DB_PER_FRAME);
        }

        if loud {
            self.loud_run = self.loud_run.saturating_add(1);
            self.quiet_run = 0;
        } else {
            self.loud_run = 0;
            self.quiet_run = self.quiet_run.saturating_add(1);
        }
        if !self.speaking && self.loud_run >= self.onset_frames {
            self.speaking = true;
            step.started = true;
        } else if self.speaking && self.quiet_run >= self.hangover_frames {
            self.speaking = false;
            step.ended = true;
        }
        step
    }

    /// Inside an utterance (between `started` and `ended`).
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// The current noise floor estimate.
    pub fn floor_dbfs(&self) -> f32 {
        self.floor_dbfs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let silence = [0xFFu8; 160];
        assert_eq!(level_dbfs(AudioFormat::Ulaw8k, &silence), SILENCE_DBFS);
        assert_eq!(level_dbfs(AudioFormat::Ulaw8k, &[]), SILENCE_DBFS);
        // Full-scale square wave in linear16: 0 dBFS.
        let mut square = Vec::new();
        for i in 0..160 {
            let x: i16 = if i % 2 == 0 { i16::MAX } else { -i16::MAX };
            square.extend_from_slice(&x.to_le_bytes());
        }
        let db = level_dbfs(AudioFormat::Linear16 { rate_hz: 8000 }, &square);
        assert!(db.abs() < 0.01, "{db}");
        let pcm: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { i16::MAX } else { -i16::MAX }).collect();
        assert!(pcm_level_dbfs(&pcm).abs() < 0.01);
        assert_eq!(pcm_level_dbfs(&[0; 160]), SILENCE_DBFS);
        let quarter: Vec<i16> = pcm.iter().map(|x| x / 4).collect();
        assert!((pcm_level_dbfs(&quarter) + 12.04).abs() < 0.01, "{}", pcm_level_dbfs(&quarter));
    }

    #[test]
    fn onset_and_hangover_counts() {
        let mut vad = SpeechDetector::new(12.0, -45.0, 3, 30);
        assert!(!vad.push(-20.0, 0.0).started);
        assert!(!vad.push(-20.0, 0.0).started);
        assert!(vad.push(-20.0, 0.0).started);
        for _ in 0..29 {
            assert!(!vad.push(-90.0, 0.0).ended);
        }
        assert!(vad.push(-90.0, 0.0).ended);
        assert!(!vad.speaking());
    }
}
