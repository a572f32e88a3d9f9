//! The SIP user agent end to end on loopback against a fake PBX written here: a plain UDP
//! socket that challenges, grants, qualifies with OPTIONS, rings with an INVITE,
//! sends broken requests, and watches the keepalive and the un-register.

mod common;

use common::{header, reply, request, FakePbx, PW};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use voice_ua_sip::{KeepaliveMode, RegStatus, SipSettings, SipUa};

/// Answer REGISTERs until one with credentials is granted; returns the agent's address.
async fn register_flow(pbx: &FakePbx) -> SocketAddr {
    let (first, ua) = pbx.recv_sip().await;
    assert!(first.starts_with("REGISTER sip:"), "{first}");
    assert!(header(&first, "Authorization").is_none());
    let challenge = "WWW-Authenticate: Digest realm=\"fake\", nonce=\"abc\", qop=\"auth\", algorithm=MD5\r\n";
    pbx.send(&reply(&first, "401 Unauthorized", challenge), ua).await;
    let (second, _) = pbx.recv_sip().await;
    let auth = header(&second, "Authorization").expect("answers the challenge");
    assert!(auth.contains("username=\"9000\"") && auth.contains("realm=\"fake\""), "{auth}");
    assert_eq!(header(&first, "Call-ID"), header(&second, "Call-ID"));
    let contact = header(&second, "Contact").expect("contact").to_string();
    pbx.send(&reply(&second, "200 OK", &format!("Contact: {contact};expires=120\r\n")), ua).await;
    ua
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_answers_the_pbx_and_unregisters() {
    let pbx = FakePbx { sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind") };
    let pbx_addr = pbx.sock.local_addr().expect("addr");
    let mut s = SipSettings::new("9000", &pbx_addr.to_string(), PW);
    s.bind = "127.0.0.1:0".parse().expect("addr");
    s.keepalive = KeepaliveMode::Crlf;
    s.keepalive_interval = Duration::from_secs(1);
    let agent = SipUa::start(s).await.expect("starts");
    let mut status = agent.status();
    let ua = register_flow(&pbx).await;
    assert_eq!(ua, agent.local_addr(), "REGISTER comes from the socket voice-ua listens on");
    tokio::time::timeout(
        Duration::from_secs(2),
        status.wait_for(|s| matches!(s, RegStatus::Registered { expires: 120 })),
    )
    .await
    .expect("registered in time")
    .expect("status");

    // Qualify: OPTIONS gets 200 with Allow and Accept.
    pbx.send(&request("OPTIONS", 1, ""), ua).await;
    let (resp, _) = pbx.recv_sip().await;
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert!(header(&resp, "Allow").is_some_and(|a| a.contains("INVITE") && a.contains("OPTIONS")), "{resp}");
    assert_eq!(header(&resp, "Accept"), Some("application/sdp"));

    // No calls yet: INVITE is refused with 480 (after a 100 Trying, perhaps).
    pbx.send(&request("INVITE", 2, ""), ua).await;
    let resp = loop {
        let (r, _) = pbx.recv_sip().await;
        if !r.starts_with("SIP/2.0 100") {
            break r;
        }
    };
    assert!(resp.starts_with("SIP/2.0 480"), "{resp}");

    // A request the parser refuses gets a 400, and the agent lives on.
    let broken = request("OPTIONS", 3, "").replace("CSeq: 3 OPTIONS", "CSeq: three OPTIONS");
    pbx.send(&broken, ua).await;
    let (resp, _) = pbx.recv_sip().await;
    assert!(resp.starts_with("SIP/2.0 400"), "{resp}");
    assert_eq!(header(&resp, "Call-ID"), Some("OPTIONS-3@pbx"));
    pbx.send("\x16\x03\x01\x02\x00 not SIP at all \u{0}\u{1}", ua).await;
    pbx.send(&request("OPTIONS", 4, ""), ua).await;
    let (resp, _) = pbx.recv_sip().await;
    assert!(resp.starts_with("SIP/2.0 200") && resp.contains("CSeq: 4 OPTIONS"), "{resp}");

    // The NAT keepalive arrives between registrations.
    let mut saw_crlf = false;
    for _ in 0..5 {
        let (m, _) = pbx.recv().await;
        if m == "\r\n\r\n" {
            saw_crlf = true;
            break;
        }
    }
    assert!(saw_crlf, "a CRLF keepalive within a few seconds");

    // Shutdown un-registers with Expires: 0, and finishes well within 2 s.
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(agent.shutdown());
    let (unreg, _) = pbx.recv_sip().await;
    assert!(unreg.starts_with("REGISTER"), "{unreg}");
    assert_eq!(header(&unreg, "Expires"), Some("0"));
    pbx.send(&reply(&unreg, "200 OK", ""), ua).await;
    let last = stopping.await.expect("join");
    assert_eq!(last, RegStatus::Stopped);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_pbx_is_retried_and_shutdown_still_returns_in_time() {
    let pbx = FakePbx { sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind") };
    let mut s = SipSettings::new("9000", &pbx.sock.local_addr().expect("addr").to_string(), PW);
    s.bind = "127.0.0.1:0".parse().expect("addr");
    let agent = SipUa::start(s).await.expect("starts");
    // The PBX hears the REGISTER (and its retransmissions) but never answers.
    let (first, _) = pbx.recv_sip().await;
    assert!(first.starts_with("REGISTER"));
    let (again, _) = pbx.recv_sip().await;
    assert_eq!(header(&first, "CSeq"), header(&again, "CSeq"), "a retransmission, not a new attempt");
    let started = std::time::Instant::now();
    let last = agent.shutdown().await;
    assert_eq!(last, RegStatus::Stopped);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
