//! The hold tone, in virtual time: while the agent says the caller waits (a slow tool,
//! a reconnect), every packet that carries no agent audio carries the tone; agent audio
//! goes first, and the reply after the wait starts a talkspurt and its turn as usual.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentEvent, HoldReason};

fn hold(on: bool, reason: HoldReason) -> Input {
    Input::Agent(AgentEvent::Hold { reason, on })
}

#[test]
fn the_line_beeps_while_the_agent_holds_and_falls_silent_after() {
    let mut p = Pair::new();
    p.at(400 * MS, hold(true, HoldReason::Tool));
    p.at(4400 * MS, hold(false, HoldReason::Tool));
    p.run_until(Duration::from_secs(6));
    let loud: Vec<Duration> =
        p.heard_since(Duration::ZERO).filter(|h| h.loud()).map(|h| h.at - p.t0).collect();
    // A 200 ms beep at once (the 420 ms tick on: the hold came after the 400 ms one)
    // and again 2 s later; nothing after the hold ends.
    let first = *loud.first().expect("the hold tone was heard");
    assert!(first >= 400 * MS && first <= 440 * MS, "first beep at {first:?}");
    assert!(
        loud.iter().any(|t| *t >= first + 2000 * MS && *t < first + 2200 * MS),
        "a second beep 2 s later"
    );
    assert!(loud.iter().all(|t| *t < 4400 * MS), "silence after the hold: {loud:?}");
    // 10 packets per beep, two beeps.
    assert_eq!(loud.len(), 20);
    assert!(
        p.heard_since(Duration::ZERO).all(|h| !h.header.marker || h.at - p.t0 >= 4400 * MS),
        "the tone starts no talkspurt"
    );
}

#[test]
fn agent_audio_goes_before_the_tone_and_starts_its_talkspurt() {
    let mut p = Pair::new();
    p.at(400 * MS, hold(true, HoldReason::Reconnect));
    // The agent speaks 300 ms at 1000 ms while still on hold: its audio plays, marked.
    p.agent_says(1000 * MS, 300);
    p.run_until(Duration::from_secs(2));
    let marked: Vec<Duration> =
        p.heard_since(Duration::ZERO).filter(|h| h.header.marker).map(|h| h.at - p.t0).collect();
    assert_eq!(marked, vec![1000 * MS], "only the agent's reply is a talkspurt");
    let loud_after: Vec<Duration> =
        p.heard_since(1000 * MS).filter(|h| h.loud()).map(|h| h.at - p.t0).collect();
    assert_eq!(loud_after.first(), Some(&(1000 * MS)));
    assert_eq!(loud_after.len(), 15, "the reply's 15 packets, then the tone is between beeps");
}

#[test]
fn two_reasons_hold_until_both_end() {
    let mut p = Pair::new();
    p.at(400 * MS, hold(true, HoldReason::Tool));
    p.at(500 * MS, hold(true, HoldReason::Reconnect));
    p.at(1000 * MS, hold(false, HoldReason::Tool));
    p.at(5000 * MS, hold(false, HoldReason::Reconnect));
    p.run_until(Duration::from_secs(7));
    let loud: Vec<Duration> =
        p.heard_since(Duration::ZERO).filter(|h| h.loud()).map(|h| h.at - p.t0).collect();
    // Beeps at ~0.42, 2.42 and 4.42 s: the tone went on through the first reason's end.
    assert_eq!(loud.len(), 30, "{loud:?}");
    assert!(loud.iter().all(|t| *t < 5000 * MS));
}

#[test]
fn the_agent_failing_ends_the_hold() {
    let mut p = Pair::new();
    p.at(400 * MS, hold(true, HoldReason::Reconnect));
    p.at(
        600 * MS,
        Input::Agent(AgentEvent::Ended(voice_ua_agent::SessionEnd::AgentFinished { reason: "bye".into() })),
    );
    p.run_until(Duration::from_secs(4));
    let loud: Vec<Duration> =
        p.heard_since(Duration::ZERO).filter(|h| h.loud()).map(|h| h.at - p.t0).collect();
    assert!(loud.iter().all(|t| *t < 600 * MS), "no beep after the agent ended: {loud:?}");
}
