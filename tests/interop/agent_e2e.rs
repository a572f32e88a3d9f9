//! The whole path on loopback, PBX-like: Kamailio as registrar + record-
//! routing proxy (`kamailio/pbx.cfg`), voice-ua registered as 9000 (digest
//! auth) and bridged to the fake Deepgram Voice Agent over wss://, baresip
//! registered as 1001 dialling `sip:9000@<kamailio>`. Every SIP request and
//! reply the proxy handles is xlog'ed (`INTEROP-REQ|...`, `INTEROP-REPLY|...`),
//! baresip's received audio is its `sndfile` dump (`dump-*-dec.wav`).
//!
//! * greeting: the fake's 1.5 s greeting tone (440 Hz) is in what baresip
//!   heard, for about 1.5 s (Goertzel per 25 ms window), and absent before
//!   and after; 1 kHz in the same windows is the spectral control.
//! * tool call: an `http` function hits the test's own HTTP server with the
//!   arguments; the fake gets the `FunctionCallResponse` (id, name, result).
//! * barge-in: 6 s of agent speech queued at once, `UserStartedSpeaking`
//!   1.5 s later: the tone baresip heard stops there (plus the 0.3 s reply).
//! * transfer: the agent calls a `transfer` function -> REFER to
//!   `sip:9001@<pbx>` through the proxy to baresip (the transferee), which
//!   dials 9001 (a second baresip account, auto-answer); its NOTIFY 200
//!   makes voice-ua send BYE.
//! * failure: an agent `Error` mid-call -> baresip hears the fallback prompt
//!   (RMS envelope correlated with `conf/fallback-en.ulaw`, with controls),
//!   then voice-ua REFERs the caller to 9001.

use std::f64::consts::TAU;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use voice_ua_fake_deepgram::{FakeConfig, FakeDeepgram, Record, Step};

use crate::calls_baresip::{baresip_config, envelope, find_dump, ncc, read_wav, shuffled, WINDOW_S};
use crate::support::calls::{self, PortBlock};
use crate::support::kamailio::{self, Kamailio};
use crate::support::ports::{free_port, free_port_pair, is_listening};
use crate::support::process::Proc;
use crate::support::voice_ua::{self, VoiceUa};
use crate::support::{logs, require_tools, wait_until, RunDir, EXT};

const KEY: &str = "interop-deepgram-key-0123456789";

/// The fallback prompt voice-ua ships (μ-law, 8 kHz).
const FALLBACK: &[u8] = include_bytes!("../../conf/fallback-en.ulaw");

/// Tone analysis window: 200 samples at 8 kHz, exactly 11 periods of 440 Hz
/// (and 25 of 1 kHz), so a Goertzel filter at either has no leakage.
pub(crate) const TONE_WIN_S: f64 = 0.025;

/// The fake's tone is about -12 dBFS (amplitude 8000). A window holds the
/// tone when its 440 Hz amplitude exceeds this and carries most of its
/// energy (see [`ToneScan`]).
pub(crate) const TONE_MIN_AMP: f64 = 2000.0;

/// What "no tone" means in a control window: 440 Hz amplitude below this
/// (-46 dB under the tone; G.711 idle noise on silence is a few units).
pub(crate) const NO_TONE_MAX_AMP: f64 = 40.0;

/// Envelope correlation the fallback prompt must reach in what baresip
/// heard. The prompt's μ-law bytes travel untouched (voice-ua -> RTP ->
/// baresip's G.711 decoder), so only jitter-buffer slips blur the 20 ms
/// envelope (expected > 0.9); the same envelope shuffled (values kept,
/// timing destroyed) scores about 0.1-0.3 against 370 windows of speech.
/// 0.7 leaves margin both ways; both controls are measured every run.
const PROMPT_THRESHOLD: f64 = 0.7;

// ---------------------------------------------------------------- fake agent

/// A fake agent server as voice-ua meets it: its URL and test CA, the
/// provider it stands for, and the key voice-ua reads from the environment.
pub(crate) trait FakeAgent {
    /// What one connection left.
    type Record: voice_ua_fake_server::Record;
    /// `agent.provider`.
    const PROVIDER: &'static str;
    /// The environment variable voice-ua takes the key from.
    const KEY_ENV: &'static str;
    fn url(&self) -> String;
    /// The in-process server (its test CA, its records); `None` for a peer in its own
    /// process.
    fn server(&self) -> Option<&voice_ua_fake_server::FakeServer<Self::Record>>;
    /// voice-ua's `[agent]` section for it, `functions` appended (TOML tables).
    fn section(&self, functions: &str) -> String {
        let ca = self.server().and_then(|s| s.ca_file()).expect("the wss fake has a CA file");
        format!(
            "[agent]\nprovider = \"{}\"\nurl = \"{}\"\nca_file = \"{}\"\ngreeting = \"Hello\"\nfallback_transfer = \"9001\"\n{functions}",
            Self::PROVIDER,
            self.url(),
            ca.display()
        )
    }
}

