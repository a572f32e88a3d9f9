//! voice-ua against a real Twilio Media Streams peer nobody here wrote: Pipecat (PyPI
//! `pipecat-ai`, pinned in `support/pipecat-venv.sh`), its own `TwilioFrameSerializer`
//! and WebSocket transport running a scripted pipeline (`support/pipecat_bot.py`: a
//! greeting tone at start, an answer tone after 1 s of caller speech, Pipecat's own
//! interruption on request). baresip calls 9000 through Kamailio and records what it
//! hears; its microphone plays a tone as the caller's speech.
//!
//! * `pipecat_twilio_bot_greets_answers_and_hangs_up`: Pipecat accepts our `connected` /
//!   `start` (it reads streamSid, callSid and customParameters), baresip hears its 440 Hz
//!   greeting (Pipecat sends 40 ms `media` frames without sequence numbers), Pipecat
//!   decodes the caller's tone from our 20 ms `media` frames and answers with 600 Hz
//!   after 1 s of it, then closes the WebSocket (code 1000): voice-ua hangs up, after the
//!   answer has played.
//! * `pipecat_twilio_bot_barge_in_clears_playback`: the caller speaks over a 4 s greeting;
//!   Pipecat's interruption sends `clear` and the greeting baresip hears stops there.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::agent_e2e::{goertzel_amp, Agent, FakeAgent, Rig, TONE_WIN_S};
use crate::support::calls;
use crate::support::process::Proc;
use crate::support::{logs, wait_until, RunDir, EXT};

/// The venv's python, made once per test process (a first install takes ~35 s).
fn pipecat_python(test: &str) -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::support::venv_python(test, "pipecat-venv.sh", "Pipecat", &PYTHON)
}

/// Pipecat's bot in its own process (and run directory), and voice-ua's `[agent]`
/// section for it.
pub(crate) struct Pipecat {
    _proc: Proc,
    toml: String,
    _run: RunDir,
}

impl FakeAgent for Pipecat {
    type Record = voice_ua_fake_bots::Record;
    const PROVIDER: &'static str = "websocket";
    const KEY_ENV: &'static str = "BOT_UNUSED_KEY";
    fn url(&self) -> String {
        String::new()
    }
    fn server(&self) -> Option<&voice_ua_fake_server::FakeServer<Self::Record>> {
        None
    }
    fn section(&self, _functions: &str) -> String {
        self.toml.clone()
    }
}

/// Pipecat's bot on a free port with `args`, voice-ua's `[agent]` section pointing at
/// it (Twilio dialect), and the file its received events go to (one JSON per line).
fn pipecat(python: &PathBuf, test: &str, args: &[&str]) -> (Agent<Pipecat>, PathBuf) {
    let run = RunDir::new(&format!("{test}-pipecat"));
    let events = run.file("pipecat-events.jsonl");
    let mut cmd = Command::new(python);
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/interop/support/pipecat_bot.py"))
        .args(["--port", "0", "--log-format", "json", "--log-file"])
        .arg(&events)
        .args(args);
    let proc = Proc::spawn("pipecat", cmd, &run, true);
    let port = wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        logs::read(&proc.stdout).lines().find_map(|l| l.strip_prefix("READY ")?.trim().parse::<u16>().ok())
    })
    .unwrap_or_else(|| panic!("Pipecat's bot did not print READY\n{}", logs::tail(&proc.stderr, 40)));
    let toml = format!(
        "[agent]\nfallback_transfer = \"9001\"\n[agent.websocket]\nurl = \"ws://127.0.0.1:{port}/ws\"\ndialect = \"twilio\"\n"
    );
    let rt = Agent::<Pipecat>::runtime();
    (Agent::new(Pipecat { _proc: proc, toml, _run: run }, "", rt), events)
}

/// 8 kHz: silence, then an 800 Hz tone (the caller's "speech") from `from_s` for `secs`.
fn mic_tone(from_s: f64, secs: f64) -> Vec<i16> {
    let (a, b) = ((from_s * 8000.0) as usize, ((from_s + secs) * 8000.0) as usize);
    (0..b)
        .map(|i| {
            if i < a {
                0
            } else {
                ((std::f64::consts::TAU * 800.0 * i as f64 / 8000.0).sin() * 8000.0) as i16
            }
        })
        .collect()
}

