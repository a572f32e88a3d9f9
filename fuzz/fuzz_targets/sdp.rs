//! SDP: parse an offer, answer it with OfferAnswer (as a call does for an INVITE,
//! re-INVITE or UPDATE), then parse the answer we produced: it must parse, carry the
//! codec and direction we chose, and answering the same offer again gives the same plan.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_ua_sip::negotiate::{Codec, OfferAnswer};
use voice_ua_sip::sdp::SessionDescription;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = SessionDescription::parse(data) {
        for m in &sd.media {
            let _ = sd.connection_for(m);
            let _ = sd.direction_for(m);
            for pt in m.payload_types() {
                let _ = m.rtpmap(pt);
                let _ = m.fmtp(pt);
            }
        }
    }
    let local = "127.0.0.1:40000".parse().expect("a socket address");
    let mut oa = OfferAnswer::new(vec![Codec::Pcmu, Codec::Pcma], local, 7);
    let Ok((plan, answer)) = oa.answer(data) else { return };
    let parsed = SessionDescription::parse(answer.as_bytes()).expect("our answer parses");
    let m = parsed.media.iter().find(|m| m.port != 0).expect("our answer accepts one stream");
    assert!(m.payload_types().any(|pt| pt == plan.pt), "the chosen payload type is in the answer");
    assert_eq!(parsed.direction_for(m), plan.direction);
    let (again, _) = oa.answer(data).expect("the same offer is answered again");
    assert_eq!(again, plan);
    // Our own offer parses too, and the peer's answer to it may be anything.
    let offer = oa.offer();
    SessionDescription::parse(offer.as_bytes()).expect("our offer parses");
    let _ = oa.accept_answer(data);
});
