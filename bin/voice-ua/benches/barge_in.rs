//! Barge-in to the last RTP packet, end to end through the real `voice-ua` binary: how
//! long after the agent side asks to stop playback (or, for ASP, after the caller starts
//! speaking) the last packet of agent audio leaves voice-ua toward the PBX.
//!
//! The fake PBX of the binary's tests (`tests/common`) calls voice-ua on this thread; the
//! fake agent runs on a tokio runtime in this process, so both stamp with the same
//! monotonic clock (`std::time::Instant`). Per provider, K barge-ins: the agent sends 5 s
//! of reply at once (faster than real time), and after about 1 s of it has played comes
//! the barge-in:
//!
//! - **deepgram**: the fake Deepgram writes `UserStartedSpeaking`; **twilio**: the fake
//!   bot writes `clear`. The signal's instant is taken as the fake starts writing it (its
//!   record's `barge_ins`), so the write itself counts in the delay. One call; the pause before barge-in `i` is 1 s + i/K × 20 ms,
//!   so the signals fall evenly across voice-ua's 20 ms tick. After 600 ms of quiet the
//!   next reply comes.
//! - **asp**: ASP has no barge-in message; voice-ua's own VAD hears the caller. Once the
//!   PBX has received 1 s of the reply it sends 500 ms of a loud tone; the instant is when
//!   the first loud packet's send returned. The tone's end (with 500 ms of silence) is the
//!   caller's turn, and the agent answers with the next reply. The caller's packets keep
//!   one phase to voice-ua's tick for a whole call, so the K barge-ins are spread over 4
//!   calls whose packets start 0, 5, 10 and 15 ms later after the ACK.
//!
//! For each barge-in at `t_signal`: `t_first_silent` is the arrival at the PBX of the first
//! packet after `t_signal` whose payload is all μ-law silence (0xff), and `t_last` the
//! arrival of the packet just before it, which must carry agent audio. Reported:
//! `t_last − t_signal` (≤ 0 when the last agent packet left before the signal) and
//! `t_first_silent − t_signal` (within one 20 ms tick of the flush), min / p50 / p90 /
//! max (nearest rank). For ASP also the number of loud caller packets sent before
//! `t_first_silent`: the VAD's onset (3 frames) plus the jitter buffer's delay and the
//! tick.
//!
//! Run: `cargo bench -p voice-ua --bench barge_in` (prints a Markdown table).
//! `VOICE_UA_BENCH_BARGE_INS` sets K (20); `VOICE_UA_BENCH_PROVIDERS` a comma-separated
//! list of providers (all of them).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{caller_tone, Arrival, Call};
use tokio::runtime::Runtime;
use voice_ua_fake_bots::{BotConfig, FakeBot};
use voice_ua_fake_deepgram::{FakeConfig, FakeDeepgram};

/// One RTP packet's time.
const FRAME: Duration = Duration::from_millis(20);
/// Each reply's length; far more than plays before the barge-in.
const REPLY_MS: u32 = 5000;
/// How much of each reply plays before the barge-in (about: see [`played`]).
const PLAYED: Duration = Duration::from_secs(1);
/// ASP: the barge-ins are spread over this many calls (see [`asp`]).
const ASP_CALLS: usize = 4;
/// Deepgram, Twilio: quiet after each barge-in, before the next reply.
const GAP: Duration = Duration::from_millis(600);
/// ASP: packets of the caller's tone in one barge-in (or turn), 500 ms.
const TONE_FRAMES: u32 = 25;
/// ASP: the PBX starts its first turn after this many silent packets (the greeting has
/// played; then the agent answers with the first reply).
const KICK_AFTER: usize = 100;
/// A cut further than this after the signal is no cut.
const MAX_CUT: Duration = Duration::from_millis(500);

const DEEPGRAM_KEY: &str = "bench-deepgram-key-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Deepgram,
    Twilio,
    Asp,
    OpenAi,
}

impl Provider {
    const ALL: [Provider; 4] = [Provider::Deepgram, Provider::OpenAi, Provider::Twilio, Provider::Asp];

    fn name(self) -> &'static str {
        match self {
            Provider::Deepgram => "deepgram",
            Provider::Twilio => "twilio",
            Provider::Asp => "asp",
            Provider::OpenAi => "openai",
        }
    }

    fn signal(self) -> &'static str {
        match self {
            Provider::Deepgram => "fake writes `UserStartedSpeaking`",
            Provider::Twilio => "fake writes `clear`",
            Provider::Asp => "PBX sends the first loud caller packet",
            Provider::OpenAi => "fake writes `input_audio_buffer.speech_started`",
        }
    }
}

