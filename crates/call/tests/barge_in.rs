//! Barge-in and turn timing, in virtual time: a flush silences the caller's line from
//! the very next packet, and a turn's latency is measured from the caller's end of
//! speech (as received) to the agent's first packet. (The flush tests run without the
//! echo gate, so the agent's flush is carried out at once; tests/echo_barge_in.rs has
//! the gate.)

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentEvent, ReplyFigures};
use voice_ua_call::Observation;

#[test]
fn a_flush_silences_the_line_from_the_next_packet_and_is_counted_once() {
    let mut p = Pair::without_echo_gate();
    // 2 s of reply, all at once at 400 ms (a tick: 260 + 7 × 20), so it would play
    // 400 ms … 2380 ms. The caller barges in; the agent flushes at 1010 ms, between
    // the ticks of 1000 ms and 1020 ms.
    p.agent_says(400 * MS, 2000);
    p.at(1010 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.run_until(Duration::from_secs(3));

    let loud: Vec<_> = p.pbx.heard.iter().filter(|h| h.loud()).collect();
    let first = loud.first().expect("the reply played");
    assert_eq!(first.at - p.t0, 400 * MS);
    assert!(first.header.marker, "the reply's first packet starts a talkspurt");
    // The last loud packet is the 1000 ms tick's, the one before the flush; 400 … 1000
    // ms is 31 packets, every one of them loud.
    assert_eq!(p.loud_span(), Some((400 * MS, 1000 * MS)));
    assert_eq!(loud.len(), (1000 - 400) / 20 + 1);
    // From the 1020 ms tick on, silence only; the stream itself never pauses (a packet
    // at every tick up to the last one run, at 3000 ms).
    let after: Vec<_> = p.heard_since(1020 * MS).collect();
    assert_eq!(after.len(), (3000 - 1020) / 20 + 1);
    assert!(after.iter().all(|h| !h.loud() && !h.header.marker));
    let barge_ins = p.observed_where(|o| matches!(o, Observation::BargeIn));
    assert_eq!(barge_ins.len(), 1);
    assert_eq!(barge_ins[0].0, 1010 * MS);
}

#[test]
fn after_a_flush_the_next_reply_starts_a_new_talkspurt_at_once() {
    let mut p = Pair::without_echo_gate();
    p.agent_says(400 * MS, 2000);
    p.at(1010 * MS, Input::Agent(AgentEvent::FlushPlayback));
    // The agent's next reply, at the 1500 ms tick: it plays at once, marked, and only
    // its own 200 ms (1500 … 1680 ms): nothing of the flushed reply comes back.
    p.agent_says(1500 * MS, 200);
    p.run_until(Duration::from_secs(3));
    let loud: Vec<_> = p.heard_since(1020 * MS).filter(|h| h.loud()).collect();
    assert_eq!(loud.len(), 10);
    assert_eq!(loud[0].at - p.t0, 1500 * MS);
    assert!(loud[0].header.marker);
    assert_eq!(loud[9].at - p.t0, 1680 * MS);
    assert!(loud[1..].iter().all(|h| !h.header.marker));
}

/// The caller talks (a tone) from the ACK until 600 ms, then is quiet; the reply comes
/// at `reply_at`, with the agent's own figures announced just before it.
fn turn(reply_at: Duration) -> Pair {
    let script = PbxScript { stream: Some(Sound::Tone), ..PbxScript::default() };
    let mut p = Pair::with(settings(), script, Some(offer("sendrecv")), Default::default());
    p.at(600 * MS, Input::Stream(Some(Sound::Silence)));
    let figures = ReplyFigures {
        total: Some(300 * MS),
        think: Some(120 * MS),
        speak: Some(90 * MS),
        ..ReplyFigures::default()
    };
    p.at(reply_at, Input::Agent(AgentEvent::ReplyStarted(figures)));
    p.agent_says(reply_at, 400);
    p.run_until(Duration::from_secs(2));
    p
}

/// When (after the INVITE) the last loud caller frame was played out of the jitter
/// buffer: tick `i` is at 260 ms + i × 20 ms.
fn last_loud_caller_frame(p: &Pair) -> Duration {
    let i =
        p.caller_pcm.chunks(160).rposition(|f| f.iter().any(|&s| s.unsigned_abs() > 1000)).expect("speech");
    260 * MS + FRAME * i as u32
}

#[test]
fn a_turn_is_timed_from_the_end_of_speech_as_received_to_the_first_reply_packet() {
    let p = turn(1000 * MS);
    // The tone's last packet left the PBX at 590 ms (its packets go at 210 + 20 k ms;
    // the switch to silence at 600 ms). The first packet the media took (270 ms)
    // started the jitter buffer two frames (its 40 ms start delay) ahead of the play
    // position, so it played at the third tick, 320 ms: every packet plays 50 ms after
    // it arrived, the 590 ms one at the 640 ms tick.
    assert_eq!(last_loud_caller_frame(&p), 640 * MS);
    // The end of speech as received: that frame's end (640 + 20) less the playout
    // delay (40 ms) = 620 ms. The reply's first packet leaves at the 1000 ms tick:
    // 1000 − 620 = 380 ms.
    let turns = p.observed_where(|o| matches!(o, Observation::Turn { .. }));
    assert_eq!(turns.len(), 1, "{turns:?}");
    let (at, Observation::Turn { latency, figures }) = turns[0] else { unreachable!() };
    assert_eq!(at, 1000 * MS);
    assert_eq!(*latency, 380 * MS);
    assert_eq!(figures.total, Some(300 * MS));
    assert_eq!(figures.think, Some(120 * MS));
}

#[test]
fn a_reply_that_starts_while_the_caller_still_talks_is_timed_from_the_same_end() {
    // The reply starts at 700 ms, before the detector's 200 ms hangover (10 quiet
    // frames after 640 ms) has ended the utterance: it is measured from the same end
    // of speech, 620 ms, and only once.
    let p = turn(700 * MS);
    let turns = p.observed_where(|o| matches!(o, Observation::Turn { .. }));
    assert_eq!(turns.len(), 1, "{turns:?}");
    assert!(
        matches!(turns[0], (t, Observation::Turn { latency, .. }) if t == 700 * MS && *latency == 80 * MS)
    );
}

#[test]
fn a_reply_without_caller_speech_is_no_turn() {
    // Silence from the PBX all along: the agent's greeting is not a turn.
    let mut p = Pair::new();
    p.agent_says(400 * MS, 400);
    p.run_until(Duration::from_secs(2));
    assert!(p.observed_where(|o| matches!(o, Observation::Turn { .. })).is_empty());
    assert_eq!(p.loud_span(), Some((400 * MS, 780 * MS)));
}
