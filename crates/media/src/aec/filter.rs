//! The echo canceller's adaptive filter: a partitioned-block frequency-domain NLMS
//! filter (PBFDAF, "multi-delay filter") of `parts` partitions of `n` samples, with an
//! FFT of `2n`, so the echo tail it models is `parts × n` samples long.
//!
//! Per block: the newest far-end block's spectrum joins a ring of the last `parts`
//! spectra, the echo estimate is the inverse FFT of Σ W_p·X_p (its last `n` samples),
//! and, when the caller is not talking, each partition moves along conj(X_p)·E
//! normalised by the far end's smoothed power in that bin. The gradient constraint
//! (zeroing each partition's second half in time) runs on one partition per block in
//! turn, which keeps the cost at five FFTs a block. Spectra are kept as separate real
//! and imaginary arrays so the per-bin loops vectorise. Nothing is allocated per block.

use super::fft::RealFft;

/// One set of spectra: `parts` × `bins`, real and imaginary parts apart.
#[derive(Debug, Clone)]
struct Spectra {
    re: Vec<f32>,
    im: Vec<f32>,
}

impl Spectra {
    fn new(len: usize) -> Spectra {
        Spectra { re: vec![0.0; len], im: vec![0.0; len] }
    }

    fn clear(&mut self) {
        self.re.iter_mut().for_each(|v| *v = 0.0);
        self.im.iter_mut().for_each(|v| *v = 0.0);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct BlockFilter {
    n: usize,
    parts: usize,
    fft: RealFft,
    /// Far-end spectra; slot `(head + p) % parts` is the one `p` blocks back.
    x: Spectra,
    head: usize,
    /// Filter spectra; partition `p` matches the far end `p` blocks back.
    w: Spectra,
    /// Smoothed far-end power per bin.
    power: Vec<f32>,
    /// The partition constrained next.
    next_constraint: usize,
    time: Vec<f32>,
    spec: Spectra,
}

/// Smoothing of the per-bin far-end power, per block.
const POWER_SMOOTH: f32 = 0.85;

impl BlockFilter {
    pub(crate) fn new(n: usize, parts: usize) -> BlockFilter {
        let bins = n + 1;
        BlockFilter {
            n,
            parts,
            fft: RealFft::new(2 * n),
            x: Spectra::new(parts * bins),
            head: 0,
            w: Spectra::new(parts * bins),
            power: vec![0.0; bins],
            next_constraint: 0,
            time: vec![0.0; 2 * n],
            spec: Spectra::new(bins),
        }
    }

    /// Forget the echo path (the delay moved).
    pub(crate) fn reset(&mut self) {
        self.w.clear();
        self.x.clear();
        self.power.iter_mut().for_each(|p| *p = 0.0);
    }

    /// The next far-end block: `x2n` is the last `2n` far samples (this block's `n`
    /// at the end).
    pub(crate) fn push_far(&mut self, x2n: &[f32]) {
        let bins = self.n + 1;
        self.head = (self.head + self.parts - 1) % self.parts;
        let slot = self.head * bins..(self.head + 1) * bins;
        let (re, im) = (&mut self.x.re[slot.clone()], &mut self.x.im[slot]);
        self.fft.forward(x2n, re, im);
        for ((p, r), i) in self.power.iter_mut().zip(re.iter()).zip(im.iter()) {
            *p = *p * POWER_SMOOTH + (1.0 - POWER_SMOOTH) * (r * r + i * i);
        }
    }

    /// The echo estimate for the current block (`n` samples).
    pub(crate) fn estimate(&mut self, out: &mut [f32]) {
        let bins = self.n + 1;
        self.spec.clear();
        let (sr, si) = (&mut self.spec.re, &mut self.spec.im);
        for p in 0..self.parts {
            let xs = ((self.head + p) % self.parts) * bins;
            let ws = p * bins;
            let (xr, xi) = (&self.x.re[xs..xs + bins], &self.x.im[xs..xs + bins]);
            let (wr, wi) = (&self.w.re[ws..ws + bins], &self.w.im[ws..ws + bins]);
            let spec = sr.iter_mut().zip(si.iter_mut());
            for ((((sr, si), xr), xi), (wr, wi)) in spec.zip(xr).zip(xi).zip(wr.iter().zip(wi)) {
                *sr += xr * wr - xi * wi;
                *si += xr * wi + xi * wr;
            }
        }
        self.fft.inverse(&self.spec.re, &self.spec.im, &mut self.time);
        out.copy_from_slice(&self.time[self.n..]);
    }

    /// Adapt towards the block's error `e` (`n` samples) with step `mu`; `floor` is the
    /// power regularisation (about the noise's power per bin).
    pub(crate) fn adapt(&mut self, e: &[f32], mu: f32, floor: f32) {
        let n = self.n;
        let bins = n + 1;
        self.time[..n].iter_mut().for_each(|t| *t = 0.0);
        self.time[n..].copy_from_slice(e);
        self.fft.forward(&self.time, &mut self.spec.re, &mut self.spec.im);
        // The normalised error per bin, shared by every partition; bins far below the
        // average (speech has little above 4 kHz) are held to 10 % of it.
        let mean = self.power.iter().sum::<f32>() / bins as f32;
        let floor = floor + 0.1 * mean;
        let (sr, si) = (&mut self.spec.re, &mut self.spec.im);
        let parts = self.parts as f32;
        for ((sr, si), p) in sr.iter_mut().zip(si.iter_mut()).zip(&self.power) {
            let g = mu / ((p + floor) * parts);
            *sr *= g;
            *si *= g;
        }
        for p in 0..self.parts {
            let xs = ((self.head + p) % self.parts) * bins;
            let ws = p * bins;
            let (xr, xi) = (&self.x.re[xs..xs + bins], &self.x.im[xs..xs + bins]);
            let (wr, wi) = (&mut self.w.re[ws..ws + bins], &mut self.w.im[ws..ws + bins]);
            let w = wr.iter_mut().zip(wi.iter_mut());
            for ((((wr, wi), xr), xi), (sr, si)) in w.zip(xr).zip(xi).zip(sr.iter().zip(si.iter())) {
                // w += conj(x) · s
                *wr += xr * sr + xi * si;
                *wi += xr * si - xi * sr;
            }
        }
        // The gradient constraint, one partition per block.
        let c = self.next_constraint;
        self.next_constraint = (c + 1) % self.parts;
        let ws = c * bins..(c + 1) * bins;
        let (wr, wi) = (&mut self.w.re[ws.clone()], &mut self.w.im[ws]);
        self.fft.inverse(wr, wi, &mut self.time);
        self.time[n..].iter_mut().for_each(|t| *t = 0.0);
        self.fft.forward(&self.time, wr, wi);
    }
}
