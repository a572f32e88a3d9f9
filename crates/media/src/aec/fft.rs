//! A small real FFT for the echo canceller's block filter: sizes 64 and 128 (any power
//! of two from 4), radix-2, tables made once, nothing allocated per transform.
//!
//! A real signal of `n` samples is packed as `n/2` complex values (even samples real,
//! odd samples imaginary), transformed with an `n/2`-point complex FFT and split into
//! the `n/2 + 1` bins of the real spectrum (the standard "two for one" post-pass); the
//! inverse runs the same steps backwards and scales by `1/n`.

/// A complex value (f32).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Cpx {
    pub(crate) re: f32,
    pub(crate) im: f32,
}

impl Cpx {
    pub(crate) const ZERO: Cpx = Cpx { re: 0.0, im: 0.0 };

    #[inline]
    pub(crate) fn new(re: f32, im: f32) -> Cpx {
        Cpx { re, im }
    }

    #[inline]
    pub(crate) fn mul(self, o: Cpx) -> Cpx {
        Cpx::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }

    #[inline]
    pub(crate) fn conj(self) -> Cpx {
        Cpx::new(self.re, -self.im)
    }
}

/// Real FFT of a fixed power-of-two size.
#[derive(Debug, Clone)]
pub(crate) struct RealFft {
    n: usize,
    /// Twiddles of the n/2-point complex FFT, stage by stage: for the stage of
    /// butterfly size `m` (4, 8, … n/2), e^{-2πik/m} for k < m/2, one run after another.
    tw: Vec<Cpx>,
    /// Post-pass twiddles e^{-2πik/n}, k ≤ n/2.
    post: Vec<Cpx>,
    /// Bit reversal of n/2 indices.
    rev: Vec<usize>,
    work: Vec<Cpx>,
}

impl RealFft {
    /// A transform of `n` real samples (a power of two, at least 4).
    pub(crate) fn new(n: usize) -> RealFft {
        let n = n.max(4).next_power_of_two();
        let h = n / 2;
        let bits = h.trailing_zeros();
        let angle = |k: usize, m: usize| -2.0 * std::f64::consts::PI * k as f64 / m as f64;
        let cis = |a: f64| Cpx::new(a.cos() as f32, a.sin() as f32);
        RealFft {
            n,
            tw: std::iter::successors(Some(4usize), |m| Some(m * 2))
                .take_while(|&m| m <= h)
                .flat_map(|m| (0..m / 2).map(move |k| cis(angle(k, m))))
                .collect(),
            post: (0..=h).map(|k| cis(angle(k, n))).collect(),
            rev: (0..h)
                .map(|i| if bits == 0 { 0 } else { i.reverse_bits() >> (usize::BITS - bits) })
                .collect(),
            work: vec![Cpx::ZERO; h],
        }
    }

