//! A fake PBX for the loopback tests: a plain UDP socket on 127.0.0.1 and the few
//! helpers needed to read and write SIP by hand.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use voice_ua_sip::{CallEnd, CallSignal, IncomingCall};

pub const PW: &str = "loopback-pw";

pub struct FakePbx {
    pub sock: UdpSocket,
}

impl FakePbx {
    pub async fn bind() -> FakePbx {
        FakePbx::bind_on("127.0.0.1").await
    }

    /// A peer on another loopback address (127.0.0.2: a stranger to an agent whose
    /// PBX is at 127.0.0.1).
    pub async fn bind_on(ip: &str) -> FakePbx {
        FakePbx { sock: UdpSocket::bind((ip, 0)).await.expect("bind") }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    pub async fn recv(&self) -> (String, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .expect("voice-ua sent something within 5 s")
            .expect("recv");
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    }

    /// The next SIP message that is not a keepalive.
    pub async fn recv_sip(&self) -> (String, SocketAddr) {
        loop {
            let (m, from) = self.recv().await;
            if !m.trim().is_empty() {
                return (m, from);
            }
        }
    }

    /// The next message that is not a keepalive and not a REGISTER (answered 200).
    pub async fn recv_not_register(&self) -> (String, SocketAddr) {
        loop {
            let (m, from) = self.recv_sip().await;
            if m.starts_with("REGISTER ") {
                self.send(&reply(&m, "200 OK", ""), from).await;
                continue;
            }
            return (m, from);
        }
    }

    /// Send as the PBX: a `Contact: <sip:pbx@127.0.0.1>` gets this socket's port, so
    /// requests voice-ua sends inside the dialog come back here.
    pub async fn send(&self, text: &str, to: SocketAddr) {
        let text =
            text.replace("Contact: <sip:pbx@127.0.0.1>", &format!("Contact: <sip:pbx@{}>", self.addr()));
        self.sock.send_to(text.as_bytes(), to).await.expect("send");
    }
}

pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

pub fn reply(req: &str, status: &str, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", header(req, name).unwrap_or("")));
    }
    out.push_str(&format!(
        "To: {};tag=pbx\r\n{extra}Content-Length: 0\r\n\r\n",
        header(req, "To").unwrap_or("")
    ));
    out
}

pub fn request(method: &str, cseq: u32, extra: &str) -> String {
    format!(
        "{method} sip:9000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK{method}{cseq}\r\n\
         From: <sip:pbx@127.0.0.1>;tag=p{cseq}\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: {method}-{cseq}@pbx\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

pub const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 16000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

pub fn in_dialog(method: &str, call_id: &str, cseq: u32, to_tag: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:9000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK{method}{cseq}{call_id}\r\n\
         From: <sip:pbx@127.0.0.1>;tag=caller\r\nTo: <sip:9000@127.0.0.1>{to_tag}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: <sip:pbx@127.0.0.1>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub fn invite(call_id: &str, sdp: &str, extra: &str) -> String {
    let ct = if sdp.is_empty() { "" } else { "Content-Type: application/sdp\r\n" };
    in_dialog("INVITE", call_id, 1, "", &format!("{ct}{extra}"), sdp)
}

pub fn to_tag(resp: &str) -> String {
    let to = header(resp, "To").expect("To");
    format!(";tag={}", to.split(";tag=").nth(1).expect("tagged").split(';').next().unwrap_or(""))
}

/// The final response to the INVITE (skipping 100/180).
pub async fn final_response(pbx: &FakePbx) -> String {
    loop {
        let (m, _) = pbx.recv_not_register().await;
        if m.starts_with("SIP/2.0 1") {
            continue;
        }
        return m;
    }
}

pub async fn next_call(calls: &mut tokio::sync::mpsc::Receiver<IncomingCall>) -> IncomingCall {
    tokio::time::timeout(Duration::from_secs(5), calls.recv()).await.expect("a call in time").expect("call")
}

pub async fn next_signal(call: &mut IncomingCall) -> CallSignal {
    tokio::time::timeout(Duration::from_secs(5), call.next())
        .await
        .expect("a signal in time")
        .expect("signal")
}

/// The call's end, skipping ACK signals (a late ACK may come before it).
pub async fn until_ended(call: &mut IncomingCall) -> CallEnd {
    loop {
        match next_signal(call).await {
            CallSignal::Ended(end) => return end,
            CallSignal::Acked { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
