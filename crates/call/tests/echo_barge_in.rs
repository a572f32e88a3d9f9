//! Echo-safe barge-in in virtual time. The PBX is a caller's line that returns our own
//! RTP 20–150 ms late at -6 to -20 dB with -50 dBFS noise (`aec::echo_path`), optionally
//! with the caller talking over it; the agent plays a long speech-like reply and asks
//! to flush it whenever the audio it receives has energy (a naive VAD, as a cloud agent
//! without echo cancellation of its own would; at most every 100 ms). Echo alone: the
//! agent asks, the core holds and drops every request, the reply plays to its end.
//! Caller speech over the echo: the flush is carried out within 300 ms of the speech's
//! start. A line without echo: the agent's flushes pass as before once a second of
//! playback has shown there is none.
//!
//! `cargo test -p voice-ua-call --test echo_barge_in -- --nocapture` prints the figures
//! docs/performance.md quotes.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentEvent, AudioFrame, CallInput};
use voice_ua_call::Observation;
use voice_ua_media::aec::echo_path::{EchoLine, EchoSettings, Talker};
use voice_ua_media::{pcm_level_dbfs, Law, RtpHeader};

/// The agent's reply: starts at 400 ms (a tick), this long.
const REPLY_AT: Duration = Duration::from_millis(400);
const REPLY_MS: u32 = 9000;
/// The PBX's packets leave at 270 ms + k × 20 ms (after the agent opened at 260 ms).
const FIRST_PACKET: Duration = Duration::from_millis(270);
/// The naive agent's threshold: frames this loud are "speech" to it (the line's noise
/// alone is near it, so it asks often).
const NAIVE_VAD_DBFS: f32 = -52.0;

/// What one run did.
struct Run {
    /// Flushes the agent asked for (during the reply), and those carried out.
    asked: usize,
    barge_ins: Vec<Duration>,
    suppressed: u64,
    /// The last packet with the reply's sound, after the INVITE.
    last_loud: Option<Duration>,
    /// When the caller started talking (the PBX's first packet with their speech).
    talk_from: Option<Duration>,
    echo_delay: Option<Duration>,
}

/// A call whose line echoes our audio (`delay_ms` late, `atten_db` down); the caller
/// talks from `talk_at` (if given) until the end; `end` after the INVITE.
fn run(delay_ms: u32, atten_db: f64, talk_at: Option<Duration>, end: Duration) -> Run {
    let script = PbxScript { stream: None, ..PbxScript::default() };
    let mut p = Pair::with(settings(), script, Some(offer("sendrecv")), Default::default());
    // The reply, speech-like, all at once (as providers send faster than real time).
    let mut voice = Talker::new(8000, -18.0, 31);
    for _ in 0..REPLY_MS / 20 {
        let mut codes = [0u8; 160];
        for (c, s) in codes.iter_mut().zip(voice.take(160)) {
            *c = Law::Ulaw.encode(s);
        }
        p.at(REPLY_AT, Input::Agent(AgentEvent::Audio(AudioFrame::new(&codes).expect("160 bytes"))));
    }
    let mut line = EchoLine::new(EchoSettings { rate: 8000, delay_ms, atten_db, noise_dbfs: -50.0, seed: 9 });
    let mut caller = Talker::new(8000, -20.0, 77);
    let from = PBX_RTP.parse().expect("addr");
    let (mut heard_next, mut agent_next) = (0usize, 0usize);
    let (mut sent, mut talk, mut echo, mut out) = ([0i16; 160], [0i16; 160], [0i16; 160], [0i16; 160]);
    let mut asked = 0;
    let mut last_ask: Option<Duration> = None;
    let mut talk_from = None;
    let mut t = FIRST_PACKET;
    let mut seq = 0u16;
    while t <= end {
        // What the caller heard since the last packet: our newest packet's audio.
        sent.fill(0);
        while let Some(h) = p.pbx.heard.get(heard_next) {
            if h.header.payload_type == 0 {
                Law::Ulaw.decode_slice(&h.payload, &mut sent);
            }
            heard_next += 1;
        }
        let talking = talk_at.is_some_and(|at| t >= at);
        if talking {
            caller.fill(&mut talk);
            if talk_from.is_none() && pcm_level_dbfs(&talk) > -40.0 {
                talk_from = Some(t);
            }
        }
        line.frame(&sent, if talking { &talk } else { &[] }, &mut echo, &mut out);
        let mut payload = [0u8; 160];
        for (c, &s) in payload.iter_mut().zip(&out) {
            *c = Law::Ulaw.encode(s);
        }
        let header = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: 160 * u32::from(seq),
            ssrc: 0x4242,
        };
        seq = seq.wrapping_add(1);
        let mut buf = [0u8; 172];
        header.write_packet(&payload, &mut buf).expect("fits");
        p.at(t, Input::Datagram(from, buf.to_vec()));
        p.run_until(t);
        // The naive agent: a loud frame while its reply plays → flush (again after
        // 100 ms at the soonest).
        let playing = t >= REPLY_AT && t < REPLY_AT + Duration::from_millis(u64::from(REPLY_MS));
        while let Some((_, input)) = p.agent.inputs.get(agent_next) {
            agent_next += 1;
            if let CallInput::Audio(f) = input {
                let mut pcm = [0i16; 160];
                Law::Ulaw.decode_slice(f.as_bytes(), &mut pcm);
                let loud = pcm_level_dbfs(&pcm) > NAIVE_VAD_DBFS;
                if loud && playing && last_ask.is_none_or(|at| t >= at + 100 * MS) {
                    asked += 1;
                    last_ask = Some(t);
                    p.at(t + MS, Input::Agent(AgentEvent::FlushPlayback));
                }
            }
        }
        t += FRAME;
    }
    let barge_ins: Vec<Duration> =
        p.observed_where(|o| matches!(o, Observation::BargeIn)).into_iter().map(|(t, _)| t).collect();
    let suppressed = p.core.false_barge_ins_suppressed();
    let counted = p.observed_where(|o| matches!(o, Observation::FalseBargeInSuppressed)).len() as u64;
    assert_eq!(suppressed, counted, "each dropped request is observed once");
    let flushes =
        p.agent.inputs.iter().filter(|(_, i)| matches!(i, CallInput::PlaybackFlushed { .. })).count();
    assert_eq!(flushes, barge_ins.len(), "every barge-in carried out is answered PlaybackFlushed");
    Run {
        asked,
        barge_ins,
        suppressed,
        last_loud: p.loud_span().map(|(_, last)| last),
        talk_from,
        echo_delay: p.core.echo_delay(),
    }
}

