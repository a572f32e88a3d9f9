//! Scores the caller-side voice activity detectors frame by frame against labelled audio:
//! today's energy detector ([`CallerVad`]) and earshot (a small neural VAD, 16 kHz 16 ms
//! frames, fed through media's 8 → 16 kHz resampler). Not a test: it prints a table.
//!
//! `cargo run --release -p voice-ua-media --example vad_compare [SPEECH...]`
//!
//! SPEECH files are 8 kHz utterances, `.ulaw` (G.711 µ-law) or raw signed 16-bit
//! little-endian; without any, the fallback prompt (`conf/fallback-en.ulaw`) is used. The
//! clean track is the utterances with pauses between them, scaled to -26 dBFS speech; a
//! frame is speech when its clean level is within 40 dB of that (gaps under 200 ms
//! bridged). Noise and tones are made here, from a fixed seed.
//!
//! Both detectors go through the same onset (3 frames) and hangover (10 frames) counting;
//! earshot's frame is loud when its score is at least 0.5.

use std::time::Instant;

use voice_ua_media::g711::Law;
use voice_ua_media::vad::pcm_level_dbfs;
use voice_ua_media::{CallerVad, Resampler};

const RATE: usize = 8000;
const FRAME: usize = 160;
const FRAME_MS: f64 = 20.0;
const SPEECH_DBFS: f64 = -26.0;
const LABEL_RANGE_DB: f32 = 40.0;
const BRIDGE_FRAMES: usize = 10;
const ONSET_FRAMES: u32 = 3;
const HANGOVER_FRAMES: u32 = 10;
const EARSHOT_THRESHOLD: f32 = 0.5;

/// A detector under test: one 20 ms 8 kHz frame in, "speaking" out.
trait Detector {
    fn push(&mut self, pcm: &[i16]) -> bool;
}

impl Detector for CallerVad {
    fn push(&mut self, pcm: &[i16]) -> bool {
        CallerVad::push(self, pcm);
        self.speaking()
    }
}

/// The onset/hangover counting `SpeechDetector` does, over any per-frame decision.
#[derive(Default)]
struct Runs {
    loud_run: u32,
    quiet_run: u32,
    speaking: bool,
}

impl Runs {
    fn push(&mut self, loud: bool) -> bool {
        if loud {
            self.loud_run += 1;
            self.quiet_run = 0;
        } else {
            self.loud_run = 0;
            self.quiet_run += 1;
        }
        if !self.speaking && self.loud_run >= ONSET_FRAMES {
            self.speaking = true;
        } else if self.speaking && self.quiet_run >= HANGOVER_FRAMES {
            self.speaking = false;
        }
        self.speaking
    }
}

/// earshot behind the 8 → 16 kHz resampler; 320 samples per frame feed 256-sample windows.
struct Earshot {
    detector: earshot::Detector,
    resampler: Resampler,
    wide: [i16; 2 * FRAME],
    window: [i16; 256],
    filled: usize,
    score: f32,
    runs: Runs,
}

impl Earshot {
    fn new() -> Earshot {
        Earshot {
            detector: earshot::Detector::default(),
            resampler: Resampler::new(8000, 16000).expect("supported rates"),
            wide: [0; 2 * FRAME],
            window: [0; 256],
            filled: 0,
            score: 0.0,
            runs: Runs::default(),
        }
    }
}

impl Detector for Earshot {
    fn push(&mut self, pcm: &[i16]) -> bool {
        let n = self.resampler.process(pcm, &mut self.wide);
        let mut best = None::<f32>;
        for &x in &self.wide[..n] {
            self.window[self.filled] = x;
            self.filled += 1;
            if self.filled == self.window.len() {
                let s = self.detector.predict_i16(&self.window);
                best = Some(best.map_or(s, |b| b.max(s)));
                self.filled = 0;
            }
        }
        if let Some(s) = best {
            self.score = s;
        }
        self.runs.push(self.score >= EARSHOT_THRESHOLD)
    }
}