/// The events Pipecat received, in order.
fn received(events: &std::path::Path) -> Vec<Value> {
    logs::read(events).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Per 25 ms window of what baresip heard: does it hold `hz` (amplitude over 2000; the
/// tones are about 16,000, G.711 idle noise a few units, and another tone's edge window
/// leaks under 1,000)?
fn tone_windows(heard: &[f64], rate: u32, hz: f64) -> Vec<bool> {
    let n = (f64::from(rate) * TONE_WIN_S).round() as usize;
    heard.chunks_exact(n).map(|w| goertzel_amp(w, f64::from(rate), hz) > 2000.0).collect()
}

/// Start and end (s) of the first and last window holding `hz`, and the share of the
/// windows between them that hold it.
fn tone_span(heard: &[f64], rate: u32, hz: f64) -> Option<(f64, f64, f64)> {
    let on = tone_windows(heard, rate, hz);
    let first = on.iter().position(|&t| t)?;
    let last = on.iter().rposition(|&t| t)?;
    let covered = on[first..=last].iter().filter(|&&t| t).count() as f64 / (last + 1 - first) as f64;
    Some((first as f64 * TONE_WIN_S, (last + 1) as f64 * TONE_WIN_S, covered))
}

#[test]
fn pipecat_twilio_bot_greets_answers_and_hangs_up() {
    const TEST: &str = "pipecat_twilio";
    let Some(python) = pipecat_python(TEST) else { return };
    let args = ["--greeting-hz", "440", "--greeting-ms", "1500", "--hangup-after-answers", "1"];
    let (agent, events) = pipecat(&python, TEST, &args);
    let Some(mut rig) = Rig::call_with_mic(TEST, agent, "", false, &mic_tone(3.0, 1.5)) else { return };
    // Greeting 0–1.5 s, the caller 3.0–4.5 s, the answer from about 4 s for 1 s, then
    // Pipecat closes the socket and voice-ua hangs up without baresip's help.
    let ended = calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(15));
    rig.baresip.quit();
    let took = rig.started.elapsed().as_secs_f64();

    let (heard, rate, dec) = rig.baresip.heard();
    let no = |what| panic!("no {what} heard in {}\n{}", dec.display(), rig.diag());
    let (g_start, g_end, g_covered) = tone_span(&heard, rate, 440.0).unwrap_or_else(|| no("440 Hz greeting"));
    let (start, end, covered) = tone_span(&heard, rate, 600.0).unwrap_or_else(|| no("600 Hz answer"));
    eprintln!(
        "{TEST}: greeting {g_start:.2}-{g_end:.2} s ({:.0}% covered), answer {start:.2}-{end:.2} s ({:.0}%), call over after {took:.1} s",
        g_covered * 100.0,
        covered * 100.0
    );
    assert!(
        (1.4..=1.6).contains(&(g_end - g_start)) && g_covered > 0.95,
        "the greeting lasts 1.5 s, unbroken"
    );
    // baresip stops its recording at the BYE, with what its jitter buffer still holds
    // unplayed (up to ~100 ms seen): the answer's last packets can be missing here.
    assert!((0.85..=1.1).contains(&(end - start)) && covered > 0.95, "the answer lasts 1 s, unbroken");
    assert!((3.9..=4.6).contains(&start), "Pipecat answered 1 s into the caller's tone at 3.0 s: {start:.2}");

    let e = &ended[0];
    assert_eq!(e.hung_up_by, "agent", "Pipecat's close ended the call: {:?}", e.raw);
    assert!(e.message.contains("bot"), "{:?}", e.raw);
    let got = received(&events);
    let names: Vec<&str> = got.iter().filter_map(|m| m["event"].as_str()).collect();
    assert_eq!(names.get(..2), Some(&["connected", "start"][..]), "{names:?}");
    let start_msg = &got[1]["start"];
    assert_eq!(start_msg["customParameters"]["extension"], EXT, "{start_msg}");
    assert!(
        start_msg["customParameters"]["caller"].as_str().is_some_and(|c| c.contains("1001")),
        "{start_msg}"
    );
    assert_eq!(start_msg["mediaFormat"]["encoding"], "audio/x-mulaw", "{start_msg}");
    let media = names.iter().filter(|n| **n == "media").count();
    assert!(media >= 200, "about 20 ms of caller audio per media message reached Pipecat: {media}");
}

#[test]
fn pipecat_twilio_bot_barge_in_clears_playback() {
    const TEST: &str = "pipecat_barge_in";
    let Some(python) = pipecat_python(TEST) else { return };
    let args =
        ["--greeting-hz", "440", "--greeting-ms", "4000", "--barge-in", "greeting", "--max-answers", "0"];
    let agent = pipecat(&python, TEST, &args).0;
    let Some(mut rig) = Rig::call_with_mic(TEST, agent, "", false, &mic_tone(1.5, 1.5)) else { return };
    std::thread::sleep(Duration::from_millis(5000));
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();

    let (heard, rate, dec) = rig.baresip.heard();
    let (start, end, covered) = tone_span(&heard, rate, 440.0)
        .unwrap_or_else(|| panic!("no greeting heard in {}\n{}", dec.display(), rig.diag()));
    eprintln!(
        "{TEST}: greeting {start:.2}-{end:.2} s of 4 s ({:.0}%); the caller spoke from 1.5 s",
        covered * 100.0
    );
    // Pipecat interrupts after 300 ms of the caller's voice (1.8 s): the tone stops
    // there, unbroken until then, not at 4 s; nothing of the rest comes later (the
    // span runs to the last window holding it).
    assert!(
        (1.7..=2.4).contains(&(end - start)),
        "the 4 s greeting was cut at the clear: {start:.2}-{end:.2}\n{}",
        rig.diag()
    );
    assert!(covered > 0.95, "unbroken until the clear: {:.0}%", covered * 100.0);
}
