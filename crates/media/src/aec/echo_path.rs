//! Test signals for echo cancellation (hidden from the docs; tests, benches and the
//! call crate's harness use them): a speech-like talker and a caller's line that
//! returns our own playback late, attenuated, smeared and with noise.
//!
//! [`Talker`] makes voiced speech-like audio, not tones: a glottal pulse train (its
//! pitch gliding 90–240 Hz with jitter) through three formant resonators whose
//! frequencies move from syllable to syllable, with syllable envelopes (~4 a second),
//! unvoiced fricative bursts and pauses between phrases. Its long-term level is set in
//! dBFS over the active parts. [`EchoLine`] is the caller's side: what we send comes
//! back `delay` later through a short dispersive echo path (a hybrid's few ms of
//! ringing) at `-atten_db`, plus white noise and, optionally, the caller's own voice.
//! Everything is deterministic from its seed.

/// A deterministic xorshift64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next value in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next value in [-1, 1).
    pub fn signed(&mut self) -> f64 {
        2.0 * self.unit() - 1.0
    }
}

/// A two-pole resonator (one formant).
#[derive(Debug, Clone, Copy, Default)]
struct Resonator {
    a1: f64,
    a2: f64,
    gain: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn tune(&mut self, freq: f64, bandwidth: f64, rate: f64) {
        let r = (-std::f64::consts::PI * bandwidth / rate).exp();
        let theta = 2.0 * std::f64::consts::PI * freq / rate;
        self.a1 = 2.0 * r * theta.cos();
        self.a2 = -r * r;
        self.gain = 1.0 - r;
    }

    fn step(&mut self, x: f64) -> f64 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Vowel formants (F1, F2, F3 in Hz), roughly a, e, i, o, u, schwa.
const VOWELS: [[f64; 3]; 6] = [
    [730.0, 1090.0, 2440.0],
    [530.0, 1840.0, 2480.0],
    [270.0, 2290.0, 3010.0],
    [570.0, 840.0, 2410.0],
    [300.0, 870.0, 2240.0],
    [500.0, 1500.0, 2500.0],
];

/// A speech-like talker. See the module comment.
#[derive(Debug, Clone)]
pub struct Talker {
    rate: f64,
    rng: Rng,
    formants: [Resonator; 3],
    /// Samples left in the current syllable (or pause).
    left: usize,
    len: usize,
    voiced: bool,
    pause: bool,
    pitch: f64,
    pitch_slope: f64,
    phase: f64,
    syllables_to_pause: u32,
    gain: f64,
    /// A one-pole high-pass on the output (the line's low cut).
    hp_prev_x: f64,
    hp_prev_y: f64,
}

impl Talker {
    /// A talker at `rate` Hz whose active speech is about `level_dbfs`, seeded.
    pub fn new(rate: u32, level_dbfs: f64, seed: u64) -> Talker {
        // At gain 1 the synthesis speaks at about -20 dBFS at 8 kHz and -16 dBFS at
        // 16 kHz (its frames above -60 dBFS; checked by the tests below).
        let at_unity = if rate >= 16000 { -15.8 } else { -20.0 };
        let gain = 10f64.powf((level_dbfs - at_unity) / 20.0);
        Talker {
            rate: f64::from(rate),
            rng: Rng::new(seed),
            formants: [Resonator::default(); 3],
            left: 0,
            len: 1,
            voiced: true,
            pause: true,
            pitch: 140.0,
            pitch_slope: 0.0,
            phase: 0.0,
            // A talker starts with a phrase of a few syllables.
            syllables_to_pause: 4,
            gain,
            hp_prev_x: 0.0,
            hp_prev_y: 0.0,
        }
    }

    fn next_segment(&mut self) {
        let ms = |ms: f64| (ms * self.rate / 1000.0) as usize;
        if self.syllables_to_pause == 0 && !self.pause {
            // A pause between phrases: 150–450 ms.
            self.pause = true;
            self.len = ms(150.0 + 300.0 * self.rng.unit());
            self.syllables_to_pause = 3 + (self.rng.unit() * 6.0) as u32;
        } else {
            self.pause = false;
            self.syllables_to_pause = self.syllables_to_pause.saturating_sub(1);
            self.voiced = self.rng.unit() > 0.15;
            self.len =
                ms(if self.voiced { 140.0 + 160.0 * self.rng.unit() } else { 60.0 + 60.0 * self.rng.unit() });
            let v = VOWELS[(self.rng.unit() * VOWELS.len() as f64) as usize % VOWELS.len()];
            let nyquist = self.rate / 2.0 - 200.0;
            for (i, r) in self.formants.iter_mut().enumerate() {
                let f = (v[i] * (0.9 + 0.2 * self.rng.unit())).min(nyquist);
                r.tune(f, 60.0 + 40.0 * i as f64, self.rate);
            }
            self.pitch = 90.0 + 150.0 * self.rng.unit();
            self.pitch_slope = (self.rng.signed() * 60.0) / self.len as f64;
        }
        self.left = self.len;
    }

