//! The values that cross the seam every 20 ms: the call's [`AudioFormat`], the fixed-size
//! [`AudioFrame`] that carries audio both ways, and a validated DTMF [`Digit`].

use std::fmt;

use voice_ua_media::Law;

use crate::AgentError;

/// The most bytes one [`AudioFrame`] holds: 20 ms of linear16 at 16 kHz.
pub const MAX_FRAME_BYTES: usize = 640;

/// The audio format of a call, the same in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// G.711 μ-law (PCMU), 8 kHz, one byte per sample.
    Ulaw8k,
    /// G.711 A-law (PCMA), 8 kHz, one byte per sample.
    Alaw8k,
    /// Signed 16-bit little-endian PCM, mono, at `rate_hz` (8000-16000, a multiple of 50).
    Linear16 {
        /// Samples per second.
        rate_hz: u32,
    },
}

impl AudioFormat {
    /// A linear16 format, if its 20 ms frame fits an [`AudioFrame`].
    pub fn linear16(rate_hz: u32) -> Result<Self, AgentError> {
        let format = AudioFormat::Linear16 { rate_hz };
        format.validate()?;
        Ok(format)
    }

    /// `Ok` when 20 ms of this format is a whole number of samples and fits a frame.
    pub fn validate(self) -> Result<(), AgentError> {
        match self {
            AudioFormat::Ulaw8k | AudioFormat::Alaw8k => Ok(()),
            AudioFormat::Linear16 { rate_hz } => {
                if (8000..=16000).contains(&rate_hz) && rate_hz % 50 == 0 {
                    Ok(())
                } else {
                    Err(AgentError::UnsupportedFormat { format: self })
                }
            }
        }
    }

    /// The 8 kHz G.711 format of `law`.
    pub const fn for_law(law: Law) -> AudioFormat {
        match law {
            Law::Ulaw => AudioFormat::Ulaw8k,
            Law::Alaw => AudioFormat::Alaw8k,
        }
    }

    /// The G.711 law, for the two G.711 formats.
    pub const fn law(self) -> Option<Law> {
        match self {
            AudioFormat::Ulaw8k => Some(Law::Ulaw),
            AudioFormat::Alaw8k => Some(Law::Alaw),
            AudioFormat::Linear16 { .. } => None,
        }
    }

    /// Samples per second.
    pub const fn sample_rate(self) -> u32 {
        match self {
            AudioFormat::Ulaw8k | AudioFormat::Alaw8k => 8000,
            AudioFormat::Linear16 { rate_hz } => rate_hz,
        }
    }

    /// Bytes per sample: 1 for G.711, 2 for linear16.
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            AudioFormat::Ulaw8k | AudioFormat::Alaw8k => 1,
            AudioFormat::Linear16 { .. } => 2,
        }
    }

    /// Samples in 20 ms.
    pub const fn frame_samples(self) -> usize {
        (self.sample_rate() / 50) as usize
    }

    /// Bytes in 20 ms (160 for G.711).
    pub const fn frame_bytes(self) -> usize {
        self.frame_samples() * self.bytes_per_sample()
    }

    /// Bytes in one second.
    pub const fn bytes_per_second(self) -> usize {
        self.sample_rate() as usize * self.bytes_per_sample()
    }

    /// Decode sample `i` of `bytes` to 16-bit linear; `None` past the end.
    #[inline]
    pub fn sample(self, bytes: &[u8], i: usize) -> Option<i16> {
        match self.law() {
            Some(law) => bytes.get(i).map(|&code| law.decode(code)),
            None => {
                let b = bytes.get(2 * i..2 * i + 2)?;
                Some(i16::from_le_bytes([b[0], b[1]]))
            }
        }
    }

    /// Append one 16-bit sample, encoded, to `out` (no allocation within its capacity).
    #[inline]
    pub fn push_sample(self, out: &mut Vec<u8>, x: i16) {
        match self.law() {
            Some(law) => out.push(law.encode(x)),
            None => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioFormat::Ulaw8k => f.write_str("PCMU/8000"),
            AudioFormat::Alaw8k => f.write_str("PCMA/8000"),
            AudioFormat::Linear16 { rate_hz } => write!(f, "L16/{rate_hz}"),
        }
    }
}

/// Up to [`MAX_FRAME_BYTES`] of audio in a fixed array: `Copy`, never on the heap.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AudioFrame {
    len: u16,
    buf: [u8; MAX_FRAME_BYTES],
}

