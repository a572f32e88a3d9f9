//! The agent fails, the caller is not left in silence, in virtual time: the agent's
//! queued audio is dropped, the fallback prompt plays, then the caller is transferred to
//! the human target (REFER at the tick the prompt ends) or the call ends; no more caller
//! audio goes to the failed agent.
//!
//! Timings (harness defaults): ticks at 260 ms + k × 20 ms; the PBX answers a REFER 30 ms
//! after it, and sends NOTIFY 100 at +200 ms and NOTIFY 200 at +1500 ms.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentError, AgentEvent, SessionEnd};
use voice_ua_call::{CallSettings, EndedBy, Fallback};
use voice_ua_records::CallOutcome;
use voice_ua_sip::session_timer::TimerRequest;
use voice_ua_sip::Reason;

/// One second of prompt: 8000 bytes, 50 packets.
const PROMPT_MS: u32 = 1000;

fn with_fallback(transfer: Option<&str>) -> CallSettings {
    let fallback = Fallback { ulaw: prompt_ulaw(PROMPT_MS), transfer: transfer.map(String::from) };
    CallSettings { fallback, ..settings() }
}

fn pair(transfer: Option<&str>, script: PbxScript) -> Pair {
    Pair::with(with_fallback(transfer), script, Some(offer("sendrecv")), TimerRequest::default())
}

fn failed() -> AgentError {
    AgentError::Closed { side: "agent" }
}

fn agent_fails() -> Input {
    Input::Agent(AgentEvent::Ended(SessionEnd::Failed(failed())))
}

/// What the PBX heard from `from` to `to` (after the INVITE), payloads end to end.
fn payloads(p: &Pair, from: Duration, to: Duration) -> Vec<u8> {
    p.heard_since(from).filter(|h| h.at <= p.t(to)).flat_map(|h| h.payload.iter().copied()).collect()
}

/// The agent speaks 2 s from 1000 ms (a tick) and fails at 1210 ms, between ticks: it
/// was heard at 1000 … 1200 ms (11 packets); the prompt's 50 packets follow at the next
/// ticks, 1220 … 2200 ms (1220 + 49 × 20).
fn agent_fails_mid_reply(p: &mut Pair) {
    p.agent_says(1000 * MS, 2000);
    p.at(1210 * MS, agent_fails());
}

fn assert_prompt_played(p: &Pair) {
    let agent = payloads(p, 1000 * MS, 1200 * MS);
    assert_eq!(agent, agent_speech_bytes()[..11 * 160]);
    // The rest of the agent's reply was dropped: what follows is the prompt, exactly.
    assert_eq!(payloads(p, 1210 * MS, 2200 * MS), prompt_ulaw(PROMPT_MS));
    let first = p.heard_since(1210 * MS).next().expect("the prompt");
    assert_eq!(first.at - p.t0, 1220 * MS);
    assert!(first.header.marker, "the prompt starts a talkspurt");
    // Then silence.
    assert!(p.heard_since(2210 * MS).all(|h| !h.loud()));
}

