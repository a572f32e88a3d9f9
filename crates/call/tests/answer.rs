//! Answering, in virtual time: ring then 200, the media starting once the agent is
//! open, refusals, a caller who gives up while it rings, a missing ACK.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_call::{Action, EndedBy, Signal};
use voice_ua_records::CallOutcome;
use voice_ua_sip::session_timer::TimerRequest;

#[test]
fn it_rings_for_the_ring_time_then_answers_and_media_flows_both_ways_every_20_ms() {
    let mut p = Pair::new();
    p.run_until(Duration::from_secs(2));
    assert!(matches!(p.pbx.actions.first(), Some((t, Action::Ring)) if *t == p.t0));
    assert_eq!(p.answered_at(), Some(200 * MS));
    // ACK at 210 ms, agent open 50 ms later: the first tick is at 260 ms.
    let (opened, _) = p.action(|a| matches!(a, Action::OpenAgent { .. })).expect("agent opened");
    assert_eq!(opened, 210 * MS);
    let first = p.pbx.heard.first().expect("our RTP");
    assert_eq!(first.at - p.t0, 260 * MS);
    assert_eq!(first.to, PBX_RTP.parse().expect("addr"));
    // One packet and one agent frame per 20 ms from then on: (2000 - 260) / 20 + 1.
    assert_eq!(p.pbx.heard.len(), 88);
    assert_eq!(p.frames_to_agent(), 88);
    for w in p.pbx.heard.windows(2) {
        assert_eq!(w[1].at - w[0].at, FRAME);
        assert_eq!(w[1].header.sequence, w[0].header.sequence.wrapping_add(1));
        assert_eq!(w[1].header.timestamp, w[0].header.timestamp.wrapping_add(160));
    }
    assert!(p.core.ending().is_none());
    // The PBX streams from its ACK (210 ms) every 20 ms; what came before the media
    // started (260 ms) was not ours to take: 270 ms … 1990 ms.
    assert_eq!(p.core.media_stats().packets_in, (1990 - 270) / 20 + 1);
}

#[test]
fn an_offer_without_g711_is_refused_with_488_at_once() {
    let g722 = b"v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=audio 40000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"
        .to_vec();
    let mut p = Pair::with(settings(), PbxScript::default(), Some(g722), TimerRequest::default());
    assert!(matches!(p.pbx.actions.as_slice(), [(_, Action::Reject { status: 488 })]), "{:?}", p.pbx.actions);
    let e = p.core.ending().expect("over");
    assert_eq!(e.outcome, CallOutcome::NoCodec);
    assert_eq!(e.by, EndedBy::VoiceUa);
    p.run_until(Duration::from_secs(1));
    assert_eq!(p.pbx.actions.len(), 1);
}

#[test]
fn a_cancel_while_it_rings_ends_the_call_unanswered() {
    let mut p = Pair::new();
    p.at(150 * MS, Input::Signal(Signal::Ended { by_remote: true, detail: "CANCEL".into() }));
    p.run_until(Duration::from_secs(1));
    assert_eq!(p.answered_at(), None);
    assert_eq!(p.core.ending().map(|e| e.outcome), Some(CallOutcome::CallerCancel));
    assert!(p.pbx.heard.is_empty());
}

#[test]
fn no_ack_ends_the_call_after_the_ack_wait() {
    let script = PbxScript { ack_after: None, ..PbxScript::default() };
    let mut p = Pair::with(settings(), script, Some(offer("sendrecv")), TimerRequest::default());
    p.run_until(Duration::from_secs(8));
    assert!(p.core.ending().is_none(), "still waiting at 8 s");
    p.run_until(Duration::from_secs(9));
    let e = p.core.ending().expect("gave up");
    assert_eq!((e.outcome, e.why.as_str()), (CallOutcome::Failed, "no ACK for our 200 OK"));
    assert!(p.action(|a| matches!(a, Action::OpenAgent { .. })).is_none());
}

#[test]
fn a_late_offer_is_ours_and_the_ack_answers_it() {
    let script = PbxScript { ack_sdp: Some(offer("sendrecv")), ..PbxScript::default() };
    let mut p = Pair::with(settings(), script, None, TimerRequest::default());
    p.run_until(Duration::from_secs(1));
    let (_, answer) = p.action(|a| matches!(a, Action::Answer { .. })).expect("200");
    let Action::Answer { sdp, .. } = answer else { unreachable!() };
    assert!(sdp.contains("m=audio 30000 RTP/AVP 0 8 101"), "{sdp}");
    assert!(!p.pbx.heard.is_empty());
    assert_eq!(p.core.plan().map(|p| p.pt), Some(0));
}
