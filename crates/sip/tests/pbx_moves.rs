//! The PBX host name is resolved again at every refresh and after a failure: when the
//! answer changes, REGISTERs go to the new address and the call gate follows (INVITEs
//! from the new address get in, the old address gets 403). The name is resolved by a
//! resolver injected here, so no DNS is involved.

mod common;

use common::{header, reply, FakePbx, PW};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use voice_ua_sip::{PbxResolver, RegStatus, SipSettings, SipUa};

/// Answers what the test last set, and counts the questions.
struct Switch {
    answer: Mutex<SocketAddr>,
    asked: AtomicUsize,
}

#[async_trait::async_trait]
impl PbxResolver for Switch {
    async fn lookup(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        assert_eq!((host, port), ("pbx.test", 5060));
        self.asked.fetch_add(1, Ordering::SeqCst);
        Ok(*self.answer.lock().expect("lock"))
    }
}

fn switch(to: SocketAddr) -> Arc<Switch> {
    Arc::new(Switch { answer: Mutex::new(to), asked: AtomicUsize::new(0) })
}

fn settings() -> SipSettings {
    let mut s = SipSettings::new("9000", "pbx.test", PW);
    s.bind = "127.0.0.1:0".parse().expect("addr");
    s.accept_calls = true;
    s.retry_max = Duration::from_secs(1);
    s
}

/// The next REGISTER (skipping keepalives), answered 200 with `expires`.
async fn grant(pbx: &FakePbx, expires: u32) -> SocketAddr {
    let (reg, ua) = pbx.recv_sip().await;
    assert!(reg.starts_with("REGISTER sip:pbx.test"), "{reg}");
    let contact = header(&reg, "Contact").expect("contact").to_string();
    pbx.send(&reply(&reg, "200 OK", &format!("Contact: {contact};expires={expires}\r\n")), ua).await;
    ua
}

async fn registered(agent: &SipUa) {
    let mut status = agent.status();
    tokio::time::timeout(
        Duration::from_secs(3),
        status.wait_for(|s| matches!(s, RegStatus::Registered { .. })),
    )
    .await
    .expect("registered in time")
    .expect("status");
}

fn invite(call_id: &str, contact: SocketAddr) -> String {
    format!(
        "INVITE sip:9000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {contact};branch=z9hG4bK{call_id}\r\n\
         From: <sip:pbx@{contact}>;tag=caller\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:pbx@{contact}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The final response to a request sent by `pbx` (provisional ones and REGISTERs skipped).
async fn final_response(pbx: &FakePbx) -> String {
    loop {
        let (m, _) = pbx.recv_not_register().await;
        if !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_follows_the_pbx_to_its_new_address_and_so_does_the_gate() {
    let old = FakePbx::bind().await;
    let new = FakePbx { sock: UdpSocket::bind("127.0.0.4:0").await.expect("bind 127.0.0.4") };
    let resolver = switch(old.addr());
    let mut agent = SipUa::start_with_resolver(settings(), resolver.clone()).await.expect("starts");
    let mut calls = agent.take_calls().expect("calls");
    let ua = grant(&old, 2).await; // refreshed after 1 s
    registered(&agent).await;

    // The gate trusts the old address so far: an INVITE from the new one is refused.
    new.send(&invite("early@pbx", new.addr()), ua).await;
    let resp = final_response(&new).await;
    assert!(resp.starts_with("SIP/2.0 403"), "{resp}");

    // The name now points at the new PBX: the refresh goes there.
    *resolver.answer.lock().expect("lock") = new.addr();
    assert_eq!(grant(&new, 120).await, ua);
    assert!(resolver.asked.load(Ordering::SeqCst) >= 2, "asked at start and at the refresh");

    // The gate followed: the new address may call, the old one no longer.
    old.send(&invite("old@pbx", old.addr()), ua).await;
    let resp = final_response(&old).await;
    assert!(resp.starts_with("SIP/2.0 403"), "{resp}");
    new.send(&invite("new@pbx", new.addr()), ua).await;
    let call = tokio::time::timeout(Duration::from_secs(5), calls.recv())
        .await
        .expect("the call from the new address arrives")
        .expect("call");
    assert_eq!(call.info.sip_call_id, "new@pbx");
    drop(call);
    drop(calls);
    let _ = tokio::time::timeout(Duration::from_secs(3), agent.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_registration_asks_the_resolver_again() {
    // The first answer is a server that is going away (503).
    let leaving = FakePbx::bind().await;
    let pbx = FakePbx { sock: UdpSocket::bind("127.0.0.4:0").await.expect("bind 127.0.0.4") };
    let resolver = switch(leaving.addr());
    let mut s = settings();
    s.accept_calls = false;
    let agent = SipUa::start_with_resolver(s, resolver.clone()).await.expect("starts");
    let (reg, ua) = leaving.recv_sip().await;
    assert!(reg.starts_with("REGISTER"), "{reg}");
    *resolver.answer.lock().expect("lock") = pbx.addr();
    leaving.send(&reply(&reg, "503 Service Unavailable", ""), ua).await;
    // The retry (1 s later) asks the resolver again and goes to the new address.
    assert_eq!(grant(&pbx, 120).await, ua);
    registered(&agent).await;
    agent.shutdown().await;
}