/// xorshift64*: deterministic noise.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn white(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform()).collect()
    }

    /// Pink (1/f) noise: Paul Kellett's refined filter over white noise.
    fn pink(&mut self, n: usize) -> Vec<f64> {
        let mut b = [0.0f64; 7];
        (0..n)
            .map(|_| {
                let w = self.uniform();
                b[0] = 0.99886 * b[0] + w * 0.0555179;
                b[1] = 0.99332 * b[1] + w * 0.0750759;
                b[2] = 0.96900 * b[2] + w * 0.1538520;
                b[3] = 0.86650 * b[3] + w * 0.3104856;
                b[4] = 0.55000 * b[4] + w * 0.5329522;
                b[5] = -0.7616 * b[5] - w * 0.0168980;
                let out = b.iter().sum::<f64>() + w * 0.5362;
                b[6] = w * 0.115926;
                out
            })
            .collect()
    }
}

fn power(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64
}

fn to_pcm(x: &[f64]) -> Vec<i16> {
    x.iter().map(|v| v.round().clamp(-32768.0, 32767.0) as i16).collect()
}

fn read_speech(path: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if path.ends_with(".ulaw") {
        bytes.iter().map(|&b| f64::from(Law::Ulaw.decode(b))).collect()
    } else {
        bytes.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]]))).collect()
    }
}

/// The clean track (utterances 1.5 s apart, 1 s lead) and its per-frame speech labels.
fn clean_track(paths: &[String]) -> (Vec<f64>, Vec<bool>) {
    let mut track = vec![0.0; RATE];
    for p in paths {
        track.extend(read_speech(p));
        track.extend(std::iter::repeat_n(0.0, RATE * 3 / 2));
    }
    track.truncate(track.len() / FRAME * FRAME);
    let levels: Vec<f32> = track.chunks(FRAME).map(|f| pcm_level_dbfs(&to_pcm(f))).collect();
    let peak = levels.iter().copied().fold(f32::MIN, f32::max);
    let mut labels: Vec<bool> = levels.iter().map(|&l| l > peak - LABEL_RANGE_DB).collect();
    // Scale so the labelled speech is at SPEECH_DBFS.
    let speech: Vec<f64> =
        track.chunks(FRAME).zip(&labels).filter(|(_, &s)| s).flat_map(|(f, _)| f.iter().copied()).collect();
    let gain = (32768.0f64.powi(2) * 10f64.powf(SPEECH_DBFS / 10.0) / power(&speech)).sqrt();
    track.iter_mut().for_each(|x| *x *= gain);
    // Bridge short pauses inside an utterance.
    let mut last: Option<usize> = None;
    for i in 0..labels.len() {
        if labels[i] {
            if let Some(j) = last.filter(|&j| i - j <= BRIDGE_FRAMES) {
                labels[j..i].iter_mut().for_each(|l| *l = true);
            }
            last = Some(i);
        }
    }
    (track, labels)
}

/// Q.23 DTMF digits (100 ms on, 100 ms off) at -10 dBFS per tone.
fn dtmf(seconds: usize) -> Vec<f64> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 3] = [1209.0, 1336.0, 1477.0];
    let amp = 32768.0 * 10f64.powf(-10.0 / 20.0) * std::f64::consts::SQRT_2;
    (0..seconds * RATE)
        .map(|i| {
            let slot = i / (RATE / 10);
            if slot % 2 == 1 {
                return 0.0;
            }
            let digit = slot / 2;
            let (r, c) = (ROWS[digit % 4], COLS[digit / 4 % 3]);
            let t = i as f64 / RATE as f64;
            amp * ((2.0 * std::f64::consts::PI * r * t).sin() + (2.0 * std::f64::consts::PI * c * t).sin())
                / 2.0
        })
        .collect()
}

