//! The audio codecs a call's RTP carries end to end, and what differs between them: the
//! payload type, the audio rate (8 kHz G.711, 16 kHz G.722), the samples in a 20 ms
//! frame (rate / 50) and the RTP clock, which is 8000 Hz for all of them — G.722's
//! timestamps advance by 160 per 20 ms although it carries 320 samples (RFC 3551
//! §4.5.2). 20 ms of any of them is 160 payload bytes.

use crate::g711::Law;

/// Payload bytes (and RTP timestamp units) in 20 ms, for every codec here.
pub const FRAME_UNITS: usize = 160;
/// The most samples a 20 ms frame holds (G.722: 320 at 16 kHz).
pub const MAX_FRAME_SAMPLES: usize = 320;
/// The RTP clock rate of every codec here.
pub const RTP_CLOCK_HZ: u32 = 8000;

/// A codec carried end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 (PCMU or PCMA), 8 kHz, stateless.
    G711(Law),
    /// G.722 at 64 kbit/s, 16 kHz audio, stateful (ADPCM).
    G722,
}

impl From<Law> for AudioCodec {
    fn from(law: Law) -> Self {
        AudioCodec::G711(law)
    }
}

impl AudioCodec {
    /// The static RTP payload type: 0 PCMU, 8 PCMA, 9 G.722.
    pub const fn payload_type(self) -> u8 {
        match self {
            AudioCodec::G711(law) => law.payload_type(),
            AudioCodec::G722 => 9,
        }
    }

    /// The codec of a static payload type.
    pub const fn from_payload_type(pt: u8) -> Option<AudioCodec> {
        match pt {
            9 => Some(AudioCodec::G722),
            _ => match Law::from_payload_type(pt) {
                Some(law) => Some(AudioCodec::G711(law)),
                None => None,
            },
        }
    }

    /// Audio samples per second: 8000 or 16000.
    pub const fn sample_rate(self) -> u32 {
        match self {
            AudioCodec::G711(_) => 8000,
            AudioCodec::G722 => 16_000,
        }
    }

    /// Samples in 20 ms: 160 or 320.
    pub const fn frame_samples(self) -> usize {
        (self.sample_rate() / 50) as usize
    }

    /// Audio samples per RTP timestamp unit (and per payload byte): 1 or 2.
    pub const fn samples_per_unit(self) -> usize {
        self.frame_samples() / FRAME_UNITS
    }

    /// The G.711 law, for G.711.
    pub const fn law(self) -> Option<Law> {
        match self {
            AudioCodec::G711(law) => Some(law),
            AudioCodec::G722 => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g722_has_16_khz_audio_on_an_8_khz_rtp_clock() {
        let g722 = AudioCodec::G722;
        assert_eq!((g722.payload_type(), g722.sample_rate(), g722.frame_samples()), (9, 16_000, 320));
        assert_eq!(g722.samples_per_unit(), 2);
        let pcmu = AudioCodec::from(Law::Ulaw);
        assert_eq!((pcmu.payload_type(), pcmu.sample_rate(), pcmu.frame_samples()), (0, 8000, 160));
        for pt in 0..128 {
            if let Some(c) = AudioCodec::from_payload_type(pt) {
                assert_eq!(c.payload_type(), pt);
            }
        }
        assert_eq!(AudioCodec::from_payload_type(9), Some(AudioCodec::G722));
        assert_eq!(AudioCodec::from_payload_type(18), None);
    }
}
