//! The blind transfer the agent asks for (AgentEvent::Transfer), in virtual time: the
//! REFER, the PBX's answer and NOTIFYs, the one TransferOutcome the agent gets for each
//! request, and the agent's last words playing out before the REFER.
//!
//! Timings (harness defaults): ticks at 260 ms + k × 20 ms; the PBX answers a REFER 30 ms
//! after it, and sends NOTIFY 100 at +200 ms and NOTIFY 200 at +1500 ms.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_agent::{AgentEvent, CallInput, TransferOutcome};
use voice_ua_call::{Action, EndedBy, TRANSFER_REPORT_AFTER};
use voice_ua_records::{CallOutcome, CallRecord};
use voice_ua_sip::session_timer::TimerRequest;

fn transfer(target: &str) -> Input {
    Input::Agent(AgentEvent::Transfer { target: target.into() })
}

fn pair(script: PbxScript) -> Pair {
    Pair::with(settings(), script, Some(offer("sendrecv")), TimerRequest::default())
}

/// A script whose PBX takes the REFER with 202 and then reports these NOTIFY codes
/// (after the REFER).
fn notifying(notifies: Vec<(Duration, u16)>) -> PbxScript {
    PbxScript { notifies, ..PbxScript::default() }
}

#[test]
fn notify_200_completes_the_transfer_and_hangs_up_without_a_reason() {
    let mut p = Pair::new();
    p.at(1010 * MS, transfer("2000"));
    p.run_until(Duration::from_secs(5));
    // Nothing queued: the REFER goes out at the request, to the extension at the domain.
    assert_eq!(p.refers(), vec![(1010 * MS, "sip:2000@pbx.test".to_string())]);
    // NOTIFY 200 at 1010 + 1500 = 2510 ms: the agent hears "completed" once, and the call
    // is over at that instant with a plain BYE.
    assert_eq!(p.transfer_results(), vec![(2510 * MS, TransferOutcome::Completed)]);
    assert_eq!(p.hang_up(), Some((2510 * MS, None)));
    let e = p.core.ending().expect("over");
    assert_eq!((e.outcome, e.by), (CallOutcome::Transferred, EndedBy::VoiceUa));
    assert_eq!(p.tools(), vec![(2510 * MS, "transfer".to_string(), "completed")]);
    // The last tick was at 2500 ms (260 + 112 × 20): nothing is sent after the BYE.
    assert_eq!(p.pbx.heard.last().map(|h| h.at - p.t0), Some(2500 * MS));
    assert!(matches!(p.pbx.actions.last(), Some((_, Action::HangUp { reason: None }))));
    let mut r = CallRecord::new("id", "call", "1001", "9000", std::time::SystemTime::UNIX_EPOCH);
    p.core.fill_record(&mut r);
    assert_eq!(r.outcome, CallOutcome::Transferred);
    assert_eq!(r.transfer_target.as_deref(), Some("sip:2000@pbx.test"));
    assert_eq!(r.hung_up_by, "voice-ua");
}

#[test]
fn a_sip_uri_target_is_referred_to_as_given() {
    let mut p = Pair::new();
    p.at(1010 * MS, transfer("sip:queue@other.example"));
    p.run_until(Duration::from_secs(2));
    assert_eq!(p.refers(), vec![(1010 * MS, "sip:queue@other.example".to_string())]);
}

#[test]
fn notify_486_fails_the_transfer_and_the_call_goes_on_with_the_agent() {
    let mut p = pair(notifying(vec![(200 * MS, 100), (1500 * MS, 486)]));
    p.at(1010 * MS, transfer("2000"));
    p.run_until(Duration::from_secs(4));
    assert_eq!(p.transfer_results(), vec![(2510 * MS, TransferOutcome::Failed { status: 486 })]);
    assert_eq!(p.hang_up(), None);
    assert!(p.core.ending().is_none());
    // The call goes on both ways: a packet and an agent frame every tick from 2520 to
    // 4000 ms ((4000 - 2520) / 20 + 1 = 75).
    assert_eq!(p.heard_since(2520 * MS).count(), 75);
    assert_eq!(p.frames_to_agent_since(2520 * MS), 75);
    // The failed transfer is over: the agent may try again, and a new REFER goes out.
    p.at(4010 * MS, transfer("3000"));
    p.run_until(Duration::from_secs(5));
    assert_eq!(p.refers().last(), Some(&(4010 * MS, "sip:3000@pbx.test".to_string())));
    assert_eq!(p.transfer_results().len(), 1, "no answer to the second one yet");
}

