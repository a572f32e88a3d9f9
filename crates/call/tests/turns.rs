//! A turn's figures from end to end, in virtual time: the agent announces its reply's
//! stages (`ReplyStarted`) before the audio, and they arrive in the `Turn` observation,
//! the call's log line and the record's turns, beside the latency the call measured.

mod harness;

use harness::*;
use std::time::{Duration, SystemTime};
use voice_ua_agent::{AgentEvent, ReplyFigures};
use voice_ua_call::{Observation, Signal};
use voice_ua_records::{CallRecord, TurnFigures};

/// Every stage set, as the pipeline reports them.
fn pipeline_figures() -> ReplyFigures {
    ReplyFigures {
        total: Some(800 * MS),
        endpointing: Some(600 * MS),
        transcribe: Some(90 * MS),
        think: Some(70 * MS),
        speak: Some(40 * MS),
    }
}

/// The harness's wall clock at the INVITE.
fn wall(after: Duration) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + after
}

fn record(p: &mut Pair) -> CallRecord {
    let mut r = CallRecord::new("id", "call", "1001", "9000", SystemTime::UNIX_EPOCH);
    p.core.fill_record(&mut r);
    r
}

fn turns(p: &Pair) -> Vec<(Duration, Duration, ReplyFigures)> {
    p.observed
        .iter()
        .filter_map(|(t, o)| match o {
            Observation::Turn { latency, figures } => Some((*t - p.t0, *latency, *figures)),
            _ => None,
        })
        .collect()
}

/// The caller talks (a tone) from the ACK until 600 ms; the agent announces its reply's
/// figures at 900 ms and its audio comes at 1000 ms (the reply's first packet leaves at
/// that tick, 380 ms after the end of speech as received: see barge_in.rs). The caller
/// speaks again from 1600 to 2000 ms, and the agent answers at 2500 ms without figures.
#[test]
fn the_reply_s_stages_reach_the_turn_observation_the_log_and_the_record() {
    let script = PbxScript { stream: Some(Sound::Tone), ..PbxScript::default() };
    let mut p = Pair::with(settings(), script, Some(offer("sendrecv")), Default::default());
    p.at(600 * MS, Input::Stream(Some(Sound::Silence)));
    p.at(900 * MS, Input::Agent(AgentEvent::ReplyStarted(pipeline_figures())));
    p.agent_says(1000 * MS, 400);
    p.at(1600 * MS, Input::Stream(Some(Sound::Tone)));
    p.at(2000 * MS, Input::Stream(Some(Sound::Silence)));
    p.agent_says(2500 * MS, 400);
    let log = logged(|| p.run_until(Duration::from_secs(3)));

    // The observation: the call's own latency beside the agent's figures, as sent.
    let seen = turns(&p);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], (1000 * MS, 380 * MS, pipeline_figures()));
    // The second reply came without figures: none are carried over from the first.
    // Its tone's last packet left the PBX at 1990 ms and played at the 2040 ms tick,
    // so speech ended (as received) at 2040 + 20 − 40 = 2020 ms; 2500 − 2020 = 480 ms.
    assert_eq!(seen[1], (2500 * MS, 480 * MS, ReplyFigures::default()));

    // The log: one line per turn, with whichever stages are known.
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" turn ")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].ends_with(
            "turn latency_ms=380 endpointing_ms=600 transcribe_ms=90 think_ms=70 speak_ms=40 \
             agent_total_ms=800 index=0"
        ),
        "{log}"
    );
    assert!(lines[0].starts_with(" INFO "), "at info: {log}");
    assert!(lines[1].ends_with("turn latency_ms=480 index=1"), "no stages known, none shown: {log}");

    // The record: both turns in order, the first with every stage.
    p.at(3000 * MS, Input::Signal(Signal::Ended { by_remote: true, detail: "BYE".into() }));
    p.run_until(Duration::from_secs(4));
    let summary = logged(|| p.core.log_summary(p.now));
    assert!(summary.contains(" turns=2 turn_median_ms=380 "), "{summary}");
    let r = record(&mut p);
    assert_eq!(r.turns_dropped, 0);
    assert_eq!(
        r.turns,
        [
            TurnFigures {
                index: 0,
                at: wall(1000 * MS),
                latency_ms: 380,
                endpointing_ms: Some(600),
                transcribe_ms: Some(90),
                think_ms: Some(70),
                speak_ms: Some(40),
                agent_total_ms: Some(800),
            },
            TurnFigures {
                index: 1,
                at: wall(2500 * MS),
                latency_ms: 480,
                endpointing_ms: None,
                transcribe_ms: None,
                think_ms: None,
                speak_ms: None,
                agent_total_ms: None,
            },
        ]
    );
    assert_eq!(r.median_turn_latency_ms(), Some(380));
}

#[test]
fn figures_announced_for_a_greeting_do_not_stick_to_the_next_turn() {
    // Silence from the PBX: the greeting (with figures) is no turn. The caller then
    // speaks 700 … 1100 ms and the agent answers at 1500 ms without announcing figures.
    let mut p = Pair::new();
    p.at(300 * MS, Input::Agent(AgentEvent::ReplyStarted(pipeline_figures())));
    p.agent_says(300 * MS, 200);
    p.at(700 * MS, Input::Stream(Some(Sound::Tone)));
    p.at(1100 * MS, Input::Stream(Some(Sound::Silence)));
    p.agent_says(1500 * MS, 200);
    p.run_until(Duration::from_secs(2));
    let seen = turns(&p);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, 1500 * MS);
    assert_eq!(seen[0].2, ReplyFigures::default());
    let r = record(&mut p);
    assert_eq!(r.turns.len(), 1);
    assert_eq!(r.turns[0].index, 0);
    assert_eq!(r.turns[0].at, wall(1500 * MS));
    let t = r.turns[0];
    assert_eq!([t.endpointing_ms, t.transcribe_ms, t.think_ms, t.speak_ms, t.agent_total_ms], [None; 5]);
}

#[test]
fn a_call_without_speech_has_no_turns_in_its_record_or_summary() {
    let mut p = Pair::new();
    p.agent_says(400 * MS, 400);
    p.at(1500 * MS, Input::Signal(Signal::Ended { by_remote: true, detail: "BYE".into() }));
    p.run_until(Duration::from_secs(2));
    let summary = logged(|| p.core.log_summary(p.now));
    assert!(summary.contains("call ended: ") && !summary.contains("turns="), "{summary}");
    let r = record(&mut p);
    assert!(r.turns.is_empty());
    assert_eq!(r.median_turn_latency_ms(), None);
}
