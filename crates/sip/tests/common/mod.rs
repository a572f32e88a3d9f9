//! A fake PBX for the loopback tests: a plain UDP socket on 127.0.0.1 and the few
//! helpers needed to read and write SIP by hand.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

pub const PW: &str = "loopback-pw";

pub struct FakePbx {
    pub sock: UdpSocket,
}

impl FakePbx {
    pub async fn bind() -> FakePbx {
        FakePbx { sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind") }
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
