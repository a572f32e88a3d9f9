//! WAV in and out: [`parse`] reads an upload strictly (RIFF/WAVE, PCM 16-bit mono at
//! 8000 or 16000 Hz, sizes consistent), [`rms_dbfs`] and [`tone_words`] listen to it, and
//! [`encode`] and [`tone`] make audio for tests.

use std::f64::consts::TAU;

/// A WAV the fake accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// 8000 or 16000.
    pub sample_rate: u32,
    /// The samples.
    pub samples: Vec<i16>,
}

impl Wav {
    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u32 {
        (self.samples.len() as u64 * 1000 / u64::from(self.sample_rate.max(1))) as u32
    }
}

/// Why a file is not a WAV the fake takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WavError(pub String);

fn bad(what: &str) -> WavError {
    WavError(what.to_owned())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse `file` strictly.
pub fn parse(file: &[u8]) -> Result<Wav, WavError> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err(bad("not a WAV file (no RIFF/WAVE header)"));
    }
    if u32_at(file, 4) as usize != file.len() - 8 {
        return Err(WavError(format!(
            "RIFF size {} does not match the file ({} bytes after the size field)",
            u32_at(file, 4),
            file.len() - 8
        )));
    }
    let mut at = 12;
    let mut rate = None;
    while at + 8 <= file.len() {
        let (id, size) = (&file[at..at + 4], u32_at(file, at + 4) as usize);
        let body = at + 8;
        if body + size > file.len() {
            return Err(WavError(format!(
                "chunk {:?} claims {size} bytes, only {} remain",
                String::from_utf8_lossy(id),
                file.len() - body
            )));
        }
        match id {
            b"fmt " => {
                if size < 16 {
                    return Err(bad("fmt chunk shorter than 16 bytes"));
                }
                let (format, channels) = (u16_at(file, body), u16_at(file, body + 2));
                let (sample_rate, byte_rate) = (u32_at(file, body + 4), u32_at(file, body + 8));
                let (align, bits) = (u16_at(file, body + 12), u16_at(file, body + 14));
                if format != 1 {
                    return Err(WavError(format!("audio format {format} is not PCM (1)")));
                }
                if channels != 1 {
                    return Err(WavError(format!("{channels} channels: mono only")));
                }
                if bits != 16 {
                    return Err(WavError(format!("{bits} bits per sample: 16 only")));
                }
                if sample_rate != 8000 && sample_rate != 16_000 {
                    return Err(WavError(format!("sample rate {sample_rate}: 8000 or 16000 only")));
                }
                if byte_rate != sample_rate * 2 || align != 2 {
                    return Err(WavError(format!(
                        "byte rate {byte_rate} or block align {align} inconsistent with 16-bit mono at {sample_rate} Hz"
                    )));
                }
                rate = Some(sample_rate);
            }
            b"data" => {
                let sample_rate = rate.ok_or_else(|| bad("data chunk before the fmt chunk"))?;
                if size % 2 != 0 {
                    return Err(WavError(format!("data chunk of {size} bytes: not whole 16-bit samples")));
                }
                if body + size != file.len() {
                    return Err(WavError(format!(
                        "data chunk of {size} bytes but {} bytes follow its header",
                        file.len() - body
                    )));
                }
                let samples = file[body..body + size]
                    .chunks_exact(2)
                    .map(|s| i16::from_le_bytes([s[0], s[1]]))
                    .collect();
                return Ok(Wav { sample_rate, samples });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body + size + (size % 2);
    }
    Err(bad("no data chunk"))
}

/// A WAV file of `samples` (PCM16 mono at `sample_rate`), as a client sends it.
pub fn encode(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// `count` samples of a tone at `hz` at about -12 dBFS (peak 8000), at `sample_rate`,
/// starting at sample `from` of the tone (so pieces join without a click).
pub fn tone_from(sample_rate: u32, hz: f64, from: u64, count: usize) -> Vec<i16> {
    let rate = f64::from(sample_rate.max(1));
    (0..count as u64).map(|i| ((TAU * hz * (from + i) as f64 / rate).sin() * 8000.0) as i16).collect()
}

/// `ms` of a tone at `hz` at about -12 dBFS, sampled at `sample_rate`.
pub fn tone(sample_rate: u32, hz: f64, ms: u32) -> Vec<i16> {
    tone_from(sample_rate, hz, 0, (u64::from(sample_rate) * u64::from(ms) / 1000) as usize)
}

/// `ms` of silence at `sample_rate`.
pub fn silence(sample_rate: u32, ms: u32) -> Vec<i16> {
    vec![0; (u64::from(sample_rate) * u64::from(ms) / 1000) as usize]
}

/// The RMS level of `samples` in dBFS (-120 for silence).
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-6 {
        -120.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

/// The power of `hz` in `window` (Goertzel), as a share of the window's energy (0–1 for
/// a pure tone near the bin).
fn tone_share(window: &[i16], sample_rate: u32, hz: f64) -> f64 {
    let w = TAU * hz / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
    for &x in window {
        let x = f64::from(x);
        energy += x * x;
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    if energy <= 0.0 {
        return 0.0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A pure tone of N samples has power N² A²/4 and energy N A²/2.
    (2.0 * power / (window.len() as f64 * energy)).min(1.0)
}

/// The words that the steady tones of `samples` stand for, in order: 40 ms windows above
/// `silence_dbfs` whose energy is mostly one of `words`' frequencies; a word repeats only
/// after a window of something else (silence, another tone).
pub fn tone_words(
    samples: &[i16],
    sample_rate: u32,
    words: &[(f64, String)],
    silence_dbfs: f32,
) -> Vec<String> {
    let window = (sample_rate / 25).max(1) as usize;
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<usize> = None;
    for w in samples.chunks(window).filter(|w| w.len() == window) {
        let heard = if rms_dbfs(w) < silence_dbfs {
            None
        } else {
            words
                .iter()
                .enumerate()
                .map(|(k, (hz, _))| (k, tone_share(w, sample_rate, *hz)))
                .filter(|(_, share)| *share > 0.5)
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k)
        };
        if heard.is_some() && heard != last {
            if let Some(k) = heard {
                out.push(words[k].1.clone());
            }
        }
        last = heard;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let samples = tone(8000, 440.0, 500);
        let file = encode(8000, &samples);
        let wav = parse(&file).expect("valid");
        assert_eq!((wav.sample_rate, wav.duration_ms()), (8000, 500));
        assert!((rms_dbfs(&wav.samples) + 15.3).abs() < 0.5, "peak -12 dBFS is RMS -15.3");
        let mut stereo = file.clone();
        stereo[22] = 2;
        let mut rate = encode(24_000, &samples);
        let mut short = file.clone();
        short.truncate(file.len() - 2);
        let mut odd = file.clone();
        odd.push(0);
        for (broken, needle) in [
            (&b"RIFF\0\0\0\0WAVE"[..], "RIFF size"),
            (&stereo[..], "channels"),
            (&rate[..], "sample rate"),
            (&short[..], "RIFF size"),
            (&odd[..], "RIFF size"),
            (&b"ID3\x03"[..], "not a WAV"),
        ] {
            let e = parse(broken).expect_err("refused");
            assert!(e.0.contains(needle), "{}", e.0);
        }
        // A data chunk shorter than what follows it is refused too.
        rate = encode(8000, &samples);
        let n = rate.len() as u32 - 8 + 2;
        rate.extend_from_slice(&[0, 0]);
        rate[4..8].copy_from_slice(&n.to_le_bytes());
        assert!(parse(&rate).expect_err("refused").0.contains("data chunk"));
    }

    #[test]
    fn tones_become_words() {
        let words =
            vec![(500.0, "check".to_owned()), (900.0, "weather".to_owned()), (1300.0, "please".to_owned())];
        let mut audio = tone(16_000, 500.0, 300);
        audio.extend(tone(16_000, 900.0, 300));
        audio.extend(silence(16_000, 100));
        audio.extend(tone(16_000, 900.0, 300));
        audio.extend(tone(16_000, 700.0, 300));
        audio.extend(tone(16_000, 1300.0, 300));
        assert_eq!(tone_words(&audio, 16_000, &words, -50.0), vec!["check", "weather", "weather", "please"]);
        assert!(tone_words(&silence(8000, 500), 8000, &words, -50.0).is_empty());
    }
}
