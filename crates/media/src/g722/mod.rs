//! ITU-T G.722 at 64 kbit/s (mode 1): sub-band ADPCM wideband speech, 16 kHz 16-bit PCM
//! ↔ 8000 bytes per second (one byte per two samples: 20 ms = 320 samples = 160 bytes).
//!
//! Written from the Recommendation: a QMF ([`qmf`]) splits the signal into two 8 kHz
//! sub-bands; the lower band is coded with 6 bits per sample, the higher with 2
//! ([`band`]). Each byte is `IH << 6 | IL`. Bit-exact with the reference implementations
//! that take 16-bit linear input (spandsp's and ffmpeg's non-trellis encoder; see
//! tests/interop/g722.rs).
//!
//! Both directions are stateful (ADPCM): an encoder's codes must all reach the decoder in
//! order for the two to stay in step; a lost code only perturbs the decoder, whose
//! adaptation pulls it back within tens of milliseconds. After a lost packet the decoder
//! goes on from its state (it is not reset: a reset restarts the scale factors at their
//! minimum and takes longer to converge, see the tests). Fixed-size state, no allocation,
//! no panics on any input.

mod band;
mod qmf;

use band::{Band, Which};
use qmf::{Analysis, Synthesis};

/// Audio sample rate of G.722 (the RTP clock rate is 8000 nevertheless: RFC 3551 §4.5.2).
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples per 20 ms frame.
pub const FRAME_SAMPLES: usize = 320;
/// Bytes per 20 ms frame.
pub const FRAME_BYTES: usize = 160;

/// A G.722 encoder (one per outgoing stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct G722Encoder {
    qmf: Analysis,
    lower: Band,
    higher: Band,
    /// An odd sample left over from the last call, waiting for its pair.
    pending: Option<i16>,
}

impl Default for G722Encoder {
    fn default() -> Self {
        G722Encoder::new()
    }
}

impl G722Encoder {
    /// The reset state.
    pub const fn new() -> Self {
        G722Encoder {
            qmf: Analysis::new(),
            lower: Band::new(Which::Lower),
            higher: Band::new(Which::Higher),
            pending: None,
        }
    }

    /// Back to the reset state.
    pub fn reset(&mut self) {
        *self = G722Encoder::new();
    }

    /// Encode 16 kHz samples into `out`, one byte per two samples; returns the bytes
    /// written. Stops when `out` is full (the samples not encoded are dropped); an odd
    /// last sample is kept for the next call.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let mut written = 0;
        let mut samples = pcm.iter().copied();
        let mut first = self.pending.take();
        for slot in out.iter_mut() {
            let a = match first.take() {
                Some(a) => a,
                None => match samples.next() {
                    Some(a) => a,
                    None => break,
                },
            };
            let Some(b) = samples.next() else {
                self.pending = Some(a);
                break;
            };
            *slot = self.encode_pair(a, b);
            written += 1;
        }
        written
    }

    /// One code from two samples.
    #[inline]
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        let (xl, xh) = self.qmf.split(first, second);
        let il = self.lower.encode_lower(xl);
        let ih = self.higher.encode_higher(xh);
        (ih << 6) | il
    }
}

/// A G.722 decoder (one per incoming stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct G722Decoder {
    qmf: Synthesis,
    lower: Band,
    higher: Band,
}

impl Default for G722Decoder {
    fn default() -> Self {
        G722Decoder::new()
    }
}

impl G722Decoder {
    /// The reset state.
    pub const fn new() -> Self {
        G722Decoder {
            qmf: Synthesis::new(),
            lower: Band::new(Which::Lower),
            higher: Band::new(Which::Higher),
        }
    }

    /// Back to the reset state.
    pub fn reset(&mut self) {
        *self = G722Decoder::new();
    }

    /// Decode `min(codes.len(), out.len() / 2)` codes into two samples each; returns the
    /// samples written.
    pub fn decode(&mut self, codes: &[u8], out: &mut [i16]) -> usize {
        let mut written = 0;
        for (&code, pair) in codes.iter().zip(out.chunks_exact_mut(2)) {
            let (a, b) = self.decode_code(code);
            pair.copy_from_slice(&[a, b]);
            written += 2;
        }
        written
    }

