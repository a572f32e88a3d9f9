//! G.722 against the reference implementations on this machine: ffmpeg's `g722` codec
//! (encoder with `-trellis 0`) and libspandsp's (the one baresip's g722 module uses,
//! through the small harness `support/g722_spandsp.c`, compiled here at test time).
//!
//! A 4 s wideband test signal (tones in both sub-bands, a sweep, noise, full-scale
//! bursts that drive the quantisers and the saturation) is made at test time; nothing
//! generated is kept in git. Checked: our encoder's bytes equal the reference encoder's,
//! our decoder's samples equal the reference decoder's on the reference stream (and, for
//! ffmpeg, on random bytes too: every code, including those no encoder emits), and the
//! round trip's SNR is printed. spandsp's decoder wraps instead of saturating when the
//! output overflows (full-scale input): there our decoder saturates, like ffmpeg's.
//!
//! Needs `ffmpeg` (Debian: ffmpeg); the spandsp part needs `cc` and libspandsp-dev.

use std::path::Path;
use std::process::Command;

use voice_ua_media::g722::{G722Decoder, G722Encoder};

use crate::support::{require_tools, RunDir, REQUIRE_ENV};

/// The test signal, 16 kHz.
fn test_signal() -> Vec<i16> {
    let rate = 16_000.0;
    let mut noise = 0x1234_5678u32;
    (0..64_000)
        .map(|i| {
            let t = f64::from(i) / rate;
            let tau = 2.0 * std::f64::consts::PI;
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let white = f64::from(noise as i32) / f64::from(i32::MAX);
            let x = match i / 16_000 {
                // 300 Hz + 5 kHz: one tone per sub-band.
                0 => 9000.0 * (tau * 300.0 * t).sin() + 4000.0 * (tau * 5000.0 * t).sin(),
                // A sweep through both bands.
                1 => 12_000.0 * (tau * (100.0 + 3900.0 * (t - 1.0)) * (t - 1.0)).sin(),
                // Noise.
                2 => 6000.0 * white,
                // Full-scale bursts and silence.
                _ if (i / 800) % 2 == 0 => 40_000.0 * (tau * 1700.0 * t).sin() + 8000.0 * white,
                _ => 0.0,
            };
            x.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

fn write_pcm(path: &Path, pcm: &[i16]) {
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn read_pcm(path: &Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

fn run(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn ours_encode(pcm: &[i16]) -> Vec<u8> {
    let mut codes = vec![0u8; pcm.len() / 2];
    // Frame by frame, as a call does.
    let mut enc = G722Encoder::new();
    let mut at = 0;
    for frame in pcm.chunks(320) {
        at += enc.encode(frame, &mut codes[at..]);
    }
    codes.truncate(at);
    codes
}

fn ours_decode(codes: &[u8]) -> Vec<i16> {
    let mut pcm = vec![0i16; codes.len() * 2];
    let mut dec = G722Decoder::new();
    let mut at = 0;
    for frame in codes.chunks(160) {
        at += dec.decode(frame, &mut pcm[at..]);
    }
    pcm
}

/// Index and values of the first difference, for the failure message.
fn first_difference<T: PartialEq + Copy + std::fmt::Debug>(a: &[T], b: &[T]) -> Option<(usize, T, T)> {
    a.iter().zip(b).enumerate().find(|(_, (x, y))| x != y).map(|(i, (x, y))| (i, *x, *y))
}

/// SNR (dB) of `decoded` against `input`, aligned by the codec's 22-sample delay.
fn snr_db(input: &[i16], decoded: &[i16]) -> f64 {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (&x, &y) in input.iter().zip(decoded.get(22..).unwrap_or(&[])) {
        signal += f64::from(x).powi(2);
        noise += (f64::from(x) - f64::from(y)).powi(2);
    }
    10.0 * (signal / noise.max(1.0)).log10()
}

#[test]
fn g722_is_bit_exact_with_ffmpeg() {
    let Some(tools) = require_tools("g722_is_bit_exact_with_ffmpeg", &["ffmpeg"]) else {
        return;
    };
    let ffmpeg = tools.get("ffmpeg");
    let run_dir = RunDir::new("g722-ffmpeg");
    let input = test_signal();
    let raw = run_dir.file("in.raw");
    write_pcm(&raw, &input);
    let reference = run_dir.file("ref.g722");
    run(
        "ffmpeg encode",
        Command::new(ffmpeg)
            .args(["-v", "error", "-y", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i"])
            .arg(&raw)
            .args(["-acodec", "g722", "-trellis", "0", "-f", "g722"])
            .arg(&reference),
    );
    let reference_codes = std::fs::read(&reference).expect("read ffmpeg's G.722");
    let ours = ours_encode(&input);
    assert_eq!(ours.len(), reference_codes.len(), "encoded lengths");
    assert_eq!(first_difference(&ours, &reference_codes), None, "encoder: (byte, ours, ffmpeg)");

    let random = run_dir.file("random.g722");
    let mut x = 0x9E37_79B9u32;
    let random_codes: Vec<u8> = (0..16_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&random, &random_codes).expect("write random codes");
    for (name, stream, codes) in
        [("reference", &reference, &reference_codes), ("random", &random, &random_codes)]
    {
        let decoded = run_dir.file(&format!("{name}.raw"));
        run(
            "ffmpeg decode",
            Command::new(ffmpeg)
                .args(["-v", "error", "-y", "-f", "g722", "-i"])
                .arg(stream)
                .args(["-f", "s16le"])
                .arg(&decoded),
        );
        let theirs = read_pcm(&decoded);
        let ours = ours_decode(codes);
        assert_eq!(ours.len(), theirs.len(), "{name}: decoded lengths");
        assert_eq!(first_difference(&ours, &theirs), None, "{name}: decoder (sample, ours, ffmpeg)");
    }
    let snr = snr_db(&input[..48_000], &ours_decode(&ours)[..48_000]);
    eprintln!("g722 round trip (tones, sweep, noise; 3 s): SNR {snr:.1} dB");
    assert!(snr > 15.0, "round-trip SNR {snr:.1} dB");
}

#[test]
fn g722_is_bit_exact_with_spandsp() {
    let test = "g722_is_bit_exact_with_spandsp";
    let Some(tools) = require_tools(test, &["cc"]) else {
        return;
    };
    let run_dir = RunDir::new("g722-spandsp");
    let harness = run_dir.file("g722_spandsp");
    let source = crate::support::tests_dir().join("interop/support/g722_spandsp.c");
    let built = Command::new(tools.get("cc"))
        .args(["-O2", "-o"])
        .arg(&harness)
        .arg(&source)
        .arg("-lspandsp")
        .output()
        .expect("run cc");
    if !built.status.success() {
        let why = format!(
            "{test}: cannot build the spandsp harness (Debian: libspandsp-dev): {}",
            String::from_utf8_lossy(&built.stderr).lines().next().unwrap_or("")
        );
        if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
            panic!("{why}; {REQUIRE_ENV}=1 so this is a failure");
        }
        eprintln!("\n*** SKIP *** {why}\n");
        return;
    }
    let input = test_signal();
    let raw = run_dir.file("in.raw");
    write_pcm(&raw, &input);
    let through = |mode: &str, input: &Path, output: &Path| {
        let stdin = std::fs::File::open(input).expect("open the harness input");
        let stdout = std::fs::File::create(output).expect("create the harness output");
        let status =
            Command::new(&harness).arg(mode).stdin(stdin).stdout(stdout).status().expect("run harness");
        assert!(status.success(), "spandsp {mode} failed");
    };
    let reference = run_dir.file("ref.g722");
    through("enc", &raw, &reference);
    let reference_codes = std::fs::read(&reference).expect("read spandsp's G.722");
    let ours = ours_encode(&input);
    assert_eq!(ours.len(), reference_codes.len(), "encoded lengths");
    assert_eq!(first_difference(&ours, &reference_codes), None, "encoder: (byte, ours, spandsp)");
    let decoded = run_dir.file("ref.raw");
    through("dec", &reference, &decoded);
    let theirs = read_pcm(&decoded);
    let ours = ours_decode(&reference_codes);
    assert_eq!(ours.len(), theirs.len(), "decoded lengths");
    // Where the full-scale bursts overflow the output, spandsp wraps around and we
    // saturate: every difference must be exactly that (ours on a rail, theirs wrapped to
    // the other sign); everywhere else the samples are equal.
    let mut wrapped = 0;
    for (i, (&a, &b)) in ours.iter().zip(&theirs).enumerate() {
        if a != b {
            let saturated = (a == i16::MAX && b < 0) || (a == i16::MIN && b > 0);
            assert!(saturated, "decoder differs at sample {i}: ours {a}, spandsp {b}");
            wrapped += 1;
        }
    }
    assert_eq!(
        first_difference(&ours[..48_000], &theirs[..48_000]),
        None,
        "decoder: (sample, ours, spandsp)"
    );
    eprintln!("g722 vs spandsp: encoder equal, decoder equal but for {wrapped} samples where spandsp wraps");
}
