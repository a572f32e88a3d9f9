//! voice-ua stopping (SIGTERM), in virtual time: a ringing call is refused with 503, a
//! call in progress gets a BYE at once (Q.850 16), a call waiting for its ACK gets its
//! BYE right after the ACK; every one ends as a shutdown.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_call::{Action, EndedBy, Signal, ENDED_BY_SHUTDOWN};
use voice_ua_records::CallOutcome;
use voice_ua_sip::Reason;

const STOPPING: Reason = Reason::q850(16, "voice-ua stopping");

fn ended_by_shutdown(p: &Pair) {
    let e = p.core.ending().expect("the call ended");
    assert_eq!(
        (e.outcome, e.by, e.why.as_str()),
        (CallOutcome::Shutdown, EndedBy::VoiceUa, ENDED_BY_SHUTDOWN)
    );
}

#[test]
fn a_ringing_call_is_refused_with_503() {
    let mut p = Pair::new();
    p.at(100 * MS, Input::Signal(Signal::Stop));
    p.run_until(Duration::from_secs(1));
    let actions: Vec<_> = p.pbx.actions.iter().map(|(t, a)| (*t - p.t0, a)).collect();
    assert!(
        matches!(actions.as_slice(), [(_, Action::Ring), (t, Action::Reject { status: 503 })] if *t == 100 * MS),
        "{actions:?}"
    );
    ended_by_shutdown(&p);
    assert!(p.pbx.heard.is_empty());
}

#[test]
fn a_call_in_progress_gets_a_bye_at_once() {
    let mut p = Pair::new();
    p.agent_says(400 * MS, 2000);
    p.at(1010 * MS, Input::Signal(Signal::Stop));
    p.run_until(Duration::from_secs(3));
    assert_eq!(p.bye(), Some((1010 * MS, Some(STOPPING))));
    ended_by_shutdown(&p);
    // Nothing after it: the queued reply is not played out, no other action follows.
    assert!(p.heard_since(1010 * MS).next().is_none());
    assert!(matches!(p.pbx.actions.last(), Some((_, Action::HangUp { .. }))));
}

#[test]
fn a_call_waiting_for_its_ack_gets_its_bye_right_after_the_ack() {
    // The 200 left at 200 ms, the ACK comes at 210 ms; voice-ua stops at 205 ms.
    let mut p = Pair::new();
    p.at(205 * MS, Input::Signal(Signal::Stop));
    p.run_until(Duration::from_secs(1));
    assert_eq!(p.bye(), Some((210 * MS, Some(STOPPING))));
    ended_by_shutdown(&p);
    // The agent is never opened and no RTP leaves.
    assert!(p.action(|a| matches!(a, Action::OpenAgent { .. } | Action::Answered { .. })).is_none());
    assert!(p.pbx.heard.is_empty());
}

#[test]
fn a_call_opening_its_agent_gets_its_bye_once_the_agent_is_open() {
    // ACKed at 210 ms, the agent opens at 260 ms; voice-ua stops at 230 ms.
    let mut p = Pair::new();
    p.at(230 * MS, Input::Signal(Signal::Stop));
    p.run_until(Duration::from_secs(1));
    assert_eq!(p.bye(), Some((260 * MS, Some(STOPPING))));
    ended_by_shutdown(&p);
    assert!(p.pbx.heard.is_empty());
}
