//! One G.722 sub-band's ADPCM state (ITU-T G.722 §3.3–§3.6 and §4): the adaptive
//! quantiser scale (LOGSCL/SCALEL, LOGSCH/SCALEH), the pole-zero predictor (RECONS,
//! PARREC, UPPOL2, UPPOL1, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC) and the tables of the
//! 64 kbit/s mode. Integer arithmetic exactly as the Recommendation specifies it: 16-bit
//! saturation, arithmetic right shifts.
//!
//! The encoder and the decoder run the same state machine on the same quantised
//! difference, which is why both sides stay in step as long as every code is decoded.

/// Saturate to the 16-bit range.
#[inline]
pub(crate) fn sat(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// Decision levels of the 6-bit lower-band quantiser (QUANTL), in units of DETL / 4096.
const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121,
    1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];
/// Lower-band codes for a negative difference, by quantiser interval.
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
    7, 6, 5, 4,
];
/// Lower-band codes for a positive difference, by quantiser interval.
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37,
    36, 35, 34, 33, 32,
];
/// 4-bit inverse quantiser (INVQAL): the predictor's difference, from the 4 top code bits.
const QM4: [i32; 16] =
    [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0];
/// 6-bit inverse quantiser (INVQBL in the 64 kbit/s mode): the decoder's output difference.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360,
    -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688,
    -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856,
    7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136,
    -432, -136,
];
/// Lower-band log-scale factor multipliers (LOGSCL), by RIL4 magnitude.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Code (4 top bits) → WL index.
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Inverse log-scale table (SCALEL/SCALEH): 2^(i/32) × 2048.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896,
    2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// 2-bit higher-band inverse quantiser (INVQAH).
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Higher-band log-scale multipliers (LOGSCH), by code magnitude.
const WH: [i32; 3] = [0, -214, 798];
/// Higher-band code → WH index.
const RH2: [usize; 4] = [2, 1, 2, 1];

/// Which sub-band: they differ in the scale-factor limits and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    Lower,
    Higher,
}

/// The adaptive state of one sub-band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Band {
    /// Signal estimate (PREDIC output) for the next sample.
    s: i32,
    /// Zero-section part of the estimate (FILTEZ output).
    sz: i32,
    /// Pole coefficients a1, a2.
    a1: i32,
    a2: i32,
    /// Zero coefficients b1..b6.
    b: [i32; 6],
    /// Past quantised differences, newest first.
    d: [i32; 6],
    /// Past partial reconstructions p(n-1), p(n-2).
    p1: i32,
    p2: i32,
    /// Past reconstructions r(n-1), r(n-2).
    r1: i32,
    r2: i32,
    /// Log scale factor (NBL/NBH) and the scale factor (DETL/DETH).
    nb: i32,
    det: i32,
}

impl Band {
    /// The reset state of §6.3: everything zero but the scale factor.
    pub(crate) const fn new(which: Which) -> Self {
        Band {
            s: 0,
            sz: 0,
            a1: 0,
            a2: 0,
            b: [0; 6],
            d: [0; 6],
            p1: 0,
            p2: 0,
            r1: 0,
            r2: 0,
            nb: 0,
            det: match which {
                Which::Lower => 32,
                Which::Higher => 8,
            },
        }
    }

    /// Encode one lower-band sample: the 6-bit code.
    pub(crate) fn encode_lower(&mut self, xl: i32) -> u8 {
        let el = sat(xl - self.s);
        // QUANTL: magnitude in one's complement, then the interval.
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut interval = Q6.len();
        for (i, &level) in Q6.iter().enumerate().skip(1) {
            if wd < (level * self.det) >> 12 {
                interval = i;
                break;
            }
        }
        let table = if el < 0 { &ILN } else { &ILP };
        let code = table.get(interval).copied().unwrap_or(0);
        self.adapt_lower(code);
        code
    }

    /// Decode one 6-bit lower-band code: the reconstructed sample (15-bit range).
    pub(crate) fn decode_lower(&mut self, code: u8) -> i32 {
        let q = QM6.get(usize::from(code & 0x3F)).copied().unwrap_or(0);
        let out = (self.s + ((self.det * q) >> 15)).clamp(-16384, 16383);
        self.adapt_lower(code);
        out
    }

