//! Which RTP packets belong to the call, and where to send ours: strict latching in the
//! manner of Asterisk's `strictrtp`.
//!
//! The SDP names where the remote *receives*; with symmetric RTP it also sends from
//! there, but NAT or a PBX with `rtp_symmetric` may send from another port, and the
//! media may move (a PBX re-bridging the call). Anything else arriving on the media
//! socket (scanners, stale calls, a spoofer) must neither reach the caller's audio nor
//! move where our audio goes. The rules, for packets that already parsed as RTP:
//!
//! - Only a packet of a negotiated payload type (the audio or the telephone-event one)
//!   counts at all; anything else is dropped.
//! - Only an address whose IP is the SDP's connection address or the PBX's may ever
//!   become the source; any other IP is dropped.
//! - Before the first packet has been accepted, the first packet from the SDP's IP
//!   latches at once (the port rewritten by NAT or by the PBX).
//! - After that, the source moves only to a sustained new one: [`SUSTAIN`] packets in a
//!   row from the same new address with the same SSRC and advancing sequence numbers,
//!   each within [`CANDIDATE_GAP`] of the previous. A packet from the current source in
//!   between resets the count; a single stray or spoofed packet never moves the media.
//! - Packets from anywhere but the current source are never processed (jitter buffer,
//!   DTMF): only the one that completes a move is.
//! - A re-INVITE that names a new address ([`SourceFilter::renegotiate`]) moves the
//!   media at once and starts the rules over, except that the address it moved away
//!   from cannot latch at once: a late packet still in flight from there must not undo
//!   the move (it takes a sustained stream, as any other new source).
//!
//! Sans-IO: it is given the parsed header, the sender and `now`, and never reads a clock.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::rtp::{seq_diff, RtpHeader};

/// Packets in a row from one new source after which the media moves to it.
pub const SUSTAIN: u32 = 4;

/// The longest pause between two packets of a candidate source: a longer one starts its
/// count over (a stream at 20 ms per packet never pauses this long).
pub const CANDIDATE_GAP: Duration = Duration::from_millis(500);

/// The largest sequence-number step between two packets of a candidate source (packet
/// loss is tolerated; a replayed or backwards packet is not).
const MAX_SEQ_STEP: i16 = 16;

/// What the filter decided about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceVerdict {
    /// From the current source: process it.
    Accept,
    /// The media has just moved to this address: process the packet, and send to this
    /// address from now on.
    Latched(SocketAddr),
    /// Not (yet) from the call's source: drop it.
    Reject,
}

/// The payload types negotiated for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadTypes {
    /// The audio codec's payload type.
    pub audio: u8,
    /// `telephone-event`'s payload type, when negotiated.
    pub telephone_event: Option<u8>,
}

impl PayloadTypes {
    fn contains(self, pt: u8) -> bool {
        pt == self.audio || self.telephone_event == Some(pt)
    }
}

/// A new source seen after the media was established, not yet trusted.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    from: SocketAddr,
    ssrc: u32,
    sequence: u16,
    count: u32,
    last: Instant,
}

/// Accepts packets only from the call's current media source (see the module docs).
#[derive(Debug, Clone)]
pub struct SourceFilter {
    negotiated: SocketAddr,
    /// The PBX's IP addresses: media may come from there as well as from the SDP's.
    pbx: Vec<IpAddr>,
    payload_types: PayloadTypes,
    current: SocketAddr,
    /// A packet from `current` has been accepted: moving now takes a sustained source.
    established: bool,
    candidate: Option<Candidate>,
    /// Where the media was before a re-INVITE moved it, until the new source is
    /// established: it may come back only as a sustained source.
    left: Option<SocketAddr>,
    rejected: u64,
}

impl SourceFilter {
    /// A filter for the remote address from the SDP, with the PBX's IP addresses (the
    /// registrar's, the INVITE's source) and the negotiated payload types.
    pub fn new(negotiated: SocketAddr, pbx: &[IpAddr], payload_types: PayloadTypes) -> Self {
        SourceFilter {
            negotiated,
            pbx: pbx.to_vec(),
            payload_types,
            current: negotiated,
            established: false,
            candidate: None,
            left: None,
            rejected: 0,
        }
    }

