//! The datagram screen in front of rsipstack (voice_ua_sip::screen), on whatever
//! arrives at the SIP socket, and the 400 built for what it refuses. Nothing may
//! panic; the verdict is consistent with the bytes (a request starts with its method,
//! a response with SIP/2.0 and a status in range, a keepalive is whitespace); a 400
//! is built only for a request, and our own reader takes it as a 400 with the Via
//! and Call-ID copied.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_ua_sip::bad_request::bad_request_for;
use voice_ua_sip::message::ResponseView;
use voice_ua_sip::screen::{screen, Method, Verdict};

const NAMED: [(Method, &str); 14] = [
    (Method::Invite, "INVITE "),
    (Method::Ack, "ACK "),
    (Method::Bye, "BYE "),
    (Method::Cancel, "CANCEL "),
    (Method::Options, "OPTIONS "),
    (Method::Register, "REGISTER "),
    (Method::Info, "INFO "),
    (Method::Update, "UPDATE "),
    (Method::Prack, "PRACK "),
    (Method::Refer, "REFER "),
    (Method::Notify, "NOTIFY "),
    (Method::Subscribe, "SUBSCRIBE "),
    (Method::Message, "MESSAGE "),
    (Method::Publish, "PUBLISH "),
];

fuzz_target!(|data: &[u8]| {
    let verdict = screen(data);
    assert_eq!(screen(data), verdict, "the same bytes, the same verdict");
    match verdict {
        Verdict::Keepalive => assert!(data.iter().all(u8::is_ascii_whitespace), "{data:?}"),
        Verdict::Request { method, .. } => {
            if let Some((_, name)) = NAMED.iter().find(|(m, _)| *m == method) {
                assert!(data.starts_with(name.as_bytes()), "{method:?}");
            } else {
                assert!(!data.starts_with(b"SIP/2.0 "));
            }
        }
        Verdict::Response { status } => {
            assert!((100..=699).contains(&status), "{status}");
            assert!(data.starts_with(b"SIP/2.0 "));
        }
        Verdict::Malformed(_) => {}
    }
    let Some(resp) = bad_request_for(data, "Bad Request", "t1") else { return };
    assert!(!matches!(verdict, Verdict::Response { .. } | Verdict::Keepalive), "{verdict:?}: {resp}");
    let view = ResponseView::parse(resp.as_bytes()).expect("our 400 reads as a response");
    assert_eq!(view.status, 400);
    assert!(view.header("Call-ID").is_some(), "{resp}");
    assert!(view.header("Via").is_some(), "{resp}");
});
