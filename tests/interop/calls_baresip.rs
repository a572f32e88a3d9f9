//! baresip 1.0 as a real caller: it dials voice-ua directly, speaks a
//! speech-like WAV made with sox at test time (syllables: tones with
//! tremolo and fades, irregular lengths and gaps), waits, hangs up through
//! its `cons` UDP console, and records what it heard (the `sndfile`
//! module's `dump-*-dec.wav`; what it sent is in `dump-*-enc.wav`).
//!
//! The echo agent must send the caller's speech back after the caller
//! pauses: the RMS envelope (20 ms windows) of what baresip sent must
//! reappear in what it received, at a lag of 0.5 to 4 s from the start of
//! the speech (0.2 to 1.6 s after its end), with a normalised
//! cross-correlation of at least [`ECHO_THRESHOLD`]. Two controls show the
//! threshold means something: the same correlation against a shuffled
//! copy of the sent envelope (same values, syllable timing destroyed) and
//! against silence stay below it.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::calls::{self, PortBlock};
use crate::support::ports::{free_port, free_port_pair, is_listening};
use crate::support::process::Proc;
use crate::support::voice_ua;
use crate::support::{logs, require_tools, wait_until, RunDir};

/// Normalised cross-correlation an echo must reach. An exact replay through
/// G.711 both ways gives about 0.9 or more (the envelope survives the
/// codec; only the window alignment blurs it), while unrelated envelopes of
/// this length (about 300 windows) stay below 0.3: the shuffled control
/// measures that each run. 0.6 sits between with margin on both sides.
const ECHO_THRESHOLD: f64 = 0.6;

/// Window for the envelope: one RTP packet.
pub(crate) const WINDOW_S: f64 = 0.020;

/// Makes the caller's speech: `sox` syllables joined, then silence.
fn make_speech(run: &RunDir, sox: &Path) -> PathBuf {
    // (duration s, base frequency Hz, tremolo Hz, gap after s)
    let syllables = [
        (0.22, 190.0, 6.0, 0.08),
        (0.34, 240.0, 4.0, 0.20),
        (0.16, 210.0, 7.0, 0.06),
        (0.28, 170.0, 5.0, 0.30),
        (0.20, 260.0, 6.5, 0.10),
        (0.30, 200.0, 4.5, 0.0),
    ];
    let mut parts = Vec::new();
    for (i, (dur, f, trem, gap)) in syllables.iter().enumerate() {
        let part = run.file(&format!("syl{i}.wav"));
        let out = Command::new(sox)
            .args(["-n", "-r", "8000", "-b", "16", "-c", "1"])
            .arg(&part)
            .args(["synth", &format!("{dur}"), "sine", &format!("{f}")])
            .args(["synth", &format!("{dur}"), "sine", "amod", &format!("{}", f * 3.1)])
            .args(["tremolo", &format!("{trem}"), "70"])
            .args(["fade", "q", "0.04", &format!("{dur}"), "0.06"])
            .args(["gain", "-n", "-4"])
            .args(["pad", "0", &format!("{gap}")])
            .output()
            .expect("run sox");
        assert!(out.status.success(), "sox failed: {}", String::from_utf8_lossy(&out.stderr));
        parts.push(part);
    }
    let speech = run.file("speech.wav");
    // speech first, then 6 s of silence so aufile never loops within the call
    let out = Command::new(sox).args(&parts).arg(&speech).args(["pad", "0", "6"]).output().expect("run sox");
    assert!(out.status.success(), "sox concat failed: {}", String::from_utf8_lossy(&out.stderr));
    speech
}

/// Mono 16-bit PCM samples and rate of a RIFF/WAVE file (first channel if
/// more than one).
pub(crate) fn read_wav(path: &Path) -> (Vec<f64>, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "{} is not WAVE",
        path.display()
    );
    let (mut rate, mut channels, mut bits) = (0u32, 1usize, 16u16);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            channels = usize::from(u16::from_le_bytes([body[2], body[3]]));
            rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            assert_eq!(bits, 16, "{}: only 16-bit PCM is read", path.display());
            let samples = body
                .chunks_exact(2 * channels)
                .map(|frame| f64::from(i16::from_le_bytes([frame[0], frame[1]])))
                .collect();
            return (samples, rate);
        }
        at += 8 + len + (len & 1);
    }
    panic!("{}: no data chunk", path.display());
}

/// RMS per `WINDOW_S` window.
pub(crate) fn envelope(samples: &[f64], rate: u32) -> Vec<f64> {
    let n = ((f64::from(rate) * WINDOW_S) as usize).max(1);
    samples.chunks(n).map(|w| (w.iter().map(|s| s * s).sum::<f64>() / w.len() as f64).sqrt()).collect()
}