    /// Decide about a packet (already parsed as RTP) from `from` at `now`.
    pub fn check(&mut self, now: Instant, from: SocketAddr, header: &RtpHeader) -> SourceVerdict {
        if !self.payload_types.contains(header.payload_type) {
            return self.reject();
        }
        if from == self.current {
            self.established = true;
            self.candidate = None;
            self.left = None;
            return SourceVerdict::Accept;
        }
        let sdp_ip = from.ip() == self.negotiated.ip();
        if !sdp_ip && !self.pbx.contains(&from.ip()) {
            return self.reject();
        }
        if !self.established && sdp_ip && self.left != Some(from) {
            return self.move_to(from);
        }
        let count = match self.candidate {
            Some(c)
                if c.from == from
                    && c.ssrc == header.ssrc
                    && now.saturating_duration_since(c.last) <= CANDIDATE_GAP
                    && (1..=MAX_SEQ_STEP).contains(&seq_diff(header.sequence, c.sequence)) =>
            {
                c.count + 1
            }
            _ => 1,
        };
        if count >= SUSTAIN {
            return self.move_to(from);
        }
        self.candidate =
            Some(Candidate { from, ssrc: header.ssrc, sequence: header.sequence, count, last: now });
        self.reject()
    }

    fn move_to(&mut self, from: SocketAddr) -> SourceVerdict {
        self.current = from;
        self.established = true;
        self.candidate = None;
        self.left = None;
        SourceVerdict::Latched(from)
    }

    fn reject(&mut self) -> SourceVerdict {
        self.rejected += 1;
        SourceVerdict::Reject
    }

    /// Where to send: the current source.
    pub fn remote(&self) -> SocketAddr {
        self.current
    }

    /// A new offer/answer (re-INVITE). A new remote address moves the media there at
    /// once and starts the latching rules over; the same address keeps the current
    /// source (a session refresh must not undo a NAT latch).
    pub fn renegotiate(&mut self, negotiated: SocketAddr, payload_types: PayloadTypes) {
        self.payload_types = payload_types;
        if negotiated != self.negotiated {
            self.negotiated = negotiated;
            self.left = Some(self.current);
            self.current = negotiated;
            self.established = false;
            self.candidate = None;
        }
    }

    /// Packets rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTS: PayloadTypes = PayloadTypes { audio: 0, telephone_event: Some(101) };

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn header(ssrc: u32, sequence: u16) -> RtpHeader {
        RtpHeader { marker: false, payload_type: 0, sequence, timestamp: u32::from(sequence) * 160, ssrc }
    }

