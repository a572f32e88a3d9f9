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
//!
//! And a G.722 call end to end: baresip (its g722 module, 16 kHz audio) registered at
//! Kamailio (`pbx.cfg`, registrar + record-routing proxy) calls voice-ua (9000, the echo
//! agent, `codecs = ["G722", "PCMU"]`) through it. The call must negotiate G722/8000,
//! the echo agent plays back what baresip sent, and what baresip heard (its decoder's
//! 16 kHz dump) must keep the sent 5.5 kHz component — above G.711's 4 kHz band — at
//! its level relative to the 500 Hz one (a spectrum figure, printed). Asterisk, the other
//! PBX of the issue, has no package in Debian 12, so "through Asterisk" is not run here.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use voice_ua_media::g722::{G722Decoder, G722Encoder};

use crate::agent_e2e::goertzel_amp;
use crate::calls_baresip::{baresip_config, find_dump, read_wav};
use crate::support::calls::{self, PortBlock};
use crate::support::kamailio::{self, Kamailio};
use crate::support::ports::{free_port, free_port_pair, is_listening};
use crate::support::process::Proc;
use crate::support::{logs, require_tools, voice_ua, wait_until, RunDir, EXT, REQUIRE_ENV};

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

/// baresip's microphone: syllables of 500 Hz and 5.5 kHz at equal amplitude (with a
/// tremolo, so the echo agent hears speech-like bursts), then silence; 16 kHz.
fn wideband_speech() -> Vec<i16> {
    let rate = 16_000.0;
    let tau = 2.0 * std::f64::consts::PI;
    let mut out = Vec::new();
    for (dur, gap) in [(0.30, 0.10), (0.25, 0.15), (0.35, 0.10), (0.30, 0.0)] {
        let n = (dur * rate) as usize;
        for i in 0..n {
            let t = i as f64 / rate;
            let fade = (i.min(n - i) as f64 / 320.0).min(1.0);
            let trem = 0.75 + 0.25 * (tau * 5.0 * t).sin();
            let x = 5000.0 * (tau * 500.0 * t).sin() + 5000.0 * (tau * 5500.0 * t).sin();
            out.push((x * fade * trem) as i16);
        }
        out.resize(out.len() + (gap * rate) as usize, 0);
    }
    out.resize(16_000 * 30, 0);
    out
}

/// The 5.5 kHz amplitude relative to the 500 Hz one (dB), over the loud 20 ms windows
/// of `samples` (those above a tenth of the loudest), and how many there were.
fn high_band_ratio_db(samples: &[f64], rate: u32) -> (f64, usize) {
    let n = rate as usize / 50;
    let windows: Vec<&[f64]> = samples.chunks_exact(n).collect();
    let rms = |w: &[f64]| (w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64).sqrt();
    let loudest = windows.iter().map(|w| rms(w)).fold(0.0, f64::max);
    let loud: Vec<&&[f64]> = windows.iter().filter(|w| rms(w) > loudest / 10.0).collect();
    let (mut high, mut low) = (0.0, 0.0);
    for w in &loud {
        high += goertzel_amp(w, f64::from(rate), 5500.0);
        low += goertzel_amp(w, f64::from(rate), 500.0);
    }
    (20.0 * (high / low.max(1e-9)).log10(), loud.len())
}