impl FakeAgent for FakeDeepgram {
    type Record = Record;
    const PROVIDER: &'static str = "deepgram";
    const KEY_ENV: &'static str = "DEEPGRAM_API_KEY";
    fn url(&self) -> String {
        FakeDeepgram::url(self)
    }
    fn server(&self) -> Option<&voice_ua_fake_server::FakeServer<Record>> {
        Some(self)
    }
}

/// A fake agent server and the runtime serving it (dropped in this order:
/// the server's task first).
pub(crate) struct Agent<F> {
    fake: F,
    key: &'static str,
    rt: tokio::runtime::Runtime,
}

/// A runtime for a fake agent server.
fn agent_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime for the fake agent")
}

impl Agent<FakeDeepgram> {
    fn deepgram(script: Vec<Step>) -> Agent<FakeDeepgram> {
        let rt = agent_runtime();
        let fake = rt
            .block_on(FakeDeepgram::start(FakeConfig::new(KEY).tls(true).script(script)))
            .expect("fake Deepgram starts");
        Agent { fake, key: KEY, rt }
    }
}

impl<F: FakeAgent> Agent<F> {
    /// A fake started on `rt` with the key `key`.
    pub(crate) fn new(fake: F, key: &'static str, rt: tokio::runtime::Runtime) -> Agent<F> {
        Agent { fake, key, rt }
    }

    /// A runtime to start a fake on.
    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        agent_runtime()
    }

    /// voice-ua's `[agent]` section for this provider, `functions` appended
    /// (TOML tables).
    fn toml(&self, functions: &str) -> String {
        self.fake.section(functions)
    }

    /// Records of the first `n` finished connections (waits up to `timeout`).
    pub(crate) fn records(&self, n: usize, timeout: Duration) -> Vec<F::Record> {
        let server = self.fake.server().expect("only an in-process fake keeps records");
        self.rt.block_on(server.wait_records(n, timeout))
    }
}

// ------------------------------------------------------------------- baresip

pub(crate) struct Baresip {
    proc: Proc,
    cons_port: u16,
    console: UdpSocket,
    dumps: PathBuf,
}

impl Baresip {
    /// baresip registered as 1001 (and 9001 with auto-answer when
    /// `with_9001`) at Kamailio, `mic` (8 kHz, then silence) as its microphone, PCMU
    /// only.
    fn start(
        run: &RunDir,
        baresip: &Path,
        block: &PortBlock,
        kam_port: u16,
        with_9001: bool,
        mic: &[i16],
    ) -> Baresip {
        let cfg_dir = run.subdir("baresip");
        let dumps = run.subdir("dumps");
        let silence = run.file("silence.wav");
        let mut source = mic.to_vec();
        source.resize(source.len().max(8000 * 30), 0);
        write_wav(&silence, &source, 8000);
        // baresip's SIP over TLS takes sip_port + 1.
        let sip_port = free_port_pair();
        let cons_port = free_port();
        let config = baresip_config(sip_port, (block.peer(4), block.peer(15)), &silence, cons_port, &dumps);
        std::fs::write(cfg_dir.join("config"), config).expect("write baresip config");
        let mut accounts = format!("<sip:1001@127.0.0.1:{kam_port}>;regint=60;audio_codecs=PCMU/8000\n");
        if with_9001 {
            accounts.push_str(&format!(
                "<sip:9001@127.0.0.1:{kam_port}>;regint=60;answermode=auto;audio_codecs=PCMU/8000\n"
            ));
        }
        std::fs::write(cfg_dir.join("accounts"), accounts).expect("write baresip accounts");
        let mut cmd = Command::new(baresip);
        cmd.current_dir(run.path()).arg("-f").arg(&cfg_dir).env("HOME", run.path());
        let proc = Proc::spawn("baresip", cmd, run, true);
        let console = UdpSocket::bind(("127.0.0.1", 0)).expect("bind console socket");
        let b = Baresip { proc, cons_port, console, dumps };
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            (is_listening(sip_port, false) && is_listening(cons_port, false)).then_some(())
        });
        assert!(up.is_some(), "baresip did not open its SIP and console ports\n{}", b.diag());
        b
    }

    /// One console command (menu syntax, one datagram each).
    pub(crate) fn command(&self, text: &str) {
        self.console
            .send_to(format!("{text}\n").as_bytes(), ("127.0.0.1", self.cons_port))
            .expect("send to baresip console");
    }

    pub(crate) fn stdout(&self) -> String {
        logs::read(&self.proc.stdout)
    }

    /// Hang up, quit, and wait for it to exit: the WAV dumps are complete.
    pub(crate) fn quit(&mut self) {
        self.command("/hangup");
        std::thread::sleep(Duration::from_millis(300));
        self.command("/quit");
        if self.proc.wait_timeout(Duration::from_secs(5)).is_none() {
            self.proc.stop();
        }
    }

    /// What baresip heard on its (first) call.
    pub(crate) fn heard(&self) -> (Vec<f64>, u32, PathBuf) {
        let dec = find_dump(&self.dumps, "-dec.wav")
            .unwrap_or_else(|| panic!("no dump-*-dec.wav in {}\n{}", self.dumps.display(), self.diag()));
        let (samples, rate) = read_wav(&dec);
        (samples, rate, dec)
    }

    fn diag(&self) -> String {
        format!("{}{}", logs::tail(&self.proc.stdout, 60), logs::tail(&self.proc.stderr, 20))
    }
}

