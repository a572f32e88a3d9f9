//! The agent ends the call, in virtual time: after its goodbye has played (the BYE at
//! the tick its last packet left, not before), at once, or because its session finished;
//! and an agent that fails after its goodbye still has its goodbye played.
//!
//! Timings (harness defaults): ticks at 260 ms + k × 20 ms. 600 ms of agent audio queued
//! at 1000 ms (a tick) is 30 packets, at 1000 … 1580 ms (1000 + 29 × 20).

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentEvent, SessionEnd};
use voice_ua_call::EndedBy;
use voice_ua_records::CallOutcome;

fn hang_up(after_playback: bool) -> Input {
    Input::Agent(AgentEvent::HangUp { after_playback, reason: "goodbye said".into() })
}

#[test]
fn a_hang_up_after_playback_waits_for_the_goodbyes_last_packet() {
    let mut p = Pair::new();
    p.agent_says(1000 * MS, 600);
    p.at(1010 * MS, hang_up(true));
    p.run_until(Duration::from_secs(3));
    // Every packet of the goodbye was heard, and nothing after it.
    assert_eq!(p.loud_span(), Some((1000 * MS, 1580 * MS)));
    assert_eq!(p.heard_since(1000 * MS).count(), 30);
    assert!(p.heard_since(1000 * MS).all(Heard::loud));
    // BYE (no Reason) at the tick the last packet left.
    assert_eq!(p.hang_up(), Some((1580 * MS, None)));
    let e = p.core.ending().expect("over");
    assert_eq!((e.outcome, e.by, e.why.as_str()), (CallOutcome::AgentHangup, EndedBy::Agent, "goodbye said"));
    // The tool is counted when asked, not when carried out.
    assert_eq!(p.tools(), vec![(1010 * MS, "hangup".to_string(), "ok")]);
}

#[test]
fn a_hang_up_after_playback_with_nothing_queued_ends_at_the_next_tick() {
    let mut p = Pair::new();
    p.at(1010 * MS, hang_up(true));
    p.run_until(Duration::from_secs(2));
    assert_eq!(p.hang_up(), Some((1020 * MS, None)));
}

#[test]
fn a_barge_in_after_the_hang_up_was_asked_ends_the_call_at_the_next_tick() {
    let mut p = Pair::without_echo_gate();
    p.agent_says(1000 * MS, 600);
    p.at(1010 * MS, hang_up(true));
    // The caller talks over the goodbye: what is left of it is dropped, and nothing is
    // left to wait for.
    p.at(1110 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.run_until(Duration::from_secs(2));
    assert_eq!(p.loud_span(), Some((1000 * MS, 1100 * MS)));
    assert_eq!(p.hang_up(), Some((1120 * MS, None)));
}

#[test]
fn a_hang_up_without_playback_ends_the_call_at_once() {
    let mut p = Pair::new();
    p.agent_says(1000 * MS, 600);
    p.at(1010 * MS, hang_up(false));
    p.run_until(Duration::from_secs(2));
    assert_eq!(p.hang_up(), Some((1010 * MS, None)));
    // One packet of the goodbye (at the 1000 ms tick) went out; then nothing at all.
    assert_eq!(p.loud_span(), Some((1000 * MS, 1000 * MS)));
    assert_eq!(p.pbx.heard.last().map(|h| h.at - p.t0), Some(1000 * MS));
    let e = p.core.ending().expect("over");
    assert_eq!((e.outcome, e.by), (CallOutcome::AgentHangup, EndedBy::Agent));
}

#[test]
fn an_agent_that_finishes_its_session_hangs_up_after_its_last_words() {
    let mut p = Pair::new();
    p.agent_says(1000 * MS, 600);
    let end = SessionEnd::AgentFinished { reason: "conversation over".into() };
    p.at(1010 * MS, Input::Agent(AgentEvent::Ended(end.clone())));
    p.run_until(Duration::from_secs(3));
    assert_eq!(p.loud_span(), Some((1000 * MS, 1580 * MS)));
    assert_eq!(p.hang_up(), Some((1580 * MS, None)));
    let e = p.core.ending().expect("over");
    assert_eq!((e.outcome, e.by), (CallOutcome::AgentHangup, EndedBy::Agent));
    assert_eq!(e.why, end.to_string());
    // The session is over: the caller's audio stops going to it (the tick at 1000 ms was
    // the last), though the call plays on until 1580 ms.
    assert_eq!(p.frames_to_agent_since(1010 * MS), 0);
    assert_eq!(p.frames_to_agent(), (1000 - 260) / 20 + 1);
}

#[test]
fn a_finished_session_does_not_override_a_hang_up_already_asked() {
    let mut p = Pair::new();
    p.agent_says(1000 * MS, 600);
    p.at(1010 * MS, hang_up(true));
    p.at(1020 * MS, Input::Agent(AgentEvent::Ended(SessionEnd::CallEnded)));
    p.run_until(Duration::from_secs(3));
    assert_eq!(p.hang_up(), Some((1580 * MS, None)));
    assert_eq!(p.core.ending().map(|e| e.why.as_str()), Some("goodbye said"));
}

#[test]
fn an_agent_that_fails_after_its_goodbye_still_gets_its_goodbye_played_and_no_fallback() {
    // A fallback prompt and a human are configured, but the agent has already said
    // goodbye and asked to hang up after it when its connection drops (1100 ms): the
    // caller hears the rest of the goodbye, not "something went wrong", and the call
    // ends at the goodbye's last packet as the agent meant.
    let fallback = voice_ua_call::Fallback { ulaw: prompt_ulaw(1000), transfer: Some("2000".into()) };
    let s = voice_ua_call::CallSettings { fallback, ..settings() };
    let mut p = Pair::with(s, PbxScript::default(), Some(offer("sendrecv")), Default::default());
    p.agent_says(1000 * MS, 600);
    p.at(1010 * MS, hang_up(true));
    let error = voice_ua_agent::AgentError::Closed { side: "agent" };
    p.at(1100 * MS, Input::Agent(AgentEvent::Ended(SessionEnd::Failed(error))));
    p.run_until(Duration::from_secs(4));
    assert_eq!(p.loud_span(), Some((1000 * MS, 1580 * MS)));
    assert_eq!(
        p.heard_since(1000 * MS).filter(|h| h.loud()).count(),
        30,
        "the goodbye, whole, and no prompt"
    );
    assert_eq!(p.refers(), vec![]);
    assert_eq!(p.hang_up(), Some((1580 * MS, None)));
    let e = p.core.ending().expect("over");
    assert_eq!((e.outcome, e.by), (CallOutcome::AgentHangup, EndedBy::Agent));
    // No caller audio goes to the failed agent.
    assert_eq!(p.frames_to_agent_since(1120 * MS), 0);
}
