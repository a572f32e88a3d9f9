//! The TTS's audio on its way to the call: raw PCM16 LE at the server's rate, in pieces
//! of any length (a piece may split a sample), resampled to the call's rate by one
//! resampler built per call, encoded in the call's format and cut into 20 ms frames.
//! Buffers are sized once; converting allocates nothing.

use voice_ua_media::Resampler;

use crate::provider::{AudioFormat, AudioFrame};
use crate::AgentError;

/// Input samples resampled per step (bounds the work buffers).
const STEP: usize = 1024;

/// One call's TTS audio converter.
pub struct Voice {
    format: AudioFormat,
    /// None when the server already speaks at the call's rate.
    resampler: Option<Resampler>,
    /// The odd byte of a sample split between two pieces.
    carry: Option<u8>,
    input: Vec<i16>,
    output: Vec<i16>,
    /// The frame being filled, in the call's format.
    frame: Vec<u8>,
}

impl Voice {
    /// A converter from PCM16 at `tts_rate` to `format`.
    pub fn new(tts_rate: u32, format: AudioFormat) -> Result<Voice, AgentError> {
        let call_rate = format.sample_rate();
        let resampler = if tts_rate == call_rate {
            None
        } else {
            Some(Resampler::new(tts_rate, call_rate).map_err(|e| {
                crate::ws::provider_error(
                    super::config::PROVIDER,
                    format!("cannot resample TTS audio from {tts_rate} Hz to {call_rate} Hz: {e}"),
                )
            })?)
        };
        let out_len = resampler.as_ref().map_or(STEP, |r| r.output_len(STEP) + 8);
        Ok(Voice {
            format,
            resampler,
            carry: None,
            input: Vec::with_capacity(STEP),
            output: vec![0; out_len],
            frame: Vec::with_capacity(format.frame_bytes()),
        })
    }

    /// Forget a reply's leftovers (a barge-in, a new reply): the next audio starts clean.
    pub fn reset(&mut self) {
        self.carry = None;
        self.input.clear();
        self.frame.clear();
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
    }

    /// Convert a piece of the TTS's body; each whole frame goes to `emit`. Returns the
    /// number of call-rate samples produced.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(AudioFrame)) -> usize {
        let mut produced = 0;
        if let Some(lo) = self.carry.take() {
            if let Some((&hi, rest)) = bytes.split_first() {
                self.input.push(i16::from_le_bytes([lo, hi]));
                bytes = rest;
            } else {
                self.carry = Some(lo);
            }
        }
        let mut pairs = bytes.chunks_exact(2);
        for pair in &mut pairs {
            self.input.push(i16::from_le_bytes([pair[0], pair[1]]));
            if self.input.len() == STEP {
                produced += self.drain(&mut emit);
            }
        }
        if let [odd] = pairs.remainder() {
            self.carry = Some(*odd);
        }
        produced + self.drain(&mut emit)
    }

    /// The end of a sentence's audio: its last partial frame is padded with silence and
    /// sent, so the sentence's audio ends where its mark goes. Returns the samples added.
    pub fn finish(&mut self, mut emit: impl FnMut(AudioFrame)) -> usize {
        self.carry = None;
        let mut produced = self.drain(&mut emit);
        if !self.frame.is_empty() {
            let silence = AudioFrame::silence(self.format);
            let missing = self.format.frame_bytes() - self.frame.len();
            let pad = silence.as_bytes().get(..missing).unwrap_or_default();
            self.frame.extend_from_slice(pad);
            produced += missing / self.format.bytes_per_sample();
            if let Ok(frame) = AudioFrame::new(&self.frame) {
                emit(frame);
            }
            self.frame.clear();
        }
        produced
    }

    fn drain(&mut self, emit: &mut impl FnMut(AudioFrame)) -> usize {
        let n = match self.resampler.as_mut() {
            Some(r) => r.process(&self.input, &mut self.output),
            None => {
                let n = self.input.len().min(self.output.len());
                self.output[..n].copy_from_slice(&self.input[..n]);
                n
            }
        };
        self.input.clear();
        let frame_bytes = self.format.frame_bytes();
        for &x in &self.output[..n] {
            self.format.push_sample(&mut self.frame, x);
            if self.frame.len() >= frame_bytes {
                if let Ok(frame) = AudioFrame::new(&self.frame) {
                    emit(frame);
                }
                self.frame.clear();
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voice_ua_media::Law;

    fn tone(rate: u32, ms: u32) -> Vec<u8> {
        let n = rate * ms / 1000;
        (0..n)
            .flat_map(|i| {
                let x = (std::f64::consts::TAU * 440.0 * f64::from(i) / f64::from(rate)).sin() * 8000.0;
                (x as i16).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn a_second_at_any_tts_rate_is_a_second_of_frames_however_it_is_split() {
        for rate in [24000, 22050, 16000, 8000] {
            let bytes = tone(rate, 1000);
            let mut voice = Voice::new(rate, AudioFormat::for_law(Law::Ulaw)).expect("voice");
            let mut frames = 0;
            // Pieces of odd sizes split samples between them.
            for piece in bytes.chunks(777) {
                voice.push(piece, |f| {
                    assert_eq!(f.len(), 160);
                    frames += 1;
                });
            }
            voice.finish(|_| frames += 1);
            assert!((49..=51).contains(&frames), "{rate} Hz gave {frames} frames");
        }
    }

    #[test]
    fn the_tone_survives_resampling() {
        let mut voice = Voice::new(22050, AudioFormat::for_law(Law::Ulaw)).expect("voice");
        let mut pcm = Vec::new();
        voice.push(&tone(22050, 500), |f| pcm.extend(f.as_bytes().iter().map(|&c| Law::Ulaw.decode(c))));
        let level = voice_ua_media::pcm_level_dbfs(&pcm[800..]);
        assert!(level > -20.0, "{level} dBFS");
    }
}