    /// The next sample, as a float in 16-bit units.
    pub fn sample(&mut self) -> f64 {
        if self.left == 0 {
            self.next_segment();
        }
        self.left -= 1;
        let pos = 1.0 - self.left as f64 / self.len as f64;
        // A raised-sine syllable envelope.
        let env = if self.pause { 0.0 } else { (std::f64::consts::PI * pos).sin().powf(0.6) };
        let excitation = if self.pause {
            0.0
        } else if self.voiced {
            self.pitch += self.pitch_slope;
            let f0 = self.pitch * (1.0 + 0.01 * self.rng.signed());
            self.phase += f0 / self.rate;
            if self.phase >= 1.0 {
                self.phase -= 1.0;
                // A glottal pulse: one strong impulse per period.
                self.rate / f0 * 0.5
            } else {
                0.0
            }
        } else {
            // Fricative: noise, through the formants too (a crude colouring).
            2.0 * self.rng.signed()
        };
        let mut y = 0.0;
        for r in self.formants.iter_mut() {
            y += r.step(excitation);
        }
        let y = y * env * self.gain * 4000.0;
        // High-pass at ~100 Hz, as a phone line does.
        let out = y - self.hp_prev_x + 0.92 * self.hp_prev_y;
        self.hp_prev_x = y;
        self.hp_prev_y = out;
        out
    }

    /// Fill `out` with the next samples (saturated to 16 bits).
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out.iter_mut() {
            *s = self.sample().round().clamp(-32768.0, 32767.0) as i16;
        }
    }

    /// The next `n` samples.
    pub fn take(&mut self, n: usize) -> Vec<i16> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// How the caller's line returns our playback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoSettings {
    /// Samples per second (8000 or 16000).
    pub rate: u32,
    /// The bulk delay of the echo.
    pub delay_ms: u32,
    /// The echo's level below what we sent, in dB (6 … 20 in the tests).
    pub atten_db: f64,
    /// White noise on the line, in dBFS (e.g. -50).
    pub noise_dbfs: f64,
    /// Seed for the noise and the echo path's shape.
    pub seed: u64,
}

/// The caller's line: our playback back, late, plus noise and the caller's own voice.
#[derive(Debug, Clone)]
pub struct EchoLine {
    settings: EchoSettings,
    /// What we sent, a ring long enough for the delay and the path.
    history: Vec<f64>,
    /// Where the next sample goes in `history`.
    head: usize,
    delay: usize,
    /// The echo path's impulse response (a few ms), scaled to the attenuation.
    path: Vec<f64>,
    noise: Rng,
    noise_amp: f64,
}