    /// A filter for SDP 192.0.2.1:10000 and PBX 198.51.100.1, established on the SDP
    /// address with SSRC 1.
    fn established(t0: Instant) -> SourceFilter {
        let mut f = SourceFilter::new(addr("192.0.2.1:10000"), &[ip("198.51.100.1")], PTS);
        assert_eq!(f.check(t0, addr("192.0.2.1:10000"), &header(1, 0)), SourceVerdict::Accept);
        f
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_single_packet_from_a_new_port_does_not_move_the_media() {
        let t0 = Instant::now();
        let mut f = established(t0);
        let stray = addr("192.0.2.1:20000");
        assert_eq!(f.check(t0 + ms(20), stray, &header(2, 500)), SourceVerdict::Reject);
        assert_eq!(f.remote(), addr("192.0.2.1:10000"));
        assert_eq!(f.check(t0 + ms(40), addr("192.0.2.1:10000"), &header(1, 1)), SourceVerdict::Accept);
        assert_eq!(f.rejected(), 1);
    }

    #[test]
    fn a_sustained_new_source_moves_the_media() {
        let t0 = Instant::now();
        let mut f = established(t0);
        let moved = addr("192.0.2.1:20000");
        for i in 0..SUSTAIN - 1 {
            let now = t0 + ms(20 * u64::from(i + 1));
            assert_eq!(f.check(now, moved, &header(2, 500 + i as u16)), SourceVerdict::Reject, "{i}");
        }
        let now = t0 + ms(20 * u64::from(SUSTAIN));
        assert_eq!(f.check(now, moved, &header(2, 500 + SUSTAIN as u16 - 1)), SourceVerdict::Latched(moved));
        assert_eq!(f.remote(), moved);
        // The old source is now the stranger.
        assert_eq!(f.check(now + ms(20), addr("192.0.2.1:10000"), &header(1, 9)), SourceVerdict::Reject);
        assert_eq!(f.check(now + ms(20), moved, &header(2, 504)), SourceVerdict::Accept);
    }

    #[test]
    fn the_pbx_address_may_become_the_source_when_sustained() {
        let t0 = Instant::now();
        let mut f = established(t0);
        let pbx = addr("198.51.100.1:30000");
        let mut last = SourceVerdict::Reject;
        for i in 0..SUSTAIN {
            last = f.check(t0 + ms(20 * u64::from(i + 1)), pbx, &header(7, i as u16));
        }
        assert_eq!(last, SourceVerdict::Latched(pbx));
    }

    #[test]
    fn interleaved_packets_from_the_current_source_reset_the_candidate() {
        let t0 = Instant::now();
        let mut f = established(t0);
        let other = addr("192.0.2.1:20000");
        let current = addr("192.0.2.1:10000");
        for i in 0..20u16 {
            let now = t0 + ms(10 * u64::from(i + 1));
            let (from, h) = if i % 3 == 2 { (current, header(1, i)) } else { (other, header(2, 100 + i)) };
            let v = f.check(now, from, &h);
            assert_ne!(v, SourceVerdict::Latched(other), "{i}");
        }
        assert_eq!(f.remote(), current);
    }

    #[test]
    fn a_candidate_must_keep_its_ssrc_its_pace_and_its_order() {
        let t0 = Instant::now();
        let other = addr("192.0.2.1:20000");
        // SSRC changes within the run.
        let mut f = established(t0);
        for i in 0..8u16 {
            let v = f.check(t0 + ms(20 * u64::from(i + 1)), other, &header(10 + u32::from(i % 2), i));
            assert_eq!(v, SourceVerdict::Reject, "{i}");
        }
        // The same packet replayed.
        let mut f = established(t0);
        for i in 0..8u64 {
            assert_eq!(f.check(t0 + ms(20 * (i + 1)), other, &header(2, 77)), SourceVerdict::Reject);
        }
        // Too slow: one packet a second.
        let mut f = established(t0);
        for i in 0..8u16 {
            let v = f.check(t0 + Duration::from_secs(u64::from(i) + 1), other, &header(2, i));
            assert_eq!(v, SourceVerdict::Reject, "{i}");
        }
        assert_eq!(f.remote(), addr("192.0.2.1:10000"));
    }

    #[test]
    fn strangers_and_foreign_payload_types_never_move_the_media() {
        let t0 = Instant::now();
        // Not even before the first packet, and not from 127.0.0.3 (neither SDP nor PBX).
        let mut f = SourceFilter::new(addr("127.0.0.1:10000"), &[ip("127.0.0.1")], PTS);
        let stranger = addr("127.0.0.3:10000");
        for i in 0..50u16 {
            assert_eq!(f.check(t0 + ms(20 * u64::from(i)), stranger, &header(2, i)), SourceVerdict::Reject);
        }
        assert_eq!(f.remote(), addr("127.0.0.1:10000"));
        // A payload type that was not negotiated, even from the SDP's own address.
        let mut cn = header(1, 0);
        cn.payload_type = 13;
        assert_eq!(f.check(t0, addr("127.0.0.1:10000"), &cn), SourceVerdict::Reject);
        assert_eq!(f.check(t0, addr("127.0.0.1:10002"), &cn), SourceVerdict::Reject);
        assert_eq!(f.remote(), addr("127.0.0.1:10000"));
        // Telephone-events count as the call's media.
        let mut dtmf = header(1, 1);
        dtmf.payload_type = 101;
        assert_eq!(f.check(t0, addr("127.0.0.1:10000"), &dtmf), SourceVerdict::Accept);
    }

    #[test]
    fn the_first_packet_from_the_sdp_ip_latches_its_port_at_once() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(addr("192.0.2.1:10000"), &[ip("198.51.100.1")], PTS);
        // From the PBX's IP before anything: it has to be sustained.
        assert_eq!(f.check(t0, addr("198.51.100.1:4000"), &header(3, 0)), SourceVerdict::Reject);
        let natted = addr("192.0.2.1:61000");
        assert_eq!(f.check(t0, natted, &header(1, 0)), SourceVerdict::Latched(natted));
        assert_eq!(f.remote(), natted);
        // Established: the SDP's own port is now just another candidate.
        assert_eq!(f.check(t0 + ms(20), addr("192.0.2.1:10000"), &header(1, 1)), SourceVerdict::Reject);
        assert_eq!(f.remote(), natted);
    }