#[test]
fn baresip_offering_g722_through_kamailio_hears_its_wideband_echo() {
    let test = "baresip_g722_echo";
    let Some(tools) = require_tools(test, &["kamailio", "kamcmd", "baresip"]) else {
        return;
    };
    let g722_module = crate::calls_baresip::baresip_module_dir().join("g722.so");
    if !g722_module.is_file() {
        let why = format!("{test}: no baresip g722 module at {}", g722_module.display());
        if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
            panic!("{why}; {REQUIRE_ENV}=1 so this is a failure");
        }
        eprintln!("\n*** SKIP *** {why}\n");
        return;
    }
    voice_ua::binary();
    let run = RunDir::new(test);
    let block = PortBlock::next();
    let kam = Kamailio::start_cfg(&run, &tools, "pbx.cfg", None);
    let mut ua = calls::start_ua(&run, kam.port, &block, "codecs = [\"G722\", \"PCMU\"]", kamailio::PASSWORD);
    let regs = ua.wait_registered(1, Duration::from_secs(10));
    assert!(regs.is_some(), "voice-ua did not register at Kamailio\n{}\n{}", kam.diag(), ua.diag());

    // baresip as 1001, G.722 only, 16 kHz source and player.
    let cfg_dir = run.subdir("baresip");
    let dumps = run.subdir("dumps");
    let mic = run.file("mic.wav");
    let pcm: Vec<u8> = wideband_speech().iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&mic, crate::support::speech::wav_bytes(&pcm, 16_000)).expect("write the microphone");
    let sip_port = free_port_pair();
    let cons_port = free_port();
    let config = baresip_config(sip_port, (block.peer(4), block.peer(15)), &mic, cons_port, &dumps)
        .replace("ausrc_srate 8000", "ausrc_srate 16000")
        .replace("auplay_srate 8000", "auplay_srate 16000")
        .replace("module g711.so\n", "module g711.so\nmodule g722.so\n");
    std::fs::write(cfg_dir.join("config"), config).expect("write baresip config");
    std::fs::write(
        cfg_dir.join("accounts"),
        format!("<sip:1001@127.0.0.1:{}>;regint=60;audio_codecs=G722/8000\n", kam.port),
    )
    .expect("write baresip accounts");
    let mut cmd = Command::new(tools.get("baresip"));
    cmd.current_dir(run.path()).arg("-f").arg(&cfg_dir).env("HOME", run.path());
    let mut baresip = Proc::spawn("baresip", cmd, &run, true);
    let diag = |baresip: &Proc| {
        format!(
            "{}{}\n{}\n{}",
            logs::tail(&baresip.stdout, 60),
            logs::tail(&baresip.stderr, 20),
            kam.diag(),
            ua.diag()
        )
    };
    let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (is_listening(sip_port, false) && is_listening(cons_port, false)).then_some(())
    });
    assert!(up.is_some(), "baresip did not open its SIP and console ports\n{}", diag(&baresip));
    let bound = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        (!kam.bindings("1001").is_empty()).then_some(())
    });
    assert!(bound.is_some(), "baresip did not register 1001\n{}", diag(&baresip));

    let console = UdpSocket::bind(("127.0.0.1", 0)).expect("bind console socket");
    let command = |text: &str| {
        console
            .send_to(format!("{text}\n").as_bytes(), ("127.0.0.1", cons_port))
            .expect("send to baresip console");
    };
    command(&format!("/dial sip:{EXT}@127.0.0.1:{}", kam.port));
    let established = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        logs::read(&baresip.stdout).contains("Call established").then_some(())
    });
    assert!(established.is_some(), "baresip's call was not established\n{}", diag(&baresip));
    // ~1.6 s of speech, the echo agent's pause, its playback.
    std::thread::sleep(Duration::from_secs(6));
    command("/hangup");
    let ended = calls::wait_calls_ended(&ua, 1, Duration::from_secs(5));
    command("/quit");
    if baresip.wait_timeout(Duration::from_secs(5)).is_none() {
        baresip.stop();
    }
    let e = &ended[0];
    assert_eq!(e.codec, "G722", "the call negotiated G.722: {e:?}");
    assert!(e.packets_in > 200 && e.packets_out > 200, "{e:?}");
    assert_eq!(e.hung_up_by, "caller", "{e:?}");

    let enc =
        find_dump(&dumps, "-enc.wav").unwrap_or_else(|| panic!("no dump-*-enc.wav\n{}", diag(&baresip)));
    let dec =
        find_dump(&dumps, "-dec.wav").unwrap_or_else(|| panic!("no dump-*-dec.wav\n{}", diag(&baresip)));
    let (sent, sent_rate) = read_wav(&enc);
    let (heard, heard_rate) = read_wav(&dec);
    assert_eq!((sent_rate, heard_rate), (16_000, 16_000), "baresip's G.722 audio is 16 kHz");
    let (sent_db, sent_windows) = high_band_ratio_db(&sent, sent_rate);
    let (heard_db, heard_windows) = high_band_ratio_db(&heard, heard_rate);
    let report = format!(
        "5.5 kHz vs 500 Hz: sent {sent_db:.1} dB over {sent_windows} loud windows, heard (the echo) \
         {heard_db:.1} dB over {heard_windows}; {e:?}"
    );
    eprintln!("baresip G.722 echo: {report}");
    assert!(sent_windows >= 40 && heard_windows >= 40, "too little audio each way: {report}");
    assert!(sent_db.abs() < 3.0, "the microphone has both tones at one level: {report}");
    // Through G.711 the 5.5 kHz component would be gone (below -30 dB); through G.722 both
    // ways it keeps its level within a few dB.
    assert!(heard_db > -6.0, "the echo lost its energy above 4 kHz: {report}\n{}", diag(&baresip));
}