#[test]
fn the_accepted_report_is_exact_even_when_the_202_falls_between_ticks() {
    // 202 at 1010 + 37 = 1047 ms, between the 1040 and 1060 ms ticks: the core wakes for
    // the report itself, at 1047 ms + 4 s = 5047 ms, not at the next tick.
    let script = PbxScript {
        refer_answer: Some((37 * MS, Ok(202))),
        notifies: vec![(200 * MS, 100)],
        ..PbxScript::default()
    };
    let mut p = Pair::with(settings(), script, Some(offer("sendrecv")), TimerRequest::default());
    p.at(1010 * MS, transfer("2000"));
    p.run_until(Duration::from_secs(8));
    assert_eq!(p.transfer_results(), vec![(1047 * MS + TRANSFER_REPORT_AFTER, TransferOutcome::Accepted)]);
}

#[test]
fn with_no_final_notify_the_agent_hears_accepted_4_s_after_the_202_and_only_once() {
    let mut p = pair(notifying(vec![(200 * MS, 100), (8000 * MS, 200)]));
    p.at(1010 * MS, transfer("2000"));
    p.run_until(Duration::from_secs(8));
    // 202 at 1010 + 30 = 1040 ms; the report comes exactly TRANSFER_REPORT_AFTER later:
    // 5040 ms.
    assert_eq!(TRANSFER_REPORT_AFTER, Duration::from_secs(4));
    assert_eq!(p.transfer_results(), vec![(1040 * MS + TRANSFER_REPORT_AFTER, TransferOutcome::Accepted)]);
    assert!(p.core.ending().is_none(), "accepted is not the end: the caller is still here");
    // The NOTIFY 200 that comes late (1010 + 8000 = 9010 ms) still ends the call, but the
    // agent already had its one outcome.
    p.run_until(Duration::from_secs(10));
    assert_eq!(p.transfer_results().len(), 1);
    assert_eq!(p.hang_up(), Some((9010 * MS, None)));
    assert_eq!(p.core.ending().map(|e| e.outcome), Some(CallOutcome::Transferred));
}

#[test]
fn a_refused_refer_reports_the_status_and_the_call_goes_on() {
    let script =
        PbxScript { refer_answer: Some((30 * MS, Ok(403))), notifies: vec![], ..PbxScript::default() };
    let mut p = pair(script);
    p.at(1010 * MS, transfer("2000"));
    p.run_until(Duration::from_secs(3));
    assert_eq!(p.transfer_results(), vec![(1040 * MS, TransferOutcome::Refused { status: 403 })]);
    assert_eq!(p.tools(), vec![(1040 * MS, "transfer".to_string(), "refused")]);
    assert_eq!(p.hang_up(), None);
    assert_eq!(p.heard_since(1060 * MS).count(), (3000 - 1060) / 20 + 1);
}

#[test]
fn a_refer_without_an_answer_reports_no_answer() {
    for answer in [Err("timed out".to_string()), Ok(0)] {
        let script = PbxScript {
            refer_answer: Some((32 * MS, answer.clone())),
            notifies: vec![],
            ..PbxScript::default()
        };
        let mut p = pair(script);
        p.at(1010 * MS, transfer("2000"));
        p.run_until(Duration::from_secs(2));
        assert_eq!(p.transfer_results(), vec![(1042 * MS, TransferOutcome::NoAnswer)], "{answer:?}");
        assert_eq!(p.hang_up(), None, "{answer:?}");
    }
}

#[test]
fn a_second_transfer_while_one_is_under_way_is_not_started() {
    let mut p = Pair::new();
    p.at(1010 * MS, transfer("2000"));
    p.at(1100 * MS, transfer("3000"));
    p.run_until(Duration::from_secs(3));
    // One REFER; the second request is answered at once, the first by its NOTIFY 200.
    assert_eq!(p.refers().len(), 1);
    assert_eq!(
        p.transfer_results(),
        vec![(1100 * MS, TransferOutcome::AlreadyInProgress), (2510 * MS, TransferOutcome::Completed)]
    );
    assert_eq!(p.hang_up(), Some((2510 * MS, None)));
}

#[test]
fn a_transfer_asked_while_the_agent_speaks_waits_for_its_last_packet() {
    let mut p = Pair::new();
    // 600 ms of audio at 1000 ms (a tick): 30 packets, at 1000 … 1580 ms.
    p.agent_says(1000 * MS, 600);
    p.at(1010 * MS, transfer("2000"));
    p.run_until(Duration::from_secs(4));
    assert_eq!(p.loud_span(), Some((1000 * MS, 1580 * MS)));
    assert_eq!(p.heard_since(1000 * MS).filter(|h| h.loud()).count(), 30, "every last word played");
    // The REFER leaves at the tick the last agent packet left, not before.
    assert_eq!(p.refers(), vec![(1580 * MS, "sip:2000@pbx.test".to_string())]);
    assert_eq!(p.transfer_results(), vec![(3080 * MS, TransferOutcome::Completed)]);
    assert_eq!(p.hang_up(), Some((3080 * MS, None)));
    // The agent kept hearing the caller while its words played.
    assert!(p.agent.inputs.iter().any(|(t, i)| *t == p.t(1580 * MS) && matches!(i, CallInput::Audio(_))));
}
