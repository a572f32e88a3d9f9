//! What the call tells the agent about its playback, in virtual time: a mark is answered
//! by the tick whose packet carries the last sample before it, a flush answers the marks
//! it dropped (cleared) and says how much agent audio the caller had heard, and a mark
//! with nothing queued before it is answered at once.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentError, AgentEvent, CallInput, SessionEnd};

/// The playback reports the agent got, with their times after the INVITE.
fn reports(p: &Pair) -> Vec<(Duration, CallInput)> {
    p.agent
        .inputs
        .iter()
        .filter(|(_, i)| matches!(i, CallInput::MarkPlayed { .. } | CallInput::PlaybackFlushed { .. }))
        .map(|(t, i)| (*t - p.t0, *i))
        .collect()
}

#[test]
fn a_mark_is_answered_by_the_tick_that_sends_the_last_sample_before_it() {
    let mut p = Pair::new();
    // 200 ms of reply at the 400 ms tick, then a mark, then 100 ms more and a second mark.
    p.agent_says(400 * MS, 200);
    p.at(400 * MS, Input::Agent(AgentEvent::Mark(1)));
    p.agent_says(400 * MS, 100);
    p.at(400 * MS, Input::Agent(AgentEvent::Mark(2)));
    p.run_until(Duration::from_secs(2));
    // The reply plays 400 … 580 ms (10 packets) and 600 … 680 ms (5 more).
    assert_eq!(p.loud_span(), Some((400 * MS, 680 * MS)));
    assert_eq!(
        reports(&p),
        vec![
            (580 * MS, CallInput::MarkPlayed { id: 1, cleared: false }),
            (680 * MS, CallInput::MarkPlayed { id: 2, cleared: false }),
        ]
    );
}

#[test]
fn a_mark_with_nothing_queued_is_answered_at_once() {
    let mut p = Pair::new();
    p.at(500 * MS, Input::Agent(AgentEvent::Mark(9)));
    p.run_until(Duration::from_secs(1));
    assert_eq!(reports(&p), vec![(500 * MS, CallInput::MarkPlayed { id: 9, cleared: false })]);
}

#[test]
fn a_flush_clears_the_waiting_marks_and_reports_what_the_caller_heard() {
    let mut p = Pair::without_echo_gate();
    // A first reply of 100 ms plays out whole (400 … 480 ms) and its mark is answered.
    p.agent_says(400 * MS, 100);
    p.at(400 * MS, Input::Agent(AgentEvent::Mark(1)));
    // A second of 2 s at 600 ms with a mark at its end; the caller barges in at 1010 ms.
    p.agent_says(600 * MS, 2000);
    p.at(600 * MS, Input::Agent(AgentEvent::Mark(2)));
    p.at(1010 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.run_until(Duration::from_secs(3));
    // Heard: 100 ms, then 600 … 1000 ms of the second reply (21 packets, 420 ms).
    let heard_ms = 100 + 420;
    assert_eq!(
        reports(&p),
        vec![
            (480 * MS, CallInput::MarkPlayed { id: 1, cleared: false }),
            (1010 * MS, CallInput::MarkPlayed { id: 2, cleared: true }),
            (1010 * MS, CallInput::PlaybackFlushed { played_samples: heard_ms * 8 }),
        ]
    );
}

#[test]
fn a_flush_with_nothing_playing_still_reports_the_count() {
    let mut p = Pair::new();
    p.at(700 * MS, Input::Agent(AgentEvent::FlushPlayback));
    p.run_until(Duration::from_secs(1));
    assert_eq!(reports(&p), vec![(700 * MS, CallInput::PlaybackFlushed { played_samples: 0 })]);
}

#[test]
fn marks_waiting_when_the_agent_fails_are_never_answered() {
    let mut p = Pair::new();
    p.agent_says(400 * MS, 1000);
    p.at(400 * MS, Input::Agent(AgentEvent::Mark(3)));
    p.at(600 * MS, Input::Agent(AgentEvent::Ended(SessionEnd::Failed(AgentError::Closed { side: "agent" }))));
    p.run_until(Duration::from_secs(3));
    assert!(reports(&p).is_empty(), "{:?}", reports(&p));
}
