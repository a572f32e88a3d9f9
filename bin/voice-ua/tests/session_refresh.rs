//! The session timer's wiring through the binary: an INVITE with
//! `Session-Expires: 90` and no `Supported: timer` makes us the refresher, both the
//! 200 OK and the answer to the PBX's re-INVITE say so, and our refresh reaches the wire
//! on its own task. The timer's behaviour (back-off, 481, expiry; the PBX refreshing)
//! is the call core's and is tested in virtual time in crates/call/tests/session_timer.rs.

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

/// Our refresh reaches the wire at half the interval, on its own task: while the PBX
/// leaves it unanswered, RTP keeps leaving every 20 ms. (About 50 s: the smallest
/// session interval is 90 s. Retries, back-off and expiry are tested in virtual time.)
#[test]
fn our_refresh_goes_out_at_half_the_interval_and_never_stalls_the_media() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut call = Call::start_with_invite_headers("refresh-wire", "", &[], "Session-Expires: 90\r\n");
    let t0 = Instant::now();
    // The caller talks all along (no media timeout) and notes when voice-ua's RTP arrives.
    let media = call.media.try_clone().expect("clone");
    let ua_rtp = call.ua_rtp;
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let rtp = std::thread::spawn(move || {
        media.set_read_timeout(Some(Duration::from_millis(2))).expect("timeout");
        let (mut arrivals, mut seq, mut next_send) = (Vec::new(), 0u16, Instant::now());
        let mut b = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_send {
                let _ =
                    media.send_to(&common::rtp(0, seq, u32::from(seq) * 160, seq == 0, &[0xff; 160]), ua_rtp);
                seq = seq.wrapping_add(1);
                next_send += Duration::from_millis(20);
            }
            if let Ok((len, _)) = media.recv_from(&mut b) {
                if len >= 12 {
                    arrivals.push(Instant::now());
                }
            }
        }
        arrivals
    });
    // The PBX side: the re-INVITE is left unanswered for 5 s, then the PBX hangs up.
    let refresh = loop {
        assert!(t0.elapsed() < Duration::from_secs(60), "no refresh re-INVITE within 60 s");
        let Some(m) = call.recv(Duration::from_millis(100)) else { continue };
        if m.starts_with("INVITE ") {
            break Instant::now();
        } else if m.starts_with("REGISTER ") {
            call.send(&reply(&m, "200 OK", ""));
        }
    };
    while refresh.elapsed() < Duration::from_secs(5) {
        if let Some(m) = call.recv(Duration::from_millis(100)) {
            if m.starts_with("REGISTER ") {
                call.send(&reply(&m, "200 OK", ""));
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    let arrivals = rtp.join().expect("rtp thread");
    let bye = call.next_cseq();
    call.send(&call.in_dialog("BYE", bye, "", ""));
    let (status, _) = call.stop();
    assert!(status.success(), "{status}");

    let at = refresh.duration_since(t0).as_secs_f64();
    assert!((44.0..47.0).contains(&at), "the refresh came at half the interval (45 s): {at:.1} s");
    let during: Vec<Instant> = arrivals.into_iter().filter(|t| *t >= refresh).collect();
    let worst = during.windows(2).map(|w| w[1].duration_since(w[0])).max().unwrap_or_default();
    assert!(
        during.len() > 200,
        "RTP from voice-ua while the refresh waited: {} packets in 5 s",
        during.len()
    );
    assert!(worst < Duration::from_millis(250), "RTP from voice-ua paused for {worst:?} during the refresh");
}
