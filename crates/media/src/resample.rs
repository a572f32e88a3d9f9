//! Sample-rate conversion between 8, 16, 22.05, 24, 44.1 and 48 kHz for the agent side
//! (the phone side is 8 kHz G.711; voice AI APIs speak 16 or 24 kHz, piper TTS voices
//! 22.05 kHz).
//!
//! A streaming rational (L/M) polyphase FIR resampler: a Kaiser-windowed sinc low-pass at
//! 0.9 × the lower Nyquist frequency (≈ 80 dB stop band), applied only at the output
//! instants. All buffers are sized in [`Resampler::new`]; `process` allocates nothing.
//! 20 ms at any of these rates is a whole number of samples (22050 Hz: 441), and L/M is
//! exact, so per-frame calls produce exact frame sizes (441 in → 160 out for 22050 →
//! 8000, L/M = 160/441). Latency: half the filter, ≈ 2 ms.
//!
//! The phase table holds `taps × L` coefficients: 15 840 (62 KB of f32) for 22050 → 8000
//! (99 taps × 160 phases), at most 16 000 for any pair (22050 → 16000); pairs of 8, 16,
//! 24 and 48 kHz need at most 216. The filter costs `taps` multiply-adds per output
//! sample (99 for 22050 → 8000, 16 k per 20 ms frame).

use crate::MediaError;

/// Zero crossings of the sinc on each side of the centre (at the lower rate).
const ZERO_CROSSINGS: usize = 16;
/// Pass band as a fraction of the lower Nyquist frequency.
const ROLLOFF: f64 = 0.9;
/// Kaiser window β (stop band ≈ 80 dB).
const KAISER_BETA: f64 = 8.0;

/// A streaming mono resampler between two of 8000, 16000, 22050, 24000, 44100, 48000 Hz.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: usize,
    down: usize,
    taps: usize,
    /// Polyphase filter: `phases[p * taps + k]` for phase `p`, tap `k`.
    phases: Vec<f32>,
    /// Input history, written twice (at `pos` and `pos + taps`) so every window is one slice.
    history: Vec<f32>,
    pos: usize,
    /// Position of the next output in the upsampled domain, relative to the newest input.
    next: usize,
    from: u32,
    to: u32,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modified Bessel function of the first kind, order 0 (series; for the Kaiser window).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= half / k as f64;
        sum += term * term;
        if term * term < 1e-12 * sum {
            break;
        }
    }
    sum
}

fn supported(rate: u32) -> Result<usize, MediaError> {
    match rate {
        8000 | 16000 | 22050 | 24000 | 44100 | 48000 => Ok(rate as usize),
        other => Err(MediaError::UnsupportedRate(other)),
    }
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz (each 8000, 16000, 22050, 24000, 44100 or
    /// 48000).
    pub fn new(from: u32, to: u32) -> Result<Self, MediaError> {
        let (fin, fout) = (supported(from)?, supported(to)?);
        let g = gcd(fin, fout);
        let (up, down) = (fout / g, fin / g);
        // Cut-off relative to the input rate, and filter span in input samples.
        let cutoff = ROLLOFF * 0.5 * (fin.min(fout) as f64) / fin as f64; // cycles/input sample
        let taps = ((ZERO_CROSSINGS as f64 / cutoff).ceil() as usize).max(2);
        let len = taps * up;
        let centre = (len as f64 - 1.0) / 2.0;
        let mut prototype = vec![0.0f64; len];
        for (j, h) in prototype.iter_mut().enumerate() {
            let t = (j as f64 - centre) / up as f64; // in input samples
            let x = 2.0 * cutoff * t;
            let sinc = if x.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = (j as f64 - centre) / (len as f64 / 2.0);
            let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(KAISER_BETA);
            *h = 2.0 * cutoff * sinc * window;
        }
        // Each phase sums to unity gain at DC.
        let mut phases = vec![0.0f32; len];
        for p in 0..up {
            let sum: f64 = (0..taps).map(|k| prototype[p + k * up]).sum();
            for k in 0..taps {
                // Tap k multiplies the input k samples before the newest.
                phases[p * taps + k] = (prototype[p + k * up] / sum) as f32;
            }
        }
        Ok(Resampler { up, down, taps, phases, history: vec![0.0; 2 * taps], pos: 0, next: 0, from, to })
    }

    /// Input rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Output samples produced for `input_len` more input samples (exact for multiples
    /// of the rate ratio's denominator, e.g. any 20 ms frame).
    pub fn output_len(&self, input_len: usize) -> usize {
        (input_len * self.up).saturating_sub(self.next).div_ceil(self.down)
    }

    /// Filter delay in output samples.
    pub fn delay(&self) -> usize {
        self.taps * self.up / 2 / self.down
    }

    /// Forget the history (new stream).
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.pos = 0;
        self.next = 0;
    }

    /// Resample `input`, writing into `output`; returns the samples written. Stops early
    /// (without losing state) only if `output` is too small: size it with
    /// [`output_len`](Self::output_len).
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> usize {
        let mut written = 0;
        for &x in input {
            // `next` is the next output's offset (in upsampled positions) from the newest
            // input sample; outputs with offset < `up` use this sample as their newest
            // tap, with polyphase branch `offset`.
            let v = f32::from(x);
            let taps = self.taps;
            self.pos = if self.pos == 0 { taps - 1 } else { self.pos - 1 };
            if let Some(slot) = self.history.get_mut(self.pos) {
                *slot = v;
            }
            if let Some(slot) = self.history.get_mut(self.pos + taps) {
                *slot = v;
            }
            while self.next < self.up {
                let phase = self.next;
                let Some(out) = output.get_mut(written) else {
                    return written;
                };
                let (Some(window), Some(coeffs)) = (
                    self.history.get(self.pos..self.pos + taps),
                    self.phases.get(phase * taps..(phase + 1) * taps),
                ) else {
                    return written;
                };
                let acc = dot(window, coeffs);
                *out = acc.round().clamp(-32768.0, 32767.0) as i16;
                written += 1;
                self.next += self.down;
            }
            self.next -= self.up;
        }
        written
    }
}

