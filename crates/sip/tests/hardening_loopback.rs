//! The gate under attack, on loopback: the PBX on 127.0.0.1 and a stranger on
//! 127.0.0.2. A stranger's BYE, re-INVITE, INFO, REFER, UPDATE or NOTIFY inside a
//! real call gets 403 and the call goes on; a NOTIFY with no transfer of ours under
//! way gets 481 and is no transfer outcome; an answer never ACKed gives its place
//! back as soon as its call is dropped; an OPTIONS flood from a stranger is held to
//! its budget and the PBX's next call is still answered.

mod common;

use common::{
    final_response, in_dialog, invite, next_call, next_signal, reply, request, to_tag, until_ended, FakePbx,
    OFFER, PW,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use voice_ua_sip::negotiate::{Codec, OfferAnswer};
use voice_ua_sip::{CallSignal, IncomingCall, SipSettings, SipUa, ACK_WAIT};

async fn agent(pbx: SocketAddr, max_calls: usize) -> SipUa {
    let mut s = SipSettings::new("9000", &pbx.to_string(), PW);
    s.bind = "127.0.0.1:0".parse().expect("addr");
    s.accept_calls = true;
    s.max_calls = max_calls;
    SipUa::start(s).await.expect("starts")
}

/// Register, and return the agent's address.
async fn registered(pbx: &FakePbx) -> SocketAddr {
    let (reg, ua) = pbx.recv_sip().await;
    pbx.send(&reply(&reg, "200 OK", ""), ua).await;
    ua
}

/// The PBX (127.0.0.1), a stranger (127.0.0.2), a registered agent taking 2 calls,
/// its calls and its address.
async fn with_a_stranger() -> (FakePbx, FakePbx, SipUa, Receiver<IncomingCall>, SocketAddr) {
    let pbx = FakePbx::bind().await;
    let stranger = FakePbx::bind_on("127.0.0.2").await;
    let mut agent = agent(pbx.addr(), 2).await;
    let calls = agent.take_calls().expect("calls");
    let ua = registered(&pbx).await;
    (pbx, stranger, agent, calls, ua)
}

/// The final response for `call_id` (skipping 1xx and other calls' retransmissions).
async fn response_for(pbx: &FakePbx, call_id: &str) -> String {
    loop {
        let m = final_response(pbx).await;
        if m.contains(&format!("Call-ID: {call_id}\r\n")) {
            return m;
        }
    }
}

/// Answer `call` and return the 200 OK.
async fn answer(pbx: &FakePbx, call: &IncomingCall) -> String {
    let mut oa = OfferAnswer::new(vec![Codec::Pcmu], "127.0.0.1:10000".parse().expect("a"), 1);
    let (_, sdp) = oa.answer(call.info.offer.as_deref().expect("offer")).expect("negotiates");
    call.accept(&sdp, vec![]).expect("200");
    let ok = response_for(pbx, &call.info.sip_call_id).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    ok
}

async fn no_signal(call: &mut IncomingCall, why: &str) {
    if let Ok(sig) = tokio::time::timeout(Duration::from_millis(300), call.next()).await {
        panic!("{why}: got {sig:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_requests_inside_a_call_get_403_and_the_call_goes_on() {
    let (pbx, stranger, agent, mut calls, ua) = with_a_stranger().await;

    let id = "h-1@pbx";
    pbx.send(&invite(id, OFFER, ""), ua).await;
    let mut call = next_call(&mut calls).await;
    let tag = to_tag(&answer(&pbx, &call).await);
    pbx.send(&in_dialog("ACK", id, 1, &tag, "", ""), ua).await;
    assert!(matches!(next_signal(&mut call).await, CallSignal::Acked { .. }));

    // The stranger knows the dialog (Call-ID and both tags) but not the route.
    let sdp = "Content-Type: application/sdp\r\n";
    let notify = "Event: refer\r\nSubscription-State: terminated\r\nContent-Type: message/sipfrag\r\n";
    let attempts = [
        ("BYE", "", ""),
        ("INVITE", sdp, OFFER),
        ("UPDATE", sdp, OFFER),
        ("INFO", "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n"),
        ("REFER", "Refer-To: <sip:900123@127.0.0.2>\r\n", ""),
        ("NOTIFY", notify, "SIP/2.0 200 OK\r\n"),
    ];
    for (cseq, (method, extra, body)) in (2..).zip(attempts) {
        stranger.send(&in_dialog(method, id, cseq, &tag, extra, body), ua).await;
        let resp = final_response(&stranger).await;
        assert!(resp.starts_with("SIP/2.0 403"), "{method} from a stranger: {resp}");
        assert!(resp.contains(&format!("CSeq: {cseq} {method}")), "{resp}");
    }
    no_signal(&mut call, "the stranger's requests never reach the call").await;
    assert_eq!(agent.refusals().snapshot().in_dialog_forbidden, 6);

    // The PBX itself, but no REFER of ours under way: 481, and no transfer outcome.
    pbx.send(&in_dialog("NOTIFY", id, 10, &tag, notify, "SIP/2.0 200 OK\r\n"), ua).await;
    let resp = response_for(&pbx, id).await;
    assert!(resp.starts_with("SIP/2.0 481") && resp.contains("CSeq: 10 NOTIFY"), "{resp}");
    no_signal(&mut call, "an unsolicited NOTIFY is no transfer outcome").await;

    // Our REFER: its NOTIFY is the transfer's outcome; one after the subscription
    // ended is 481 again.
    let transferer = call.transferer();
    let refer = tokio::spawn(async move { transferer.refer("sip:9001@127.0.0.1").await });
    let (req, _) = pbx.recv_not_register().await;
    assert!(req.starts_with("REFER "), "{req}");
    pbx.send(&reply(&req, "202 Accepted", ""), ua).await;
    assert_eq!(refer.await.expect("join").expect("refer"), 202);
    pbx.send(&in_dialog("NOTIFY", id, 11, &tag, notify, "SIP/2.0 200 OK\r\n"), ua).await;
    assert!(matches!(next_signal(&mut call).await, CallSignal::TransferProgress(200)));
    let resp = response_for(&pbx, id).await;
    assert!(resp.starts_with("SIP/2.0 200") && resp.contains("CSeq: 11 NOTIFY"), "{resp}");
    pbx.send(&in_dialog("NOTIFY", id, 12, &tag, notify, "SIP/2.0 200 OK\r\n"), ua).await;
    let resp = response_for(&pbx, id).await;
    assert!(resp.starts_with("SIP/2.0 481") && resp.contains("CSeq: 12 NOTIFY"), "{resp}");

    // The PBX's BYE still ends the call.
    pbx.send(&in_dialog("BYE", id, 13, &tag, "", ""), ua).await;
    let resp = response_for(&pbx, id).await;
    assert!(resp.starts_with("SIP/2.0 200") && resp.contains("CSeq: 13 BYE"), "{resp}");
    let end = until_ended(&mut call).await;
    assert!(end.by_remote, "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_never_acked_gives_its_place_back_when_its_call_is_dropped() {
    let pbx = FakePbx::bind().await;
    let mut agent = agent(pbx.addr(), 1).await;
    let mut calls = agent.take_calls().expect("calls");
    let ua = registered(&pbx).await;

    // A forged INVITE from the PBX's address: answered, never ACKed.
    pbx.send(&invite("forged@pbx", OFFER, ""), ua).await;
    let forged = next_call(&mut calls).await;
    answer(&pbx, &forged).await;
    // While it waits for its ACK it holds the one pending place.
    pbx.send(&invite("meanwhile@pbx", OFFER, ""), ua).await;
    let resp = response_for(&pbx, "meanwhile@pbx").await;
    assert!(resp.starts_with("SIP/2.0 486"), "{resp}");
    // Its call task drops it: the place is free at once, not when the 200's
    // retransmissions time out (32 s).
    drop(forged);

    // A second forged INVITE, followed by its call task: it ends by itself after
    // ACK_WAIT (8 s), and its place is free again.
    pbx.send(&invite("forged-2@pbx", OFFER, ""), ua).await;
    let mut forged = next_call(&mut calls).await;
    answer(&pbx, &forged).await;
    let started = std::time::Instant::now();
    let end = tokio::time::timeout(ACK_WAIT + Duration::from_secs(2), forged.next()).await;
    let Ok(Some(CallSignal::Ended(end))) = end else { panic!("no end of the un-ACKed call: {end:?}") };
    assert!(!end.by_remote && end.detail.contains("no ACK"), "{end:?}");
    assert!(started.elapsed() >= ACK_WAIT - Duration::from_millis(100), "{:?}", started.elapsed());
    assert!(forged.next().await.is_none());

    pbx.send(&invite("real@pbx", OFFER, ""), ua).await;
    let mut real = next_call(&mut calls).await;
    let tag = to_tag(&answer(&pbx, &real).await);
    pbx.send(&in_dialog("ACK", "real@pbx", 1, &tag, "", ""), ua).await;
    assert!(matches!(next_signal(&mut real).await, CallSignal::Acked { .. }));
    // Established, it counts against max_calls = 1.
    pbx.send(&invite("third@pbx", OFFER, ""), ua).await;
    let resp = response_for(&pbx, "third@pbx").await;
    assert!(resp.starts_with("SIP/2.0 486"), "{resp}");
    assert_eq!(agent.refusals().snapshot().busy, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_options_flood_from_a_stranger_is_held_to_its_budget_and_the_pbx_still_gets_through() {
    let (pbx, stranger, agent, mut calls, ua) = with_a_stranger().await;

    // 2,000 OPTIONS in well under a second (a pause every 5, so that the kernel's
    // socket buffer is not what drops them, even on a busy machine).
    let started = std::time::Instant::now();
    for i in 0..2_000 {
        stranger.sock.send_to(request("OPTIONS", i, "").as_bytes(), ua).await.expect("send");
        if i % 5 == 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // The kernel may have dropped the INVITE from a full socket buffer: like a real
    // PBX, retransmit it (RFC 3261 Timer A) until it is taken.
    let after = invite("after-flood@pbx", OFFER, "");
    let mut call = None;
    for _ in 0..10 {
        pbx.send(&after, ua).await;
        if let Ok(c) = tokio::time::timeout(Duration::from_millis(500), calls.recv()).await {
            call = c;
            break;
        }
    }
    let call = call.expect("the PBX's call got through within 5 s");
    answer(&pbx, &call).await;

    let mut answered = 0;
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), stranger.sock.recv_from(&mut buf)).await
    {
        answered += 1;
    }
    // The burst (20) and 5 a second since; the rest dropped unanswered.
    let elapsed = started.elapsed().as_secs_f64();
    let budget = 20 + (5.0 * elapsed).ceil() as usize;
    let dropped = agent.refusals().snapshot().dropped;
    eprintln!("flood: {answered} answered (budget {budget} in {elapsed:.1} s), {dropped} dropped");
    assert!((1..=budget).contains(&answered), "the stranger got {answered} answers");
    assert!(dropped >= 1_500, "only {dropped} dropped");
}