/// Run by `cargo test` (no `--bench` argument): a short run that proves the bench works,
/// not a measurement.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// How many barge-ins per provider.
fn barge_ins() -> usize {
    std::env::var("VOICE_UA_BENCH_BARGE_INS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { 2 } else { 20 })
        .max(1)
}

/// The providers to run.
fn providers() -> Vec<Provider> {
    let Ok(list) = std::env::var("VOICE_UA_BENCH_PROVIDERS") else {
        return Provider::ALL.to_vec();
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Provider::ALL.into_iter().find(|p| p.name() == s).unwrap_or_else(|| {
                panic!("VOICE_UA_BENCH_PROVIDERS: unknown provider {s:?} (deepgram, openai, twilio, asp)")
            })
        })
        .collect()
}

/// Deepgram, Twilio: the pause before barge-in `i` of `k`: [`PLAYED`] and `i / k` of a
/// packet's time, so that the signals fall evenly across voice-ua's 20 ms tick.
fn played(i: usize, k: usize) -> Duration {
    PLAYED + FRAME * i as u32 / k as u32
}

/// A packet carries agent audio: anything but μ-law silence.
fn is_agent(payload: &[u8]) -> bool {
    payload.iter().any(|&b| b != 0xff)
}

/// What the fake PBX does besides sending silence.
struct Plan {
    /// Barge in (a loud tone) once this many agent packets in a row have arrived.
    barge_in_after: Option<usize>,
    /// Speak a turn (a loud tone) once this many silent packets in a row have arrived.
    kick_after: Option<usize>,
    /// Stop after this many runs of agent audio have ended.
    runs: usize,
}

/// What the fake PBX saw and did in one call.
#[derive(Default)]
struct Pbx {
    /// Every packet from voice-ua, with its arrival.
    got: Vec<Arrival>,
    /// When each barge-in's first loud packet was sent.
    speech: Vec<Instant>,
    /// When each loud caller packet was sent.
    loud_sent: Vec<Instant>,
}

/// Talk to voice-ua at 20 ms a packet (silence, or the tone the plan asks for) until
/// `plan.runs` runs of agent audio have ended, or `limit`. The first packet leaves
/// `offset` after the ACK.
fn pbx(call: &Call, plan: &Plan, limit: Duration, offset: Duration) -> Pbx {
    let (tone, quiet) = (caller_tone(), [0xffu8; 160]);
    let mut out = Pbx::default();
    std::thread::sleep(offset);
    let start = Instant::now();
    let (mut agent_run, mut quiet_run, mut runs, mut seen) = (0usize, 0usize, 0usize, 0usize);
    // Frames of tone still to send; whether this run of agent audio was barged into.
    let (mut tone_left, mut barged) = (0u32, false);
    for i in 0u32.. {
        for (_, p) in &out.got[seen..] {
            if is_agent(&p.3) {
                agent_run += 1;
                quiet_run = 0;
            } else {
                if agent_run > 0 {
                    runs += 1;
                    barged = false;
                }
                agent_run = 0;
                quiet_run += 1;
            }
        }
        seen = out.got.len();
        if runs >= plan.runs || start.elapsed() > limit {
            break;
        }
        let mut first = false;
        if tone_left == 0 {
            if !barged && plan.barge_in_after.is_some_and(|n| agent_run >= n) {
                (tone_left, barged, first) = (TONE_FRAMES, true, true);
            } else if plan.kick_after.is_some_and(|n| quiet_run >= n) {
                (tone_left, quiet_run) = (TONE_FRAMES, 0);
            }
        }
        let loud = tone_left > 0;
        tone_left = tone_left.saturating_sub(1);
        call.send_frame(i as u16, i == 0, if loud { &tone } else { &quiet });
        let sent = Instant::now();
        if loud {
            out.loud_sent.push(sent);
        }
        if first {
            out.speech.push(sent);
        }
        let due = start + FRAME * (i + 1);
        call.drain_rtp_timed(&mut out.got, due.saturating_duration_since(Instant::now()));
    }
    if runs < plan.runs {
        eprintln!("warning: {runs} of {} runs of agent audio ended within {limit:?}", plan.runs);
    }
    out
}

/// Start voice-ua with `config`, talk per `plan` (from `offset` after the ACK), hang up.
fn call(name: &str, config: &str, env: &[(&str, &str)], plan: &Plan, offset: Duration) -> Pbx {
    let mut call = Call::start(name, config, env);
    let limit = Duration::from_secs(4) * plan.runs as u32 + Duration::from_secs(10);
    let pbx = pbx(&call, plan, limit, offset);
    let cseq = call.next_cseq();
    call.send(&call.in_dialog("BYE", cseq, "", ""));
    let _ = call.recv(Duration::from_secs(3));
    let (status, _) = call.stop();
    assert!(status.success(), "voice-ua exited with {status:?}");
    pbx
}

