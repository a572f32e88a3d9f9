//! Voice activity detection for one direction of a call: a frame's level in dBFS, the
//! energy detector ([`SpeechDetector`]) and the caller-side detector a call uses for turn
//! timing ([`CallerVad`]).
//!
//! The detector compares a frame's level against an adaptive noise floor, with an onset
//! run and a hangover run. The floor follows quiet frames quickly (30 % of the gap per
//! frame) and rises slowly (at most [`FLOOR_RISE_DB_PER_FRAME`], 3 dB/s), so steady
//! background noise becomes the floor within seconds while a talker's pauses keep pulling
//! it back down. A frame is loud when it is `margin_db` above the floor and above
//! `min_speech_dbfs`; speech starts after `onset_frames` loud frames in a row and ends
//! after `hangover_frames` quiet ones. Pushing a frame allocates nothing.

/// The lowest level reported, for digital silence.
pub const SILENCE_DBFS: f32 = -100.0;
/// How fast the noise floor may rise, per 20 ms frame.
pub const FLOOR_RISE_DB_PER_FRAME: f32 = 0.06;
/// Fraction of the distance the floor falls towards a quieter frame, per frame.
const FLOOR_FALL: f32 = 0.3;
/// The floor a detector starts with.
const INITIAL_FLOOR_DBFS: f32 = -70.0;

/// Mean power of 16-bit samples relative to a full-scale square wave, in dB
/// ([`SILENCE_DBFS`] for none or digital silence). For samples that need decoding first.
pub fn samples_level_dbfs(samples: impl IntoIterator<Item = i16>) -> f32 {
    let mut sum: u64 = 0;
    let mut count: u64 = 0;
    for x in samples {
        let x = i64::from(x);
        sum += (x * x) as u64;
        count += 1;
    }
    if count == 0 {
        return SILENCE_DBFS;
    }
    let mean = sum as f64 / count as f64;
    if mean < 1.0 {
        return SILENCE_DBFS;
    }
    ((10.0 * (mean / (32768.0 * 32768.0)).log10()) as f32).max(SILENCE_DBFS)
}

/// Mean power of 16-bit PCM samples relative to a full-scale square wave, in dB.
pub fn pcm_level_dbfs(samples: &[i16]) -> f32 {
    samples_level_dbfs(samples.iter().copied())
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

/// The energy detector's state for one direction of one call.
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

/// The caller's side: 12 dB over the noise floor and above -45 dBFS; speech starts after
/// 60 ms (3 frames) and ends after 200 ms (10 frames) of quiet.
pub(crate) const CALLER_MARGIN_DB: f32 = 12.0;
const CALLER_MIN_SPEECH_DBFS: f32 = -45.0;
pub(crate) const CALLER_ONSET_FRAMES: u32 = 3;
const CALLER_HANGOVER_FRAMES: u32 = 10;

/// The caller-side detector a call uses for turn timing: 8 kHz, one 20 ms frame per push.
#[derive(Debug, Clone)]
pub struct CallerVad {
    detector: SpeechDetector,
}

impl Default for CallerVad {
    fn default() -> Self {
        CallerVad::new()
    }
}

impl CallerVad {
    /// A detector with the caller-side settings, starting in silence.
    pub fn new() -> CallerVad {
        CallerVad {
            detector: SpeechDetector::new(
                CALLER_MARGIN_DB,
                CALLER_MIN_SPEECH_DBFS,
                CALLER_ONSET_FRAMES,
                CALLER_HANGOVER_FRAMES,
            ),
        }
    }

    /// The caller-side settings, but speech ends after `hangover_frames` quiet frames (a
    /// peer that wants 500 ms of silence before it answers: 25).
    pub fn with_hangover(hangover_frames: u32) -> CallerVad {
        CallerVad {
            detector: SpeechDetector::new(
                CALLER_MARGIN_DB,
                CALLER_MIN_SPEECH_DBFS,
                CALLER_ONSET_FRAMES,
                hangover_frames,
            ),
        }
    }

    /// Feed one 20 ms frame of 8 kHz audio (160 samples).
    pub fn push(&mut self, pcm: &[i16]) -> VadStep {
        self.detector.push(pcm_level_dbfs(pcm), 0.0)
    }

    /// Inside an utterance (between `started` and `ended`).
    pub fn speaking(&self) -> bool {
        self.detector.speaking()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let pcm: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { i16::MAX } else { -i16::MAX }).collect();
        assert!(pcm_level_dbfs(&pcm).abs() < 0.01);
        assert_eq!(pcm_level_dbfs(&[0; 160]), SILENCE_DBFS);
        assert_eq!(pcm_level_dbfs(&[]), SILENCE_DBFS);
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

    #[test]
    fn caller_vad_starts_after_60_ms_and_ends_after_200_ms() {
        let loud: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { 8000 } else { -8000 }).collect();
        let quiet = [0i16; 160];
        let mut vad = CallerVad::new();
        assert!(!vad.push(&quiet).loud);
        assert!(!vad.push(&loud).started);
        assert!(!vad.push(&loud).started);
        let third = vad.push(&loud);
        assert!(third.loud && third.started);
        assert!(vad.speaking());
        for _ in 0..9 {
            assert!(!vad.push(&quiet).ended);
        }
        assert!(vad.push(&quiet).ended);
        assert!(!vad.speaking());
        let mut vad = CallerVad::with_hangover(25);
        for _ in 0..3 {
            vad.push(&loud);
        }
        assert!(vad.speaking());
        assert_eq!((0..25).position(|_| vad.push(&quiet).ended), Some(24), "ends on the 25th quiet frame");
    }
}
