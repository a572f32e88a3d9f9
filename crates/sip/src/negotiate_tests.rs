//! Offer/answer as the PBX exercises it: first offer, hold and resume, a moved
//! remote, a codec change, session refreshes, late offers, and refusals.

use super::*;
use crate::sdp::SessionDescription;

const LOCAL: &str = "127.0.0.1:10000";

fn oa(prefs: &[Codec]) -> OfferAnswer {
    OfferAnswer::new(prefs.to_vec(), LOCAL.parse().expect("addr"), 7)
}

fn offer(port: u16, pts: &str, extra: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n{extra}"
    )
}

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(s.as_bytes()).expect("our SDP parses")
}

#[test]
fn first_offer_picks_our_preference_and_telephone_event() {
    let mut oa = oa(&[Codec::Pcmu, Codec::Pcma]);
    let (plan, body) = oa.answer(offer(16000, "8 0 101", "a=ptime:20\r\n").as_bytes()).expect("answers");
    assert_eq!(plan.codec, Codec::Pcmu, "our list decides, not the offer order");
    assert_eq!(plan.pt, 0);
    assert_eq!(plan.dtmf_pt, Some(101));
    assert_eq!(plan.remote, Some("127.0.0.1:16000".parse().expect("addr")));
    assert_eq!(plan.direction, Direction::SendRecv);
    let sd = parse(&body);
    let m = &sd.media[0];
    assert_eq!(m.port, 10000);
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, 101]);
    assert_eq!(m.fmtp(101), Some("0-16"));
    assert_eq!(m.ptime, Some(20));
    assert_eq!(sd.direction_for(m), Direction::SendRecv);
    let mut pcma_first = self::oa(&[Codec::Pcma, Codec::Pcmu]);
    let (plan, _) = pcma_first.answer(offer(16000, "0 8", "").as_bytes()).expect("answers");
    assert_eq!(plan.codec, Codec::Pcma);
}

#[test]
fn static_payload_types_without_rtpmap_are_understood() {
    let mut oa = oa(&[Codec::Pcma]);
    let bare =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";
    let (plan, _) = oa.answer(bare.as_bytes()).expect("answers");
    assert_eq!((plan.codec, plan.pt, plan.dtmf_pt), (Codec::Pcma, 8, None));
}

#[test]
fn hold_and_resume() {
    let mut oa = oa(&[Codec::Pcmu]);
    let (_, first) = oa.answer(offer(16000, "0 101", "").as_bytes()).expect("answers");
    let (plan, held) = oa.answer(offer(16000, "0 101", "a=sendonly\r\n").as_bytes()).expect("hold");
    assert_eq!(plan.direction, Direction::RecvOnly);
    assert!(!plan.direction.we_send());
    assert_eq!(parse(&held).direction_for(&parse(&held).media[0]), Direction::RecvOnly);
    assert!(parse(&held).origin_version > parse(&first).origin_version, "changed SDP, new version");
    let (plan, _) = oa.answer(offer(16000, "0 101", "a=inactive\r\n").as_bytes()).expect("inactive");
    assert_eq!(plan.direction, Direction::Inactive);
    let (plan, resumed) = oa.answer(offer(16000, "0 101", "a=sendrecv\r\n").as_bytes()).expect("resume");
    assert_eq!(plan.direction, Direction::SendRecv);
    assert!(resumed.contains("a=sendrecv"));
    // Old-style hold: c=0.0.0.0.
    let old = offer(16000, "0", "").replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let (plan, _) = oa.answer(old.as_bytes()).expect("old hold");
    assert_eq!((plan.remote, plan.direction), (None, Direction::RecvOnly));
}

#[test]
fn our_refresh_repeats_our_last_sdp_exactly() {
    let mut oa = oa(&[Codec::Pcmu, Codec::Pcma]);
    assert_eq!(oa.refresh_offer(), None);
    let (_, answer) = oa.answer(offer(16000, "8 101", "").as_bytes()).expect("answers");
    assert_eq!(oa.refresh_offer().as_deref(), Some(answer.as_str()));
}

#[test]
fn a_session_refresh_gets_the_identical_answer() {
    let mut oa = oa(&[Codec::Pcmu]);
    let (_, a) = oa.answer(offer(16000, "0 101", "").as_bytes()).expect("answers");
    let (_, b) = oa.answer(offer(16000, "0 101", "").as_bytes()).expect("refresh");
    assert_eq!(a, b, "same SDP and same o= version");
}

#[test]
fn reoffers_move_the_remote_and_change_codec_never_replaying_stale_sdp() {
    let mut oa = oa(&[Codec::Pcmu, Codec::Pcma]);
    oa.answer(offer(16000, "0 8 101", "").as_bytes()).expect("answers");
    let moved = offer(17000, "0 8 101", "").replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.9");
    let (plan, _) = oa.answer(moved.as_bytes()).expect("moved");
    assert_eq!(plan.remote, Some("127.0.0.9:17000".parse().expect("addr")));
    assert_eq!(plan.codec, Codec::Pcmu, "keeps the codec while it is still offered");
    let (plan, body) = oa.answer(offer(17000, "8 101", "").as_bytes()).expect("codec change");
    assert_eq!((plan.codec, plan.pt), (Codec::Pcma, 8));
    let m = &parse(&body).media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![8, 101], "answer names the new codec");
    assert_eq!(oa.current(), Some(&plan));
}

