//! The monitoring endpoint end to end: voice-ua with `[http] listen` on a free
//! loopback port, a fake PBX and caller (tests/common). /healthz answers 200 once
//! registered; /metrics counts the call while it runs and after the caller's BYE.

mod common;

use common::{http_get as get, sample, Call};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

#[test]
fn health_and_metrics_follow_registration_and_calls() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut call = Call::start("http-metrics", &format!("[http]\nlisten = \"{http}\"\n"), &[]);
    // A failed assertion must not leave voice-ua running (the test would hang on its stderr).
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| during_the_call(&call, http)));
    if let Err(panic) = checked {
        let _ = call.ua.kill();
        let _ = call.ua.wait();
        std::panic::resume_unwind(panic);
    }
    let (status, _logs) = call.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(get(http, "/healthz").is_none(), "the listener closes with the process");
}

fn during_the_call(call: &Call, http: SocketAddr) {
    // Registered (Call::start answered the REGISTER with 200) and in a call.
    let deadline = Instant::now() + Duration::from_secs(5);
    let health = loop {
        match get(http, "/healthz") {
            Some((200, body)) => break body,
            other => assert!(Instant::now() < deadline, "no 200 from /healthz: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health.trim(), "registered");
    let (code, text) = get(http, "/metrics").expect("/metrics");
    assert_eq!(code, 200);
    assert_eq!(sample(&text, "voice_ua_registered"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "voice_ua_active_calls"), Some(1.0), "{text}");
    assert!(text.contains("# TYPE voice_ua_calls_total counter"), "{text}");

    // 1 s of silence both ways, then the caller hangs up.
    let mut got = Vec::new();
    call.talk_silence(0, 50, &mut got);
    call.send(&call.in_dialog("BYE", 2, "", ""));
    let bye_ok = call.recv(Duration::from_secs(5)).expect("an answer to BYE");
    assert!(bye_ok.starts_with("SIP/2.0 200") && bye_ok.contains("CSeq: 2 BYE"), "{bye_ok}");

    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (_, text) = get(http, "/metrics").expect("/metrics");
        if sample(&text, "voice_ua_active_calls") == Some(0.0) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sample(&text, "voice_ua_active_calls"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "voice_ua_calls_total{outcome=\"caller_hangup\"}"), Some(1.0), "{text}");
    assert!(sample(&text, "voice_ua_rtp_packets_in_total").unwrap_or(0.0) >= 40.0, "{text}");
    assert!(sample(&text, "voice_ua_rtp_packets_out_total").unwrap_or(0.0) > 0.0, "{text}");
    assert_eq!(get(http, "/nothing").map(|r| r.0), Some(404));

    // An INVITE the SIP layer refuses (a session timer under the 90 s minimum: 422)
    // never becomes a call, but it is counted.
    let (pbx, ua) = (call.pbx_addr, call.ua_sip);
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    call.send(&format!(
        "INVITE sip:9000@{ua} SIP/2.0\r\nVia: SIP/2.0/UDP {pbx};branch=z9hG4bKshort\r\n\
         From: <sip:2002@127.0.0.1>;tag=short\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: short-timer@pbx\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:2002@{pbx}>\r\nMax-Forwards: 70\r\nSupported: timer\r\n\
         Session-Expires: 30\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    let refusal = loop {
        assert!(Instant::now() < deadline, "no final answer to the short-timer INVITE");
        if let Some(m) = call.recv(Duration::from_millis(100)) {
            if m.contains("short-timer@pbx") && !m.starts_with("SIP/2.0 1") {
                break m;
            }
        }
    };
    assert!(refusal.starts_with("SIP/2.0 422"), "{refusal}");
    let (_, text) = get(http, "/metrics").expect("/metrics");
    assert_eq!(sample(&text, "voice_ua_calls_total{outcome=\"refused_422\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "voice_ua_calls_total{outcome=\"refused_403\"}"), Some(0.0), "{text}");
}