// ----------------------------------------------------------------------- rig

/// One test's peers. Field order is drop order: processes first, the run
/// directory (kept on failure) last.
pub(crate) struct Rig<F> {
    pub(crate) baresip: Baresip,
    pub(crate) ua: VoiceUa,
    pub(crate) kam: Kamailio,
    pub(crate) agent: Agent<F>,
    pub(crate) started: Instant,
    run: RunDir,
}

impl<F: FakeAgent> Rig<F> {
    /// Every request and reply Kamailio logged, requests first.
    fn sip_trace(&self) -> Vec<String> {
        self.kam
            .tagged_lines("INTEROP-REQ")
            .into_iter()
            .chain(self.kam.tagged_lines("INTEROP-REPLY"))
            .collect()
    }

    /// Kamailio (pbx.cfg), the fake `agent`, voice-ua registered as 9000 with
    /// `functions`, baresip as 1001 (+ 9001); then baresip dials 9000 and the
    /// call is established. None (after SKIP) without the tools.
    pub(crate) fn call(test: &str, agent: Agent<F>, functions: &str, with_9001: bool) -> Option<Rig<F>> {
        Rig::call_with_mic(test, agent, functions, with_9001, &[])
    }

    /// [`Rig::call`] with baresip's microphone playing `mic` (8 kHz) from its start.
    pub(crate) fn call_with_mic(
        test: &str,
        agent: Agent<F>,
        functions: &str,
        with_9001: bool,
        mic: &[i16],
    ) -> Option<Rig<F>> {
        let tools = require_tools(test, &["kamailio", "kamcmd", "baresip"])?;
        voice_ua::binary();
        let started = Instant::now();
        let run = RunDir::new(test);
        let block = PortBlock::next();
        let kam = Kamailio::start_cfg(&run, &tools, "pbx.cfg", None);
        let mut ua = calls::start_ua_env(
            &run,
            kam.port,
            &block,
            &agent.toml(functions),
            kamailio::PASSWORD,
            &[(F::KEY_ENV, agent.key)],
        );
        let regs = ua.wait_registered(1, Duration::from_secs(10));
        assert!(regs.is_some(), "voice-ua did not register at Kamailio\n{}\n{}", kam.diag(), ua.diag());
        let baresip = Baresip::start(&run, tools.get("baresip"), &block, kam.port, with_9001, mic);
        let users: &[&str] = if with_9001 { &["1001", "9001"] } else { &["1001"] };
        let bound = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            users.iter().all(|u| !kam.bindings(u).is_empty()).then_some(())
        });
        assert!(bound.is_some(), "baresip did not register {users:?}\n{}\n{}", kam.diag(), baresip.diag());
        assert!(!kam.bindings(EXT).is_empty(), "9000 is bound\n{}", kam.diag());
        let rig = Rig { baresip, ua, kam, agent, started, run };
        rig.baresip.command(&format!("/dial sip:{EXT}@127.0.0.1:{}", rig.kam.port));
        let established = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            rig.baresip.stdout().contains("Call established").then_some(())
        });
        assert!(established.is_some(), "baresip's call to 9000 was not established\n{}", rig.diag());
        Some(rig)
    }

    /// The proxy's INTEROP-REQ / INTEROP-REPLY lines as key=value maps.
    fn sip(&self, tag: &str) -> Vec<Vec<(String, String)>> {
        self.kam
            .tagged_lines(tag)
            .iter()
            .map(|line| {
                line.split('|')
                    .skip(1)
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    fn requests(&self, method: &str) -> Vec<Vec<(String, String)>> {
        self.sip("INTEROP-REQ").into_iter().filter(|r| get(r, "m") == method).collect()
    }

    fn replies(&self, method: &str) -> Vec<Vec<(String, String)>> {
        self.sip("INTEROP-REPLY").into_iter().filter(|r| get(r, "m") == method).collect()
    }

    /// voice-ua's events whose message contains `text`.
    pub(crate) fn ua_events(&self, text: &str) -> Vec<Value> {
        self.ua.events().into_iter().filter(|e| logs::message(e).is_some_and(|m| m.contains(text))).collect()
    }

    pub(crate) fn diag(&self) -> String {
        format!(
            "run directory {}\n{}\n{}\n{}",
            self.run.path().display(),
            self.baresip.diag(),
            self.kam.diag(),
            self.ua.diag()
        )
    }
}

pub(crate) fn get<'a>(kv: &'a [(String, String)], key: &str) -> &'a str {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_default()
}

// -------------------------------------------------------------------- audio

