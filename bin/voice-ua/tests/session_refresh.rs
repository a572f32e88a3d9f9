//! The session timer's wiring through the binary, in a second: an INVITE with
//! `Session-Expires: 90` and no `Supported: timer` makes us the refresher, and both the
//! 200 OK and the answer to the PBX's re-INVITE say so. The timer's behaviour (refresh
//! at half the interval, back-off, 481, expiry; the PBX refreshing) is the call core's
//! and is tested in virtual time in crates/call/tests/session_timer.rs.

mod common;

use common::{header, reply, Call};
use std::time::{Duration, Instant};

/// The next final response to `method` with CSeq `cseq`.
fn response(call: &Call, cseq: u32, method: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = format!("{cseq} {method}");
    loop {
        assert!(Instant::now() < deadline, "no final response to {want}");
        let Some(m) = call.recv(Duration::from_millis(100)) else { continue };
        if m.starts_with("REGISTER ") {
            call.send(&reply(&m, "200 OK", ""));
        } else if m.starts_with("SIP/2.0 2") && header(&m, "CSeq") == Some(want.as_str()) {
            return m;
        }
    }
}

#[test]
fn the_200_and_the_answer_to_a_re_invite_name_us_the_refresher() {
    let mut call = Call::launch("refresh", "", &[]);
    call.send(&call.invite_request("Session-Expires: 90\r\n"));
    let ok = response(&call, 1, "INVITE");
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uas"), "{ok}");
    assert_eq!(header(&ok, "Require"), None, "the PBX did not say it supports timers: {ok}");
    call.to = header(&ok, "To").expect("To").to_string();
    call.send(&call.in_dialog("ACK", 1, "", ""));

    // Once the media runs (a re-offer before that is refused with 491), a re-INVITE
    // with the same offer: its 200 carries the session's interval again.
    let mut b = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(5);
    while call.media.recv_from(&mut b).is_err() {
        assert!(Instant::now() < deadline, "no RTP from voice-ua");
    }
    let invite = call.invite_request("");
    let offer = invite.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let cseq = call.next_cseq();
    call.send(&call.in_dialog("INVITE", cseq, "Content-Type: application/sdp\r\n", offer));
    let ok = response(&call, cseq, "INVITE");
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uas"), "{ok}");
    call.send(&call.in_dialog("ACK", cseq, "", ""));

    let bye = call.next_cseq();
    call.send(&call.in_dialog("BYE", bye, "", ""));
    response(&call, bye, "BYE");
    let (status, _) = call.stop();
    assert!(status.success(), "{status}");
}
