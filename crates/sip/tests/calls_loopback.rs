//! Incoming calls end to end on loopback against the fake PBX: answer with an SDP
//! from the offer/answer core, ACK, hold re-INVITE, INFO digits, in-dialog OPTIONS,
//! BYE from the PBX; BYE from our side; CANCEL before answer; the security gate.

mod common;

use common::{
    body, final_response, header, in_dialog, invite, next_call, next_signal, reply, to_tag, until_ended,
    FakePbx, OFFER, PW,
};
use std::net::SocketAddr;
use std::time::Duration;
use voice_ua_sip::negotiate::{Codec, OfferAnswer};
use voice_ua_sip::sdp::Direction;
use voice_ua_sip::{CallSignal, SipSettings, SipUa};

async fn agent(pbx: SocketAddr) -> SipUa {
    let mut s = SipSettings::new("9000", &pbx.to_string(), PW);
    s.bind = "127.0.0.1:0".parse().expect("addr");
    s.accept_calls = true;
    s.max_calls = 2;
    SipUa::start(s).await.expect("starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_answered_held_resumed_and_hung_up_by_the_pbx() {
    let pbx = FakePbx::bind().await;
    let mut agent = agent(pbx.addr()).await;
    let mut calls = agent.take_calls().expect("calls");
    let (reg, ua) = pbx.recv_sip().await;
    pbx.send(&reply(&reg, "200 OK", ""), ua).await;

    pbx.send(&invite("call-1@pbx", OFFER, "Supported: timer\r\nSession-Expires: 90\r\n"), ua).await;
    let mut call = next_call(&mut calls).await;
    assert_eq!(call.info.sip_call_id, "call-1@pbx");
    assert_eq!(call.info.timer.session_expires, Some(90));
    let mut oa = OfferAnswer::new(vec![Codec::Pcmu, Codec::Pcma], "127.0.0.1:10000".parse().expect("a"), 1);
    let (plan, answer) = oa.answer(call.info.offer.as_deref().expect("offer")).expect("negotiates");
    assert_eq!(plan.codec, Codec::Pcmu);
    call.ringing().expect("180");
    call.accept(&answer, vec![("Session-Expires", "90;refresher=uac".into()), ("Require", "timer".into())])
        .expect("200");
    let ok = final_response(&pbx).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
    assert!(body(&ok).contains("m=audio 10000 RTP/AVP 0 101"), "{ok}");
    assert_eq!(header(&ok, "Session-Expires"), Some("90;refresher=uac"));
    assert!(header(&ok, "Contact").is_some_and(|c| c.contains("sip:9000@127.0.0.1:")), "{ok}");
    let tag = to_tag(&ok);
    pbx.send(&in_dialog("ACK", "call-1@pbx", 1, &tag, "", ""), ua).await;
    assert!(matches!(next_signal(&mut call).await, CallSignal::Acked { sdp: None }));

    // Hold: a re-INVITE with sendonly is answered recvonly.
    let hold = OFFER.replace("a=ptime:20\r\n", "a=ptime:20\r\na=sendonly\r\n");
    pbx.send(&in_dialog("INVITE", "call-1@pbx", 2, &tag, "Content-Type: application/sdp\r\n", &hold), ua)
        .await;
    let CallSignal::Offer(req) = next_signal(&mut call).await else { panic!("expected a re-offer") };
    let (plan, answer) = oa.answer(&req.sdp).expect("hold negotiates");
    assert_eq!(plan.direction, Direction::RecvOnly);
    req.answer(answer, vec![]).await;
    let ok = final_response(&pbx).await;
    assert!(ok.starts_with("SIP/2.0 200") && ok.contains("CSeq: 2 INVITE"), "{ok}");
    assert!(body(&ok).contains("a=recvonly"), "{ok}");
    pbx.send(&in_dialog("ACK", "call-1@pbx", 2, &tag, "", ""), ua).await;
    assert!(matches!(next_signal(&mut call).await, CallSignal::Acked { .. }));

    // A re-offer the call task drops unanswered still gets a deliberate 500, not 501.
    pbx.send(&in_dialog("UPDATE", "call-1@pbx", 3, &tag, "Content-Type: application/sdp\r\n", OFFER), ua)
        .await;
    let CallSignal::Offer(req) = next_signal(&mut call).await else { panic!("expected UPDATE") };
    assert!(req.is_update);
    drop(req);
    let resp = final_response(&pbx).await;
    assert!(resp.starts_with("SIP/2.0 500") && resp.contains("CSeq: 3 UPDATE"), "{resp}");

    // DTMF by INFO, and an in-dialog OPTIONS, are answered 200.
    pbx.send(
        &in_dialog(
            "INFO",
            "call-1@pbx",
            4,
            &tag,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=5\r\nDuration=160\r\n",
        ),
        ua,
    )
    .await;
    assert!(matches!(next_signal(&mut call).await, CallSignal::Digit('5')));
    let resp = final_response(&pbx).await;
    assert!(resp.starts_with("SIP/2.0 200") && resp.contains("CSeq: 4 INFO"), "{resp}");
    pbx.send(&in_dialog("OPTIONS", "call-1@pbx", 5, &tag, "", ""), ua).await;
    let resp = final_response(&pbx).await;
    assert!(resp.starts_with("SIP/2.0 200") && resp.contains("CSeq: 5 OPTIONS"), "{resp}");

    // The PBX hangs up.
    pbx.send(&in_dialog("BYE", "call-1@pbx", 6, &tag, "", ""), ua).await;
    let resp = final_response(&pbx).await;
    assert!(resp.starts_with("SIP/2.0 200") && resp.contains("CSeq: 6 BYE"), "{resp}");
    let end = until_ended(&mut call).await;
    assert!(end.by_remote, "{end:?}");
    assert!(call.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_hang_up_cancel_rejects_and_the_limit_and_timer_checks_hold() {
    let pbx = FakePbx::bind().await;
    let mut agent = agent(pbx.addr()).await;
    let mut calls = agent.take_calls().expect("calls");
    let (reg, ua) = pbx.recv_sip().await;
    pbx.send(&reply(&reg, "200 OK", ""), ua).await;

    // Our BYE.
    pbx.send(&invite("call-2@pbx", OFFER, ""), ua).await;
    let mut call = next_call(&mut calls).await;
    let mut oa = OfferAnswer::new(vec![Codec::Pcma], "127.0.0.1:10002".parse().expect("a"), 2);
    let (_, answer) = oa.answer(call.info.offer.as_deref().expect("offer")).expect("negotiates");
    call.accept(&answer, vec![]).expect("200");
    let ok = final_response(&pbx).await;
    assert!(body(&ok).contains("RTP/AVP 8 101"), "{ok}");
    let tag = to_tag(&ok);
    pbx.send(&in_dialog("ACK", "call-2@pbx", 1, &tag, "", ""), ua).await;
    assert!(matches!(next_signal(&mut call).await, CallSignal::Acked { .. }));
    let hang = tokio::spawn(async move {
        call.hangup(None).await.expect("bye sent");
        call
    });
    let (bye, _) = pbx.recv_not_register().await;
    assert!(bye.starts_with(&format!("BYE sip:pbx@{} ", pbx.addr())), "BYE goes to the PBX's Contact: {bye}");
    pbx.send(&reply(&bye, "200 OK", ""), ua).await;
    let mut call = hang.await.expect("join");
    loop {
        if let CallSignal::Ended(end) = next_signal(&mut call).await {
            assert!(!end.by_remote, "{end:?}");
            break;
        }
    }

    // CANCEL before answer: 200 to the CANCEL, 487 to the INVITE.
    pbx.send(&invite("call-3@pbx", OFFER, ""), ua).await;
    let mut call = next_call(&mut calls).await;
    call.ringing().expect("180");
    let ringing = final_response_or_provisional(&pbx, "180").await;
    assert!(ringing.starts_with("SIP/2.0 180"));
    let cancel =
        in_dialog("CANCEL", "call-3@pbx", 1, "", "", "").replace("CANCEL1call-3@pbx", "INVITE1call-3@pbx");
    pbx.send(&cancel, ua).await;
    let mut got = vec![];
    for _ in 0..2 {
        got.push(final_response(&pbx).await);
    }
    assert!(got.iter().any(|r| r.starts_with("SIP/2.0 200") && r.contains("CANCEL")), "{got:?}");
    assert!(got.iter().any(|r| r.starts_with("SIP/2.0 487") && r.contains("INVITE")), "{got:?}");
    assert!(matches!(next_signal(&mut call).await, CallSignal::Ended(CallEnd { by_remote: true, .. })));

    // No common codec: the call task rejects with 488.
    pbx.send(&invite("call-4@pbx", &OFFER.replace(" 0 8 101", " 18"), ""), ua).await;
    let call = next_call(&mut calls).await;
    let err = oa.answer(call.info.offer.as_deref().expect("offer")).expect_err("no common codec");
    call.reject(err.status()).expect("rejected");
    let resp = final_response(&pbx).await;
    assert!(resp.starts_with("SIP/2.0 488"), "{resp}");

    // A session interval below 90 s: 422 with Min-SE, no call offered.
    pbx.send(&invite("call-5@pbx", OFFER, "Supported: timer\r\nSession-Expires: 30\r\n"), ua).await;
    let resp = final_response(&pbx).await;
    assert!(resp.starts_with("SIP/2.0 422") && header(&resp, "Min-SE") == Some("90"), "{resp}");

    // The limit (2): two ringing calls, the third is busy.
    pbx.send(&invite("call-6@pbx", OFFER, ""), ua).await;
    let _a = next_call(&mut calls).await;
    pbx.send(&invite("call-7@pbx", OFFER, ""), ua).await;
    let _b = next_call(&mut calls).await;
    pbx.send(&invite("call-8@pbx", OFFER, ""), ua).await;
    let resp = final_response(&pbx).await;
    assert!(resp.starts_with("SIP/2.0 486") && resp.contains("call-8@pbx"), "{resp}");
}

use voice_ua_sip::CallEnd;

async fn final_response_or_provisional(pbx: &FakePbx, code: &str) -> String {
    loop {
        let (m, _) = pbx.recv_not_register().await;
        if m.starts_with(&format!("SIP/2.0 {code}")) || !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_from_anyone_but_the_pbx_is_refused_and_never_offered() {
    // The registrar is 127.0.0.2 (loopback, silent); the caller below is 127.0.0.1.
    let caller = FakePbx::bind().await;
    let mut s = SipSettings::new("9000", "127.0.0.2:5999", PW);
    s.bind = "127.0.0.1:0".parse().expect("addr");
    s.accept_calls = true;
    let mut agent = SipUa::start(s).await.expect("starts");
    let mut calls = agent.take_calls().expect("calls");
    caller.send(&invite("scan-1@x", OFFER, ""), agent.local_addr()).await;
    let resp = final_response(&caller).await;
    assert!(resp.starts_with("SIP/2.0 403"), "{resp}");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), calls.recv()).await.is_err(),
        "no call reaches the application"
    );
}
