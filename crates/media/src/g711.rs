//! G.711 μ-law and A-law: encode, decode and direct μ-law↔A-law transcoding.
//!
//! Bit-exact with ITU-T G.711 as implemented by the ITU-T G.191 software tools (`g711.c`):
//! linear samples are 16-bit two's complement; the encoder truncates (it does not round),
//! and negative inputs are taken as their one's complement before truncation, so
//! `-1..=-4` map to the smallest negative μ-law code `0x7F`. Decoded values are the
//! G.191 reconstruction levels scaled to 16 bits (μ-law ±32124, A-law ±32256 at most).
//!
//! Every function is a table lookup; the tables are built at compile time by `const fn`.
//! The slice functions convert `min(input.len(), output.len())` samples and return that
//! count: they never panic.

/// The two G.711 companding laws, with their static RTP payload types (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// μ-law, PCMU, payload type 0.
    Ulaw,
    /// A-law, PCMA, payload type 8.
    Alaw,
}

impl Law {
    /// The static RTP payload type: 0 for PCMU, 8 for PCMA.
    pub const fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The law for a static payload type, if it is 0 or 8.
    pub const fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }

    /// The code that decodes to (near) zero: what silence is made of.
    pub const fn silence(self) -> u8 {
        match self {
            Law::Ulaw => 0xFF,
            Law::Alaw => 0xD5,
        }
    }

    /// Encode one sample.
    #[inline]
    pub fn encode(self, x: i16) -> u8 {
        match self {
            Law::Ulaw => ulaw_encode(x),
            Law::Alaw => alaw_encode(x),
        }
    }

    /// Decode one code.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_decode(code),
            Law::Alaw => alaw_decode(code),
        }
    }

    /// Encode `min(pcm.len(), out.len())` samples; returns that count.
    pub fn encode_slice(self, pcm: &[i16], out: &mut [u8]) -> usize {
        match self {
            Law::Ulaw => encode_ulaw(pcm, out),
            Law::Alaw => encode_alaw(pcm, out),
        }
    }

    /// Decode `min(codes.len(), out.len())` codes; returns that count.
    pub fn decode_slice(self, codes: &[u8], out: &mut [i16]) -> usize {
        match self {
            Law::Ulaw => decode_ulaw(codes, out),
            Law::Alaw => decode_alaw(codes, out),
        }
    }
}

/// Number of significant bits of `v` (0 for 0).
const fn bit_len(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// G.191 μ-law compression of one 16-bit sample (reference arithmetic, used to fill the table).
const fn ulaw_compress(x: i16) -> u8 {
    let x = x as i32;
    // One's complement of negatives, then drop the 2 bits below μ-law's 14-bit resolution.
    let (magnitude, sign) = if x < 0 { ((!x) >> 2, 0x00) } else { (x >> 2, 0x80) };
    let mut biased = magnitude + 33;
    if biased > 0x1FFF {
        biased = 0x1FFF;
    }
    let segment = 1 + bit_len((biased >> 6) as u32); // 1..=8
    let high = 8 - segment;
    let low = 15 - ((biased >> segment) & 0x0F) as u32;
    (sign | (high << 4) | low) as u8
}

/// G.191 A-law compression of one 16-bit sample (reference arithmetic, used to fill the table).
const fn alaw_compress(x: i16) -> u8 {
    let x = x as i32;
    // One's complement of negatives, then A-law's 12-bit magnitude (13-bit signed).
    let (magnitude, sign) = if x < 0 { ((!x) >> 4, 0x00) } else { (x >> 4, 0x80) };
    let code = if magnitude > 15 {
        let exponent = bit_len(magnitude as u32) - 4; // 1..=7
        let mantissa = (magnitude as u32 >> (exponent - 1)) & 0x0F;
        (exponent << 4) | mantissa
    } else {
        magnitude as u32
    };
    ((code | sign) ^ 0x55) as u8
}

/// G.191 μ-law expansion of one code.
const fn ulaw_expand(code: u8) -> i16 {
    let inverted = !code;
    let exponent = ((inverted >> 4) & 0x07) as i32;
    let mantissa = (inverted & 0x0F) as i32;
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    if code < 0x80 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// G.191 A-law expansion of one code.
const fn alaw_expand(code: u8) -> i16 {
    let ix = code ^ 0x55;
    let exponent = ((ix & 0x7F) >> 4) as i32;
    let mut mantissa = (ix & 0x0F) as i32;
    if exponent > 0 {
        mantissa += 16;
    }
    let mut magnitude = (mantissa << 4) + 8;
    if exponent > 1 {
        magnitude <<= exponent - 1;
    }
    if ix > 127 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// μ-law codes indexed by `(x >> 2) & 0x3FFF` (G.191 μ-law only looks at the top 14 bits).
static ULAW_ENCODE: [u8; 1 << 14] = {
    let mut table = [0u8; 1 << 14];
    let mut i = 0;
    while i < table.len() {
        // Rebuild a 16-bit sample whose top 14 bits are `i` (sign-extended).
        let x = ((i as i32) << 18 >> 16) as i16;
        table[i] = ulaw_compress(x);
        i += 1;
    }
    table
};

/// A-law codes indexed by `(x >> 4) & 0x0FFF` (A-law only looks at the top 12 bits).
static ALAW_ENCODE: [u8; 1 << 12] = {
    let mut table = [0u8; 1 << 12];
    let mut i = 0;
    while i < table.len() {
        let x = ((i as i32) << 20 >> 16) as i16;
        table[i] = alaw_compress(x);
        i += 1;
    }
    table
};

static ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_expand(i as u8);
        i += 1;
    }
    table
};

static ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_expand(i as u8);
        i += 1;
    }
    table
};

