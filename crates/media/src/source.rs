//! Which datagrams belong to the call: a filter on the sender's address, with optional
//! one-time latching to the port (or address) the remote actually sends from.
//!
//! The SDP names where the remote *receives*; with symmetric RTP it also sends from
//! there, but NAT or a PBX with `rtp_symmetric` may send from another port. Anything
//! else arriving on the media socket (scanners, stale calls, a re-used port) is dropped.

use std::net::SocketAddr;

/// How far the filter may move away from the negotiated address, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latching {
    /// Accept only the negotiated address.
    Off,
    /// Latch once to the first sender with the negotiated IP but another port.
    #[default]
    SameIp,
    /// Latch once to the first sender at all (remote behind NAT with a private SDP address).
    AnyAddress,
}

/// What the filter decided about one datagram's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceVerdict {
    /// From the remote: process it.
    Accept,
    /// From the remote, which has just been latched to this new address: process it,
    /// and send to this address from now on.
    Latched(SocketAddr),
    /// Not from the remote: drop it.
    Reject,
}

/// Accepts packets only from the negotiated remote (see [`Latching`]).
#[derive(Debug, Clone)]
pub struct SourceFilter {
    negotiated: SocketAddr,
    latched: Option<SocketAddr>,
    latching: Latching,
    rejected: u64,
}

impl SourceFilter {
    /// A filter for the remote address from the SDP.
    pub fn new(negotiated: SocketAddr, latching: Latching) -> Self {
        SourceFilter { negotiated, latched: None, latching, rejected: 0 }
    }

    /// Decide about a datagram from `from`.
    pub fn check(&mut self, from: SocketAddr) -> SourceVerdict {
        if let Some(latched) = self.latched {
            return if from == latched { SourceVerdict::Accept } else { self.reject() };
        }
        if from == self.negotiated {
            return SourceVerdict::Accept;
        }
        let may_latch = match self.latching {
            Latching::Off => false,
            Latching::SameIp => from.ip() == self.negotiated.ip(),
            Latching::AnyAddress => true,
        };
        if may_latch {
            self.latched = Some(from);
            SourceVerdict::Latched(from)
        } else {
            self.reject()
        }
    }

    fn reject(&mut self) -> SourceVerdict {
        self.rejected += 1;
        SourceVerdict::Reject
    }

    /// Where to send: the latched address, or the negotiated one.
    pub fn remote(&self) -> SocketAddr {
        self.latched.unwrap_or(self.negotiated)
    }

    /// The remote changed by signalling (re-INVITE): forget any latch.
    pub fn renegotiate(&mut self, negotiated: SocketAddr) {
        self.negotiated = negotiated;
        self.latched = None;
    }

    /// Datagrams rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn accepts_only_the_negotiated_address_without_latching() {
        let mut f = SourceFilter::new(addr("192.0.2.1:10000"), Latching::Off);
        assert_eq!(f.check(addr("192.0.2.1:10000")), SourceVerdict::Accept);
        assert_eq!(f.check(addr("192.0.2.1:10002")), SourceVerdict::Reject);
        assert_eq!(f.check(addr("198.51.100.1:10000")), SourceVerdict::Reject);
        assert_eq!(f.rejected(), 2);
        assert_eq!(f.remote(), addr("192.0.2.1:10000"));
    }

    #[test]
    fn latches_once_to_another_port_of_the_same_ip() {
        let mut f = SourceFilter::new(addr("192.0.2.1:10000"), Latching::SameIp);
        assert_eq!(f.check(addr("198.51.100.1:10000")), SourceVerdict::Reject);
        let moved = addr("192.0.2.1:20000");
        assert_eq!(f.check(moved), SourceVerdict::Latched(moved));
        assert_eq!(f.check(moved), SourceVerdict::Accept);
        assert_eq!(f.remote(), moved);
        // Once latched, nothing else moves it, not even the SDP address.
        assert_eq!(f.check(addr("192.0.2.1:30000")), SourceVerdict::Reject);
        assert_eq!(f.check(addr("192.0.2.1:10000")), SourceVerdict::Reject);
        f.renegotiate(addr("192.0.2.9:4000"));
        assert_eq!(f.check(addr("192.0.2.9:4000")), SourceVerdict::Accept);
        assert_eq!(f.remote(), addr("192.0.2.9:4000"));
    }

    #[test]
    fn any_address_latching_for_private_sdp() {
        let mut f = SourceFilter::new(addr("10.0.0.5:10000"), Latching::AnyAddress);
        let public = addr("203.0.113.7:41234");
        assert_eq!(f.check(public), SourceVerdict::Latched(public));
        assert_eq!(f.check(addr("203.0.113.8:41234")), SourceVerdict::Reject);
    }
}
