//! The hold tone: what the caller hears while the agent is busy with something they
//! cannot hear (a slow tool, a reconnect), so the line is never dead air.
//!
//! A soft 425 Hz beep (ITU-T E.180's comfort-tone frequency, the one European PBXs use
//! for waiting) of 200 ms every 2 s at about −24 dBFS, with 5 ms ramps so the beeps do
//! not click. Sans-IO: [`HoldTone::next_frame`] writes the next 20 ms; the cadence counts
//! frames, so it follows the pacer's clock and never reads one. [`HoldTone::restart`]
//! begins a new hold with a beep at once: the caller hears that something is happening.

use std::f32::consts::TAU;

/// The tone's frequency.
pub const HOLD_TONE_HZ: f32 = 425.0;
/// One beep this long…
pub const BEEP_MS: u32 = 200;
/// …every this long.
pub const PERIOD_MS: u32 = 2000;
/// Peak amplitude: −24 dBFS.
const AMPLITUDE: f32 = 32767.0 * 0.063;
/// Ramp at each edge of a beep.
const RAMP_MS: u32 = 5;

/// The hold tone's state for one call: where in the cadence it is.
#[derive(Debug, Clone)]
pub struct HoldTone {
    rate_hz: u32,
    /// Samples since the hold's first beep began.
    position: u32,
}

impl HoldTone {
    /// A hold tone at `rate_hz` (8000 or 16000).
    pub fn new(rate_hz: u32) -> HoldTone {
        HoldTone { rate_hz: rate_hz.max(1), position: 0 }
    }

    /// Start the cadence again: the next frame begins a beep.
    pub fn restart(&mut self) {
        self.position = 0;
    }

    /// Write the next `out.len()` samples of the cadence (silence between beeps).
    pub fn next_frame(&mut self, out: &mut [i16]) {
        let per_ms = self.rate_hz / 1000;
        let period = PERIOD_MS * per_ms;
        let beep = BEEP_MS * per_ms;
        let ramp = (RAMP_MS * per_ms).max(1) as f32;
        let step = TAU * HOLD_TONE_HZ / self.rate_hz as f32;
        for sample in out.iter_mut() {
            let p = self.position % period.max(1);
            *sample = if p < beep {
                let edge = (p.min(beep - 1 - p) as f32 / ramp).min(1.0);
                (AMPLITUDE * edge * (step * p as f32).sin()) as i16
            } else {
                0
            };
            self.position = (p + 1) % period.max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    #[test]
    fn beeps_200_ms_every_2_s_at_minus_24_dbfs_peak() {
        let mut tone = HoldTone::new(8000);
        let mut frames = Vec::new();
        for _ in 0..200 {
            let mut f = [0i16; 160];
            tone.next_frame(&mut f);
            frames.push(f);
        }
        let loud: Vec<usize> = (0..200).filter(|&i| rms(&frames[i]) > 100.0).collect();
        // Frames 0-9 (0-200 ms) and 100-109 (2.0-2.2 s) in 4 s.
        let expected: Vec<usize> = (0..10).chain(100..110).collect();
        assert_eq!(loud, expected);
        let peak = frames.iter().flatten().map(|s| s.unsigned_abs()).max().expect("frames");
        let dbfs = 20.0 * (f64::from(peak) / 32767.0).log10();
        assert!((-24.5..-23.5).contains(&dbfs), "peak at {dbfs:.1} dBFS");
    }

    #[test]
    fn the_beep_is_425_hz_at_16_khz_too() {
        let mut tone = HoldTone::new(16000);
        let mut f = [0i16; 3200];
        tone.next_frame(&mut f);
        // Zero crossings in the steady middle of the beep (20-180 ms): 2 per cycle.
        let mid = &f[320..2880];
        let crossings = mid.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        let hz = crossings as f64 / 2.0 / 0.16;
        assert!((hz - 425.0).abs() < 10.0, "{hz} Hz");
    }

    #[test]
    fn restart_begins_with_a_beep() {
        let mut tone = HoldTone::new(8000);
        let mut f = [0i16; 160];
        for _ in 0..20 {
            tone.next_frame(&mut f);
        }
        assert!(rms(&f) < 1.0, "400 ms in is between beeps");
        tone.restart();
        tone.next_frame(&mut f);
        tone.next_frame(&mut f);
        assert!(rms(&f) > 1000.0, "a beep at once after restart");
    }
}