/// Sum of sines at `dbfs` per tone, switched on/off with the cadence `(on_ms, off_ms)`.
fn tone(freqs: &[f64], dbfs: f64, cadence: Option<(usize, usize)>, seconds: usize) -> Vec<f64> {
    let amp = 32768.0 * 10f64.powf(dbfs / 20.0) * std::f64::consts::SQRT_2;
    (0..seconds * RATE)
        .map(|i| {
            if let Some((on, off)) = cadence {
                if (i * 1000 / RATE) % (on + off) >= on {
                    return 0.0;
                }
            }
            let t = i as f64 / RATE as f64;
            freqs.iter().map(|f| amp * (2.0 * std::f64::consts::PI * f * t).sin()).sum()
        })
        .collect()
}

fn scaled(noise: Vec<f64>, dbfs: f64) -> Vec<f64> {
    let gain = (32768.0f64.powi(2) * 10f64.powf(dbfs / 10.0) / power(&noise)).sqrt();
    noise.into_iter().map(|x| x * gain).collect()
}

#[derive(Default)]
struct Score {
    false_pos: usize,
    negatives: usize,
    misses: usize,
    positives: usize,
    onset_ms: Vec<f64>,
    offset_ms: Vec<f64>,
    missed_segments: usize,
    nanos: u128,
    frames: usize,
}

fn run(detector: &mut dyn Detector, audio: &[i16], labels: &[bool]) -> Score {
    let mut decisions = Vec::with_capacity(labels.len());
    let start = Instant::now();
    for frame in audio.chunks_exact(FRAME) {
        decisions.push(detector.push(frame));
    }
    let mut s = Score { nanos: start.elapsed().as_nanos(), frames: decisions.len(), ..Score::default() };
    for (&d, &l) in decisions.iter().zip(labels) {
        if l {
            s.positives += 1;
            s.misses += usize::from(!d);
        } else {
            s.negatives += 1;
            s.false_pos += usize::from(d);
        }
    }
    // Per labelled segment: first detection at or after its start, and where the
    // detection that covers its end stops.
    let mut i = 0;
    while i < labels.len() {
        if !labels[i] {
            i += 1;
            continue;
        }
        let begin = i;
        while i < labels.len() && labels[i] {
            i += 1;
        }
        let end = i;
        match (begin..end).find(|&k| decisions[k]) {
            Some(k) => s.onset_ms.push((k - begin) as f64 * FRAME_MS),
            None => s.missed_segments += 1,
        }
        if decisions[end - 1] {
            // Until the detector lets go, or the next segment starts (a bridged pause
            // counts whole).
            let next = (end..labels.len()).find(|&k| labels[k]).unwrap_or(labels.len());
            let stop = (end..next).find(|&k| !decisions[k]).unwrap_or(next);
            s.offset_ms.push((stop - end) as f64 * FRAME_MS);
        }
    }
    s
}

fn mean(v: &[f64]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        format!("{:.0}", v.iter().sum::<f64>() / v.len() as f64)
    }
}

fn pct(n: usize, d: usize) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * n as f64 / d as f64)
    }
}

