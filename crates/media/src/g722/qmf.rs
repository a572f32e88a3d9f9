//! The G.722 quadrature mirror filters (ITU-T G.722 §3.1 transmit, §4.4 receive): a
//! 24-tap filter pair that splits 16 kHz audio into two 8 kHz sub-bands (0–4 kHz and
//! 4–8 kHz) and joins them again. Integer arithmetic as specified; samples are 16-bit
//! linear at the outside and 15-bit inside the sub-bands.

/// The even-indexed coefficients h(0), h(2), …, h(22) (the odd ones are the same in
/// reverse order: h(23 − i) = h(i)), scaled by 2^13.
const H: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Delay-line length: 24 taps.
const TAPS: usize = 24;

/// The transmit QMF (analysis): two 16 kHz samples in, one lower- and one higher-band
/// sample out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Analysis {
    /// Input history, oldest first.
    x: [i32; TAPS],
}

impl Analysis {
    pub(crate) const fn new() -> Self {
        Analysis { x: [0; TAPS] }
    }

    /// Feed the next two samples; returns (xL, xH).
    #[inline]
    pub(crate) fn split(&mut self, first: i16, second: i16) -> (i32, i32) {
        self.x.copy_within(2.., 0);
        self.x[TAPS - 2] = i32::from(first);
        self.x[TAPS - 1] = i32::from(second);
        let (mut a, mut b) = (0i32, 0i32);
        for (i, &h) in H.iter().enumerate() {
            // xB: taps on the older sample of each pair; xA: on the newer one.
            b += self.x[2 * i] * h;
            a += self.x[2 * i + 1] * H[11 - i];
        }
        // 16-bit input: one more bit of shift than the 14-bit Recommendation.
        ((a + b) >> 14, (a - b) >> 14)
    }
}

/// The receive QMF (synthesis): one lower- and one higher-band sample in, two 16 kHz
/// samples out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Synthesis {
    /// Sum and difference history, oldest first, interleaved (sum, difference).
    x: [i32; TAPS],
}

impl Synthesis {
    pub(crate) const fn new() -> Self {
        Synthesis { x: [0; TAPS] }
    }

    /// Feed the reconstructed sub-band samples; returns the next two output samples.
    #[inline]
    pub(crate) fn join(&mut self, low: i32, high: i32) -> (i16, i16) {
        self.x.copy_within(2.., 0);
        self.x[TAPS - 2] = low + high;
        self.x[TAPS - 1] = low - high;
        let (mut first, mut second) = (0i32, 0i32);
        for (i, &h) in H.iter().enumerate() {
            second += self.x[2 * i] * h;
            first += self.x[2 * i + 1] * H[11 - i];
        }
        (clamp16(first >> 11), clamp16(second >> 11))
    }
}

fn clamp16(x: i32) -> i16 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}