fn write_wav(path: &Path, samples: &[i16], rate: u32) {
    let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let out = crate::support::speech::wav_bytes(&pcm, rate);
    std::fs::write(path, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// G.711 μ-law to linear (ITU-T G.711, written out here independently of
/// voice-ua's codec).
fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Amplitude of the `freq` component of `w` (Goertzel).
pub(crate) fn goertzel_amp(w: &[f64], rate: f64, freq: f64) -> f64 {
    let k = 2.0 * (TAU * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in w {
        let s0 = x + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - k * s1 * s2).max(0.0);
    2.0 * power.sqrt() / w.len() as f64
}

/// Per [`TONE_WIN_S`] window: the 440 Hz amplitude, a 1 kHz control, and
/// whether the window holds the tone (440 Hz amplitude above
/// [`TONE_MIN_AMP`] and at least 80% of the window's RMS-equivalent
/// amplitude, i.e. a tone, not broadband noise).
pub(crate) struct ToneScan {
    amp: Vec<f64>,
    amp_1k: Vec<f64>,
    tone: Vec<bool>,
}

impl ToneScan {
    pub(crate) fn new(samples: &[f64], rate: u32) -> ToneScan {
        let n = (f64::from(rate) * TONE_WIN_S).round() as usize;
        let (mut amp, mut amp_1k, mut tone) = (Vec::new(), Vec::new(), Vec::new());
        for w in samples.chunks_exact(n) {
            let a = goertzel_amp(w, f64::from(rate), 440.0);
            let rms = (w.iter().map(|s| s * s).sum::<f64>() / n as f64).sqrt();
            amp.push(a);
            amp_1k.push(goertzel_amp(w, f64::from(rate), 1000.0));
            tone.push(a > TONE_MIN_AMP && a >= 0.8 * rms * std::f64::consts::SQRT_2);
        }
        ToneScan { amp, amp_1k, tone }
    }

    /// Start and end (s) of the first and last tone window.
    /// Start and end (s) of the first unbroken run of tone windows (a later window of
    /// speech that happens to pass the test is not part of it).
    fn first_run(&self) -> Option<(f64, f64)> {
        let first = self.tone.iter().position(|&t| t)?;
        let len = self.tone[first..].iter().take_while(|&&t| t).count();
        Some((first as f64 * TONE_WIN_S, (first + len) as f64 * TONE_WIN_S))
    }

    pub(crate) fn span(&self) -> Option<(f64, f64)> {
        let first = self.tone.iter().position(|&t| t)?;
        let last = self.tone.iter().rposition(|&t| t)?;
        Some((first as f64 * TONE_WIN_S, (last + 1) as f64 * TONE_WIN_S))
    }

    fn windows(&self, from_s: f64, to_s: f64) -> std::ops::Range<usize> {
        let a = ((from_s / TONE_WIN_S).ceil().max(0.0) as usize).min(self.tone.len());
        let b = ((to_s / TONE_WIN_S).floor().max(0.0) as usize).clamp(a, self.tone.len());
        a..b
    }

    /// Share of windows in [from, to) holding the tone.
    pub(crate) fn coverage(&self, from_s: f64, to_s: f64) -> f64 {
        let r = self.windows(from_s, to_s);
        if r.is_empty() {
            return 0.0;
        }
        let n = r.len();
        self.tone[r].iter().filter(|&&t| t).count() as f64 / n as f64
    }

    pub(crate) fn max_amp(&self, from_s: f64, to_s: f64) -> f64 {
        self.amp[self.windows(from_s, to_s)].iter().copied().fold(0.0, f64::max)
    }

    fn mean_amp(v: &[f64]) -> f64 {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    }

    pub(crate) fn duration_s(&self) -> f64 {
        self.tone.len() as f64 * TONE_WIN_S
    }
}

// ------------------------------------------------------------ HTTP function

/// One request the test's HTTP server received.
#[derive(Debug)]
pub(crate) struct HttpSeen {
    pub(crate) head: String,
    pub(crate) body: String,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with
/// `{"ok":true}`; what it received goes to the channel. The thread lives
/// until the test process exits.
pub(crate) fn http_tool() -> (u16, mpsc::Receiver<HttpSeen>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the HTTP tool server");
    let port = listener.local_addr().expect("local address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let seen = loop {
                let Ok(n) = stream.read(&mut chunk) else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    break Some(HttpSeen { head, body });
                }
            };
            let body = r#"{"ok":true}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.flush();
            if let Some(seen) = seen {
                let _ = tx.send(seen);
            }
        }
    });
    (port, rx)
}

// --------------------------------------------------------------------- tests

