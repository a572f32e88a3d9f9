//! Packet-loss concealment for 8 or 16 kHz speech, in the manner of G.711 Appendix I:
//! repeat the last pitch period, fade 20 % per 10 ms after the first 10 ms (silent after
//! 60 ms), and cross-fade back into real audio when packets return.
//!
//! Every length below is given at 8 kHz and doubled at 16 kHz (G.722), so the times
//! (pitch 66.7–200 Hz, 20 ms of correlation, 10 ms hold, 50 ms fade, 5 ms cross-fade) are
//! the same at both rates. Fixed-size state, no allocation: one [`Plc`] per stream, fed
//! every frame.

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

const MIN_PITCH: usize = 40; // 200 Hz
const MAX_PITCH: usize = 120; // 66.7 Hz
const CORRELATION_LEN: usize = 160;
const HISTORY: usize = MAX_PITCH + CORRELATION_LEN;
/// History room at the highest rate (16 kHz).
const HISTORY_MAX: usize = 2 * HISTORY;
/// Samples concealed at full level before fading starts (10 ms).
const HOLD: usize = 80;
/// Samples over which the level falls to zero after [`HOLD`] (50 ms: 20 % per 10 ms).
const FADE: usize = 400;
/// Cross-fade length from synthetic into real audio (5 ms).
const CROSSFADE: usize = 40;

/// Pitch-repetition concealment state for one stream.
#[derive(Debug, Clone)]
pub struct Plc {
    /// 1 at 8 kHz, 2 at 16 kHz: every length is multiplied by it.
    scale: usize,
    /// Recent audio, a ring of `HISTORY × scale` written at `write`; linearised into
    /// `history` on loss.
    ring: [i16; HISTORY_MAX],
    write: usize,
    history: [f32; HISTORY_MAX],
    pitch: usize,
    phase: usize,
    lost_samples: usize,
}

impl Default for Plc {
    fn default() -> Self {
        Plc::new()
    }
}

impl Plc {
    /// Fresh state with silent history, for 8 kHz.
    pub fn new() -> Self {
        Plc::with_rate(8000)
    }

    /// Fresh state for `rate_hz`: 16000 and above conceal at 16 kHz, anything else at 8 kHz.
    pub fn with_rate(rate_hz: u32) -> Self {
        let scale = if rate_hz >= 16_000 { 2 } else { 1 };
        Plc {
            scale,
            ring: [0; HISTORY_MAX],
            write: 0,
            history: [0.0; HISTORY_MAX],
            pitch: MIN_PITCH * scale,
            phase: 0,
            lost_samples: 0,
        }
    }

    /// Forget the history (new stream).
    pub fn reset(&mut self) {
        *self = Plc::with_rate(if self.scale == 2 { 16_000 } else { 8000 });
    }

    /// Samples of history at this rate.
    fn history_len(&self) -> usize {
        HISTORY * self.scale
    }

    /// Whether the last frame was concealed.
    pub fn is_concealing(&self) -> bool {
        self.lost_samples > 0
    }

    /// A real frame arrived: cross-fade from the concealment if one was running, then
    /// remember it. Modifies `frame` only in the first 5 ms after a loss.
    pub fn good_frame(&mut self, frame: &mut [i16]) {
        if self.lost_samples > 0 {
            let n = (CROSSFADE * self.scale).min(frame.len());
            for (i, sample) in frame.iter_mut().take(n).enumerate() {
                let synthetic = self.next_synthetic();
                let w = (i as f32 + 0.5) / n as f32;
                *sample = clamp(f32::from(*sample) * w + synthetic * (1.0 - w));
            }
            self.lost_samples = 0;
        }
        self.remember(frame);
    }