    /// In-place complex FFT of `work` (bit-reversed order first), forward.
    fn complex(work: &mut [Cpx], tw: &[Cpx], rev: &[usize]) {
        let h = work.len();
        for (i, &j) in rev.iter().enumerate() {
            if j > i {
                work.swap(i, j);
            }
        }
        // Size 2: no twiddles.
        for pair in work.chunks_exact_mut(2) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = Cpx::new(a.re + b.re, a.im + b.im);
            pair[1] = Cpx::new(a.re - b.re, a.im - b.im);
        }
        let mut size = 4;
        let mut tw = tw;
        while size <= h {
            let half = size / 2;
            let (stage, rest) = tw.split_at(half);
            tw = rest;
            for group in work.chunks_exact_mut(size) {
                let (lo, hi) = group.split_at_mut(half);
                for ((a, b), w) in lo.iter_mut().zip(hi.iter_mut()).zip(stage) {
                    let t = b.mul(*w);
                    let x = *a;
                    *a = Cpx::new(x.re + t.re, x.im + t.im);
                    *b = Cpx::new(x.re - t.re, x.im - t.im);
                }
            }
            size *= 2;
        }
    }

    /// The spectrum of `x` (`n` samples) into `re` and `im` (`n/2 + 1` bins each),
    /// unscaled.
    pub(crate) fn forward(&mut self, x: &[f32], re: &mut [f32], im: &mut [f32]) {
        let h = self.n / 2;
        for (w, pair) in self.work.iter_mut().zip(x.chunks_exact(2)) {
            *w = Cpx::new(pair[0], pair[1]);
        }
        Self::complex(&mut self.work, &self.tw, &self.rev);
        // Bins 0 and n/2 from Z[0]: its real part plus and minus its imaginary part.
        let z0 = self.work[0];
        re[0] = z0.re + z0.im;
        im[0] = 0.0;
        re[h] = z0.re - z0.im;
        im[h] = 0.0;
        for k in 1..h {
            let z = self.work[k];
            let zc = self.work[h - k].conj();
            let even = Cpx::new(0.5 * (z.re + zc.re), 0.5 * (z.im + zc.im));
            // (z - zc) / 2i
            let d = Cpx::new(z.re - zc.re, z.im - zc.im);
            let odd = Cpx::new(0.5 * d.im, -0.5 * d.re);
            let t = odd.mul(self.post[k]);
            re[k] = even.re + t.re;
            im[k] = even.im + t.im;
        }
    }

    /// The signal (`n` samples) of the spectrum `re`, `im` (`n/2 + 1` bins), scaled by
    /// 1/n.
    pub(crate) fn inverse(&mut self, re: &[f32], im: &[f32], x: &mut [f32]) {
        let h = self.n / 2;
        for k in 0..h {
            let a = Cpx::new(re[k], im[k]);
            let b = Cpx::new(re[h - k], -im[h - k]);
            let even = Cpx::new(0.5 * (a.re + b.re), 0.5 * (a.im + b.im));
            let d = Cpx::new(0.5 * (a.re - b.re), 0.5 * (a.im - b.im));
            let odd = d.mul(self.post[k].conj());
            // z = even + i·odd, conjugated for the inverse through the forward FFT.
            let z = Cpx::new(even.re - odd.im, even.im + odd.re);
            self.work[k] = z.conj();
        }
        Self::complex(&mut self.work, &self.tw, &self.rev);
        let scale = 1.0 / h as f32;
        for (w, pair) in self.work.iter().zip(x.chunks_exact_mut(2)) {
            // conj again, then 1/h (the n/2-point inverse).
            pair[0] = w.re * scale;
            pair[1] = -w.im * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dft(x: &[f32]) -> Vec<Cpx> {
        let n = x.len();
        (0..=n / 2)
            .map(|k| {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (t, &v) in x.iter().enumerate() {
                    let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                    re += f64::from(v) * a.cos();
                    im += f64::from(v) * a.sin();
                }
                Cpx::new(re as f32, im as f32)
            })
            .collect()
    }

    #[test]
    fn forward_matches_a_plain_dft_and_inverse_returns_the_signal() {
        for n in [8usize, 64, 128] {
            let mut fft = RealFft::new(n);
            let x: Vec<f32> =
                (0..n).map(|i| ((i * 37 + 11) % 23) as f32 - 11.0 + (i as f32 * 0.3).sin()).collect();
            let (mut re, mut im) = (vec![0.0; n / 2 + 1], vec![0.0; n / 2 + 1]);
            fft.forward(&x, &mut re, &mut im);
            let want = dft(&x);
            for (k, b) in want.iter().enumerate() {
                let a = Cpx::new(re[k], im[k]);
                assert!(
                    (a.re - b.re).abs() < 1e-2 && (a.im - b.im).abs() < 1e-2,
                    "n={n} bin {k}: {a:?} vs {b:?}"
                );
            }
            let mut back = vec![0.0; n];
            fft.inverse(&re, &im, &mut back);
            for (i, (a, b)) in back.iter().zip(&x).enumerate() {
                assert!((a - b).abs() < 1e-3, "n={n} sample {i}: {a} vs {b}");
            }
        }
    }
}