/// A call whose agent greets with 1.5 s of tone: baresip heard it, for about
/// 1.5 s (Goertzel per 25 ms window), and nothing before or after; the
/// INVITE went through the proxy. The fake's record of the call.
pub(crate) fn greeting_heard<F: FakeAgent>(test: &str, agent: Agent<F>) -> Option<(F::Record, Rig<F>)> {
    let mut rig = Rig::call(test, agent, "", false)?;
    std::thread::sleep(Duration::from_millis(3500));
    rig.baresip.command("/hangup");
    let ended = calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    let records = rig.agent.records(1, Duration::from_secs(5));

    let (heard, rate, dec) = rig.baresip.heard();
    let scan = ToneScan::new(&heard, rate);
    let Some((start, end)) = scan.span() else {
        panic!(
            "no 440 Hz tone in what baresip heard ({:.1} s, max 440 Hz amplitude {:.0}): {}\n{}",
            scan.duration_s(),
            scan.max_amp(0.0, f64::MAX),
            dec.display(),
            rig.diag()
        );
    };
    let length = end - start;
    let coverage = scan.coverage(start, end);
    let tone_w = scan.windows(start, end);
    let amp_in = ToneScan::mean_amp(&scan.amp[tone_w.clone()]);
    let amp_1k_in = ToneScan::mean_amp(&scan.amp_1k[tone_w]);
    // controls: before the tone, and from 0.3 s after it to the end
    // (only when the tone starts late enough for a pre-tone window)
    let before = if start >= 0.3 { scan.max_amp(0.0, start - 0.1) } else { 0.0 };
    let after = scan.max_amp(end + 0.3, scan.duration_s());
    let after_s = scan.duration_s() - (end + 0.3);
    let report = format!(
        "tone {start:.2}-{end:.2} s ({length:.2} s, {:.0}% of its windows), mean 440 Hz amplitude \
         {amp_in:.0}, 1 kHz {amp_1k_in:.0}; max 440 Hz amplitude before (if >= 0.2 s) {before:.0}, after (over \
         {after_s:.2} s) {after:.0}; heard {:.2} s; {:?}",
        coverage * 100.0,
        scan.duration_s(),
        ended[0]
    );
    eprintln!("{test}: {report}");
    assert!((1.3..=1.9).contains(&length), "the greeting is 1.5 s of tone: {report}\n{}", dec.display());
    assert!(coverage >= 0.9, "the tone is continuous: {report}");
    assert!(amp_in > 5000.0 && amp_1k_in < amp_in / 20.0, "a 440 Hz tone, not broadband: {report}");
    assert!(after_s >= 1.0, "at least 1 s of control after the greeting: {report}");
    assert!(after < NO_TONE_MAX_AMP && before < NO_TONE_MAX_AMP, "no tone outside the greeting: {report}");
    // the INVITE went through the proxy, which looked 9000 up
    let invites = rig.requests("INVITE");
    assert!(invites.iter().any(|r| get(r, "ru").starts_with("sip:9000@")), "{}", rig.kam.diag());
    let record = records.into_iter().next().unwrap_or_else(|| panic!("no fake record\n{}", rig.diag()));
    Some((record, rig))
}

#[test]
fn agent_greeting_tone_reaches_the_caller_through_the_pbx() {
    let script = vec![Step::speak("Hello", 1500, true)];
    let Some((r, rig)) = greeting_heard("agent_greeting", Agent::deepgram(script)) else {
        return;
    };
    assert_eq!(r.authorization.as_deref(), Some(&*format!("Token {KEY}")));
    assert!(r.script_done && r.violations.is_empty(), "{r:?}");
    assert!(!rig.ua_events("calls are answered by the Deepgram Voice Agent").is_empty(), "{}", rig.diag());
    eprintln!("agent_greeting: {:.1} s", rig.started.elapsed().as_secs_f64());
}

/// `[[agent.functions]]`: `open_gate`, an `http` function posting to
/// `/gates/open` on `port` with the header `X-Gate-Key: gk-1`.
pub(crate) fn open_gate_function(port: u16) -> String {
    format!(
        "[[agent.functions]]\nname = \"open_gate\"\ndescription = \"Open a gate\"\nkind = \"http\"\n\
         url = \"http://127.0.0.1:{port}/gates/open\"\ntimeout_ms = 2000\n\
         headers = {{ \"X-Gate-Key\" = \"gk-1\" }}\n\
         parameters = {{ type = \"object\", properties = {{ gate = {{ type = \"string\" }} }} }}\n"
    )
}

/// A call whose agent calls `open_gate` with `{"gate":"main"}` (the test's
/// HTTP server on `http`): the request reached the server with its header
/// and arguments. The fake's record of the call.
pub(crate) fn tool_called<F: FakeAgent>(
    test: &str,
    agent: Agent<F>,
    http: (u16, mpsc::Receiver<HttpSeen>),
) -> Option<(F::Record, Rig<F>)> {
    let (http_port, http_rx) = http;
    let mut rig = Rig::call(test, agent, &open_gate_function(http_port), false)?;
    let seen = http_rx.recv_timeout(Duration::from_secs(10));
    // let the response reach the fake and the reply play
    std::thread::sleep(Duration::from_millis(800));
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    let seen = seen.unwrap_or_else(|e| panic!("the HTTP function was not called: {e}\n{}", rig.diag()));
    eprintln!("{test}: HTTP server got {seen:?}");
    assert!(seen.head.starts_with("POST /gates/open HTTP/1.1"), "{seen:?}");
    assert!(seen.head.lines().any(|l| l.eq_ignore_ascii_case("x-gate-key: gk-1")), "{seen:?}");
    let args: Value =
        serde_json::from_str(&seen.body).unwrap_or_else(|e| panic!("body not JSON: {e}: {seen:?}"));
    assert_eq!(args, serde_json::json!({"gate": "main"}), "the arguments reach the function");
    let records = rig.agent.records(1, Duration::from_secs(5));
    let record = records.into_iter().next().unwrap_or_else(|| panic!("no fake record\n{}", rig.diag()));
    Some((record, rig))
}