/// The bytes of [`agent_speech`], for telling the agent's packets from the prompt's.
fn agent_speech_bytes() -> Vec<u8> {
    agent_speech(2000)
        .into_iter()
        .flat_map(|e| match e {
            AgentEvent::Audio(f) => f.as_bytes().to_vec(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_failed_agent_gives_way_to_the_prompt_then_a_transfer_and_notify_200_ends_the_call() {
    let mut p = pair(Some("2000"), PbxScript::default());
    agent_fails_mid_reply(&mut p);
    p.run_until(Duration::from_secs(5));
    assert_prompt_played(&p);
    assert_eq!(p.agent_errors(), vec![(1210 * MS, failed())]);
    // The REFER leaves at the tick the prompt's last packet left.
    assert_eq!(p.refers(), vec![(2200 * MS, "sip:2000@pbx.test".to_string())]);
    // NOTIFY 200 at 2200 + 1500 = 3700 ms: BYE, no Reason. Nobody to tell: the agent is gone.
    assert_eq!(p.hang_up(), Some((3700 * MS, None)));
    assert!(p.transfer_results().is_empty());
    let e = p.core.ending().expect("over");
    assert_eq!((e.outcome, e.by), (CallOutcome::Transferred, EndedBy::VoiceUa));
    // The failed agent hears nothing after its failure (the tick at 1200 ms was its last).
    assert_eq!(p.frames_to_agent_since(1210 * MS), 0);
    assert_eq!(p.frames_to_agent_since(260 * MS), (1200 - 260) / 20 + 1);
}

#[test]
fn when_the_fallback_transfer_fails_the_call_ends_with_480() {
    let refused =
        PbxScript { refer_answer: Some((30 * MS, Ok(403))), notifies: vec![], ..PbxScript::default() };
    let busy = PbxScript { notifies: vec![(200 * MS, 100), (1500 * MS, 486)], ..PbxScript::default() };
    // REFER at 2200 ms; refused with its answer at 2230 ms, or busy by NOTIFY at 3700 ms.
    for (script, bye_at) in [(refused, 2230 * MS), (busy, 3700 * MS)] {
        let mut p = pair(Some("2000"), script);
        agent_fails_mid_reply(&mut p);
        p.run_until(Duration::from_secs(5));
        assert_prompt_played(&p);
        assert_eq!(p.refers().len(), 1);
        assert_eq!(p.bye(), Some((bye_at, Some(Reason::sip(480, "transfer failed")))));
        let (_, reason) = p.hang_up().expect("BYE");
        assert_eq!(reason.as_deref(), Some("SIP;cause=480;text=\"transfer failed\""));
        let e = p.core.ending().expect("over");
        assert_eq!((e.outcome, e.by), (CallOutcome::Failed, EndedBy::VoiceUa));
        assert!(p.transfer_results().is_empty());
    }
}

#[test]
fn without_a_transfer_target_the_call_ends_after_the_prompt() {
    let mut p = pair(None, PbxScript::default());
    agent_fails_mid_reply(&mut p);
    p.run_until(Duration::from_secs(5));
    assert_prompt_played(&p);
    assert!(p.refers().is_empty());
    // BYE at the tick the prompt's last packet left (2200 ms), no Reason. The agent
    // failed and nobody took the caller over: the call failed, and voice-ua ended it
    // (not the agent, which the old driver's agent_hangup label claimed).
    assert_eq!(p.hang_up(), Some((2200 * MS, None)));
    assert_eq!(p.pbx.heard.last().map(|h| h.at - p.t0), Some(2200 * MS));
    let e = p.core.ending().expect("over");
    assert_eq!((e.outcome, e.by), (CallOutcome::Failed, EndedBy::VoiceUa));
    assert_eq!(e.why, format!("agent failed: {}", failed()));
}

#[test]
fn an_agent_that_cannot_open_gives_the_same_fallback_from_the_first_tick() {
    let mut p = pair(Some("2000"), PbxScript::default());
    // The agent is asked to open at the ACK (210 ms) and fails at 260 ms.
    p.agent.open_after = None;
    p.at(260 * MS, Input::AgentFailed(failed()));
    p.run_until(Duration::from_secs(3));
    assert_eq!(p.agent_errors(), vec![(260 * MS, failed())]);
    // The media starts at the failure: the prompt's 50 packets at 260 … 1240 ms.
    assert_eq!(p.pbx.heard.first().map(|h| h.at - p.t0), Some(260 * MS));
    assert_eq!(payloads(&p, 260 * MS, 1240 * MS), prompt_ulaw(PROMPT_MS));
    assert_eq!(p.refers(), vec![(1240 * MS, "sip:2000@pbx.test".to_string())]);
    // NOTIFY 200 at 1240 + 1500 = 2740 ms.
    assert_eq!(p.hang_up(), Some((2740 * MS, None)));
    assert_eq!(p.core.ending().map(|e| e.outcome), Some(CallOutcome::Transferred));
    // Not one caller frame went to an agent that never was.
    assert_eq!(p.frames_to_agent(), 0);
}

#[test]
fn an_a_law_call_hears_the_prompt_in_a_law() {
    let pcma =
        String::from_utf8(offer("sendrecv")).expect("utf-8").replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
    let mut p = Pair::with(
        with_fallback(None),
        PbxScript::default(),
        Some(pcma.into_bytes()),
        TimerRequest::default(),
    );
    p.agent.open_after = None;
    p.at(260 * MS, Input::AgentFailed(failed()));
    p.run_until(Duration::from_secs(2));
    let mut alaw = prompt_ulaw(PROMPT_MS);
    voice_ua_media::g711::ulaw_to_alaw_in_place(&mut alaw);
    assert!(p.pbx.heard.iter().all(|h| h.header.payload_type == 8));
    assert_eq!(payloads(&p, 260 * MS, 1240 * MS), alaw);
    assert_eq!(p.hang_up(), Some((1240 * MS, None)));
}

#[test]
fn a_second_failure_does_not_restart_the_prompt() {
    let mut p = pair(None, PbxScript::default());
    agent_fails_mid_reply(&mut p);
    // The session's end follows its failure, and the agent's task may report twice.
    p.at(1500 * MS, agent_fails());
    p.at(1600 * MS, Input::Agent(AgentEvent::Ended(SessionEnd::CallEnded)));
    p.run_until(Duration::from_secs(5));
    assert_prompt_played(&p);
    assert_eq!(p.hang_up(), Some((2200 * MS, None)));
}

/// The agent asks for a transfer (REFER at 1010 ms) and then fails (1110 ms): the prompt
/// plays at 1120 … 2100 ms. The PBX takes each REFER; the test sends the NOTIFYs.
fn agent_transfer_then_failure() -> Pair {
    let script = PbxScript { notifies: vec![], ..PbxScript::default() };
    let mut p = pair(Some("2000"), script);
    p.at(1010 * MS, Input::Agent(AgentEvent::Transfer { target: "3000".into() }));
    p.at(1110 * MS, agent_fails());
    p
}

fn notify(code: u16) -> Input {
    Input::Signal(voice_ua_call::Signal::TransferProgress(code))
}

#[test]
fn the_agents_transfer_failing_during_the_prompt_does_not_cut_it_and_the_human_is_tried() {
    let mut p = agent_transfer_then_failure();
    p.at(1410 * MS, notify(486));
    p.at(3600 * MS, notify(200));
    p.run_until(Duration::from_secs(5));
    // The prompt plays to its end; then the fallback's own transfer goes out.
    let prompt: Vec<u8> = p.heard_since(1120 * MS).take(50).flat_map(|h| h.payload.clone()).collect();
    assert!(prompt == prompt_ulaw(PROMPT_MS), "the whole prompt, not cut at 1410 ms");
    assert_eq!(
        p.refers(),
        vec![(1010 * MS, "sip:3000@pbx.test".to_string()), (2100 * MS, "sip:2000@pbx.test".to_string())]
    );
    assert_eq!(p.hang_up(), Some((3600 * MS, None)));
    assert_eq!(p.core.ending().map(|e| e.outcome), Some(CallOutcome::Transferred));
}

#[test]
fn the_agents_transfer_failing_after_the_prompt_gives_way_to_the_human() {
    let mut p = agent_transfer_then_failure();
    // The prompt ended at 2100 ms while the agent's transfer was still under way, so the
    // fallback's could not start then; it starts when the agent's fails.
    p.at(3010 * MS, notify(486));
    p.at(4510 * MS, notify(200));
    p.run_until(Duration::from_secs(5));
    assert_eq!(
        p.refers(),
        vec![(1010 * MS, "sip:3000@pbx.test".to_string()), (3010 * MS, "sip:2000@pbx.test".to_string())]
    );
    assert_eq!(p.hang_up(), Some((4510 * MS, None)));
    assert_eq!(p.core.ending().map(|e| e.outcome), Some(CallOutcome::Transferred));
}
