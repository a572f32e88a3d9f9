//! Hold, resume and other re-offers, in virtual time: every re-offer is answered at
//! once; while held we send no RTP and on resume it flows again from the next tick; a
//! moved RTP address takes our packets from the next tick; an offer without G.711 is
//! refused with 488; an offerless re-INVITE gets our offer and the ACK's answer applies.

mod harness;

use harness::*;
use std::net::SocketAddr;
use std::time::Duration;
use voice_ua_call::{Action, Signal};

/// An offer from `conn`, port `port`, with `formats` (the m= line's list and their
/// attribute lines), in `direction`.
fn sdp(conn: &str, port: u16, formats: &str, direction: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=pbx 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {conn}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {formats}\r\na=ptime:20\r\na={direction}\r\n"
    )
    .into_bytes()
}

/// A PCMU/PCMA offer with telephone-event, from `conn`, port `port`, in `direction`.
fn offer_at(conn: &str, port: u16, direction: &str) -> Vec<u8> {
    let formats = "0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                   a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16";
    sdp(conn, port, formats, direction)
}

fn re_offer(p: &mut Pair, at: Duration, sdp: Vec<u8>) {
    p.at(at, Input::Signal(Signal::Offer { sdp }));
}

/// The answers to re-offers: (when, the SDP's direction attribute).
fn answered_directions(p: &Pair) -> Vec<(Duration, String)> {
    p.actions_where(|a| matches!(a, Action::AnswerOffer { .. }))
        .into_iter()
        .map(|(t, a)| {
            let Action::AnswerOffer { sdp, .. } = a else { unreachable!() };
            let dir = sdp
                .lines()
                .filter_map(|l| l.strip_prefix("a="))
                .find(|a| ["sendrecv", "sendonly", "recvonly", "inactive"].contains(a))
                .unwrap_or("none");
            (t, dir.to_string())
        })
        .collect()
}

/// Hold with `hold` at 1010 ms (between the 1000 and 1020 ms ticks), resume with
/// sendrecv at 2010 ms; returns the pair run to 3 s.
fn hold_and_resume(hold: Vec<u8>) -> Pair {
    let mut p = Pair::new();
    re_offer(&mut p, 1010 * MS, hold);
    re_offer(&mut p, 2010 * MS, offer("sendrecv"));
    p.run_until(Duration::from_secs(3));
    p
}

/// Held with `hold` (answered `answered`) and resumed: see [`silent_while_held`].
fn held_then_resumed(hold: Vec<u8>, answered: &str) -> Pair {
    let p = hold_and_resume(hold);
    assert_eq!(
        answered_directions(&p),
        vec![(1010 * MS, answered.to_string()), (2010 * MS, "sendrecv".to_string())]
    );
    silent_while_held(&p);
    p
}

/// No packet from the 1020 ms tick to the 2000 ms one; one every tick before and after.
fn silent_while_held(p: &Pair) {
    assert_eq!(p.heard_between(1020 * MS, 2020 * MS).count(), 0, "RTP sent while held");
    let before: Vec<_> = p.heard_between(260 * MS, 1020 * MS).collect();
    assert_eq!(before.len(), (1000 - 260) / 20 + 1);
    assert_eq!(before.last().map(|h| h.at - p.t0), Some(1000 * MS));
    // Resumed at 2010 ms: packets again from the 2020 ms tick, every tick to 3000 ms.
    let after: Vec<_> = p.heard_since(2020 * MS).collect();
    assert_eq!(after.len(), (3000 - 2020) / 20 + 1);
    assert_eq!(after.first().map(|h| h.at - p.t0), Some(2020 * MS));
    assert!(after.iter().all(|h| h.to == PBX_RTP.parse().expect("addr")));
}

#[test]
fn a_sendonly_hold_is_answered_recvonly_and_we_send_nothing_until_the_resume() {
    let p = held_then_resumed(offer("sendonly"), "recvonly");
    // The agent still hears the caller's side (the PBX's music) every tick meanwhile.
    assert_eq!(p.frames_to_agent_since(1020 * MS), (3000 - 1020) / 20 + 1);
}

#[test]
fn an_inactive_hold_is_answered_inactive_and_we_send_nothing_until_the_resume() {
    held_then_resumed(offer("inactive"), "inactive");
}