#[test]
fn agent_tool_call_reaches_the_http_function() {
    let script = vec![
        Step::speak("Hello", 300, true),
        Step::WaitAudio { frames: 10, min_dbfs: None },
        Step::call("fc_1", "open_gate", r#"{"gate":"main"}"#),
        Step::speak("The gate is open", 300, true),
    ];
    let Some((r, rig)) = tool_called("agent_tool", Agent::deepgram(script), http_tool()) else {
        return;
    };
    eprintln!("agent_tool: function responses {:?}", r.function_responses);
    let resp = r
        .function_responses
        .iter()
        .find(|f| f.id.as_deref() == Some("fc_1"))
        .unwrap_or_else(|| panic!("no FunctionCallResponse fc_1: {r:?}"));
    assert_eq!(resp.name, "open_gate", "{resp:?}");
    assert!(resp.content.contains("ok"), "{resp:?}");
    assert!(r.violations.is_empty() && r.script_done, "{r:?}");
    eprintln!("agent_tool: {:.1} s", rig.started.elapsed().as_secs_f64());
}

#[test]
fn agent_barge_in_flushes_queued_speech() {
    let script = vec![
        Step::speak("long", 6000, false),
        Step::Pause(Duration::from_millis(1500)),
        Step::user_says("stop"),
        Step::speak("ok", 300, true),
    ];
    let Some(mut rig) = Rig::call("agent_barge_in", Agent::deepgram(script), "", false) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(4000));
    rig.baresip.command("/hangup");
    calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    let (heard, rate, dec) = rig.baresip.heard();
    let scan = ToneScan::new(&heard, rate);
    let (start, end) =
        scan.span().unwrap_or_else(|| panic!("no 440 Hz tone heard: {}\n{}", dec.display(), rig.diag()));
    let length = end - start;
    let after = scan.max_amp(end + 0.3, scan.duration_s());
    let after_s = scan.duration_s() - (end + 0.3);
    // The 6 s of agent audio arrive at once; UserStartedSpeaking comes 1.5 s
    // later (the fake's pause), then 0.3 s of reply: 1.8 s of tone in all.
    let report = format!(
        "tone {start:.2}-{end:.2} s = {length:.2} s (1.5 s before the barge-in + 0.3 s reply expected, \
         6.3 s without a flush), {:.0}% covered; max amplitude after it {after:.0} over {after_s:.2} s",
        scan.coverage(start, end) * 100.0
    );
    eprintln!("agent_barge_in: {report}");
    assert!(length < 3.0, "queued agent speech was not flushed: {report}\n{}", dec.display());
    assert!(
        (1.5..=2.1).contains(&length),
        "the tone stops within 0.3 s of the barge-in (plus the reply): {report}"
    );
    assert!(after_s > 0.5 && after < NO_TONE_MAX_AMP, "silence after the reply: {report}");
    let records = rig.agent.records(1, Duration::from_secs(5));
    assert!(records[0].script_done && records[0].violations.is_empty(), "{:?}", records[0]);
    eprintln!("agent_barge_in: {:.1} s", rig.started.elapsed().as_secs_f64());
}