impl EchoLine {
    /// A line with these settings.
    pub fn new(settings: EchoSettings) -> EchoLine {
        let rate = f64::from(settings.rate);
        let mut rng = Rng::new(settings.seed ^ 0xA5A5_5A5A);
        // A hybrid's echo path: a few ms of decaying, randomly signed taps (a
        // dispersive but not resonant response), scaled so that speech comes back
        // `atten_db` below what was sent (measured on 2 s of a talker).
        let taps = (rate * 0.006) as usize;
        let mut path: Vec<f64> = (0..taps)
            .map(|i| {
                let t = i as f64 / rate;
                let sign = if i == 0 { 1.0 } else { rng.signed() };
                (-t / 0.001).exp() * sign
            })
            .collect();
        let mut probe = Talker::new(settings.rate, -20.0, settings.seed ^ 0x77);
        let x: Vec<f64> = (0..settings.rate as usize * 2).map(|_| probe.sample()).collect();
        let (mut pin, mut pout) = (0.0, 0.0);
        for i in taps..x.len() {
            let y: f64 = path.iter().enumerate().map(|(k, h)| h * x[i - k]).sum();
            pin += x[i] * x[i];
            pout += y * y;
        }
        let scale = 10f64.powf(-settings.atten_db / 20.0) * (pin / pout.max(1e-9)).sqrt();
        for h in path.iter_mut() {
            *h *= scale;
        }
        let delay = (rate * f64::from(settings.delay_ms) / 1000.0) as usize;
        EchoLine {
            history: vec![0.0; delay + path.len() + 1],
            head: 0,
            delay,
            path,
            noise: Rng::new(settings.seed ^ 0x1234_5678_9ABC),
            // Uniform noise: amplitude sqrt(3)·rms.
            noise_amp: 32768.0 * 3f64.sqrt() * 10f64.powf(settings.noise_dbfs / 20.0),
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> EchoSettings {
        self.settings
    }

    /// One frame: `sent` is what we played to the caller this tick (empty or zeros when
    /// nothing), `talk` the caller's own voice (or empty); `echo` gets the echo alone and
    /// `out` what the line returns (echo + noise + talk).
    pub fn frame(&mut self, sent: &[i16], talk: &[i16], echo: &mut [i16], out: &mut [i16]) {
        let len = self.history.len();
        for i in 0..out.len() {
            let x = sent.get(i).map_or(0.0, |&s| f64::from(s));
            self.history[self.head] = x;
            // The echo: the path applied `delay` samples back from now.
            let mut e = 0.0;
            for (k, h) in self.path.iter().enumerate() {
                e += h * self.history[(self.head + 2 * len - self.delay - k) % len];
            }
            self.head = (self.head + 1) % len;
            let noise = self.noise_amp * self.noise.signed();
            let t = talk.get(i).map_or(0.0, |&s| f64::from(s));
            echo[i] = e.round().clamp(-32768.0, 32767.0) as i16;
            out[i] = (e + noise + t).round().clamp(-32768.0, 32767.0) as i16;
        }
    }
}

/// Mean power of samples in dBFS (as [`crate::pcm_level_dbfs`]), over a whole slice.
pub fn level_dbfs(samples: &[i16]) -> f64 {
    f64::from(crate::pcm_level_dbfs(samples))
}

/// ERLE in dB: how much quieter `after` is than `before` (power ratio over the slices).
pub fn erle_db(before: &[i16], after: &[i16]) -> f64 {
    let p = |s: &[i16]| s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().max(1.0);
    10.0 * (p(before) / p(after)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean power of the frames that carry speech (above -60 dBFS), in dBFS.
    fn active_level(rate: u32, level: f64) -> f64 {
        let mut t = Talker::new(rate, level, 21);
        let n = rate as usize / 50;
        let (mut sum, mut count) = (0.0, 0usize);
        for _ in 0..1500 {
            let f = t.take(n);
            if level_dbfs(&f) > -60.0 {
                sum += f.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
                count += n;
            }
        }
        10.0 * (sum / count as f64 / (32768.0 * 32768.0)).log10()
    }

    #[test]
    fn a_talker_speaks_at_its_level_and_pauses() {
        for rate in [8000, 16000] {
            for level in [-30.0, -20.0] {
                let got = active_level(rate, level);
                assert!((got - level).abs() < 2.0, "{rate} Hz at {level} dBFS: {got:.1}");
            }
            // Pauses: some frames are silent.
            let mut t = Talker::new(rate, -20.0, 5);
            let n = rate as usize / 50;
            let quiet = (0..500).filter(|_| level_dbfs(&t.take(n)) < -60.0).count();
            assert!((25..250).contains(&quiet), "{rate} Hz: {quiet} of 500 frames quiet");
        }
    }

    #[test]
    fn the_line_returns_the_echo_late_and_attenuated() {
        let rate = 8000;
        let mut line =
            EchoLine::new(EchoSettings { rate, delay_ms: 100, atten_db: 12.0, noise_dbfs: -120.0, seed: 1 });
        let mut t = Talker::new(rate, -20.0, 8);
        let (mut echo, mut out) = (vec![0i16; 160], vec![0i16; 160]);
        let (mut sent, mut back) = (Vec::new(), Vec::new());
        for k in 0..500 {
            let f = t.take(160);
            line.frame(&f, &[], &mut echo, &mut out);
            // Nothing comes back for the first 100 ms.
            if k < 5 {
                assert!(out.iter().all(|&s| s == 0), "frame {k}");
            }
            sent.extend_from_slice(&f);
            back.extend_from_slice(&out);
        }
        let drop = erle_db(&sent[..sent.len() - 800], &back[800..]);
        assert!((drop - 12.0).abs() < 1.5, "the echo came back {drop:.1} dB down");
    }
}
