//! The session timer (RFC 4028) both ways, in virtual time. The timer starts with the
//! media (the agent open, 260 ms). When we refresh (refresher=uas) a refresh is due at
//! half the interval after the start or the last success; a failed one is retried after
//! 2 s, 4 s, 8 s … (2 s after a 491), a 481 ends the call, and with no success the call
//! ends at the interval. When the PBX refreshes (refresher=uac) its re-offers keep the
//! call, and without one it ends at the interval less min(32 s, a third of it).

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_call::{Action, EndedBy, Signal};
use voice_ua_records::CallOutcome;
use voice_ua_sip::session_timer::TimerRequest;
use voice_ua_sip::Reason;

const EXPIRED: Reason = Reason::sip(408, "session timer expired");

fn timer(refresher_uac: bool) -> TimerRequest {
    TimerRequest {
        session_expires: Some(90),
        refresher_uac: Some(refresher_uac),
        min_se: Some(90),
        supported: true,
    }
}

/// A call where we refresh every 90 s session, the PBX answering as `answers` says.
fn we_refresh(answers: Vec<(Duration, Result<u16, String>)>) -> Pair {
    let script = PbxScript { refresh_answers: answers, ..PbxScript::default() };
    Pair::with(settings(), script, Some(offer("sendrecv")), timer(false))
}

/// When (after the INVITE) each of our refreshes left.
fn refreshes(p: &Pair) -> Vec<Duration> {
    p.actions_where(|a| matches!(a, Action::Refresh { .. })).into_iter().map(|(t, _)| t).collect()
}

fn session_expired(p: &Pair) {
    let e = p.core.ending().expect("the call ended");
    assert_eq!((e.outcome, e.by), (CallOutcome::SessionExpired, EndedBy::VoiceUa));
}

#[test]
fn we_refresh_at_half_the_interval_and_again_half_an_interval_after_each_success() {
    let mut p = we_refresh(vec![(40 * MS, Ok(200))]);
    p.run_until(Duration::from_secs(200));
    let (_, answer) = p.action(|a| matches!(a, Action::Answer { .. })).expect("200");
    let Action::Answer { headers, .. } = answer else { unreachable!() };
    assert_eq!(
        headers,
        &vec![("Session-Expires", "90;refresher=uas".to_string()), ("Require", "timer".to_string())]
    );
    // 260 ms + 45 s; each answered 40 ms later, the next 45 s after that answer.
    assert_eq!(refreshes(&p), vec![45_260 * MS, 90_300 * MS, 135_340 * MS, 180_380 * MS]);
    // A refresh offers our last SDP again (RFC 4028 §7.4): the same o= version.
    let bodies = p.actions_where(|a| matches!(a, Action::Refresh { .. }));
    let Action::Answer { sdp: first, .. } = answer else { unreachable!() };
    let Action::Refresh { sdp: refresh } = bodies[0].1 else { unreachable!() };
    assert_eq!(refresh, first);
    assert!(p.core.ending().is_none());
    // The media never waited for a refresh: a packet every tick, 260 ms … 200 s.
    assert_eq!(p.pbx.heard.len(), (200_000 - 260) / 20 + 1);
}

#[test]
fn a_failed_refresh_is_retried_after_2_4_and_8_s_until_one_succeeds() {
    let fail = (40 * MS, Ok(500));
    let mut p =
        we_refresh(vec![fail.clone(), (40 * MS, Err("no response".into())), fail, (40 * MS, Ok(200))]);
    p.run_until(Duration::from_secs(110));
    // 45 260 ms fails at 45 300 → +2 s; 47 300 fails (no answer) at 47 340 → +4 s;
    // 51 340 fails at 51 380 → +8 s; 59 380 succeeds at 59 420 → +45 s.
    assert_eq!(refreshes(&p), vec![45_260 * MS, 47_300 * MS, 51_340 * MS, 59_380 * MS, 104_420 * MS]);
    assert!(p.core.ending().is_none());
}