    /// No frame: fill `out` with a continuation of the signal.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.lost_samples == 0 {
            self.linearise();
            self.pitch = self.find_pitch();
            self.phase = 0;
        }
        for sample in out.iter_mut() {
            *sample = clamp(self.next_synthetic());
        }
    }

    fn next_synthetic(&mut self) -> f32 {
        let (hold, fade) = (HOLD * self.scale, FADE * self.scale);
        let gain = if self.lost_samples < hold {
            1.0
        } else {
            1.0 - ((self.lost_samples - hold) as f32 / fade as f32).min(1.0)
        };
        let index = self.history_len() - self.pitch + self.phase;
        let value = self.history.get(index).copied().unwrap_or(0.0) * gain;
        self.phase = (self.phase + 1) % self.pitch.max(1);
        self.lost_samples = self.lost_samples.saturating_add(1);
        value
    }

    fn remember(&mut self, frame: &[i16]) {
        let len = self.history_len();
        let skip = frame.len().saturating_sub(len);
        let mut rest = frame.get(skip..).unwrap_or(&[]);
        while !rest.is_empty() {
            let run = rest.len().min(len - self.write);
            let (now, later) = rest.split_at(run);
            if let Some(dst) = self.ring.get_mut(self.write..self.write + run) {
                dst.copy_from_slice(now);
            }
            self.write = (self.write + run) % len;
            rest = later;
        }
    }

    /// Copy the ring, oldest first, into `history` for pitch search and repetition.
    fn linearise(&mut self) {
        let len = self.history_len();
        let (newer, older) = self.ring[..len].split_at(self.write);
        for (h, &s) in self.history.iter_mut().zip(older.iter().chain(newer)) {
            *h = f32::from(s);
        }
    }

    /// Period (in samples) maximising the normalised correlation of the newest 20 ms with
    /// the history one period earlier.
    fn find_pitch(&self) -> usize {
        let (len, corr) = (self.history_len(), CORRELATION_LEN * self.scale);
        let recent = &self.history[len - corr..len];
        let mut best = (MIN_PITCH * self.scale, f32::MIN);
        for period in MIN_PITCH * self.scale..=MAX_PITCH * self.scale {
            let earlier = &self.history[len - corr - period..len - period];
            let (mut cross, mut energy) = (0.0f32, 0.0f32);
            for (&a, &b) in recent.iter().zip(earlier) {
                cross += a * b;
                energy += b * b;
            }
            let score = if energy > 0.0 { cross * cross.abs() / energy } else { 0.0 };
            if score > best.1 {
                best = (period, score);
            }
        }
        best.0
    }
}

fn clamp(v: f32) -> i16 {
    v.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(start: usize, period: usize, out: &mut [i16]) {
        for (i, s) in out.iter_mut().enumerate() {
            let t = (start + i) as f32 / period as f32;
            *s = (8000.0 * (2.0 * std::f32::consts::PI * t).sin()) as i16;
        }
    }

    #[test]
    fn repeats_the_pitch_and_fades_to_silence_after_60_ms() {
        let mut plc = Plc::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        for k in 0..5 {
            tone(k * FRAME_SAMPLES, 80, &mut frame);
            plc.good_frame(&mut frame);
        }
        plc.linearise();
        assert_eq!(plc.find_pitch() % 80, 0);
        let mut out = [0i16; FRAME_SAMPLES];
        plc.conceal(&mut out);
        // The first 10 ms continue the tone closely.
        let mut expected = [0i16; FRAME_SAMPLES];
        tone(5 * FRAME_SAMPLES, 80, &mut expected);
        for i in 0..80 {
            assert!((i32::from(out[i]) - i32::from(expected[i])).abs() < 200, "sample {i}");
        }
        assert!(plc.is_concealing());
        plc.conceal(&mut out);
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 1000 && peak < 8000, "fading, peak {peak}");
        plc.conceal(&mut out);
        assert!(out[FRAME_SAMPLES - 1].unsigned_abs() < 10, "silent at 60 ms");
        plc.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn cross_fades_back_into_real_audio() {
        let mut plc = Plc::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        for k in 0..3 {
            tone(k * FRAME_SAMPLES, 50, &mut frame);
            plc.good_frame(&mut frame);
        }
        let mut out = [0i16; FRAME_SAMPLES];
        plc.conceal(&mut out);
        tone(4 * FRAME_SAMPLES, 50, &mut frame);
        let original = frame;
        plc.good_frame(&mut frame);
        assert!(!plc.is_concealing());
        assert_eq!(&frame[CROSSFADE..], &original[CROSSFADE..]);
    }

    #[test]
    fn conceals_at_16_khz_with_the_same_timing() {
        let mut plc = Plc::with_rate(16_000);
        let mut frame = [0i16; 2 * FRAME_SAMPLES];
        for k in 0..5 {
            // 100 Hz at 16 kHz: a period of 160 samples, inside the 16 kHz pitch range.
            tone(k * 2 * FRAME_SAMPLES, 160, &mut frame);
            plc.good_frame(&mut frame);
        }
        plc.linearise();
        assert_eq!(plc.find_pitch() % 160, 0);
        let mut out = [0i16; 2 * FRAME_SAMPLES];
        plc.conceal(&mut out);
        let mut expected = [0i16; 2 * FRAME_SAMPLES];
        tone(5 * 2 * FRAME_SAMPLES, 160, &mut expected);
        // 10 ms (160 samples) at full level.
        for i in 0..160 {
            assert!((i32::from(out[i]) - i32::from(expected[i])).abs() < 200, "sample {i}");
        }
        plc.conceal(&mut out);
        plc.conceal(&mut out);
        assert!(out[2 * FRAME_SAMPLES - 1].unsigned_abs() < 10, "silent at 60 ms");
        plc.reset();
        assert_eq!(plc.history_len(), 2 * HISTORY);
    }

    #[test]
    fn silence_stays_silent() {
        let mut plc = Plc::new();
        let mut out = [1i16; FRAME_SAMPLES];
        plc.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0));
        plc.reset();
        assert!(!plc.is_concealing());
    }
}