#[test]
fn agent_transfer_function_refers_the_caller_through_the_pbx() {
    let functions = "[[agent.functions]]\nname = \"transfer_to_guard\"\n\
                     description = \"Transfer the caller to the guard\"\nkind = \"transfer\"\n\
                     target = \"9001\"\nparameters = { type = \"object\", properties = {} }\n";
    let script = vec![
        Step::speak("Hello", 300, true),
        Step::WaitAudio { frames: 10, min_dbfs: None },
        Step::call("fc_t", "transfer_to_guard", "{}"),
    ];
    let Some(mut rig) = Rig::call("agent_transfer", Agent::deepgram(script), functions, true) else {
        return;
    };
    let ua_port = rig.ua.bind_port;
    // voice-ua's BYE once the NOTIFY reported 200
    let bye = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        rig.requests("BYE").into_iter().find(|r| get(r, "src") == format!("127.0.0.1:{ua_port}"))
    });
    let ended = calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let trace = rig.sip_trace();
    rig.baresip.quit();
    let refers = rig.requests("REFER");
    let refer = refers.first().unwrap_or_else(|| panic!("no REFER through the proxy\n{}", rig.diag()));
    let want = format!("sip:9001@127.0.0.1:{}", rig.kam.port);
    assert!(get(refer, "referto").contains(&want), "Refer-To {want}: {refer:?}");
    assert_eq!(get(refer, "src"), format!("127.0.0.1:{ua_port}"), "the REFER comes from voice-ua");
    let accepted = rig.replies("REFER");
    assert!(accepted.iter().any(|r| get(r, "code") == "202"), "REFER answered 202: {accepted:?}");
    let dialled = rig.requests("INVITE");
    assert!(
        dialled.iter().any(|r| get(r, "ru").starts_with("sip:9001@")),
        "baresip dialled the transfer target: {dialled:?}"
    );
    let notifies: Vec<String> = rig.requests("NOTIFY").iter().map(|r| get(r, "frag").to_string()).collect();
    eprintln!("agent_transfer: NOTIFY sipfrags {notifies:?}; call {:?}", ended[0]);
    eprintln!("agent_transfer: SIP through the proxy:\n{}", trace.join("\n"));
    assert!(notifies.iter().any(|f| f.starts_with("SIP/2.0 200")), "a NOTIFY reported 200: {notifies:?}");
    assert!(bye.is_some(), "voice-ua sent no BYE after the NOTIFY 200\n{}", rig.diag());
    // in the proxy's order: REFER, NOTIFY 200, then voice-ua's BYE
    let reqs = rig.sip("INTEROP-REQ");
    let ua_src = format!("127.0.0.1:{ua_port}");
    let refer_at = reqs.iter().position(|r| get(r, "m") == "REFER");
    let notify_at =
        reqs.iter().position(|r| get(r, "m") == "NOTIFY" && get(r, "frag").starts_with("SIP/2.0 200"));
    let bye_at = reqs.iter().position(|r| get(r, "m") == "BYE" && get(r, "src") == ua_src);
    assert!(
        refer_at < notify_at && notify_at < bye_at,
        "order REFER {refer_at:?} < NOTIFY 200 {notify_at:?} < BYE {bye_at:?}"
    );
    let records = rig.agent.records(1, Duration::from_secs(3));
    eprintln!(
        "agent_transfer: fake saw function responses {:?}, violations {:?}",
        records.first().map(|r| &r.function_responses),
        records.first().map(|r| &r.violations)
    );
    assert!(!rig.ua_events("transfer accepted").is_empty(), "{}", rig.ua.diag());
    // the agent learnt what the PBX did, under the id it asked with
    let answers = records.first().map(|r| r.function_responses.clone()).unwrap_or_default();
    let answer = answers.iter().find(|f| f.id.as_deref() == Some("fc_t")).expect("an answer to fc_t");
    assert!(answer.content.starts_with("ok: the transfer to 9001 was"), "{answer:?}");
    assert_eq!(ended[0].message, "call ended: transferred", "{:?}", ended[0]);
    assert_eq!(ended[0].hung_up_by, "voice-ua", "{:?}", ended[0]);
    eprintln!("agent_transfer: {:.1} s", rig.started.elapsed().as_secs_f64());
}