#[test]
fn a_491_glare_is_retried_in_2_s_whatever_the_failures_before() {
    let mut p = we_refresh(vec![(40 * MS, Ok(500)), (40 * MS, Ok(491)), (40 * MS, Ok(200))]);
    p.run_until(Duration::from_secs(60));
    // 45 260 ms fails (500) at 45 300 → +2 s; 47 300 gets 491 at 47 340 → +2 s (a
    // second ordinary failure would wait 4 s).
    assert_eq!(refreshes(&p), vec![45_260 * MS, 47_300 * MS, 49_340 * MS]);
}

#[test]
fn a_481_to_our_refresh_ends_the_call_at_once() {
    let mut p = we_refresh(vec![(40 * MS, Ok(481))]);
    p.run_until(Duration::from_secs(60));
    assert_eq!(p.bye(), Some((45_300 * MS, Some(Reason::sip(481, "session refresh: dialog gone")))));
    session_expired(&p);
    assert_eq!(refreshes(&p), vec![45_260 * MS]);
}

#[test]
fn a_refresh_never_answered_ends_the_call_at_the_expiry() {
    let mut p = we_refresh(vec![]);
    p.run_until(Duration::from_secs(120));
    // One refresh, never answered (one at a time); the session ends at 260 ms + 90 s.
    assert_eq!(refreshes(&p), vec![45_260 * MS]);
    assert_eq!(p.bye(), Some((90_260 * MS, Some(EXPIRED))));
    session_expired(&p);
}

#[test]
fn refreshes_that_keep_failing_end_the_call_at_the_expiry() {
    let mut p = we_refresh(vec![(40 * MS, Ok(503))]);
    p.run_until(Duration::from_secs(120));
    // Back-offs 2, 4, 8, 16 s, then 30 s would land past the expiry (90 260 ms).
    assert_eq!(refreshes(&p), vec![45_260 * MS, 47_300 * MS, 51_340 * MS, 59_380 * MS, 75_420 * MS]);
    assert_eq!(p.bye(), Some((90_260 * MS, Some(EXPIRED))));
    session_expired(&p);
}

/// A call where the PBX refreshes, re-offering at each of `offers`.
fn they_refresh(offers: &[Duration]) -> Pair {
    let mut p = Pair::with(settings(), PbxScript::default(), Some(offer("sendrecv")), timer(true));
    for &at in offers {
        p.at(at, Input::Signal(Signal::Offer { sdp: offer("sendrecv") }));
    }
    p
}

#[test]
fn the_pbx_s_refreshes_keep_the_call_and_each_answer_carries_session_expires() {
    // Expiry without a refresh: 90 s − min(32 s, 30 s) = 60 s after the last one.
    let mut p = they_refresh(&[Duration::from_secs(45), Duration::from_secs(90), Duration::from_secs(135)]);
    p.run_until(Duration::from_secs(180));
    let (_, answer) = p.action(|a| matches!(a, Action::Answer { .. })).expect("200");
    assert!(matches!(answer, Action::Answer { headers, .. }
        if *headers == vec![("Session-Expires", "90;refresher=uac".to_string()), ("Require", "timer".to_string())]));
    let answers = p.actions_where(|a| matches!(a, Action::AnswerOffer { .. }));
    assert_eq!(answers.len(), 3);
    for (_, a) in answers {
        assert!(matches!(a, Action::AnswerOffer { headers, .. }
            if *headers == vec![("Session-Expires", "90;refresher=uac".to_string())]));
    }
    assert!(refreshes(&p).is_empty(), "the PBX refreshes, not us");
    assert!(p.core.ending().is_none(), "{:?}", p.core.ending());
    // The last refresh at 135 s: the session ends at 195 s without another.
    p.run_until(Duration::from_secs(200));
    assert_eq!(p.bye(), Some((195_000 * MS, Some(EXPIRED))));
    session_expired(&p);
}

#[test]
fn no_refresh_from_the_pbx_ends_the_call_at_the_expiry() {
    let mut p = they_refresh(&[]);
    p.run_until(Duration::from_secs(120));
    // From the start (260 ms): 260 ms + 60 s.
    assert_eq!(p.bye(), Some((60_260 * MS, Some(EXPIRED))));
    session_expired(&p);
    assert!(refreshes(&p).is_empty());
}
