//! A reconnect of the agent, in virtual time: the reply it was playing finishes, the hold
//! tone fills the wait, the reconnect is observed once (never as a barge-in), the next
//! reply plays, and nobody is transferred; a reconnect that fails gives way to the
//! fallback as any agent failure does.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentError, AgentEvent, HoldReason, SessionEnd};
use voice_ua_call::Observation;

fn hold(on: bool) -> Input {
    Input::Agent(AgentEvent::Hold { reason: HoldReason::Reconnect, on })
}

fn reconnected(ok: bool) -> Input {
    Input::Agent(AgentEvent::Reconnected { ok, attempts: 2, after: 640 * MS })
}

#[test]
fn the_caller_hears_the_reply_out_then_the_tone_then_the_agent_again() {
    let mut p = Pair::new();
    p.agent_says(400 * MS, 600);
    // The socket drops at 600 ms, with 400 ms of the reply still queued at the call.
    p.at(600 * MS, hold(true));
    p.at(1240 * MS, hold(false));
    p.at(1240 * MS, reconnected(true));
    p.agent_says(1500 * MS, 300);
    p.run_until(Duration::from_secs(3));
    let loud: Vec<Duration> =
        p.heard_since(Duration::ZERO).filter(|h| h.loud()).map(|h| h.at - p.t0).collect();
    // The whole first reply (30 packets from 400 ms), the tone's first beep from 1000 ms
    // (the reply's end) to the hold's end, then the next reply's 15 packets.
    assert_eq!(loud.iter().filter(|t| **t >= 400 * MS && **t < 1000 * MS).count(), 30, "{loud:?}");
    assert!(loud.iter().any(|t| *t >= 1000 * MS && *t < 1240 * MS), "the tone during the wait: {loud:?}");
    assert!(!loud.iter().any(|t| *t >= 1240 * MS && *t < 1500 * MS), "silence after the hold: {loud:?}");
    assert_eq!(loud.iter().filter(|t| **t >= 1500 * MS).count(), 15);
    let reconnects = p.observed_where(|o| matches!(o, Observation::Reconnect { .. }));
    assert_eq!(reconnects.len(), 1);
    assert!(matches!(reconnects[0].1, Observation::Reconnect { ok: true, attempts: 2, .. }));
    assert!(p.observed_where(|o| matches!(o, Observation::BargeIn)).is_empty(), "not a barge-in");
    assert!(p.refers().is_empty() && p.bye().is_none(), "the call goes on");
}

#[test]
fn a_failed_reconnect_gives_way_to_the_fallback() {
    let mut p = Pair::new();
    p.at(400 * MS, hold(true));
    p.at(2400 * MS, hold(false));
    p.at(2400 * MS, reconnected(false));
    let error = AgentError::Provider {
        provider: "deepgram".into(),
        detail: "Deepgram closed the session mid-call (connection dropped); reconnecting failed".into(),
        code: None,
    };
    p.at(2400 * MS, Input::Agent(AgentEvent::Ended(SessionEnd::Failed(error))));
    p.run_until(Duration::from_secs(4));
    assert!(matches!(
        p.observed_where(|o| matches!(o, Observation::Reconnect { .. }))[..],
        [(_, Observation::Reconnect { ok: false, .. })]
    ));
    assert_eq!(p.agent_errors().len(), 1);
}