fn main() {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        paths.push(concat!(env!("CARGO_MANIFEST_DIR"), "/../../conf/fallback-en.ulaw").to_string());
    }
    let (clean, labels) = clean_track(&paths);
    let n = clean.len();
    let speech_frames = labels.iter().filter(|&&l| l).count();
    println!(
        "speech: {} file(s), {:.1} s, {} of {} frames labelled speech",
        paths.len(),
        n as f64 / RATE as f64,
        speech_frames,
        labels.len()
    );
    let mut noise = Noise(0x5eed_1234_abcd_0001);
    let mut conditions: Vec<(String, Vec<f64>, Vec<bool>)> = Vec::new();
    conditions.push(("speech, clean".into(), clean.clone(), labels.clone()));
    for kind in ["white", "pink"] {
        for snr in [20.0, 10.0, 0.0] {
            let raw = if kind == "white" { noise.white(n) } else { noise.pink(n) };
            let noisy = scaled(raw, SPEECH_DBFS - snr);
            let mix = clean.iter().zip(&noisy).map(|(a, b)| a + b).collect();
            conditions.push((format!("speech + {kind} noise, SNR {snr} dB"), mix, labels.clone()));
        }
    }
    let secs = 20;
    let none = vec![false; secs * RATE / FRAME];
    let floor = |noise: &mut Noise, x: Vec<f64>| -> Vec<f64> {
        let cn = scaled(noise.white(x.len()), -60.0);
        x.iter().zip(&cn).map(|(a, b)| a + b).collect()
    };
    conditions.push(("DTMF digits, -10 dBFS/tone".into(), floor(&mut noise, dtmf(secs)), none.clone()));
    conditions.push((
        "440 Hz steady, -20 dBFS".into(),
        floor(&mut noise, tone(&[440.0], -20.0, None, secs)),
        none.clone(),
    ));
    conditions.push((
        "1 kHz steady, -20 dBFS".into(),
        floor(&mut noise, tone(&[1000.0], -20.0, None, secs)),
        none.clone(),
    ));
    conditions.push((
        "ring-back 440+480 Hz, 2 s on 4 s off, -19 dBFS".into(),
        floor(&mut noise, tone(&[440.0, 480.0], -19.0, Some((2000, 4000)), secs)),
        none.clone(),
    ));
    conditions.push((
        "busy 480+620 Hz, 0.5 s on/off, -24 dBFS".into(),
        floor(&mut noise, tone(&[480.0, 620.0], -24.0, Some((500, 500)), secs)),
        none.clone(),
    ));
    conditions.push(("digital silence".into(), vec![0.0; secs * RATE], none.clone()));
    conditions.push((
        "comfort noise, white -60 dBFS".into(),
        scaled(noise.white(secs * RATE), -60.0),
        none.clone(),
    ));
    conditions.push((
        "comfort noise, pink -50 dBFS".into(),
        scaled(noise.pink(secs * RATE), -50.0),
        none.clone(),
    ));
    conditions.push((
        "pink noise, -30 dBFS (loud room)".into(),
        scaled(noise.pink(secs * RATE), -30.0),
        none.clone(),
    ));

    println!(
        "| condition | detector | false positive % | miss % | onset ms | offset ms | segments missed | ns/frame |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut totals = [(0u128, 0usize); 2];
    for (name, audio, labels) in &conditions {
        let pcm = to_pcm(audio);
        let energy = run(&mut CallerVad::new(), &pcm, labels);
        let neural = run(&mut Earshot::new(), &pcm, labels);
        for (i, (label, s)) in [("energy", &energy), ("earshot", &neural)].into_iter().enumerate() {
            totals[i].0 += s.nanos;
            totals[i].1 += s.frames;
            let segments = s.onset_ms.len() + s.missed_segments;
            println!(
                "| {name} | {label} | {} | {} | {} | {} | {} | {:.0} |",
                pct(s.false_pos, s.negatives),
                pct(s.misses, s.positives),
                mean(&s.onset_ms),
                mean(&s.offset_ms),
                if segments == 0 { "-".into() } else { format!("{}/{segments}", s.missed_segments) },
                s.nanos as f64 / s.frames.max(1) as f64,
            );
        }
    }
    for (i, label) in ["energy", "earshot"].into_iter().enumerate() {
        println!("{label}: {:.0} ns per 20 ms frame overall", totals[i].0 as f64 / totals[i].1.max(1) as f64);
    }
    println!(
        "bytes per instance: energy (CallerVad) {}; earshot::Detector {} + resampler {} (+ its filter and history on the heap) + buffers {}",
        std::mem::size_of::<CallerVad>(),
        std::mem::size_of::<earshot::Detector>(),
        std::mem::size_of::<Resampler>(),
        std::mem::size_of::<[i16; 2 * FRAME]>() + std::mem::size_of::<[i16; 256]>(),
    );
}