#[test]
fn agent_failure_plays_the_fallback_then_refers_to_9001() {
    let script = vec![
        Step::speak("Hello", 300, true),
        Step::WaitAudio { frames: 25, min_dbfs: None },
        Step::error("INTERNAL_SERVER_ERROR", "the LLM is down"),
    ];
    let Some(mut rig) = Rig::call("agent_failure", Agent::deepgram(script), "", false) else {
        return;
    };
    let ua_port = rig.ua.bind_port;
    // the prompt is 7.4 s; the REFER follows it
    let refer = wait_until(Duration::from_secs(14), Duration::from_millis(50), || {
        rig.requests("REFER").into_iter().next()
    });
    let refer_at = rig.started.elapsed().as_secs_f64();
    // then whatever the transferee reports (9001 is not registered here)
    let final_notify = wait_until(Duration::from_secs(6), Duration::from_millis(50), || {
        rig.requests("NOTIFY").into_iter().map(|r| get(&r, "frag").to_string()).find(|f| !f.contains(" 100 "))
    });
    std::thread::sleep(Duration::from_millis(300));
    let trace = rig.sip_trace();
    let ended_before_hangup = calls::calls_ended(&rig.ua);
    rig.baresip.command("/hangup");
    let ended = calls::wait_calls_ended(&rig.ua, 1, Duration::from_secs(5));
    rig.baresip.quit();
    eprintln!("agent_failure: SIP through the proxy:\n{}", trace.join("\n"));
    eprintln!(
        "agent_failure: REFER at {refer_at:.1} s, final NOTIFY {final_notify:?}, call ended before our \
         hangup: {}; {:?}",
        !ended_before_hangup.is_empty(),
        ended[0]
    );
    for e in rig.ua_events("transfer") {
        eprintln!("agent_failure: voice-ua: {e}");
    }

    // what baresip heard: the fallback prompt after the greeting
    let (heard, rate, dec) = rig.baresip.heard();
    assert_eq!(rate, 8000, "baresip plays at 8 kHz");
    let prompt: Vec<f64> = FALLBACK.iter().map(|&c| f64::from(ulaw_decode(c))).collect();
    let prompt_env = envelope(&prompt, 8000);
    let heard_env = envelope(&heard, rate);
    let lags = heard_env.len().saturating_sub(prompt_env.len() / 2);
    let best = |probe: &[f64]| {
        (0..lags).map(|lag| (ncc(probe, &heard_env, lag), lag as f64 * WINDOW_S)).fold(
            (f64::MIN, 0.0),
            |b, c| {
                if c.0 > b.0 {
                    c
                } else {
                    b
                }
            },
        )
    };
    let (score, lag) = best(&prompt_env);
    let (shuffled_score, _) = best(&shuffled(&prompt_env, 0x5DEE_CE66_D1CE_4E5B));
    // the prompt's own envelope, 0.5 s off its best alignment
    let off = ncc(&prompt_env, &heard_env, (lag / WINDOW_S) as usize + 25);
    // The greeting is the first run of tone: the prompt's speech may pass the tone test
    // in a stray window.
    let greeting = ToneScan::new(&heard, rate).first_run();
    let report = format!(
        "fallback envelope correlation {score:.3} at {lag:.2} s (threshold {PROMPT_THRESHOLD}); shuffled \
         control {shuffled_score:.3}, 0.5 s misaligned {off:.3}; greeting tone {greeting:?}; heard {:.2} s, \
         prompt {:.2} s",
        heard.len() as f64 / f64::from(rate),
        prompt.len() as f64 / 8000.0
    );
    eprintln!("agent_failure: {report}");
    assert!(
        shuffled_score < PROMPT_THRESHOLD && off < PROMPT_THRESHOLD,
        "a control reached the threshold, so it proves nothing: {report}"
    );
    assert!(
        score >= PROMPT_THRESHOLD,
        "baresip did not hear the fallback prompt: {report}\n{}",
        dec.display()
    );
    if let Some((_, greeting_end)) = greeting {
        assert!(lag >= greeting_end - 0.05, "the prompt follows the greeting: {report}");
    }

    let line = rig.ua_events("the agent failed:");
    let line =
        line.first().and_then(logs::message).unwrap_or_else(|| panic!("no failure line\n{}", rig.ua.diag()));
    assert!(
        line.contains("INTERNAL_SERVER_ERROR") && line.contains("transferring the caller to 9001"),
        "{line}"
    );
    let refer = refer.unwrap_or_else(|| panic!("no REFER after the prompt\n{}", rig.diag()));
    let want = format!("sip:9001@127.0.0.1:{}", rig.kam.port);
    assert!(get(&refer, "referto").contains(&want), "Refer-To {want}: {refer:?}");
    assert_eq!(get(&refer, "src"), format!("127.0.0.1:{ua_port}"), "the REFER comes from voice-ua");
    let accepted = rig.replies("REFER");
    assert!(accepted.iter().any(|r| get(r, "code") == "202"), "REFER answered 202: {accepted:?}");
    assert!(!rig.ua_events("transfer accepted").is_empty(), "{}", rig.ua.diag());
    // the transferee's final NOTIFY (here 404: 9001 is not registered) is
    // what voice-ua logged as the transfer's outcome
    let final_notify = final_notify.unwrap_or_else(|| panic!("no final NOTIFY from baresip\n{}", rig.diag()));
    let code: u64 = final_notify.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let progress: Vec<u64> =
        rig.ua_events("transfer progress").iter().filter_map(|e| logs::field_u64(e, "status")).collect();
    assert!(progress.contains(&code), "voice-ua logged the NOTIFY's {code}: {progress:?}");
    // With the agent gone and the transfer failed, nobody is left to talk to the caller:
    // voice-ua ends the call itself instead of leaving them in silence.
    assert!(
        !ended_before_hangup.is_empty() && format!("{:?}", ended[0]).contains("transfer failed"),
        "voice-ua hangs up after a failed transfer: {:?}",
        ended[0]
    );
    let records = rig.agent.records(1, Duration::from_secs(5));
    assert_eq!(records[0].errors_sent, vec!["INTERNAL_SERVER_ERROR".to_string()], "{:?}", records[0]);
    eprintln!("agent_failure: {:.1} s", rig.started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_separates_440_from_1000() {
        let s: Vec<f64> = (0..200).map(|i| (TAU * 440.0 * f64::from(i) / 8000.0).sin() * 8000.0).collect();
        assert!((goertzel_amp(&s, 8000.0, 440.0) - 8000.0).abs() < 50.0);
        assert!(goertzel_amp(&s, 8000.0, 1000.0) < 50.0);
        let scan = ToneScan::new(&s.repeat(10), 8000);
        assert_eq!(scan.span(), Some((0.0, 0.25)));
    }

    #[test]
    fn ulaw_decodes_like_g711() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
    }
}