impl AudioFrame {
    /// A frame holding a copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Result<Self, AgentError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(AgentError::FrameTooLarge { len: bytes.len(), max: MAX_FRAME_BYTES });
        }
        let mut buf = [0u8; MAX_FRAME_BYTES];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(AudioFrame { len: bytes.len() as u16, buf })
    }

    /// 20 ms of silence in `format`.
    pub fn silence(format: AudioFormat) -> Self {
        let fill = format.law().map_or(0, Law::silence);
        let len = format.frame_bytes().min(MAX_FRAME_BYTES);
        AudioFrame { len: len as u16, buf: [fill; MAX_FRAME_BYTES] }
    }

    /// `bytes` cut into frames of at most `max_len` bytes (clamped to 1..=[`MAX_FRAME_BYTES`]),
    /// in order; the last one may be shorter. Keep `max_len` even for linear16.
    pub fn chunks(bytes: &[u8], max_len: usize) -> impl Iterator<Item = AudioFrame> + '_ {
        let size = max_len.clamp(1, MAX_FRAME_BYTES);
        bytes.chunks(size).map(|chunk| {
            let mut buf = [0u8; MAX_FRAME_BYTES];
            buf[..chunk.len()].copy_from_slice(chunk);
            AudioFrame { len: chunk.len() as u16, buf }
        })
    }

    /// The audio bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// No bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AudioFrame({} bytes)", self.len)
    }
}

/// A DTMF key: `0`-`9`, `*`, `#`, `A`-`D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(char);

impl Digit {
    /// The key for `c` (lower-case `a`-`d` are accepted as `A`-`D`).
    pub fn new(c: char) -> Result<Self, AgentError> {
        let c = c.to_ascii_uppercase();
        match c {
            '0'..='9' | '*' | '#' | 'A'..='D' => Ok(Digit(c)),
            _ => Err(AgentError::InvalidDigit { digit: c }),
        }
    }

    /// The key as a character.
    pub const fn as_char(self) -> char {
        self.0
    }

    /// Its ITU-T Q.23 frequency pair in Hz: (low group, high group).
    pub const fn frequencies(self) -> (u32, u32) {
        const LOW: [u32; 4] = [697, 770, 852, 941];
        const HIGH: [u32; 4] = [1209, 1336, 1477, 1633];
        let (row, col) = match self.0 {
            '1' => (0, 0),
            '2' => (0, 1),
            '3' => (0, 2),
            'A' => (0, 3),
            '4' => (1, 0),
            '5' => (1, 1),
            '6' => (1, 2),
            'B' => (1, 3),
            '7' => (2, 0),
            '8' => (2, 1),
            '9' => (2, 2),
            'C' => (2, 3),
            '*' => (3, 0),
            '0' => (3, 1),
            '#' => (3, 2),
            _ => (3, 3), // 'D': the constructor admits nothing else
        };
        (LOW[row], HIGH[col])
    }
}

impl fmt::Display for Digit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes() {
        assert_eq!(AudioFormat::Ulaw8k.frame_bytes(), 160);
        assert_eq!(AudioFormat::Alaw8k.frame_bytes(), 160);
        assert_eq!(AudioFormat::Linear16 { rate_hz: 16000 }.frame_bytes(), 640);
        assert_eq!(AudioFormat::Linear16 { rate_hz: 8000 }.frame_bytes(), 320);
        assert!(AudioFormat::linear16(24000).is_err());
        assert!(AudioFormat::linear16(8010).is_err());
        assert!(AudioFormat::linear16(12000).is_ok());
    }

    #[test]
    fn frames_hold_up_to_the_limit_and_chunk_in_order() {
        assert!(AudioFrame::new(&[1; MAX_FRAME_BYTES]).is_ok());
        assert_eq!(
            AudioFrame::new(&[1; MAX_FRAME_BYTES + 1]),
            Err(AgentError::FrameTooLarge { len: 641, max: 640 })
        );
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let joined: Vec<u8> = AudioFrame::chunks(&data, 160).flat_map(|f| f.as_bytes().to_vec()).collect();
        assert_eq!(joined, data);
        assert_eq!(AudioFrame::chunks(&data, 10_000).count(), 2);
        assert_eq!(AudioFrame::silence(AudioFormat::Ulaw8k).as_bytes(), &[0xFF; 160][..]);
    }

    #[test]
    fn digits() {
        assert_eq!(Digit::new('5').map(Digit::frequencies), Ok((770, 1336)));
        assert_eq!(Digit::new('d').map(Digit::as_char), Ok('D'));
        assert_eq!(Digit::new('#').map(Digit::frequencies), Ok((941, 1477)));
        assert!(Digit::new('E').is_err());
    }

    #[test]
    fn linear16_samples_are_little_endian() {
        let f = AudioFormat::Linear16 { rate_hz: 8000 };
        let mut out = Vec::new();
        f.push_sample(&mut out, -2);
        assert_eq!(out, [0xFE, 0xFF]);
        assert_eq!(f.sample(&out, 0), Some(-2));
        assert_eq!(f.sample(&out, 1), None);
    }
}
