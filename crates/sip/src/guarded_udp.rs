//! The SIP UDP socket as rsipstack sees it, with a screen in front. Every datagram
//! is looked at once on its raw bytes ([`crate::screen`]) before rsipstack parses it
//! (once):
//! - from the registrar, the allow list or a live dialog's remote target, anything
//!   well-formed passes; a malformed request gets a 400 (rsipstack would drop it
//!   silently);
//! - from anyone else (a stranger), only what a stranger gets an answer to — an
//!   INVITE (403), an OPTIONS, a request inside a dialog (403) — and only within
//!   that source's budget; everything else (responses, ACK, CANCEL, other methods,
//!   malformed datagrams, keepalives) is dropped unanswered and counted.
//!
//! Log lines about refusals are rate-limited: a flood writes one line per window.

use crate::bad_request::bad_request_for;
use crate::gate::CallGate;
use crate::ids::IdSource;
use crate::ratelimit::{RateLimit, SourceBudget};
use crate::refusals::{RefusalCounts, RefusalLog};
use crate::screen::{screen, Defect, Method, Verdict};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests a stranger may send per second (after a burst of [`STRANGER_BURST`]).
pub(crate) const STRANGER_RATE: u32 = 5;
pub(crate) const STRANGER_BURST: u32 = 20;
/// Source addresses with a budget of their own; the rest share one.
pub(crate) const STRANGER_SOURCES: usize = 1024;

/// What to do with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// Hand it to rsipstack.
    Pass,
    /// Hand it to rsipstack if its source has budget left.
    Budgeted,
    /// Answer 400 when it is a request we can answer.
    BadRequest(Defect),
    /// Drop it unanswered.
    Drop,
}

/// The rule: who gets what, by the screen's verdict and whether the source is
/// trusted (registrar, allow list, a live dialog's remote target).
fn treatment(verdict: Verdict, trusted: bool) -> Treatment {
    match (verdict, trusted) {
        (Verdict::Malformed(d), true) => Treatment::BadRequest(d),
        (_, true) => Treatment::Pass,
        (Verdict::Request { method: Method::Ack | Method::Cancel, .. }, false) => Treatment::Drop,
        (Verdict::Request { in_dialog: true, .. }, false) => Treatment::Budgeted,
        (Verdict::Request { method: Method::Invite | Method::Options, .. }, false) => Treatment::Budgeted,
        (_, false) => Treatment::Drop,
    }
}

pub(crate) struct GuardedUdp {
    socket: Arc<tokio::net::UdpSocket>,
    gate: Arc<Mutex<CallGate>>,
    budget: Mutex<SourceBudget>,
    refusals: Arc<RefusalCounts>,
    log_gate: Mutex<RateLimit>,
    tags: Mutex<IdSource>,
}

impl GuardedUdp {
    pub(crate) fn new(
        socket: Arc<tokio::net::UdpSocket>,
        gate: Arc<Mutex<CallGate>>,
        refusals: Arc<RefusalCounts>,
    ) -> GuardedUdp {
        GuardedUdp {
            socket,
            gate,
            budget: Mutex::new(SourceBudget::new(STRANGER_RATE, STRANGER_BURST, STRANGER_SOURCES)),
            refusals,
            log_gate: Mutex::new(RateLimit::new(Duration::from_secs(10))),
            tags: Mutex::new(IdSource::from_os()),
        }
    }

    /// Whether rsipstack gets this datagram; answers or drops it otherwise.
    async fn admit(&self, packet: &[u8], from: SocketAddr) -> bool {
        let verdict = screen(packet);
        let trusted = self.gate.lock().is_ok_and(|g| g.is_trusted(from.ip()));
        match treatment(verdict, trusted) {
            Treatment::Pass => true,
            Treatment::Budgeted => {
                let ok = self.budget.lock().is_ok_and(|mut b| b.allow(Instant::now(), from.ip()));
                if !ok {
                    self.dropped(from, "over its budget");
                }
                ok
            }
            Treatment::BadRequest(defect) => {
                self.refuse(packet, from, &defect.to_string()).await;
                false
            }
            Treatment::Drop => {
                self.dropped(from, "nothing a stranger gets an answer to");
                false
            }
        }
    }

    fn dropped(&self, from: SocketAddr, why: &str) {
        self.refusals.count_dropped();
        if let Some(held_back) = self.refusals.may_log(RefusalLog::Dropped, Instant::now()) {
            tracing::warn!(%from, held_back, "SIP datagram from a stranger dropped: {why}");
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

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for GuardedUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.socket.recv_from(buf).await?;
            let packet = buf.get(..len).unwrap_or_default();
            if self.admit(packet, from).await {
                return Ok((len, from));
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
    use super::*;

    fn req(method: Method, in_dialog: bool) -> Verdict {
        Verdict::Request { method, in_dialog }
    }

    #[test]
    fn trusted_sources_pass_and_get_a_400_for_malformed_requests() {
        for v in [req(Method::Invite, false), req(Method::Ack, true), Verdict::Response { status: 200 }] {
            assert_eq!(treatment(v, true), Treatment::Pass);
        }
        assert_eq!(treatment(Verdict::Keepalive, true), Treatment::Pass);
        assert_eq!(treatment(Verdict::Malformed(Defect::CSeq), true), Treatment::BadRequest(Defect::CSeq));
    }

    #[test]
    fn strangers_get_only_what_they_get_an_answer_to_within_budget() {
        for v in [req(Method::Invite, false), req(Method::Options, false), req(Method::Bye, true)] {
            assert_eq!(treatment(v, false), Treatment::Budgeted, "{v:?}");
        }
        assert_eq!(treatment(req(Method::Invite, true), false), Treatment::Budgeted, "re-INVITE: 403");
        for v in [
            req(Method::Ack, true),
            req(Method::Cancel, false),
            req(Method::Bye, false),
            req(Method::Register, false),
            req(Method::Notify, false),
            req(Method::Other, false),
            Verdict::Response { status: 200 },
            Verdict::Keepalive,
            Verdict::Malformed(Defect::CSeq),
        ] {
            assert_eq!(treatment(v, false), Treatment::Drop, "{v:?}");
        }
    }
}
