//! [`SpeechOverEcho`]: is the caller talking in this (echo-cancelled) frame? A frame is
//! caller speech when its level is 12 dB over the line's noise floor, above -45 dBFS,
//! and 6 dB above the loudest echo the canceller can have left in it
//! ([`super::EchoCanceller::echo_bound_dbfs`]). The floor follows quiet frames as the
//! caller-side VAD's does. One decision per frame; the barge-in gate counts them.

use crate::vad::{pcm_level_dbfs, SILENCE_DBFS};

/// How far over the noise floor speech is.
const MARGIN_DB: f32 = 12.0;
/// Nothing quieter than this is speech.
const MIN_SPEECH_DBFS: f32 = -45.0;
/// How far over the echo bound speech must be.
const OVER_ECHO_DB: f32 = 6.0;
const FLOOR_FALL: f32 = 0.3;
const FLOOR_RISE_DB: f32 = 0.06;

/// The per-frame caller speech decision. See the module comment.
#[derive(Debug, Clone)]
pub struct SpeechOverEcho {
    floor_dbfs: f32,
}

impl Default for SpeechOverEcho {
    fn default() -> Self {
        SpeechOverEcho::new()
    }
}

impl SpeechOverEcho {
    /// A detector starting with a -70 dBFS floor.
    pub fn new() -> SpeechOverEcho {
        SpeechOverEcho { floor_dbfs: -70.0 }
    }

    /// One frame of the canceller's output and its echo bound (dBFS; silence when no
    /// echo is possible): true when it is caller speech.
    pub fn push(&mut self, cleaned: &[i16], echo_bound_dbfs: f32) -> bool {
        let level = pcm_level_dbfs(cleaned);
        let speech = level > self.floor_dbfs + MARGIN_DB
            && level > MIN_SPEECH_DBFS
            && (echo_bound_dbfs <= SILENCE_DBFS || level > echo_bound_dbfs + OVER_ECHO_DB);
        if level < self.floor_dbfs {
            self.floor_dbfs += (level - self.floor_dbfs) * FLOOR_FALL;
        } else {
            self.floor_dbfs += (level - self.floor_dbfs).min(FLOOR_RISE_DB);
        }
        speech
    }

    /// The noise floor estimate (dBFS).
    pub fn floor_dbfs(&self) -> f32 {
        self.floor_dbfs
    }
}