/// Dot product with eight independent accumulators (lets the compiler use SIMD).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (chunks_a, chunks_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for ((lane, &xi), &yi) in lanes.iter_mut().zip(x).zip(y) {
            *lane += xi * yi;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsupported_rates() {
        assert_eq!(Resampler::new(11025, 8000).err(), Some(MediaError::UnsupportedRate(11025)));
        assert_eq!(Resampler::new(8000, 32000).err(), Some(MediaError::UnsupportedRate(32000)));
    }

    #[test]
    fn frames_map_to_exact_frame_sizes() {
        let rates = [8000u32, 16000, 22050, 24000, 44100, 48000];
        for &from in &rates {
            for &to in &rates {
                let mut r = Resampler::new(from, to).expect("supported");
                let input = vec![1000i16; from as usize / 50];
                let mut output = vec![0i16; to as usize / 50 + 8];
                for _ in 0..5 {
                    let expected = r.output_len(input.len());
                    let n = r.process(&input, &mut output);
                    assert_eq!(n, to as usize / 50, "{from}->{to}");
                    assert_eq!(n, expected);
                }
                // At most ~2.3 ms of delay (latency budget).
                assert!(r.delay() * 1000 <= to as usize * 23 / 10, "{from}->{to}");
                // DC passes at unity gain once the filter is full.
                assert!((i32::from(output[0]) - 1000).abs() <= 2, "{from}->{to}: {}", output[0]);
            }
        }
    }

    #[test]
    fn phase_tables_stay_small() {
        let rates = [8000u32, 16000, 22050, 24000, 44100, 48000];
        let mut largest = 0;
        for &from in &rates {
            for &to in &rates {
                let r = Resampler::new(from, to).expect("supported");
                assert_eq!(r.phases.len(), r.taps * r.up);
                largest = largest.max(r.phases.len());
            }
        }
        assert_eq!(largest, 50 * 320, "22050 -> 16000");
        let r = Resampler::new(22050, 8000).expect("supported");
        assert_eq!((r.up, r.down, r.taps, r.phases.len()), (160, 441, 99, 15_840));
        let r = Resampler::new(24000, 8000).expect("supported");
        assert_eq!((r.up, r.down, r.taps, r.phases.len()), (1, 3, 107, 107));
    }

    #[test]
    fn small_output_buffer_stops_without_panicking() {
        let mut r = Resampler::new(8000, 48000).expect("supported");
        let mut out = [0i16; 10];
        assert_eq!(r.process(&[1; 160], &mut out), 10);
    }
}
