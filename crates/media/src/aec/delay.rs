//! The echo's bulk delay: a cross-correlation of what we sent against what came back,
//! both decimated to 1 kHz (the mean of each millisecond's samples), over lags of 0 to
//! [`MAX_DELAY_MS`] in 1 ms steps, smoothed over about a second of far-end activity.
//!
//! Only frames where we were sending something update the correlation (an echo needs a
//! source), and a lag is reported once its squared correlation stands well above the
//! mean over all lags, and its normalised correlation above chance, for a few frames in
//! a row. The filter behind it (`filter.rs`)
//! covers a tail starting a little before the estimate, so the 1 ms grid is plenty.
//! Per frame: 20 decimated samples × 251 lags multiply-adds; nothing allocated.

/// The longest echo delay looked for.
pub const MAX_DELAY_MS: usize = 250;
/// Lags searched (0 ..= MAX_DELAY_MS).
const LAGS: usize = MAX_DELAY_MS + 1;
/// Decimated samples per 20 ms frame.
const PER_FRAME: usize = 20;
/// Decimated far-end history kept: the longest lag and one frame.
const HISTORY: usize = LAGS + PER_FRAME;
/// Smoothing of the correlation per active frame (time constant ~1 s).
const FORGET: f32 = 0.97;
/// The peak's squared correlation over the mean of all lags needed to report it.
const PEAK_OVER_MEAN: f32 = 6.0;
/// The least squared normalised correlation at the peak: an echo correlates with what
/// we sent, a caller talking does not (by chance, ρ stays well under 0.45 over a second).
const MIN_RHO_SQ: f32 = 0.2;
/// Frames in a row a new peak must win to move an estimate.
const MOVE_FRAMES: u32 = 25;
/// Frames in a row the same peak (±1 ms) must win before it is reported.
const STABLE_FRAMES: u32 = 5;

#[derive(Debug, Clone)]
pub(crate) struct DelayEstimator {
    /// Input samples per decimated sample (rate / 1000).
    factor: usize,
    /// Decimated far end, newest first: `far[j]` is `j` ms before the frame's end.
    far: [f32; HISTORY],
    corr: [f32; LAGS],
    /// The far end's and the near end's power, smoothed as the correlation is.
    far_power: f32,
    near_power: f32,
    candidate: usize,
    stable: u32,
    estimate: Option<usize>,
    near: [f32; PER_FRAME],
}

impl DelayEstimator {
    pub(crate) fn new(rate: u32) -> DelayEstimator {
        DelayEstimator {
            factor: (rate / 1000) as usize,
            far: [0.0; HISTORY],
            corr: [0.0; LAGS],
            far_power: 0.0,
            near_power: 0.0,
            candidate: usize::MAX,
            stable: 0,
            estimate: None,
            near: [0.0; PER_FRAME],
        }
    }

    /// The estimated delay in ms, once there is one.
    pub(crate) fn estimate_ms(&self) -> Option<usize> {
        self.estimate
    }

    fn decimate(factor: usize, x: &[f32], i: usize) -> f32 {
        let block = &x[i * factor..(i + 1) * factor];
        block.iter().sum::<f32>() / factor as f32
    }

    /// One frame: `far` what we sent, `near` what came back (both 20 ms at the rate);
    /// `far_active` whether the far end had signal worth correlating.
    pub(crate) fn push(&mut self, far: &[f32], near: &[f32], far_active: bool) {
        let f = self.factor;
        self.far.copy_within(..HISTORY - PER_FRAME, PER_FRAME);
        for i in 0..PER_FRAME {
            self.far[PER_FRAME - 1 - i] = Self::decimate(f, far, i);
            self.near[i] = Self::decimate(f, near, i);
        }
        if !far_active {
            return;
        }
        // near[i] is (PER_FRAME - 1 - i) ms before the frame's end; at lag `lag` it
        // meets far[PER_FRAME - 1 - i + lag]. Lag by lag in the inner loop, so each
        // correlation gets its own multiply-add (no reduction: it vectorises).
        for c in self.corr.iter_mut() {
            *c *= FORGET;
        }
        let fp: f32 = self.far[..PER_FRAME].iter().map(|x| x * x).sum();
        let np: f32 = self.near.iter().map(|y| y * y).sum();
        self.far_power = self.far_power * FORGET + fp;
        self.near_power = self.near_power * FORGET + np;
        for (i, &y) in self.near.iter().enumerate() {
            let from = PER_FRAME - 1 - i;
            for (c, &x) in self.corr.iter_mut().zip(&self.far[from..from + LAGS]) {
                *c += x * y;
            }
        }
        let mut mean = 0.0;
        let mut best = (0usize, 0.0f32);
        for (lag, &c) in self.corr.iter().enumerate() {
            let sq = c * c;
            mean += sq;
            if sq > best.1 {
                best = (lag, sq);
            }
        }
        mean /= LAGS as f32;
        let rho_sq = best.1 / (self.far_power * self.near_power).max(1e-9);
        if best.1 > PEAK_OVER_MEAN * mean && rho_sq > MIN_RHO_SQ {
            if self.candidate.abs_diff(best.0) <= 1 {
                self.stable = self.stable.saturating_add(1);
            } else {
                self.stable = 1;
            }
            self.candidate = best.0;
            // A first estimate needs a few frames; moving an estimate needs half a second
            // and a peak clearly above the old one's.
            let moves = match self.estimate {
                None => self.stable >= STABLE_FRAMES,
                Some(e) if e.abs_diff(best.0) <= 2 => true,
                Some(e) => self.stable >= MOVE_FRAMES && best.1 > 2.0 * self.corr[e] * self.corr[e],
            };
            if moves {
                self.estimate = Some(best.0);
            }
        } else {
            self.stable = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aec::echo_path::{EchoLine, EchoSettings, Talker};

    #[test]
    fn finds_the_delay_of_a_speech_echo_within_a_millisecond_or_two() {
        for (rate, delay) in [(8000u32, 20u32), (8000, 147), (16000, 63), (16000, 240)] {
            let n = rate as usize / 50;
            let mut talker = Talker::new(rate, -20.0, 7);
            let mut line = EchoLine::new(EchoSettings {
                rate,
                delay_ms: delay,
                atten_db: 12.0,
                noise_dbfs: -50.0,
                seed: 3,
            });
            let mut est = DelayEstimator::new(rate);
            let (mut far, mut echo, mut near) = (vec![0i16; n], vec![0i16; n], vec![0i16; n]);
            for _ in 0..150 {
                talker.fill(&mut far);
                line.frame(&far, &[], &mut echo, &mut near);
                let ff: Vec<f32> = far.iter().map(|&s| f32::from(s)).collect();
                let nf: Vec<f32> = near.iter().map(|&s| f32::from(s)).collect();
                est.push(&ff, &nf, true);
            }
            let got = est.estimate_ms().expect("an estimate after 3 s of speech");
            // The path's energy peaks ~1 ms after its start.
            assert!(got.abs_diff(delay as usize) <= 3, "{rate} Hz, {delay} ms: estimated {got} ms");
        }
    }
}