/// Normalised cross-correlation of `a` against `b` delayed by `lag`
/// windows (a[t] with b[t + lag]) over their overlap; 0 when either side
/// is constant.
pub(crate) fn ncc(a: &[f64], b: &[f64], lag: usize) -> f64 {
    if lag >= b.len() {
        return 0.0;
    }
    let n = a.len().min(b.len() - lag);
    if n < 10 {
        return 0.0;
    }
    let (x, y) = (&a[..n], &b[lag..lag + n]);
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (p, q) in x.iter().zip(y) {
        sxy += (p - mx) * (q - my);
        sxx += (p - mx) * (p - mx);
        syy += (q - my) * (q - my);
    }
    if sxx <= f64::EPSILON || syy <= f64::EPSILON {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// The best correlation and its lag (s) over lags 0.5..=4 s. The lag is
/// counted from the start of the caller's speech: about its length (2.2 s
/// here) plus the agent's pause detection (~0.6 s).
fn best_echo(sent: &[f64], received: &[f64]) -> (f64, f64) {
    let lo = (0.5 / WINDOW_S) as usize;
    let hi = (4.0 / WINDOW_S) as usize;
    (lo..=hi).map(|lag| (ncc(sent, received, lag), lag as f64 * WINDOW_S)).fold((f64::MIN, 0.0), |best, c| {
        if c.0 > best.0 {
            c
        } else {
            best
        }
    })
}

/// A fixed pseudo-random permutation (xorshift, Fisher-Yates).
pub(crate) fn shuffled(v: &[f64], mut seed: u64) -> Vec<f64> {
    let mut out = v.to_vec();
    for i in (1..out.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    out
}

pub(crate) fn find_dump(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("dump-") && n.ends_with(suffix))
    })
}

pub(crate) fn baresip_module_dir() -> PathBuf {
    std::env::var_os("VOICE_UA_BARESIP_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/baresip/modules"))
}

/// A headless baresip config: SIP on `sip_port`, RTP in `rtp`, `source` as its
/// microphone, no player, received audio dumped into `dumps`, commands on `cons_port`.
pub(crate) fn baresip_config(
    sip_port: u16,
    rtp: (u16, u16),
    source: &Path,
    cons_port: u16,
    dumps: &Path,
) -> String {
    format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         net_interface 127.0.0.1\n\
         rtp_ports {}-{}\n\
         audio_player aubridge,nowhere\n\
         audio_alert aubridge,nowhere\n\
         audio_source aufile,{}\n\
         ausrc_srate 8000\n\
         auplay_srate 8000\n\
         ausrc_channels 1\n\
         auplay_channels 1\n\
         module_path {}\n\
         module g711.so\n\
         module aufile.so\n\
         module aubridge.so\n\
         module sndfile.so\n\
         module cons.so\n\
         module_app account.so\n\
         module_app menu.so\n\
         cons_listen 127.0.0.1:{cons_port}\n\
         statmode_default off\n\
         snd_path {}\n",
        rtp.0,
        rtp.1,
        source.display(),
        baresip_module_dir().display(),
        dumps.display()
    )
}

