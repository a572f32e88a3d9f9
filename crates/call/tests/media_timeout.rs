//! The media timeout, in virtual time: no RTP for longer than the timeout while the PBX
//! should be sending to us ends the call with a Q.850 102 BYE, at the first tick past
//! it; a call the PBX holds (`a=inactive` or `a=sendonly`) has no timeout.

mod harness;

use harness::*;
use std::time::Duration;
use voice_ua_call::{Action, CallSettings, EndedBy, Signal};
use voice_ua_records::CallOutcome;
use voice_ua_sip::Reason;

const MEDIA_TIMEOUT: Reason = Reason::q850(102, "media timeout");

fn ended_by_media_timeout(p: &Pair) {
    let e = p.core.ending().expect("the call ended");
    assert_eq!((e.outcome, e.by), (CallOutcome::MediaTimeout, EndedBy::VoiceUa));
    assert_eq!(e.why, "no RTP for 30 s");
}

#[test]
fn the_call_ends_at_the_first_tick_more_than_the_timeout_after_the_last_packet() {
    let mut p = Pair::new();
    // The PBX's packets go at 210 + 20 k ms; it stops at 1000 ms, so its last packet is
    // the 990 ms one. 30 s later is 30 990 ms; the ticks are at 260 + 20 k ms, so the
    // 30 980 ms tick is still within (29 990 ms of quiet) and the 31 000 ms tick is the
    // first past it.
    p.at(1000 * MS, Input::Stream(None));
    p.run_until(30_980 * MS);
    assert_eq!(p.bye(), None);
    assert!(p.core.ending().is_none());
    p.run_until(Duration::from_secs(40));
    assert_eq!(p.bye(), Some((31_000 * MS, Some(MEDIA_TIMEOUT))));
    ended_by_media_timeout(&p);
    // Nothing after the BYE: no packet, no other action.
    assert!(p.heard_since(31_020 * MS).next().is_none());
    assert!(matches!(p.pbx.actions.last(), Some((_, Action::HangUp { .. }))));
}

#[test]
fn the_timeout_is_strictly_more_than_the_setting() {
    // A timeout of 2010 ms puts "last packet + timeout" on a tick: 990 + 2010 = 3000 ms.
    // Exactly the timeout is not more than it: the BYE waits for the 3020 ms tick.
    let s = CallSettings { media_timeout: 2010 * MS, ..settings() };
    let mut p = Pair::with(s, PbxScript::default(), Some(offer("sendrecv")), Default::default());
    p.at(1000 * MS, Input::Stream(None));
    p.run_until(Duration::from_secs(5));
    assert_eq!(p.bye(), Some((3020 * MS, Some(MEDIA_TIMEOUT))));
    assert_eq!(p.core.ending().map(|e| e.outcome), Some(CallOutcome::MediaTimeout));
}

#[test]
fn a_pbx_that_never_streams_times_out_from_the_start_of_the_media() {
    // No RTP at all: the clock runs from the media's start (the agent open, 260 ms):
    // 30 260 ms is a tick and not past it, so 30 280 ms.
    let script = PbxScript { stream: None, ..PbxScript::default() };
    let mut p = Pair::with(settings(), script, Some(offer("sendrecv")), Default::default());
    p.run_until(Duration::from_secs(40));
    assert_eq!(p.bye(), Some((30_280 * MS, Some(MEDIA_TIMEOUT))));
    ended_by_media_timeout(&p);
}

#[test]
fn no_timeout_while_the_pbx_holds_the_call_inactive_and_the_clock_restarts_on_resume() {
    let mut p = Pair::new();
    // Held (a=inactive: neither side sends) at 1000 ms, the stream stops with it.
    p.at(1000 * MS, Input::Signal(Signal::Offer { sdp: offer("inactive") }));
    p.at(1000 * MS, Input::Stream(None));
    p.run_until(Duration::from_secs(60));
    assert_eq!(p.bye(), None, "held for 59 s without RTP, and no timeout");
    // Resumed at 60 s (a tick), still without RTP: the 30 s run from the resume, the
    // 90 000 ms tick is exactly 30 s (not more), so 90 020 ms.
    p.at(Duration::from_secs(60), Input::Signal(Signal::Offer { sdp: offer("sendrecv") }));
    p.run_until(Duration::from_secs(100));
    assert_eq!(p.bye(), Some((90_020 * MS, Some(MEDIA_TIMEOUT))));
    ended_by_media_timeout(&p);
}

#[test]
fn a_sendonly_hold_has_no_timeout_with_or_without_music_on_hold() {
    // a=sendonly (Asterisk's hold): the PBX may play music on hold or send nothing at
    // all. Either way the held caller is not hung up: here the music stops at 50 s and
    // the call is still up at 200 s. Resumed at 200 s without RTP, the timeout runs from
    // the resume: the first tick more than 30 s later is 230 020 ms.
    let mut p = Pair::new();
    p.at(1000 * MS, Input::Signal(Signal::Offer { sdp: offer("sendonly") }));
    p.at(Duration::from_secs(50), Input::Stream(None));
    p.run_until(Duration::from_secs(200));
    assert_eq!(p.bye(), None);
    p.at(Duration::from_secs(200), Input::Signal(Signal::Offer { sdp: offer("sendrecv") }));
    p.run_until(Duration::from_secs(240));
    assert_eq!(p.bye(), Some((230_020 * MS, Some(MEDIA_TIMEOUT))));
}
