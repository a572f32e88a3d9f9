//! Audio between the call's format and a dialect's wire format at 8 kHz: μ-law for
//! Twilio, PCM16 LE for ASP. A G.722 call's linear16 at 16 kHz is resampled to 8 kHz for
//! the bot and back ([`Bridge`], resamplers made once per call). Appends into a buffer
//! the caller reuses: no allocation once it has grown to a frame.

use voice_ua_media::g711::{alaw_to_ulaw, ulaw_to_alaw};
use voice_ua_media::Resampler;

use crate::provider::AudioFormat;
use crate::AgentError;

/// 8 kHz PCM16 LE, the wire format of ASP's default.
pub const PCM16_8K: AudioFormat = AudioFormat::Linear16 { rate_hz: 8000 };

/// A G.722 call's agent format.
pub const PCM16_16K: AudioFormat = AudioFormat::Linear16 { rate_hz: 16_000 };

/// The call formats the WebSocket bridge carries: G.711 either law, or linear16 at
/// 8 kHz, or at 16 kHz (resampled: the bots speak 8 kHz).
pub fn check_format(format: AudioFormat) -> Result<(), AgentError> {
    match format {
        AudioFormat::Ulaw8k | AudioFormat::Alaw8k | PCM16_8K | PCM16_16K => Ok(()),
        other => Err(AgentError::UnsupportedFormat { format: other }),
    }
}

/// The call's format ↔ the wire's, with a resampler each way when their rates differ.
#[derive(Debug)]
pub struct Bridge {
    call: AudioFormat,
    wire: AudioFormat,
    /// Call rate → wire rate, and back; None when the rates are equal.
    rates: Option<(Resampler, Resampler)>,
    /// Samples before and after resampling (reused).
    before: Vec<i16>,
    after: Vec<i16>,
}

impl Bridge {
    /// A bridge for a call in `call` (checked by [`check_format`]) to a wire in `wire`.
    pub fn new(call: AudioFormat, wire: AudioFormat) -> Bridge {
        let rates = if call.sample_rate() == wire.sample_rate() {
            None
        } else {
            // Both rates are among the resampler's (8 and 16 kHz) for a checked format.
            let down = Resampler::new(call.sample_rate(), wire.sample_rate());
            let up = Resampler::new(wire.sample_rate(), call.sample_rate());
            down.ok().zip(up.ok())
        };
        Bridge { call, wire, rates, before: Vec::with_capacity(960), after: Vec::with_capacity(960) }
    }

    /// Append the call's `bytes` to `out` in the wire's format.
    pub fn to_wire(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match self.rates.as_mut() {
            None => convert(self.call, self.wire, bytes, out),
            Some((down, _)) => {
                resample(self.call, self.wire, down, bytes, &mut self.before, &mut self.after, out)
            }
        }
    }

    /// Append the wire's `bytes` to `out` in the call's format.
    pub fn from_wire(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match self.rates.as_mut() {
            None => convert(self.wire, self.call, bytes, out),
            Some((_, up)) => {
                resample(self.wire, self.call, up, bytes, &mut self.before, &mut self.after, out)
            }
        }
    }
}

/// `bytes` in `from` → samples → `resampler` → `to`, appended to `out`.
fn resample(
    from: AudioFormat,
    to: AudioFormat,
    resampler: &mut Resampler,
    bytes: &[u8],
    before: &mut Vec<i16>,
    after: &mut Vec<i16>,
    out: &mut Vec<u8>,
) {
    before.clear();
    let samples = bytes.len() / from.bytes_per_sample();
    before.extend((0..samples).filter_map(|i| from.sample(bytes, i)));
    // Room for every output the resampler can make from this input, and a spare.
    let room = samples * to.sample_rate() as usize / from.sample_rate() as usize + 2;
    after.clear();
    after.resize(room, 0);
    let n = resampler.process(before, after);
    out.reserve(n * to.bytes_per_sample());
    for &x in after.iter().take(n) {
        to.push_sample(out, x);
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
        assert!(check_format(AudioFormat::Linear16 { rate_hz: 16000 }).is_ok());
        assert!(check_format(AudioFormat::Linear16 { rate_hz: 12000 }).is_err());
        assert!(check_format(AudioFormat::Alaw8k).is_ok());
    }

    #[test]
    fn a_16_khz_call_is_resampled_to_the_8_khz_wire_and_back() {
        let mut bridge = Bridge::new(PCM16_16K, AudioFormat::Ulaw8k);
        // 1 kHz at 16 kHz, 20 ms frames: 640 bytes in, 160 μ-law bytes out.
        let mut wire = Vec::new();
        let mut back = Vec::new();
        for k in 0..10 {
            let frame: Vec<u8> = (0..320)
                .flat_map(|i| {
                    let t = f64::from(k * 320 + i) / 16_000.0;
                    (((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 8000.0) as i16).to_le_bytes()
                })
                .collect();
            let before = wire.len();
            bridge.to_wire(&frame, &mut wire);
            assert_eq!(wire.len() - before, 160, "frame {k}");
            let before = back.len();
            bridge.from_wire(&wire[wire.len() - 160..], &mut back);
            assert_eq!(back.len() - before, 640, "frame {k}");
        }
        // The tone survives the trip: its level after the filters' start-up.
        let samples: Vec<f64> =
            back.chunks_exact(2).skip(320).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]]))).collect();
        let rms = (samples.iter().map(|x| x * x).sum::<f64>() / samples.len() as f64).sqrt();
        assert!((rms / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.1, "rms {rms:.0}");
        // Equal rates: no resampler, plain conversion.
        let mut same = Bridge::new(AudioFormat::Alaw8k, AudioFormat::Ulaw8k);
        let mut out = Vec::new();
        same.to_wire(&[0xD5, 0x2A], &mut out);
        let mut plain = Vec::new();
        convert(AudioFormat::Alaw8k, AudioFormat::Ulaw8k, &[0xD5, 0x2A], &mut plain);
        assert_eq!(out, plain);
    }
}