const DELAYS: [u32; 4] = [20, 60, 100, 150];
const LEVELS: [f64; 3] = [6.0, 12.0, 20.0];

#[test]
fn our_own_echo_never_barges_in_and_the_reply_plays_to_its_end() {
    let end = REPLY_AT + Duration::from_millis(u64::from(REPLY_MS)) + Duration::from_millis(500);
    let (mut asked, mut suppressed) = (0, 0);
    for delay in DELAYS {
        for atten in LEVELS {
            let r = run(delay, atten, None, end);
            assert!(
                r.asked > 0,
                "{delay} ms {atten} dB: the naive agent never asked (the test tests nothing)"
            );
            assert!(
                r.barge_ins.is_empty(),
                "{delay} ms {atten} dB: flushed at {:?} on echo alone",
                r.barge_ins
            );
            // The reply's last packet: 400 ms + 9 s - 20 ms.
            assert_eq!(r.last_loud, Some(REPLY_AT + Duration::from_millis(u64::from(REPLY_MS) - 20)));
            assert!(r.suppressed > 0);
            // The canceller found the echo. Its way back is the line's delay plus the
            // PBX's packetisation (10 ms here) and our jitter buffer (20–80 ms).
            let found = r.echo_delay.expect("an echo delay").as_millis() as i64;
            let extra = found - i64::from(delay);
            assert!((30..=100).contains(&extra), "{delay} ms: found {found} ms");
            eprintln!(
                "echo only, {delay:3} ms {atten:2} dB: {:3} flushes asked, 0 carried out, {:2} held and dropped, echo found at {found} ms",
                r.asked, r.suppressed
            );
            asked += r.asked;
            suppressed += r.suppressed;
        }
    }
    eprintln!("echo only, all: {asked} flushes asked, 0 carried out ({suppressed} held and dropped)");
}