#[test]
fn refusals_carry_the_right_status() {
    let mut oa = oa(&[Codec::Pcmu, Codec::Pcma]);
    let g729 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let e = oa.answer(g729.as_bytes()).expect_err("no common codec");
    assert_eq!(e.status(), 488);
    assert!(e.to_string().contains("G729/8000") && e.to_string().contains("PCMU, PCMA"), "{e}");
    let video_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n";
    assert_eq!(oa.answer(video_only.as_bytes()), Err(NegotiationError::NoAudio));
    let no_c = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(oa.answer(no_c.as_bytes()), Err(NegotiationError::NoConnection));
    assert_eq!(oa.answer(no_c.as_bytes()).map_err(|e| e.status()), Err(488));
    assert_eq!(oa.answer(b"garbage").map_err(|e| e.status()), Err(400));
    let wrong_rate = offer(4000, "0", "").replace("PCMU/8000", "PCMU/16000");
    assert_eq!(oa.answer(wrong_rate.as_bytes()).map_err(|e| e.status()), Err(488));
}

#[test]
fn other_streams_are_rejected_in_place() {
    let mut oa = oa(&[Codec::Pcmu]);
    let two = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 4000 RTP/AVP 0\r\n";
    let (plan, body) = oa.answer(two.as_bytes()).expect("audio accepted");
    assert_eq!(plan.remote, Some("127.0.0.1:4000".parse().expect("addr")));
    let sd = parse(&body);
    assert_eq!(sd.media.len(), 2, "one m-line per offered m-line");
    assert_eq!((sd.media[0].kind.as_str(), sd.media[0].port), ("video", 0));
    assert_eq!((sd.media[1].kind.as_str(), sd.media[1].port), ("audio", 10000));
}

#[test]
fn late_offer_then_answer_in_the_ack() {
    let mut oa = oa(&[Codec::Pcmu, Codec::Pcma]);
    let ours = oa.offer();
    let m = &parse(&ours).media[0];
    assert_eq!(m.payload_types().collect::<Vec<_>>(), vec![0, 8, 101]);
    let answer = offer(20000, "8 101", "");
    let plan = oa.accept_answer(answer.as_bytes()).expect("accepted");
    assert_eq!(
        (plan.codec, plan.dtmf_pt, plan.remote),
        (Codec::Pcma, Some(101), Some("127.0.0.1:20000".parse().expect("a")))
    );
    let g729 = offer(20000, "18", "a=rtpmap:18 G729/8000\r\n");
    assert_eq!(oa.accept_answer(g729.as_bytes()), Err(NegotiationError::AnswerMismatch));
}

#[test]
fn a_refused_m_line_never_copies_a_control_character_into_our_answer() {
    let hostile = offer(16000, "0", "m=video 0 RTP/AVP\u{1}X 31\r\n");
    assert!(matches!(oa(&[Codec::Pcmu]).answer(hostile.as_bytes()), Err(NegotiationError::Sdp(_))));
}

proptest::proptest! {
    /// Any offer with extra lines of any text: refused, or answered with SDP that is
    /// printable lines we read back, one m= line per offered one (RFC 3264 §6).
    #[test]
    fn any_answer_is_clean_sdp_with_one_m_line_per_offer(
        extra in proptest::collection::vec("[a-z]=[\\x00-\\x7f]{0,30}", 0..6),
    ) {
        let text = offer(16000, "0 8 101", &extra.iter().map(|l| format!("{l}\r\n")).collect::<String>());
        let offered = SessionDescription::parse(text.as_bytes());
        let mut oa = oa(&[Codec::Pcmu, Codec::Pcma]);
        if let Ok((_, body)) = oa.answer(text.as_bytes()) {
            proptest::prop_assert!(body.split("\r\n").all(|l| !l.chars().any(char::is_control)), "{:?}", body);
            let ours = parse(&body);
            proptest::prop_assert_eq!(ours.media.len(), offered.map(|o| o.media.len()).unwrap_or(0));
        }
        let _ = oa.accept_answer(text.as_bytes());
    }

    #[test]
    fn any_bytes_never_panic_either_side(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let mut b = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n".to_vec();
        b.extend(bytes);
        let _ = oa(&[Codec::Pcmu]).answer(&b);
        let _ = oa(&[Codec::Pcmu]).accept_answer(&b);
    }

    #[test]
    fn any_offer_is_answered_or_refused_never_panics(
        port in 0u16..=65535,
        pts in proptest::collection::vec(0u8..130, 0..8),
        dir in proptest::sample::select(vec!["", "a=sendonly\r\n", "a=recvonly\r\n", "a=inactive\r\n"]),
    ) {
        let mut oa = oa(&[Codec::Pcmu, Codec::Pcma, Codec::G722]);
        let pts: Vec<String> = pts.iter().map(|p| p.to_string()).collect();
        match oa.answer(offer(port, &pts.join(" "), dir).as_bytes()) {
            Ok((plan, body)) => {
                let sd = parse(&body);
                proptest::prop_assert!(sd.media.iter().any(|m| m.payload_types().any(|pt| pt == plan.pt)));
            }
            Err(e) => proptest::prop_assert!(e.status() == 488 || e.status() == 400),
        }
    }
}