/// ITU-T G.711 Table 3 (μ-law → A-law), as magnitude indices: entry `i` is the A-law
/// magnitude index (0 = smallest level) for μ-law magnitude index `i`. Includes the
/// published correction of entry 80.
const MU_TO_A_MAGNITUDE: [u8; 128] = [
    0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, //
    8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, //
    24, 26, 28, 30, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, //
    45, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, //
    63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, //
    79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, //
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, //
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
];

/// ITU-T G.711 Table 4 (A-law → μ-law), as magnitude indices (see [`MU_TO_A_MAGNITUDE`]),
/// including the published correction of entry 79.
const A_TO_MU_MAGNITUDE: [u8; 128] = [
    1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, //
    24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35, //
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49, //
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64, //
    65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, //
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, //
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, //
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
];

// μ-law code = sign bit | (0x7F ^ magnitude index); A-law code = (sign bit | index) ^ 0x55.
static ULAW_TO_ALAW: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut code = 0;
    while code < 256 {
        let sign = (code & 0x80) as u8;
        let mu_index = (code as u8 & 0x7F) ^ 0x7F;
        table[code] = (sign | MU_TO_A_MAGNITUDE[mu_index as usize]) ^ 0x55;
        code += 1;
    }
    table
};

static ALAW_TO_ULAW: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut code = 0;
    while code < 256 {
        let sign = (code & 0x80) as u8;
        let a_index = (code as u8 ^ 0x55) & 0x7F;
        table[code] = sign | (A_TO_MU_MAGNITUDE[a_index as usize] ^ 0x7F);
        code += 1;
    }
    table
};

/// Encode one 16-bit sample to μ-law.
#[inline]
pub fn ulaw_encode(x: i16) -> u8 {
    ULAW_ENCODE[((x >> 2) as u16 & 0x3FFF) as usize]
}

/// Encode one 16-bit sample to A-law.
#[inline]
pub fn alaw_encode(x: i16) -> u8 {
    ALAW_ENCODE[((x >> 4) as u16 & 0x0FFF) as usize]
}

/// Decode one μ-law code to a 16-bit sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Decode one A-law code to a 16-bit sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Transcode one μ-law code to A-law (G.711 Table 3), without going through linear.
#[inline]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

/// Transcode one A-law code to μ-law (G.711 Table 4), without going through linear.
#[inline]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

/// μ-law-encode `min(pcm.len(), out.len())` samples; returns that count.
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &x) in out.iter_mut().zip(pcm) {
        *o = ulaw_encode(x);
    }
    n
}

