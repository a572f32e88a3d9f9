//! SIP over TCP on loopback: registration with a fake PBX over TCP, requests on a
//! connection the PBX opens to us, and the listener's limits — strangers closed at
//! once, a cap on open connections, idle connections closed.

mod common;

use common::{header, reply, PW};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use voice_ua_sip::{RegStatus, SipSettings, SipUa, TcpRefusals, Transport};

fn settings(pbx: SocketAddr) -> SipSettings {
    let mut s = SipSettings::new("9000", &pbx.to_string(), PW);
    s.bind = "127.0.0.1:0".parse().expect("addr");
    s.transport = Transport::Tcp;
    s
}

/// A PBX that listens but never answers (registration is not what these tests look at).
async fn mute_pbx() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{source}:0").parse().expect("addr")).expect("bind the source");
    socket.connect(to).await.expect("the kernel accepts the connection")
}

/// How a connection behaves from the client's side within `wait`.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Still open (nothing to read) after `wait`.
    Open,
    /// Closed by voice-ua (EOF or reset), after this long.
    Closed(Duration),
}

async fn fate(stream: &mut TcpStream, wait: Duration) -> Fate {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Err(_) => Fate::Open,
        Ok(Ok(0)) | Ok(Err(_)) => Fate::Closed(started.elapsed()),
        Ok(Ok(n)) => panic!("voice-ua sent unasked: {:?}", String::from_utf8_lossy(&buf[..n])),
    }
}

fn closed_within(f: &Fate, limit: Duration) -> bool {
    matches!(f, Fate::Closed(t) if *t < limit)
}

