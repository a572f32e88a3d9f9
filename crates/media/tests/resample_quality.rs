//! Resampler comparison on test tones (docs/dependencies.md): ours (polyphase Kaiser sinc)
//! against dasp 0.11's sinc interpolator, rubato 0.16 (sinc and FFT) and plain linear
//! interpolation, every output rounded to 16 bits. Measures the SNR of an in-band 1 kHz tone and the aliasing of tones above
//! the target Nyquist frequency, prints the table, and asserts ours meets its thresholds.
//! TTS audio at 22.05 kHz (piper) and 44.1 kHz to the phone's 8 kHz: a 1 kHz tone keeps its
//! level within 0.5 dB, a 5 kHz tone (above the 4 kHz Nyquist) is gone by 60 dB.
//!
//! Print the table: `cargo test -p voice-ua-media --release --test resample_quality -- --nocapture`

use dasp::{interpolate::sinc::Sinc, ring_buffer, signal, Signal};
use rubato::{FftFixedIn, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
use voice_ua_media::resample::Resampler;

const SECONDS: f64 = 1.0;
const AMPLITUDE: f64 = 0.5;

fn tone(rate: u32, freq: f64) -> Vec<f64> {
    let n = (f64::from(rate) * SECONDS) as usize;
    (0..n)
        .map(|i| AMPLITUDE * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

type Method = fn(&[f64], u32, u32) -> Vec<f64>;

fn ours(input: &[f64], from: u32, to: u32) -> Vec<f64> {
    let mut r = Resampler::new(from, to).expect("supported rates");
    let frame_in = from as usize / 50;
    let mut out = Vec::new();
    let mut buf = vec![0i16; to as usize / 50 + 4];
    let pcm: Vec<i16> = input.iter().map(|&x| (x * 32767.0).round() as i16).collect();
    for chunk in pcm.chunks(frame_in) {
        let n = r.process(chunk, &mut buf);
        out.extend(buf[..n].iter().map(|&s| f64::from(s) / 32767.0));
    }
    out
}

fn dasp_sinc(input: &[f64], from: u32, to: u32) -> Vec<f64> {
    let source = signal::from_iter(input.iter().copied());
    let sinc = Sinc::new(ring_buffer::Fixed::from([0.0f64; 64]));
    let converter = source.from_hz_to_hz(sinc, f64::from(from), f64::from(to));
    let n = input.len() * to as usize / from as usize;
    converter.take(n).collect()
}

fn rubato_sinc(input: &[f64], from: u32, to: u32) -> Vec<f64> {
    let params = SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Linear,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    };
    let chunk = from as usize / 50;
    let mut r =
        SincFixedIn::<f64>::new(f64::from(to) / f64::from(from), 1.0, params, chunk, 1).expect("rubato sinc");
    run_rubato(&mut r, input, chunk)
}

fn rubato_fft(input: &[f64], from: u32, to: u32) -> Vec<f64> {
    let chunk = from as usize / 50;
    let mut r = FftFixedIn::<f64>::new(from as usize, to as usize, chunk, 1, 1).expect("rubato fft");
    run_rubato(&mut r, input, chunk)
}

fn run_rubato(r: &mut impl rubato::Resampler<f64>, input: &[f64], chunk: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for block in input.chunks_exact(chunk) {
        let result = r.process(&[block], None).expect("process");
        out.extend_from_slice(&result[0]);
    }
    out
}

fn linear(input: &[f64], from: u32, to: u32) -> Vec<f64> {
    let step = f64::from(from) / f64::from(to);
    let n = input.len() * to as usize / from as usize;
    (0..n)
        .map(|i| {
            let x = i as f64 * step;
            let k = x.floor() as usize;
            let frac = x - k as f64;
            let a = input.get(k).copied().unwrap_or(0.0);
            let b = input.get(k + 1).copied().unwrap_or(a);
            a + (b - a) * frac
        })
        .collect()
}

/// The best-fitting sine at `freq` over the middle of `out` (skipping filter start-up and
/// tail), by least squares on sin/cos: its sin and cos weights, and the range fitted.
fn fit_tone(out: &[f64], rate: u32, freq: f64) -> (f64, f64, std::ops::Range<usize>) {
    let (start, end) = (out.len() / 4, out.len() * 3 / 4);
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &y) in out.iter().enumerate().take(end).skip(start) {
        let (s, c) = (w * i as f64).sin_cos();
        ss += s * s;
        sc += s * c;
        cc += c * c;
        ys += y * s;
        yc += y * c;
    }
    let det = ss * cc - sc * sc;
    ((ys * cc - yc * sc) / det, (yc * ss - ys * sc) / det, start..end)
}

/// SNR (dB) of `out` against the best-fitting sine at `freq`.
fn snr_db(out: &[f64], rate: u32, freq: f64) -> f64 {
    let (a, b, range) = fit_tone(out, rate, freq);
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut signal, mut noise) = (0.0, 0.0);
    for (i, &y) in out.iter().enumerate().take(range.end).skip(range.start) {
        let (s, c) = (w * i as f64).sin_cos();
        let fit = a * s + b * c;
        signal += fit * fit;
        noise += (y - fit) * (y - fit);
    }
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// Level (dB) of the tone at `freq` in `out` relative to the input tone, from the same fit.
fn tone_gain_db(out: &[f64], rate: u32, freq: f64) -> f64 {
    let (a, b, _) = fit_tone(out, rate, freq);
    20.0 * ((a * a + b * b).sqrt() / AMPLITUDE).log10()
}

/// Output RMS relative to the input tone's RMS (dB), over the middle of the signal.
fn rms_db(out: &[f64]) -> f64 {
    let mid = &out[out.len() / 4..out.len() * 3 / 4];
    let rms = (mid.iter().map(|x| x * x).sum::<f64>() / mid.len() as f64).sqrt();
    20.0 * (rms / (AMPLITUDE / 2f64.sqrt())).max(1e-12).log10()
}

#[test]
fn tts_rates_to_the_phone() {
    for from in [22050u32, 44100] {
        let pass = ours(&tone(from, 1000.0), from, 8000);
        assert_eq!(pass.len(), 8000, "{from}: 50 frames of 160");
        let gain = tone_gain_db(&pass, 8000, 1000.0);
        assert!(gain.abs() < 0.5, "{from}->8000: 1 kHz at {gain:.2} dB");
        assert!(snr_db(&pass, 8000, 1000.0) > 70.0);
        let stop = rms_db(&ours(&tone(from, 5000.0), from, 8000));
        assert!(stop < -60.0, "{from}->8000: 5 kHz only {stop:.1} dB down");
        println!("{from}->8000: 1 kHz {gain:+.3} dB, 5 kHz {stop:.1} dB");
    }
}

/// Worst aliasing (dB relative to the input tone) over tones between 1.1× the target
/// Nyquist frequency and the source Nyquist frequency: output RMS / input RMS.
fn worst_alias_db(method: Method, from: u32, to: u32) -> f64 {
    let nyquist = f64::from(to) / 2.0;
    let mut worst = f64::MIN;
    let mut f = nyquist * 1.1;
    while f < f64::from(from) / 2.0 * 0.98 {
        let db = rms_db(&method(&tone(from, f), from, to));
        worst = worst.max(db);
        f += nyquist * 0.23;
    }
    worst
}

const METHODS: [(&str, Method); 5] = [
    ("voice-ua (polyphase Kaiser sinc)", ours),
    ("dasp 0.11 sinc (64 frames)", dasp_sinc),
    ("rubato 0.16 SincFixedIn (256)", rubato_sinc),
    ("rubato 0.16 FftFixedIn", rubato_fft),
    ("linear interpolation", linear),
];

#[test]
fn resampler_comparison_and_thresholds() {
    let conversions = [
        (8000u32, 16000u32),
        (8000, 24000),
        (24000, 8000),
        (16000, 8000),
        (48000, 8000),
        (22050, 8000),
        (22050, 16000),
        (44100, 8000),
    ];
    println!("| method | conversion | 1 kHz SNR (dB) | worst alias (dB) |");
    println!("|---|---|---|---|");
    for (from, to) in conversions {
        for (name, method) in METHODS {
            // Every output is rounded to 16 bits, the format all of them would deliver.
            let out: Vec<f64> = method(&tone(from, 1000.0), from, to)
                .iter()
                .map(|x| (x * 32767.0).round() / 32767.0)
                .collect();
            let snr = snr_db(&out, to, 1000.0);
            let alias = if to < from { worst_alias_db(method, from, to) } else { f64::NAN };
            println!("| {name} | {from}→{to} | {snr:.1} | {alias:.1} |");
            if name.starts_with("voice-ua") {
                // i16 output limits SNR to ~90 dB for a -6 dBFS tone.
                assert!(snr > 70.0, "{from}->{to}: SNR {snr:.1} dB");
                if to < from {
                    assert!(alias < -60.0, "{from}->{to}: aliasing {alias:.1} dB");
                }
            }
        }
    }
}