/// A-law-encode `min(pcm.len(), out.len())` samples; returns that count.
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &x) in out.iter_mut().zip(pcm) {
        *o = alaw_encode(x);
    }
    n
}

/// Decode `min(codes.len(), out.len())` μ-law codes; returns that count.
pub fn decode_ulaw(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_decode(c);
    }
    n
}

/// Decode `min(codes.len(), out.len())` A-law codes; returns that count.
pub fn decode_alaw(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_decode(c);
    }
    n
}

/// Transcode μ-law codes to A-law in place.
pub fn ulaw_to_alaw_in_place(codes: &mut [u8]) {
    for c in codes {
        *c = ulaw_to_alaw(*c);
    }
}

/// Transcode A-law codes to μ-law in place.
pub fn alaw_to_ulaw_in_place(codes: &mut [u8]) {
    for c in codes {
        *c = alaw_to_ulaw(*c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookup_matches_reference_arithmetic_for_every_input() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(x), ulaw_compress(x), "μ-law {x}");
            assert_eq!(alaw_encode(x), alaw_compress(x), "A-law {x}");
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn decode_then_encode_is_identity_except_negative_zero() {
        for code in 0..=255u8 {
            // μ-law 0x7F decodes to 0 like 0xFF, which re-encodes as 0xFF.
            if code != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(code)), code, "μ-law {code:#x}");
            }
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#x}");
        }
    }

    #[test]
    fn transcoding_keeps_sign_and_is_monotonic_and_close() {
        // Walk magnitude indices upwards for both signs.
        for sign in [0x00u8, 0x80] {
            let mut previous = 0i32;
            for index in 0..128u8 {
                let mu = sign | (0x7F ^ index);
                let a = ulaw_to_alaw(mu);
                assert_eq!(a & 0x80, sign);
                let level = i32::from(alaw_decode(a)).abs();
                assert!(level >= previous);
                previous = level;
                let error = (level - i32::from(ulaw_decode(mu)).abs()).abs();
                assert!(error <= 132, "μ {mu:#x} → A {a:#x}: error {error}");
            }
            let mut previous = 0i32;
            for index in 0..128u8 {
                let a = (sign | index) ^ 0x55;
                let mu = alaw_to_ulaw(a);
                assert_eq!(mu & 0x80, sign);
                let level = i32::from(ulaw_decode(mu)).abs();
                assert!(level >= previous);
                previous = level;
                let error = (level - i32::from(alaw_decode(a)).abs()).abs();
                assert!(error <= 132, "A {a:#x} → μ {mu:#x}: error {error}");
            }
        }
        // Exact levels transcode exactly: A-law 8 ↔ μ-law 8, silence to near-silence.
        assert_eq!(alaw_to_ulaw(0xD5), 0xFE);
        assert_eq!(ulaw_to_alaw(0xFF), 0xD5);
    }

    #[test]
    fn slice_functions_stop_at_the_shorter_buffer() {
        let pcm = [0i16, 1000, -1000];
        let mut out = [0u8; 2];
        assert_eq!(encode_ulaw(&pcm, &mut out), 2);
        let mut back = [0i16; 5];
        assert_eq!(decode_alaw(&out, &mut back), 2);
        assert_eq!(Law::Alaw.encode_slice(&[], &mut out), 0);
        let mut codes = [0xFFu8, 0x7F];
        ulaw_to_alaw_in_place(&mut codes);
        alaw_to_ulaw_in_place(&mut codes);
        assert_eq!(codes[0], 0xFE);
    }

    #[test]
    fn law_metadata() {
        assert_eq!(Law::from_payload_type(0), Some(Law::Ulaw));
        assert_eq!(Law::from_payload_type(8), Some(Law::Alaw));
        assert_eq!(Law::from_payload_type(9), None);
        assert_eq!(Law::Alaw.payload_type(), 8);
        assert_eq!(Law::Ulaw.decode(Law::Ulaw.silence()), 0);
        assert_eq!(Law::Alaw.decode(Law::Alaw.silence()), 8);
        assert_eq!(Law::Alaw.encode(0), 0xD5);
    }
}