/// SIP messages read off a stream (header block and Content-Length body).
struct SipReader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl SipReader {
    async fn next(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                let len: usize = header(&head, "Content-Length").and_then(|l| l.parse().ok()).unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let msg: Vec<u8> = self.buf.drain(..end + 4 + len).collect();
                    let msg = String::from_utf8_lossy(&msg).into_owned();
                    if msg.trim().is_empty() {
                        continue; // a keepalive
                    }
                    return msg;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .expect("a message within 5 s")
                .expect("read");
            assert!(n > 0, "the connection closed while a message was expected");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.expect("write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_over_tcp_and_answers_on_a_connection_the_pbx_opens() {
    let pbx = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let agent = SipUa::start(settings(pbx.local_addr().expect("addr"))).await.expect("starts");
    let mut status = agent.status();
    let (stream, _) = tokio::time::timeout(Duration::from_secs(5), pbx.accept())
        .await
        .expect("voice-ua connects")
        .expect("accept");
    let mut ua = SipReader { stream, buf: Vec::new() };
    let first = ua.next().await;
    assert!(first.starts_with("REGISTER sip:"), "{first}");
    assert!(header(&first, "Via").is_some_and(|v| v.starts_with("SIP/2.0/TCP")), "{first}");
    let challenge = "WWW-Authenticate: Digest realm=\"fake\", nonce=\"abc\", qop=\"auth\", algorithm=MD5\r\n";
    ua.send(&reply(&first, "401 Unauthorized", challenge)).await;
    let second = ua.next().await;
    assert!(header(&second, "Authorization").is_some(), "{second}");
    let contact = header(&second, "Contact").expect("contact").to_string();
    assert!(contact.contains("transport=tcp"), "{contact}");
    ua.send(&reply(&second, "200 OK", &format!("Contact: {contact};expires=120\r\n"))).await;
    tokio::time::timeout(
        Duration::from_secs(3),
        status.wait_for(|s| matches!(s, RegStatus::Registered { expires: 120 })),
    )
    .await
    .expect("registered in time")
    .expect("status");

    // The PBX (127.0.0.1) opens its own connection to voice-ua and qualifies it.
    let mut inbound =
        SipReader { stream: connect_from("127.0.0.1", agent.local_addr()).await, buf: Vec::new() };
    let options =
        "OPTIONS sip:9000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKtcp1\r\n\
                   From: <sip:pbx@127.0.0.1>;tag=p1\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: tcp-1@pbx\r\n\
                   CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    inbound.send(options).await;
    let resp = inbound.next().await;
    assert!(resp.starts_with("SIP/2.0 200") && resp.contains("tcp-1@pbx"), "{resp}");
    assert_eq!(agent.tcp_refusals(), TcpRefusals::default());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_from_a_stranger_is_closed_at_once() {
    let pbx = mute_pbx().await;
    let agent = SipUa::start(settings(pbx.local_addr().expect("addr"))).await.expect("starts");
    let mut stranger = connect_from("127.0.0.2", agent.local_addr()).await;
    let f = fate(&mut stranger, Duration::from_secs(2)).await;
    assert!(closed_within(&f, Duration::from_millis(500)), "{f:?}");
    // The PBX's address is kept.
    let mut from_pbx = connect_from("127.0.0.1", agent.local_addr()).await;
    assert_eq!(fate(&mut from_pbx, Duration::from_millis(500)).await, Fate::Open);
    assert_eq!(agent.tcp_refusals(), TcpRefusals { strangers: 1, over_limit: 0 });
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_address_gets_in_and_the_cap_refuses_one_more() {
    let pbx = mute_pbx().await;
    let mut s = settings(pbx.local_addr().expect("addr"));
    s.allow = vec!["127.0.0.3".parse().expect("ip")];
    s.tcp_max_connections = 2;
    let agent = SipUa::start(s).await.expect("starts");
    let mut first = connect_from("127.0.0.1", agent.local_addr()).await;
    let mut second = connect_from("127.0.0.3", agent.local_addr()).await;
    assert_eq!(fate(&mut first, Duration::from_millis(300)).await, Fate::Open);
    assert_eq!(fate(&mut second, Duration::from_millis(300)).await, Fate::Open);
    let mut third = connect_from("127.0.0.1", agent.local_addr()).await;
    let f = fate(&mut third, Duration::from_secs(2)).await;
    assert!(closed_within(&f, Duration::from_millis(500)), "cap + 1: {f:?}");
    assert_eq!(agent.tcp_refusals(), TcpRefusals { strangers: 0, over_limit: 1 });

    // A place comes free when a connection closes.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fourth = connect_from("127.0.0.1", agent.local_addr()).await;
    assert_eq!(fate(&mut fourth, Duration::from_millis(300)).await, Fate::Open);
    assert_eq!(agent.tcp_refusals().over_limit, 1);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let pbx = mute_pbx().await;
    let mut s = settings(pbx.local_addr().expect("addr"));
    s.tcp_idle_timeout = Duration::from_millis(600);
    let agent = SipUa::start(s).await.expect("starts");
    let mut idle = connect_from("127.0.0.1", agent.local_addr()).await;
    let f = fate(&mut idle, Duration::from_secs(5)).await;
    match f {
        Fate::Closed(t) => assert!(t >= Duration::from_millis(400) && t < Duration::from_secs(2), "{t:?}"),
        Fate::Open => panic!("an idle connection stays open"),
    }
    assert_eq!(agent.tcp_refusals(), TcpRefusals::default(), "closed for idleness, not refused");
    agent.shutdown().await;
}

#[test]
fn the_defaults_cap_tcp_and_close_idle_connections_within_a_minute() {
    let s = SipSettings::new("9000", "pbx", PW);
    assert_eq!(s.tcp_max_connections, 64);
    assert!(s.tcp_idle_timeout <= Duration::from_secs(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crlf_keepalive_rides_our_tcp_flow_and_a_pong_keeps_it_open() {
    let pbx = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut s = settings(pbx.local_addr().expect("addr"));
    s.keepalive_interval = Duration::from_secs(1);
    s.tcp_idle_timeout = Duration::from_millis(1500);
    let agent = SipUa::start(s).await.expect("starts");
    let (stream, _) = tokio::time::timeout(Duration::from_secs(5), pbx.accept())
        .await
        .expect("voice-ua connects")
        .expect("accept");
    let mut ua = SipReader { stream, buf: Vec::new() };
    let reg = ua.next().await;
    let contact = header(&reg, "Contact").expect("contact").to_string();
    ua.send(&reply(&reg, "200 OK", &format!("Contact: {contact};expires=120\r\n"))).await;
    let SipReader { stream: mut flow, buf: mut seen } = ua;
    // Count the pings on the same connection and answer each with a pong.
    let started = Instant::now();
    let (mut pings, mut buf) = (0, [0u8; 4096]);
    while started.elapsed() < Duration::from_secs(4) {
        match tokio::time::timeout(Duration::from_millis(200), flow.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => {
                panic!("our flow closed after {:?} despite the pongs", started.elapsed())
            }
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
        while let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            if i == 0 {
                pings += 1;
                flow.write_all(b"\r\n").await.expect("pong");
            }
            seen.drain(..i + 4);
        }
    }
    assert!(pings >= 2, "{pings} CRLF pings in 4 s");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_listener_knows_the_pbx_behind_its_mapped_address() {
    let pbx = mute_pbx().await;
    let mut s = settings(pbx.local_addr().expect("addr"));
    s.bind = "[::]:0".parse().expect("addr");
    let agent = SipUa::start(s).await.expect("starts");
    let port = agent.local_addr().port();
    // Seen by the listener as ::ffff:127.0.0.1.
    let mut from_pbx = connect_from("127.0.0.1", SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert_eq!(fate(&mut from_pbx, Duration::from_millis(500)).await, Fate::Open);
    let mut stranger = connect_from("127.0.0.2", SocketAddr::from(([127, 0, 0, 1], port))).await;
    let f = fate(&mut stranger, Duration::from_secs(2)).await;
    assert!(closed_within(&f, Duration::from_millis(500)), "{f:?}");
    agent.shutdown().await;
}