    /// Encode one higher-band sample: the 2-bit code.
    pub(crate) fn encode_higher(&mut self, xh: i32) -> u8 {
        let eh = sat(xh - self.s);
        // QUANTH.
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let outer = wd >= (564 * self.det) >> 12;
        let code = match (eh < 0, outer) {
            (true, false) => 1,
            (true, true) => 0,
            (false, false) => 3,
            (false, true) => 2,
        };
        self.adapt_higher(code);
        code
    }

    /// Decode one 2-bit higher-band code: the reconstructed sample (15-bit range).
    pub(crate) fn decode_higher(&mut self, code: u8) -> i32 {
        let q = QM2.get(usize::from(code & 3)).copied().unwrap_or(0);
        let out = (self.s + ((self.det * q) >> 15)).clamp(-16384, 16383);
        self.adapt_higher(code);
        out
    }

    /// INVQAL, LOGSCL, SCALEL, then the predictor update.
    fn adapt_lower(&mut self, code: u8) {
        let four = usize::from((code >> 2) & 0x0F);
        let d = (self.det * QM4.get(four).copied().unwrap_or(0)) >> 15;
        let w = WL.get(RL42.get(four).copied().unwrap_or(0)).copied().unwrap_or(0);
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, 18432);
        self.det = scale(self.nb, 8);
        self.predict(d);
    }

    /// INVQAH, LOGSCH, SCALEH, then the predictor update.
    fn adapt_higher(&mut self, code: u8) {
        let code = usize::from(code & 3);
        let d = (self.det * QM2.get(code).copied().unwrap_or(0)) >> 15;
        let w = WH.get(RH2.get(code).copied().unwrap_or(0)).copied().unwrap_or(0);
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, 22528);
        self.det = scale(self.nb, 10);
        self.predict(d);
    }

    /// The predictor blocks on the quantised difference `d`: reconstruct, adapt the pole
    /// and zero coefficients, shift the delay lines and compute the next estimate.
    fn predict(&mut self, d: i32) {
        // RECONS, PARREC.
        let r0 = sat(self.s + d);
        let p0 = sat(self.sz + d);
        let (neg0, neg1, neg2) = (p0 < 0, self.p1 < 0, self.p2 < 0);
        // UPPOL2.
        let f = sat(self.a1 * 4);
        let w = if neg0 == neg1 { -f } else { f }.min(32767);
        let a2 = ((w >> 7) + if neg0 == neg2 { 128 } else { -128 } + ((self.a2 * 32512) >> 15))
            .clamp(-12288, 12288);
        // UPPOL1.
        let a1 = sat(if neg0 == neg1 { 192 } else { -192 } + ((self.a1 * 32640) >> 15));
        let limit = sat(15360 - a2);
        let a1 = a1.clamp(-limit, limit);
        // UPZERO.
        let step = if d == 0 { 0 } else { 128 };
        let neg_d = d < 0;
        for (b, &past) in self.b.iter_mut().zip(&self.d) {
            let w = if (past < 0) == neg_d { step } else { -step };
            *b = sat(w + ((*b * 32640) >> 15));
        }
        // DELAYA.
        self.d.rotate_right(1);
        self.d[0] = d;
        self.p2 = self.p1;
        self.p1 = p0;
        self.r2 = self.r1;
        self.r1 = r0;
        self.a1 = a1;
        self.a2 = a2;
        // FILTEP.
        let sp = sat(((self.a1 * sat(self.r1 * 2)) >> 15) + ((self.a2 * sat(self.r2 * 2)) >> 15));
        // FILTEZ, oldest tap first, saturating each step.
        let mut sz = 0;
        for (&b, &past) in self.b.iter().zip(&self.d).rev() {
            sz = sat(sz + ((b * sat(past * 2)) >> 15));
        }
        self.sz = sz;
        // PREDIC.
        self.s = sat(sp + sz);
    }
}

/// SCALEL/SCALEH: the linear scale factor from the log one; `bias` is 8 (lower) or 10.
fn scale(nb: i32, bias: i32) -> i32 {
    let mantissa = ILB.get(((nb >> 6) & 31) as usize).copied().unwrap_or(2048);
    let shift = bias - (nb >> 11);
    let wd = if shift < 0 { mantissa << -shift } else { mantissa >> shift };
    wd << 2
}