    /// Two samples from one code.
    #[inline]
    pub fn decode_code(&mut self, code: u8) -> (i16, i16) {
        let low = self.lower.decode_lower(code & 0x3F);
        let high = self.higher.decode_higher(code >> 6);
        self.qmf.join(low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 16_000.0).sin()) as i16)
            .collect()
    }

    fn round_trip(pcm: &[i16]) -> Vec<i16> {
        let mut codes = vec![0u8; pcm.len() / 2];
        let n = G722Encoder::new().encode(pcm, &mut codes);
        assert_eq!(n, pcm.len() / 2);
        let mut out = vec![0i16; pcm.len()];
        assert_eq!(G722Decoder::new().decode(&codes, &mut out), pcm.len());
        out
    }

    #[test]
    fn digital_silence_encodes_to_the_idle_pattern_and_decodes_to_near_silence() {
        let mut codes = [0u8; 40];
        G722Encoder::new().encode(&[0; 80], &mut codes);
        // IH = 3 (smallest positive higher-band step), IL = 58 (smallest positive
        // lower-band interval after the first adaptation): 0xFA, as the reference gives.
        assert!(codes.iter().all(|&c| c == 0xFA), "{codes:02x?}");
        let mut out = [1i16; 80];
        G722Decoder::new().decode(&codes, &mut out);
        assert!(out.iter().all(|s| s.abs() <= 2), "{out:?}");
    }

    #[test]
    fn the_two_qmfs_delay_the_signal_by_22_samples() {
        // Two 24-tap filters, 23 samples of group delay, less one for the sample pairing.
        // Cross-correlate a wideband chirp with its decoded version.
        let n = 4000;
        let input: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * (200.0 + 3000.0 * t) * t * 10.0).sin()) as i16
            })
            .collect();
        let output = round_trip(&input);
        let score = |lag: usize| -> f64 {
            input.iter().zip(&output[lag..]).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
        };
        let best = (0..60).max_by(|&a, &b| score(a).total_cmp(&score(b))).expect("lags");
        assert_eq!(best, 22);
    }

    #[test]
    fn both_sub_bands_pass_a_tone_at_good_snr() {
        // 1 kHz in the lower band, 5 kHz in the higher one (which G.711 cannot carry).
        for (freq, min_snr_db) in [(1000.0, 30.0), (5000.0, 12.0)] {
            let input = tone(freq, 8000.0, 16_000);
            let output = round_trip(&input);
            let (mut signal, mut noise) = (0.0f64, 0.0f64);
            for (&x, &y) in input.iter().zip(&output[22..]).skip(1600) {
                signal += f64::from(x).powi(2);
                noise += (f64::from(x) - f64::from(y)).powi(2);
            }
            let snr = 10.0 * (signal / noise).log10();
            assert!(snr > min_snr_db, "{freq} Hz: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn reset_returns_to_the_initial_state() {
        let input = tone(700.0, 12_000.0, 640);
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut codes = [0u8; 320];
        enc.encode(&input, &mut codes);
        let mut out = [0i16; 640];
        dec.decode(&codes, &mut out);
        assert_ne!(enc, G722Encoder::new());
        assert_ne!(dec, G722Decoder::new());
        enc.reset();
        dec.reset();
        assert_eq!(enc, G722Encoder::new());
        assert_eq!(dec, G722Decoder::new());
        // And a reset encoder gives the same codes as a fresh one.
        let mut again = [0u8; 320];
        enc.encode(&input, &mut again);
        assert_eq!(codes, again);
    }

    #[test]
    fn odd_chunks_encode_like_one_block() {
        let input = tone(440.0, 9000.0, 641);
        let mut whole = [0u8; 320];
        assert_eq!(G722Encoder::new().encode(&input[..640], &mut whole), 320);
        let mut enc = G722Encoder::new();
        let mut parts = [0u8; 320];
        let mut at = 0;
        for chunk in input[..640].chunks(37) {
            at += enc.encode(chunk, &mut parts[at..]);
        }
        assert_eq!(at, 320);
        assert_eq!(whole, parts);
        // A full output buffer stops the encoder.
        assert_eq!(G722Encoder::new().encode(&input, &mut [0u8; 10]), 10);
    }

    #[test]
    fn after_a_loss_decoding_on_beats_a_reset() {
        // A steady vowel-like signal; packet 10 (20 ms) is lost. Keeping the decoder's
        // state (the policy of the jitter buffer) converges faster than resetting it.
        let input: Vec<i16> = (0..16_000)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                (6000.0 * (2.0 * std::f64::consts::PI * 150.0 * t).sin()
                    + 3000.0 * (2.0 * std::f64::consts::PI * 450.0 * t).sin()
                    + 1500.0 * (2.0 * std::f64::consts::PI * 4500.0 * t).sin()) as i16
            })
            .collect();
        let mut codes = vec![0u8; 8000];
        G722Encoder::new().encode(&input, &mut codes);
        let mut clean = vec![0i16; 16_000];
        G722Decoder::new().decode(&codes, &mut clean);
        let lost = 10 * FRAME_BYTES..11 * FRAME_BYTES;
        let after = 11 * FRAME_SAMPLES..14 * FRAME_SAMPLES;
        let error = |reset: bool| -> f64 {
            let mut dec = G722Decoder::new();
            let mut out = vec![0i16; 16_000];
            dec.decode(&codes[..lost.start], &mut out[..2 * lost.start]);
            if reset {
                dec.reset();
            }
            dec.decode(&codes[lost.end..], &mut out[2 * lost.end..]);
            clean[after.clone()]
                .iter()
                .zip(&out[after.clone()])
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum()
        };
        let (kept, reset) = (error(false), error(true));
        let energy: f64 = clean[after.clone()].iter().map(|&a| f64::from(a).powi(2)).sum();
        assert!(kept < reset, "kept {kept:.0}, reset {reset:.0}");
        // And the kept decoder is back within 10 dB of the signal in 60 ms.
        assert!(kept < energy / 10.0, "kept {kept:.0}, signal {energy:.0}");
    }
}
