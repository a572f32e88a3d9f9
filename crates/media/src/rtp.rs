//! RTP packets (RFC 3550 §5.1): a zero-copy parsed view and a writer into caller buffers.
//!
//! Parsing checks version 2, the CSRC list, the header extension and padding against the
//! buffer length and returns [`MediaError`] for anything that does not fit; it never panics
//! and never copies the payload. Writing goes into a caller-provided `&mut [u8]`, so the
//! send path allocates nothing.

use crate::MediaError;

/// The largest packet [`RtpPacket::parse`] accepts. 1500 bytes is an Ethernet MTU: 20 ms
/// of G.711 is 172 bytes, 120 ms is 972, so anything larger is not voice we negotiated.
pub const MAX_PACKET_LEN: usize = 1500;

/// Length of the fixed RTP header, without CSRCs or extension.
pub const HEADER_LEN: usize = 12;

/// The fixed-header fields a sender chooses per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// Marker bit: for audio, the first packet of a talkspurt.
    pub marker: bool,
    /// Payload type, 0-127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in media clock ticks (8000 Hz for G.711).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Write a 12-byte header (no CSRCs, extension or padding) followed by `payload` into
    /// `out`; returns the packet length.
    pub fn write_packet(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, MediaError> {
        let len = HEADER_LEN + payload.len();
        if out.len() < len {
            return Err(MediaError::BufferTooSmall { needed: len, got: out.len() });
        }
        let (head, rest) = split_mut(out, HEADER_LEN, len)?;
        self.write_fixed(head, 0, false, false);
        let (body, _) = split_mut(rest, payload.len(), len)?;
        body.copy_from_slice(payload);
        Ok(len)
    }

    fn write_fixed(&self, head: &mut [u8], csrc_count: u8, extension: bool, padding: bool) {
        let mut first = 2 << 6 | (csrc_count & 0x0F);
        if padding {
            first |= 0x20;
        }
        if extension {
            first |= 0x10;
        }
        let second = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        let mut fixed = [0u8; HEADER_LEN];
        fixed[0] = first;
        fixed[1] = second;
        fixed[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        fixed[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        fixed[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        for (o, b) in head.iter_mut().zip(fixed) {
            *o = b;
        }
    }
}

/// A header extension (RFC 3550 §5.3.1): the profile-defined 16 bits and the data words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// "defined by profile" field (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// Extension data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The fixed-header fields.
    pub header: RtpHeader,
    csrcs: &'a [u8],
    extension: Option<Extension<'a>>,
    payload: &'a [u8],
    padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// A packet with only the fixed header and `payload` (for building and for tests).
    pub fn new(header: RtpHeader, payload: &'a [u8]) -> Self {
        RtpPacket { header, csrcs: &[], extension: None, payload, padding: 0 }
    }

    /// Parse a datagram. Checks everything against the buffer: never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self, MediaError> {
        if buf.len() > MAX_PACKET_LEN {
            return Err(MediaError::Oversize { len: buf.len(), max: MAX_PACKET_LEN });
        }
        let Some((fixed, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
            return Err(MediaError::Truncated { needed: HEADER_LEN, got: buf.len() });
        };
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(MediaError::BadVersion(version));
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_len = usize::from(fixed[0] & 0x0F) * 4;
        let header = RtpHeader {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7F,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        };
        let truncated = |needed: usize| MediaError::Truncated { needed, got: buf.len() };
        let (csrcs, rest) = rest.split_at_checked(csrc_len).ok_or(truncated(HEADER_LEN + csrc_len))?;
        let (extension, rest) = if has_extension {
            let consumed = buf.len() - rest.len();
            let Some((ext_head, ext_rest)) = rest.split_first_chunk::<4>() else {
                return Err(truncated(consumed + 4));
            };
            let words = usize::from(u16::from_be_bytes([ext_head[2], ext_head[3]]));
            let (data, after) =
                ext_rest.split_at_checked(words * 4).ok_or(truncated(consumed + 4 + words * 4))?;
            let ext = Extension { profile: u16::from_be_bytes([ext_head[0], ext_head[1]]), data };
            (Some(ext), after)
        } else {
            (None, rest)
        };
        let (payload, padding) = if has_padding {
            let count = rest.last().copied().unwrap_or(0);
            if count == 0 || usize::from(count) > rest.len() {
                return Err(MediaError::BadPadding { padding: usize::from(count), available: rest.len() });
            }
            let payload = rest.get(..rest.len() - usize::from(count)).unwrap_or(&[]);
            (payload, count)
        } else {
            (rest, 0)
        };
        Ok(RtpPacket { header, csrcs, extension, payload, padding })
    }

    /// The media payload, without padding. Borrowed from the datagram.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Number of CSRCs (0-15).
    pub fn csrc_count(&self) -> usize {
        self.csrcs.len() / 4
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrcs.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The header extension, if the X bit was set.
    pub fn extension(&self) -> Option<Extension<'a>> {
        self.extension
    }

    /// Padding bytes at the end (including the count byte), 0 when the P bit is clear.
    pub fn padding_len(&self) -> usize {
        usize::from(self.padding)
    }

    /// Attach CSRCs given as big-endian bytes (4 per CSRC, at most 15) for building.
    pub fn with_csrc_bytes(mut self, csrcs: &'a [u8]) -> Result<Self, MediaError> {
        if !csrcs.len().is_multiple_of(4) || csrcs.len() > 15 * 4 {
            return Err(MediaError::BadHeader("CSRC list must be 0-15 entries of 4 bytes"));
        }
        self.csrcs = csrcs;
        Ok(self)
    }

    /// Attach a header extension for building; its data must be whole 32-bit words.
    pub fn with_extension(mut self, extension: Extension<'a>) -> Result<Self, MediaError> {
        if !extension.data.len().is_multiple_of(4) || extension.data.len() / 4 > usize::from(u16::MAX) {
            return Err(MediaError::BadHeader(
                "header extension data must be whole 32-bit words, at most 65535",
            ));
        }
        self.extension = Some(extension);
        Ok(self)
    }

    /// Add `count` bytes of padding (1-255) when building; 0 removes it.
    pub fn with_padding(mut self, count: u8) -> Self {
        self.padding = count;
        self
    }

    /// Bytes [`write`](Self::write) produces.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + self.csrcs.len()
            + self.extension.map_or(0, |e| 4 + e.data.len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Serialise into `out`; returns the length. Padding bytes are zero except the count.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, MediaError> {
        let len = self.encoded_len();
        if out.len() < len {
            return Err(MediaError::BufferTooSmall { needed: len, got: out.len() });
        }
        let (head, rest) = split_mut(out, HEADER_LEN, len)?;
        self.header.write_fixed(
            head,
            (self.csrcs.len() / 4) as u8,
            self.extension.is_some(),
            self.padding > 0,
        );
        let (csrcs, mut rest) = split_mut(rest, self.csrcs.len(), len)?;
        csrcs.copy_from_slice(self.csrcs);
        if let Some(ext) = self.extension {
            let (ext_head, after) = split_mut(rest, 4, len)?;
            let words = (ext.data.len() / 4) as u16;
            let mut bytes = [0u8; 4];
            bytes[..2].copy_from_slice(&ext.profile.to_be_bytes());
            bytes[2..].copy_from_slice(&words.to_be_bytes());
            ext_head.copy_from_slice(&bytes);
            let (data, after) = split_mut(after, ext.data.len(), len)?;
            data.copy_from_slice(ext.data);
            rest = after;
        }
        let (payload, rest) = split_mut(rest, self.payload.len(), len)?;
        payload.copy_from_slice(self.payload);
        let (padding, _) = split_mut(rest, usize::from(self.padding), len)?;
        padding.fill(0);
        if let Some(last) = padding.last_mut() {
            *last = self.padding;
        }
        Ok(len)
    }
}

/// Split `n` bytes off the front of `buf`, or report that `total` bytes do not fit.
fn split_mut(buf: &mut [u8], n: usize, total: usize) -> Result<(&mut [u8], &mut [u8]), MediaError> {
    let got = buf.len();
    buf.split_at_mut_checked(n).ok_or(MediaError::BufferTooSmall { needed: total, got })
}

/// Sequence-number arithmetic (RFC 3550 appendix A.1): the signed distance `a - b`,
/// correct across wrap-around for distances below 2^15.
#[inline]
pub fn seq_diff(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// Timestamp arithmetic: the signed distance `a - b`, correct across wrap-around.
#[inline]
pub fn ts_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; 12 + 8 + 8 + 3 + 2] {
        let mut p = [0u8; 33];
        p[0] = 0x80 | 0x20 | 0x10 | 2; // V=2, P, X, CC=2
        p[1] = 0x80 | 8; // M, PT 8
        p[2..4].copy_from_slice(&65535u16.to_be_bytes());
        p[4..8].copy_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
        p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        p[12..16].copy_from_slice(&1u32.to_be_bytes());
        p[16..20].copy_from_slice(&2u32.to_be_bytes());
        p[20..22].copy_from_slice(&0xBEDEu16.to_be_bytes());
        p[22..24].copy_from_slice(&1u16.to_be_bytes());
        p[24..28].copy_from_slice(&[9, 9, 9, 9]);
        p[28..31].copy_from_slice(&[0xD5, 0xD5, 0xD5]);
        p[31] = 0;
        p[32] = 2;
        p
    }

    #[test]
    fn parses_every_field() {
        let buf = sample();
        let p = RtpPacket::parse(&buf).expect("valid");
        assert!(p.header.marker);
        assert_eq!(p.header.payload_type, 8);
        assert_eq!(p.header.sequence, 65535);
        assert_eq!(p.header.timestamp, 0xDEAD_BEEF);
        assert_eq!(p.header.ssrc, 0x1234_5678);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(p.csrc_count(), 2);
        let ext = p.extension().expect("extension");
        assert_eq!(ext.profile, 0xBEDE);
        assert_eq!(ext.data, &[9, 9, 9, 9]);
        assert_eq!(p.payload(), &[0xD5, 0xD5, 0xD5]);
        assert_eq!(p.padding_len(), 2);
        // Zero-copy: the payload points into the datagram.
        assert_eq!(p.payload().as_ptr(), buf[28..].as_ptr());
    }

    #[test]
    fn round_trips() {
        let buf = sample();
        let p = RtpPacket::parse(&buf).expect("valid");
        let mut out = [0u8; 64];
        let n = p.write(&mut out).expect("fits");
        assert_eq!(&out[..n], &buf[..]);
        assert_eq!(RtpPacket::parse(&out[..n]), Ok(p));
        let mut small = [0u8; 32];
        assert!(matches!(p.write(&mut small), Err(MediaError::BufferTooSmall { needed: 33, got: 32 })));
    }

    #[test]
    fn builds_plain_packets() {
        let header = RtpHeader { marker: true, payload_type: 0, sequence: 7, timestamp: 160, ssrc: 42 };
        let mut out = [0u8; 200];
        let n = header.write_packet(&[0xFF; 160], &mut out).expect("fits");
        assert_eq!(n, 172);
        let p = RtpPacket::parse(&out[..n]).expect("valid");
        assert_eq!(p.header, header);
        assert_eq!(p.payload().len(), 160);
        assert_eq!(RtpPacket::new(header, &[0xFF; 160]).encoded_len(), 172);
        assert!(header.write_packet(&[0; 160], &mut out[..100]).is_err());
    }

    #[test]
    fn rejects_malformed() {
        let good = sample();
        assert!(matches!(RtpPacket::parse(&[]), Err(MediaError::Truncated { .. })));
        assert!(matches!(RtpPacket::parse(&good[..11]), Err(MediaError::Truncated { .. })));
        // Every truncation of the full packet is rejected, not mis-parsed.
        for len in 0..good.len() {
            assert!(RtpPacket::parse(&good[..len]).is_err(), "len {len}");
        }
        let mut v1 = good;
        v1[0] = (v1[0] & 0x3F) | 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(MediaError::BadVersion(1)));
        let mut zero_pad = good;
        zero_pad[32] = 0;
        assert!(matches!(RtpPacket::parse(&zero_pad), Err(MediaError::BadPadding { .. })));
        let mut huge_pad = good;
        huge_pad[32] = 6;
        assert!(matches!(RtpPacket::parse(&huge_pad), Err(MediaError::BadPadding { .. })));
        let big = [0x80u8; MAX_PACKET_LEN + 1];
        assert!(matches!(RtpPacket::parse(&big), Err(MediaError::Oversize { .. })));
        // CC=15 with nothing after the fixed header.
        let mut cc = [0u8; 12];
        cc[0] = 0x8F;
        assert!(matches!(RtpPacket::parse(&cc), Err(MediaError::Truncated { needed: 72, .. })));
    }

    #[test]
    fn padding_may_be_the_whole_rest() {
        let mut p = [0u8; 16];
        p[0] = 0xA0;
        p[15] = 4;
        let parsed = RtpPacket::parse(&p).expect("valid");
        assert!(parsed.payload().is_empty());
    }

    #[test]
    fn builder_validates() {
        let p = RtpPacket::new(RtpHeader::default(), &[1, 2]);
        assert!(p.with_csrc_bytes(&[0; 3]).is_err());
        assert!(p.with_csrc_bytes(&[0; 64]).is_err());
        let ext = Extension { profile: 1, data: &[0; 5] };
        assert!(p.with_extension(ext).is_err());
        let built = p
            .with_csrc_bytes(&[0, 0, 0, 7])
            .and_then(|p| p.with_extension(Extension { profile: 1, data: &[] }))
            .expect("valid")
            .with_padding(3);
        let mut out = [0u8; 64];
        let n = built.write(&mut out).expect("fits");
        assert_eq!(RtpPacket::parse(&out[..n]), Ok(built));
    }

    #[test]
    fn wrapping_distances() {
        assert_eq!(seq_diff(0, 65535), 1);
        assert_eq!(seq_diff(65535, 0), -1);
        assert_eq!(seq_diff(100, 90), 10);
        assert_eq!(ts_diff(80, u32::MAX - 79), 160);
        assert_eq!(ts_diff(0, 160), -160);
    }
}