#[test]
fn baresip_caller_hears_its_speech_echoed() {
    let Some(tools) = require_tools("baresip_echo", &["baresip", "sox"]) else {
        return;
    };
    voice_ua::binary();
    let run = RunDir::new("baresip_echo");
    let block = PortBlock::next();
    let ua = calls::start_ua(&run, free_port(), &block, "", calls::PASSWORD);
    let speech = make_speech(&run, tools.get("sox"));

    let cfg_dir = run.subdir("baresip");
    let dumps = run.subdir("dumps");
    // baresip also listens for SIP over TLS on the next port: both must be free.
    let sip_port = free_port_pair();
    let cons_port = free_port();
    let config = baresip_config(sip_port, (block.peer(4), block.peer(8)), &speech, cons_port, &dumps);
    std::fs::write(cfg_dir.join("config"), config).expect("write baresip config");
    std::fs::write(
        cfg_dir.join("accounts"),
        format!("<sip:caller@127.0.0.1:{sip_port}>;regint=0;audio_codecs=PCMU/8000\n"),
    )
    .expect("write baresip accounts");
    let mut cmd = Command::new(tools.get("baresip"));
    cmd.current_dir(run.path()).arg("-f").arg(&cfg_dir).env("HOME", run.path());
    let mut baresip = Proc::spawn("baresip", cmd, &run, true);
    let diag = |ua: &voice_ua::VoiceUa, baresip: &Proc| {
        format!("{}{}\n{}", logs::tail(&baresip.stdout, 60), logs::tail(&baresip.stderr, 20), ua.diag())
    };
    let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (is_listening(sip_port, false) && is_listening(cons_port, false)).then_some(())
    });
    assert!(up.is_some(), "baresip did not open its SIP and console ports\n{}", diag(&ua, &baresip));

    let console = UdpSocket::bind(("127.0.0.1", 0)).expect("bind console socket");
    let command = |text: &str| {
        // one command per datagram, ended by a newline (menu module syntax)
        console
            .send_to(format!("{text}\n").as_bytes(), ("127.0.0.1", cons_port))
            .expect("send to baresip console");
    };
    command(&format!("/dial sip:9000@127.0.0.1:{}", ua.bind_port));
    let established = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        logs::read(&baresip.stdout).contains("Call established").then_some(())
    });
    assert!(established.is_some(), "baresip's call was not established\n{}", diag(&ua, &baresip));
    // ~2 s of speech, then ~4 s listening to the echo
    std::thread::sleep(Duration::from_secs(6));
    command("/hangup");
    let ended = calls::wait_calls_ended(&ua, 1, Duration::from_secs(5));
    command("/quit");
    if baresip.wait_timeout(Duration::from_secs(5)).is_none() {
        baresip.stop();
    }
    let e = &ended[0];
    assert!(e.packets_in > 0 && e.packets_out > 0, "{e:?}");
    assert_eq!(e.codec, "PCMU", "{e:?}");
    assert_eq!(e.hung_up_by, "caller", "{e:?}");

    let enc = find_dump(&dumps, "-enc.wav")
        .unwrap_or_else(|| panic!("no dump-*-enc.wav in {}\n{}", dumps.display(), diag(&ua, &baresip)));
    let dec = find_dump(&dumps, "-dec.wav")
        .unwrap_or_else(|| panic!("no dump-*-dec.wav in {}\n{}", dumps.display(), diag(&ua, &baresip)));
    let (sent, sent_rate) = read_wav(&enc);
    let (heard, heard_rate) = read_wav(&dec);
    let sent_env = envelope(&sent, sent_rate);
    let heard_env = envelope(&heard, heard_rate);
    let sent_s = sent.len() as f64 / f64::from(sent_rate);
    let heard_s = heard.len() as f64 / f64::from(heard_rate);
    // only the speech part of what was sent (the rest is silence)
    let speech_env: Vec<f64> = sent_env.iter().copied().take((3.0 / WINDOW_S) as usize).collect();
    let loud = speech_env.iter().filter(|&&r| r > 500.0).count();
    assert!(
        loud > 40,
        "baresip sent almost nothing ({loud} loud windows in {sent_s:.1} s): aufile source not playing?"
    );

    let talk_s = speech_env.iter().rposition(|&r| r > 500.0).map_or(0.0, |i| (i + 1) as f64 * WINDOW_S);
    let (score, lag) = best_echo(&speech_env, &heard_env);
    // the echo must start after the caller stopped, roughly 0.6 s later
    let pause = lag - talk_s;
    let (shuffled_score, _) = best_echo(&shuffled(&speech_env, 0x9E37_79B9_7F4A_7C15), &heard_env);
    let (silent_score, _) = best_echo(&vec![0.0; speech_env.len()], &heard_env);
    let report = format!(
        "echo correlation {score:.3} at lag {lag:.2} s, {pause:.2} s after the caller's {talk_s:.2} s of \
         speech ended (threshold {ECHO_THRESHOLD}); shuffled control \
         {shuffled_score:.3}, silent control {silent_score:.3}; sent {sent_s:.1} s at {sent_rate} Hz, \
         heard {heard_s:.1} s at {heard_rate} Hz; {e:?}"
    );
    eprintln!("baresip: {report}");
    assert!(
        shuffled_score < ECHO_THRESHOLD && silent_score < ECHO_THRESHOLD,
        "a control reached the threshold, so it proves nothing: {report}"
    );
    assert!(
        score >= ECHO_THRESHOLD,
        "baresip did not hear its speech echoed between 0.5 and 4 s: {report}\nrecordings: {} {}\n{}",
        enc.display(),
        dec.display(),
        diag(&ua, &baresip)
    );
    assert!(
        (0.2..=1.6).contains(&pause),
        "the echo came {pause:.2} s after the caller stopped talking (contract: about 0.6 s): {report}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ncc_finds_a_delayed_copy_and_not_a_shuffled_one() {
        // an irregular envelope: shuffled ramps, so no lag but the true one fits
        let ramp: Vec<f64> = (0..150).map(|i| f64::from(i % 37) * 30.0).collect();
        let a = shuffled(&ramp, 12345);
        let mut b = vec![0.0; 60];
        b.extend(&a);
        let (score, lag) = best_echo(&a, &b);
        assert!(score > 0.99 && (lag - 1.2).abs() < 1e-9, "{score} {lag}");
        let (s, _) = best_echo(&shuffled(&a, 7), &b);
        assert!(s < 0.5, "{s}");
    }
}
