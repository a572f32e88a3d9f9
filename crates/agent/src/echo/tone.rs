//! Tones the echo agent plays, rendered in the call's format: the greeting beeps and the
//! DTMF read-back (ITU-T Q.23 frequency pairs).
//!
//! Rendering appends to a buffer whose capacity was reserved up front and refuses
//! (returns `false`) rather than grow it, so the echo core never allocates after setup.

use std::f64::consts::TAU;

use crate::provider::{AudioFormat, Digit};

/// Peak amplitude of each DTMF component: about -12 dBFS, the pair peaks at -6 dBFS.
const DTMF_AMPLITUDE: f64 = 0.25 * 32767.0;
/// Peak amplitude of a beep: about -10 dBFS.
const BEEP_AMPLITUDE: f64 = 0.3 * 32767.0;
/// Length of the fade in and out at each tone's edges (avoids clicks).
const FADE_MS: u32 = 5;

/// Samples in `ms` milliseconds of `format`.
fn samples(format: AudioFormat, ms: u32) -> usize {
    // u32 × u32 fits a u64; the result may not fit a 32-bit usize (then: no room).
    usize::try_from(u64::from(format.sample_rate()) * u64::from(ms) / 1000).unwrap_or(usize::MAX)
}

fn has_room(format: AudioFormat, out: &[u8], capacity: usize, n: usize) -> bool {
    n.checked_mul(format.bytes_per_sample())
        .and_then(|bytes| bytes.checked_add(out.len()))
        .is_some_and(|end| end <= capacity)
}

/// Append `ms` of `f1` + optional `f2` Hz; `false` (and nothing appended) if it won't fit.
pub fn render_tone(
    format: AudioFormat,
    out: &mut Vec<u8>,
    ms: u32,
    (f1, f2): (u32, Option<u32>),
    amplitude: f64,
) -> bool {
    let n = samples(format, ms);
    if !has_room(format, out, out.capacity(), n) {
        return false;
    }
    let rate = f64::from(format.sample_rate());
    let fade = samples(format, FADE_MS).max(1);
    for i in 0..n {
        let t = i as f64 / rate;
        let mut x = (TAU * f64::from(f1) * t).sin();
        if let Some(f2) = f2 {
            x += (TAU * f64::from(f2) * t).sin();
        }
        let edge = i.min(n - 1 - i);
        let gain = if edge < fade { edge as f64 / fade as f64 } else { 1.0 };
        format.push_sample(out, (x * amplitude * gain).round() as i16);
    }
    true
}

/// Append `ms` of silence; `false` (and nothing appended) if it won't fit.
pub fn render_silence(format: AudioFormat, out: &mut Vec<u8>, ms: u32) -> bool {
    let n = samples(format, ms);
    if !has_room(format, out, out.capacity(), n) {
        return false;
    }
    for _ in 0..n {
        format.push_sample(out, 0);
    }
    true
}

/// Append the digit's DTMF pair for `tone_ms`, then `gap_ms` of silence.
pub fn render_dtmf(format: AudioFormat, out: &mut Vec<u8>, digit: Digit, tone_ms: u32, gap_ms: u32) -> bool {
    let (low, high) = digit.frequencies();
    let n = samples(format, tone_ms).saturating_add(samples(format, gap_ms));
    if !has_room(format, out, out.capacity(), n) {
        return false;
    }
    render_tone(format, out, tone_ms, (low, Some(high)), DTMF_AMPLITUDE)
        && render_silence(format, out, gap_ms)
}

/// Append the greeting: two 440 Hz beeps of 120 ms, 120 ms apart, then 120 ms of silence.
pub fn render_greeting(format: AudioFormat, out: &mut Vec<u8>) -> bool {
    render_tone(format, out, 120, (440, None), BEEP_AMPLITUDE)
        && render_silence(format, out, 120)
        && render_tone(format, out, 120, (440, None), BEEP_AMPLITUDE)
        && render_silence(format, out, 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_never_grows_the_buffer() {
        let mut out = Vec::with_capacity(800);
        assert!(render_tone(AudioFormat::Ulaw8k, &mut out, 100, (440, None), 1000.0));
        assert_eq!(out.len(), 800);
        assert!(!render_silence(AudioFormat::Ulaw8k, &mut out, 1));
        assert_eq!(out.capacity(), 800);
        let mut out = Vec::with_capacity(100);
        assert!(!render_greeting(AudioFormat::Alaw8k, &mut out));
        assert!(out.is_empty());
    }
}
