//! One tick's audio, both sides, for the call's recording (only recorded calls keep
//! it): what the caller said as played out of the jitter buffer, and what they heard
//! from us (the payload of the audio packet we sent, decoded).
//!
//! Recordings are 8 kHz (crates/records writes 8 kHz stereo WAV). A G.722 call's
//! 16 kHz audio is downsampled to 8 kHz here, both sides, with resamplers made once
//! when the leg starts; what we sent is decoded by a G.722 decoder that sees every
//! packet we send, in order, so it stays in step with the caller's.

use crate::media_leg::FRAME;
use voice_ua_media::{AudioCodec, G722Decoder, Resampler, MAX_FRAME_SAMPLES};

/// 16 kHz → 8 kHz for a G.722 call's recording.
struct Wideband {
    caller: Resampler,
    agent: Resampler,
    sent: G722Decoder,
    scratch: [i16; MAX_FRAME_SAMPLES],
}

/// One tick's audio, both sides, at 8 kHz.
pub(crate) struct Heard {
    pub(crate) caller: [i16; FRAME],
    pub(crate) agent: [i16; FRAME],
    pub(crate) agent_len: usize,
    pub(crate) ready: bool,
    codec: AudioCodec,
    wide: Option<Box<Wideband>>,
}

impl Heard {
    pub(crate) fn new() -> Heard {
        Heard {
            caller: [0; FRAME],
            agent: [0; FRAME],
            agent_len: 0,
            ready: false,
            codec: AudioCodec::G711(voice_ua_media::Law::Ulaw),
            wide: None,
        }
    }

    /// The call's codec, once the leg starts.
    pub(crate) fn set_codec(&mut self, codec: AudioCodec) {
        self.codec = codec;
        self.wide = match codec {
            AudioCodec::G722 => match (Resampler::new(16_000, 8000), Resampler::new(16_000, 8000)) {
                (Ok(caller), Ok(agent)) => Some(Box::new(Wideband {
                    caller,
                    agent,
                    sent: G722Decoder::new(),
                    scratch: [0; MAX_FRAME_SAMPLES],
                })),
                _ => None,
            },
            AudioCodec::G711(_) => None,
        };
    }

    /// The tick's caller frame (at the codec's rate); the agent side starts empty.
    pub(crate) fn caller_frame(&mut self, samples: &[i16]) {
        match self.wide.as_deref_mut() {
            Some(w) => {
                w.caller.process(samples, &mut self.caller);
            }
            None => {
                let n = samples.len().min(FRAME);
                self.caller[..n].copy_from_slice(&samples[..n]);
            }
        }
        self.agent_len = 0;
    }

    /// The payload of an audio packet we sent this tick; the first one is what the
    /// caller heard.
    pub(crate) fn sent_payload(&mut self, payload: &[u8]) {
        match (self.codec, self.wide.as_deref_mut()) {
            (AudioCodec::G722, Some(w)) => {
                // Every packet through the decoder, to stay in step with the caller's.
                let n = w.sent.decode(payload, &mut w.scratch);
                if self.agent_len == 0 {
                    self.agent_len = w.agent.process(w.scratch.get(..n).unwrap_or(&[]), &mut self.agent);
                }
            }
            (AudioCodec::G711(law), _) if self.agent_len == 0 => {
                self.agent_len = law.decode_slice(payload, &mut self.agent);
            }
            _ => {}
        }
    }
}