#[test]
fn an_old_style_hold_to_0_0_0_0_is_answered_recvonly_and_we_send_nothing() {
    held_then_resumed(offer_at("0.0.0.0", 40000, "sendrecv"), "recvonly");
}

#[test]
fn a_re_offer_moving_the_rtp_port_takes_our_packets_from_the_next_tick() {
    let moved: SocketAddr = "127.0.0.1:40002".parse().expect("addr");
    let mut p = Pair::new();
    re_offer(&mut p, 1010 * MS, offer_at("127.0.0.1", 40002, "sendrecv"));
    // The PBX's media moves with its offer: its packets come from the new port from
    // 1010 ms on (they go at 210 + 20 k ms; the offer is taken before the packet of the
    // same instant). A straggler from the old port after the offer would latch the
    // media back there (the source filter's rule for the first packet from the SDP's IP).
    p.run_until(1000 * MS);
    p.pbx.rtp_from = Some(moved);
    p.run_until(Duration::from_secs(2));
    assert_eq!(answered_directions(&p), vec![(1010 * MS, "sendrecv".to_string())]);
    let old: SocketAddr = PBX_RTP.parse().expect("addr");
    assert!(p.heard_between(260 * MS, 1020 * MS).all(|h| h.to == old));
    let after: Vec<_> = p.heard_since(1020 * MS).collect();
    assert_eq!(after.len(), (2000 - 1020) / 20 + 1);
    assert!(after.iter().all(|h| h.to == moved), "{:?}", after.iter().map(|h| h.to).collect::<Vec<_>>());
    // The caller's audio from the new address is taken: the media keeps counting it.
    assert_eq!(p.core.media_stats().packets_in, (1990 - 270) / 20 + 1);
}

#[test]
fn a_re_offer_without_g711_is_refused_with_488_and_the_media_goes_on() {
    let g722 = sdp("127.0.0.1", 40008, "9\r\na=rtpmap:9 G722/8000", "sendrecv");
    let mut p = Pair::new();
    re_offer(&mut p, 1010 * MS, g722);
    p.run_until(Duration::from_secs(2));
    let answers = p.actions_where(|a| matches!(a, Action::AnswerOffer { .. } | Action::RejectOffer { .. }));
    assert!(matches!(answers.as_slice(), [(t, Action::RejectOffer { status: 488 })] if *t == 1010 * MS));
    // Nothing changed: PCMU to the same address, every tick.
    assert_eq!(p.heard_since(260 * MS).count(), (2000 - 260) / 20 + 1);
    assert!(p.pbx.heard.iter().all(|h| h.to == PBX_RTP.parse().expect("addr") && h.header.payload_type == 0));
    assert!(p.core.ending().is_none());
}

#[test]
fn an_offerless_re_invite_gets_our_offer_and_the_ack_s_answer_is_applied() {
    let moved: SocketAddr = "127.0.0.1:40004".parse().expect("addr");
    let mut p = Pair::new();
    re_offer(&mut p, 1010 * MS, Vec::new());
    // The PBX's ACK answers our offer with a new port, and its media moves there.
    p.at(1050 * MS, Input::Signal(Signal::Acked { sdp: Some(offer_at("127.0.0.1", 40004, "sendrecv")) }));
    p.run_until(1040 * MS);
    p.pbx.rtp_from = Some(moved);
    p.run_until(Duration::from_secs(2));
    let (at, a) = p.action(|a| matches!(a, Action::AnswerOffer { .. })).expect("our offer");
    assert_eq!(at, 1010 * MS);
    let Action::AnswerOffer { sdp, .. } = a else { unreachable!() };
    assert!(sdp.contains("m=audio 30000 RTP/AVP 0 8 101\r\n"), "{sdp}");
    assert!(sdp.contains("a=sendrecv"), "{sdp}");
    // Until the ACK (1050 ms) the old address; from the next tick (1060 ms) the new one.
    let old: SocketAddr = PBX_RTP.parse().expect("addr");
    assert!(p.heard_between(260 * MS, 1060 * MS).all(|h| h.to == old));
    let after: Vec<_> = p.heard_since(1060 * MS).collect();
    assert_eq!(after.len(), (2000 - 1060) / 20 + 1);
    assert!(after.iter().all(|h| h.to == moved));
}