#[test]
fn the_caller_talking_over_the_echo_barges_in_within_300_ms() {
    let talk_at = Duration::from_millis(5010);
    let end = talk_at + Duration::from_millis(1000);
    let mut latencies = Vec::new();
    for delay in DELAYS {
        for atten in LEVELS {
            let r = run(delay, atten, Some(talk_at), end);
            let from = r.talk_from.expect("the caller talked");
            let first = *r.barge_ins.first().unwrap_or_else(|| panic!("{delay} ms {atten} dB: no barge-in"));
            assert!(
                first >= from,
                "{delay} ms {atten} dB: flushed at {first:?} before the caller spoke at {from:?}"
            );
            let latency = first - from;
            assert!(
                latency <= Duration::from_millis(300),
                "{delay} ms {atten} dB: barge-in {latency:?} after the speech began"
            );
            eprintln!(
                "speech over echo, {delay:3} ms {atten:2} dB: barge-in {} ms after the speech began",
                latency.as_millis()
            );
            latencies.push(latency.as_millis());
        }
    }
    latencies.sort_unstable();
    eprintln!(
        "speech over echo: {} of {} barged in; latency median {} ms, max {} ms",
        latencies.len(),
        DELAYS.len() * LEVELS.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[test]
fn with_ducking_the_playback_drops_12_db_before_the_flush() {
    let mut s = settings();
    s.duck_ms = 200;
    let mut p = Pair::with(
        s,
        PbxScript { stream: Some(Sound::Tone), ..PbxScript::default() },
        Some(offer("sendrecv")),
        Default::default(),
    );
    p.agent_says(REPLY_AT, 3000);
    // The caller's tone has played for well over 200 ms by 1010 ms.
    p.at(1010 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.run_until(Duration::from_secs(4));
    let barge_ins = p.observed_where(|o| matches!(o, Observation::BargeIn));
    assert_eq!(barge_ins.len(), 1);
    // Ducked from the 1020 ms tick, flushed on the tenth tick after the request (1200 ms).
    assert_eq!(barge_ins[0].0, 1200 * MS);
    let level = |h: &Heard| {
        let mut pcm = [0i16; 160];
        Law::Ulaw.decode_slice(&h.payload, &mut pcm);
        pcm_level_dbfs(&pcm)
    };
    let before: Vec<f32> = p.heard_between(900 * MS, 1000 * MS).map(level).collect();
    let ducked: Vec<f32> = p.heard_between(1040 * MS, 1180 * MS).map(level).collect();
    assert!(!before.is_empty() && !ducked.is_empty());
    for (b, d) in before.iter().zip(&ducked) {
        assert!((b - d - 12.0).abs() < 1.5, "ducked {d:.1} dBFS against {b:.1}");
    }
    assert!(p.heard_since(1220 * MS).all(|h| !h.loud()), "flushed after the duck");
}

#[test]
fn on_a_line_without_echo_the_agents_flush_passes_once_a_second_has_played() {
    // The PBX sends silence: no echo. The reply starts at 400 ms.
    let mut p = Pair::new();
    p.agent_says(REPLY_AT, 4000);
    // 200 ms into the reply nothing is known of the line yet: held, then dropped.
    p.at(610 * MS, Input::Agent(AgentEvent::FlushPlayback));
    // 1.6 s into it the line has shown no echo: carried out at once, as before.
    p.at(2010 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.run_until(Duration::from_secs(3));
    let barge_ins: Vec<Duration> =
        p.observed_where(|o| matches!(o, Observation::BargeIn)).into_iter().map(|(t, _)| t).collect();
    assert_eq!(barge_ins, [2010 * MS]);
    assert_eq!(p.core.false_barge_ins_suppressed(), 1);
    assert_eq!(p.loud_span(), Some((REPLY_AT, 2000 * MS)));
}

#[test]
fn a_flush_right_after_a_keypress_passes_the_gate() {
    // As above, but the caller presses a key 200 ms into the reply and the agent stops
    // talking for it (a DTMF barge-in): no speech, yet the flush is carried out at once.
    let mut p = Pair::new();
    p.agent_says(REPLY_AT, 4000);
    p.at(600 * MS, Input::Signal(voice_ua_call::Signal::Digit('5')));
    p.at(610 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.run_until(Duration::from_secs(2));
    let barge_ins: Vec<Duration> =
        p.observed_where(|o| matches!(o, Observation::BargeIn)).into_iter().map(|(t, _)| t).collect();
    assert_eq!(barge_ins, [610 * MS]);
    assert_eq!(p.core.false_barge_ins_suppressed(), 0);
    assert_eq!(p.loud_span(), Some((REPLY_AT, 600 * MS)));
}
