//! The SIP UDP socket as rsipstack sees it, with a screen in front: every datagram
//! the SIP parser would refuse is answered here with a 400 (when it is a request we
//! can answer) or dropped, and logged at most once every 10 s — rsipstack itself
//! would drop it silently.

use crate::bad_request::bad_request_for;
use crate::ids::IdSource;
use crate::ratelimit::RateLimit;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::SipMessage;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) struct GuardedUdp {
    socket: Arc<tokio::net::UdpSocket>,
    log_gate: Mutex<RateLimit>,
    tags: Mutex<IdSource>,
}

impl GuardedUdp {
    pub(crate) fn new(socket: Arc<tokio::net::UdpSocket>) -> GuardedUdp {
        GuardedUdp {
            socket,
            log_gate: Mutex::new(RateLimit::new(Duration::from_secs(10))),
            tags: Mutex::new(IdSource::from_os()),
        }
    }

    async fn refuse(&self, bytes: &[u8], from: SocketAddr, why: &str) {
        let tag = self.tags.lock().map(|mut t| t.hex(1)).unwrap_or_else(|_| "x".into());
        let answered = match bad_request_for(bytes, why, &tag) {
            Some(resp) => self.socket.send_to(resp.as_bytes(), from).await.is_ok(),
            None => false,
        };
        let allowed = self.log_gate.lock().ok().and_then(|mut g| g.allow(Instant::now()));
        if let Some(held_back) = allowed {
            tracing::warn!(
                %from,
                len = bytes.len(),
                answered_400 = answered,
                held_back,
                "malformed SIP message: {why}"
            );
        }
    }
}

/// Why rsipstack would refuse this datagram, if it would.
fn screen(bytes: &[u8]) -> Option<String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None; // keepalives: rsipstack answers or ignores them itself
    }
    let msg = match SipMessage::try_from(bytes) {
        Ok(m) => m,
        Err(e) => return Some(e.to_string()),
    };
    headers_usable(&msg).err()
}

/// The headers rsipstack needs to build a transaction and answer it.
fn headers_usable(msg: &SipMessage) -> Result<(), String> {
    fn e(err: impl std::fmt::Display) -> String {
        err.to_string()
    }
    match msg {
        SipMessage::Request(req) => {
            req.via_header().map_err(e)?;
            req.from_header().map_err(e)?.tag().map_err(e)?;
            req.to_header().map_err(e)?.tag().map_err(e)?;
            req.call_id_header().map_err(e)?;
            req.cseq_header().map_err(e)?.seq().map_err(e)?;
            TransactionKey::from_request(req, TransactionRole::Server).map_err(e)?;
        }
        SipMessage::Response(resp) => {
            resp.cseq_header().map_err(e)?.seq().map_err(e)?;
            resp.via_header().map_err(e)?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for GuardedUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.socket.recv_from(buf).await?;
            let packet = buf.get(..len).unwrap_or_default();
            match screen(packet) {
                None => return Ok((len, from)),
                Some(why) => self.refuse(packet, from, &why).await,
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.socket.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
}

#[cfg(test)]
mod tests {
    use super::screen;

    #[test]
    fn screen_passes_good_requests_and_names_bad_ones() {
        let good =
            b"OPTIONS sip:9000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n\
            From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: abc\r\nCSeq: 1 OPTIONS\r\n\
            Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(screen(good), None);
        assert_eq!(screen(b"\r\n\r\n"), None);
        let bad_cseq = String::from_utf8_lossy(good).replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
        assert!(screen(bad_cseq.as_bytes()).is_some());
        let no_via =
            String::from_utf8_lossy(good).replace("Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n", "");
        assert!(screen(no_via.as_bytes()).is_some());
        assert!(screen(b"\x16\x03\x01 garbage").is_some());
    }
}