fn ca_line(ca: Option<&std::path::Path>) -> String {
    ca.map(|p| format!("ca_file = \"{}\"\n", p.display())).unwrap_or_default()
}

/// One call's barge-in instants and what its PBX saw.
type Calls = Vec<(Vec<Instant>, Pbx)>;

/// Deepgram: one call of K × (reply, about 1 s, `UserStartedSpeaking`, 600 ms).
fn deepgram(rt: &Runtime, k: usize) -> Calls {
    use voice_ua_fake_deepgram::Step;
    let script: Vec<Step> = (0..k)
        .flat_map(|i| {
            [
                Step::speak("reply", REPLY_MS, true),
                Step::Pause(played(i, k)),
                Step::user_says("stop"),
                Step::Pause(GAP),
            ]
        })
        .collect();
    let fake = rt
        .block_on(FakeDeepgram::start(FakeConfig::new(DEEPGRAM_KEY).tls(true).script(script)))
        .expect("fake Deepgram");
    let config = format!("[agent]\nurl = \"{}\"\n{}", fake.url(), ca_line(fake.ca_file()));
    let plan = Plan { barge_in_after: None, kick_after: None, runs: k };
    let env = [("DEEPGRAM_API_KEY", DEEPGRAM_KEY)];
    let pbx = call("bench-barge-dg", &config, &env, &plan, Duration::ZERO);
    let records = rt.block_on(fake.wait_records(1, Duration::from_secs(5)));
    let record = records.first().expect("the fake's record");
    assert!(record.violations.is_empty(), "{:?}", record.violations);
    vec![(record.barge_ins.clone(), pbx)]
}

fn bot_config(bot: &FakeBot, dialect: &str) -> String {
    format!("[agent.websocket]\nurl = \"{}\"\ndialect = \"{dialect}\"\n{}", bot.url(), ca_line(bot.ca_file()))
}

/// Twilio: one call of K × (reply, about 1 s, `clear`, 600 ms).
fn twilio(rt: &Runtime, k: usize) -> Calls {
    use voice_ua_fake_bots::Step;
    let script: Vec<Step> = (0..k)
        .flat_map(|i| {
            [Step::speak("reply", REPLY_MS), Step::Pause(played(i, k)), Step::Clear, Step::Pause(GAP)]
        })
        .collect();
    let bot = rt.block_on(FakeBot::start(BotConfig::twilio().tls(true).script(script))).expect("fake bot");
    let plan = Plan { barge_in_after: None, kick_after: None, runs: k };
    let pbx = call("bench-barge-twilio", &bot_config(&bot, "twilio"), &[], &plan, Duration::ZERO);
    let records = rt.block_on(bot.wait_records(1, Duration::from_secs(5)));
    let record = records.first().expect("the bot's record");
    assert!(record.violations.is_empty(), "{:?}", record.violations);
    vec![(record.barge_ins.clone(), pbx)]
}

/// ASP: [`ASP_CALLS`] calls, each a short greeting, then (reply, the caller's turn) for
/// its share of the K barge-ins. The caller's packets keep one phase to voice-ua's tick
/// for a whole call, so each call starts its packets a quarter packet later than the one
/// before.
fn asp(rt: &Runtime, k: usize) -> Calls {
    use voice_ua_fake_bots::Step;
    let calls = ASP_CALLS.min(k);
    (0..calls)
        .map(|c| {
            let n = k / calls + usize::from(c < k % calls);
            let mut script = vec![Step::speak("greeting", 200), Step::WaitAudioEnd];
            for _ in 0..n {
                script.extend([Step::speak("reply", REPLY_MS), Step::WaitAudioEnd]);
            }
            let bot =
                rt.block_on(FakeBot::start(BotConfig::asp().tls(true).script(script))).expect("fake bot");
            let played = (PLAYED.as_millis() / FRAME.as_millis()) as usize;
            // The greeting's run ends too.
            let plan = Plan { barge_in_after: Some(played), kick_after: Some(KICK_AFTER), runs: n + 1 };
            let offset = FRAME * c as u32 / calls as u32;
            let pbx = call("bench-barge-asp", &bot_config(&bot, "asp"), &[], &plan, offset);
            let records = rt.block_on(bot.wait_records(1, Duration::from_secs(5)));
            let record = records.first().expect("the bot's record");
            assert!(record.violations.is_empty(), "{:?}", record.violations);
            (pbx.speech.clone(), pbx)
        })
        .collect()
}