    #[test]
    fn a_reinvite_moves_the_media_at_once_and_a_refresh_keeps_the_latch() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(addr("192.0.2.1:10000"), &[], PTS);
        let natted = addr("192.0.2.1:61000");
        assert_eq!(f.check(t0, natted, &header(1, 0)), SourceVerdict::Latched(natted));
        // A refresh with the same SDP: the latch stays.
        f.renegotiate(addr("192.0.2.1:10000"), PTS);
        assert_eq!(f.remote(), natted);
        assert_eq!(f.check(t0 + ms(20), natted, &header(1, 1)), SourceVerdict::Accept);
        // A re-INVITE to a new address (and a new codec): sent there at once, accepted
        // from there at once, and its first packet from another port latches.
        let pcma = PayloadTypes { audio: 8, telephone_event: None };
        f.renegotiate(addr("203.0.113.5:5000"), pcma);
        assert_eq!(f.remote(), addr("203.0.113.5:5000"));
        let mut h = header(9, 0);
        h.payload_type = 8;
        assert_eq!(
            f.check(t0 + ms(40), addr("203.0.113.5:5002"), &h),
            SourceVerdict::Latched(addr("203.0.113.5:5002"))
        );
        assert_eq!(f.check(t0 + ms(60), natted, &h), SourceVerdict::Reject, "the old IP is a stranger now");
        assert_eq!(
            f.check(t0 + ms(60), addr("203.0.113.5:5002"), &header(9, 1)),
            SourceVerdict::Reject,
            "PCMU no longer negotiated"
        );
    }

    #[test]
    fn a_late_packet_from_where_a_reinvite_moved_away_does_not_move_the_media_back() {
        let t0 = Instant::now();
        let mut f = SourceFilter::new(addr("192.0.2.1:10000"), &[], PTS);
        assert_eq!(f.check(t0, addr("192.0.2.1:10000"), &header(1, 0)), SourceVerdict::Accept);
        // The PBX moves the media to another port on the same IP; a packet sent before
        // the move arrives after it.
        f.renegotiate(addr("192.0.2.1:10002"), PTS);
        assert_eq!(f.check(t0 + ms(20), addr("192.0.2.1:10000"), &header(1, 1)), SourceVerdict::Reject);
        assert_eq!(f.remote(), addr("192.0.2.1:10002"), "our RTP still goes to the new port");
        assert_eq!(f.check(t0 + ms(40), addr("192.0.2.1:10002"), &header(2, 0)), SourceVerdict::Accept);
        // The old port would need a sustained stream to win back, like any new source.
        for k in 0..SUSTAIN - 1 {
            let at = t0 + ms(60 + 20 * u64::from(k));
            assert_eq!(f.check(at, addr("192.0.2.1:10000"), &header(1, 2 + k as u16)), SourceVerdict::Reject);
        }
        let last = header(1, 1 + SUSTAIN as u16);
        assert_eq!(
            f.check(t0 + ms(200), addr("192.0.2.1:10000"), &last),
            SourceVerdict::Latched(addr("192.0.2.1:10000"))
        );
    }
}