/// OpenAI Realtime: the greeting voice-ua asks for, then K × (reply, a pause, the server
/// VAD's `speech_started`, voice-ua's truncate, 600 ms).
fn openai(rt: &Runtime, k: usize) -> Calls {
    use voice_ua_fake_openai::{FakeConfig, FakeOpenAi, Step};
    const KEY: &str = "bench-openai-key-0123456789";
    let mut script = vec![Step::AwaitResponseCreate, Step::speak("greeting", 200)];
    for i in 0..k {
        script.extend([
            Step::speak("reply", REPLY_MS),
            Step::Pause(played(i, k)),
            Step::SpeechStarted,
            Step::AwaitTruncate,
            Step::Pause(GAP),
        ]);
    }
    let fake = rt.block_on(FakeOpenAi::start(FakeConfig::new(KEY).tls(true).script(script))).expect("fake");
    let config = format!(
        "[agent]\nprovider = \"openai\"\nurl = \"{}\"\n{}greeting = \"Hello\"\n",
        fake.url(),
        ca_line(fake.ca_file())
    );
    // The greeting's run ends too.
    let plan = Plan { barge_in_after: None, kick_after: None, runs: k + 1 };
    let pbx = call("bench-barge-openai", &config, &[("OPENAI_API_KEY", KEY)], &plan, Duration::ZERO);
    let records = rt.block_on(fake.wait_records(1, Duration::from_secs(5)));
    let record = records.first().expect("the fake's record");
    assert!(record.violations.is_empty(), "{:?}", record.violations);
    vec![(record.barge_ins.clone(), pbx)]
}

/// One barge-in as the PBX saw it.
struct Cut {
    /// `t_last − t_signal`, ms (signed).
    last_ms: f64,
    /// `t_first_silent − t_signal`, ms.
    first_silent_ms: f64,
    /// Loud caller packets sent from the signal until `t_first_silent`.
    loud_frames: usize,
}

fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1e3
    } else {
        -((b - a).as_secs_f64() * 1e3)
    }
}

/// The cut after `signal`: the first silent packet after it, and the agent packet before.
fn cut(pbx: &Pbx, signal: Instant) -> Option<Cut> {
    let j = pbx.got.iter().position(|(t, p)| *t > signal && !is_agent(&p.3))?;
    let (last, packet) = &pbx.got[j.checked_sub(1)?];
    let first_silent = pbx.got[j].0;
    if !is_agent(&packet.3) || first_silent - signal > MAX_CUT {
        return None;
    }
    let loud_frames = pbx.loud_sent.iter().filter(|&&t| t >= signal && t < first_silent).count();
    Some(Cut {
        last_ms: signed_ms(*last, signal),
        first_silent_ms: signed_ms(first_silent, signal),
        loud_frames,
    })
}

/// min, p50, p90 and max by nearest rank.
fn percentiles(mut v: Vec<f64>) -> [f64; 4] {
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [v[0], rank(0.5), rank(0.9), rank(1.0)]
}

fn cell(v: Vec<f64>) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let [min, p50, p90, max] = percentiles(v);
    format!("{min:+.1} / {p50:+.1} / {p90:+.1} / {max:+.1}")
}

fn main() {
    let k = barge_ins();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut rows = Vec::new();
    for provider in providers() {
        eprintln!("barge_in: {} × {k}…", provider.name());
        let calls = match provider {
            Provider::Deepgram => deepgram(&rt, k),
            Provider::Twilio => twilio(&rt, k),
            Provider::Asp => asp(&rt, k),
            Provider::OpenAi => openai(&rt, k),
        };
        let signals: usize = calls.iter().map(|(s, _)| s.len()).sum();
        let cuts: Vec<Cut> =
            calls.iter().flat_map(|(signals, pbx)| signals.iter().filter_map(|&s| cut(pbx, s))).collect();
        if signals != k || cuts.len() != signals {
            eprintln!(
                "warning: {}: {signals} signals of {k}, {} of them cut the agent's audio",
                provider.name(),
                cuts.len()
            );
        }
        rows.push((provider, cuts));
    }
    println!("| provider | barge-in (t_signal) | barge-ins | t_last − t_signal, ms min / p50 / p90 / max | t_first_silent − t_signal, ms min / p50 / p90 / max |");
    println!("|---|---|---|---|---|");
    for (provider, cuts) in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            provider.name(),
            provider.signal(),
            cuts.len(),
            cell(cuts.iter().map(|c| c.last_ms).collect()),
            cell(cuts.iter().map(|c| c.first_silent_ms).collect()),
        );
    }
    for (provider, cuts) in &rows {
        if *provider != Provider::Asp || cuts.is_empty() {
            continue;
        }
        let [min, p50, p90, max] = percentiles(cuts.iter().map(|c| c.loud_frames as f64).collect());
        println!(
            "\nasp: loud caller packets (20 ms) sent before the first silent packet: min {min} / p50 {p50} / p90 {p90} / max {max} \
             (the VAD's onset is 3 frames; the rest is the jitter buffer and the tick)"
        );
    }
}
