//! The call's RTP leg: what the PBX sends us (source filter → RTP parse →
//! telephone-event digits or jitter buffer) and what we send it (the pacer's packets,
//! kept in a small fixed ring until the driver takes them), with the counters the
//! record and the summary need. No allocation after construction.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use voice_ua_media::{
    DtmfEvent, DtmfReceiver, JitterBuffer, JitterConfig, Law, Pacer, PacerConfig, PayloadTypes, RtpPacket,
    SourceFilter, SourceVerdict, Transmit,
};
use voice_ua_records::MediaStats;
use voice_ua_sip::negotiate::{Codec, MediaPlan};
use voice_ua_sip::sdp::Direction;

/// Samples in one 20 ms frame at 8 kHz.
pub(crate) const FRAME: usize = 160;
/// Room for one outgoing packet (12-byte header + 160 samples, or a telephone-event).
const SLOT: usize = voice_ua_media::pacer::PACKET_LEN;
/// Packets one tick can queue: the pacer's burst limit (it sends at most this many at
/// once after a stall).
const SLOTS: usize = 10;

/// The G.711 law of a codec; None for what is not carried end to end (G.722).
pub fn law_of(codec: Codec) -> Option<Law> {
    match codec {
        Codec::Pcmu => Some(Law::Ulaw),
        Codec::Pcma => Some(Law::Alaw),
        Codec::G722 => None,
    }
}

/// The payload types the source filter lets through.
fn payload_types(plan: &MediaPlan) -> PayloadTypes {
    PayloadTypes { audio: plan.pt, telephone_event: plan.dtmf_pt }
}

fn pacer_for(plan: &MediaPlan, law: Law, seed: u64, now: Instant) -> Pacer {
    let mut pc = PacerConfig::new(law, seed as u32, (seed >> 32) as u16, (seed >> 48) as u32);
    pc.payload_type = plan.pt;
    pc.dtmf_payload_type = plan.dtmf_pt;
    Pacer::new(pc, now)
}

/// What one datagram from the PBX turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// Not ours (wrong source, not RTP, wrong payload type): dropped.
    Dropped,
    /// Caller audio (or a telephone-event packet that pressed nothing new).
    Media,
    /// The caller pressed this key (RFC 4733).
    Digit(char),
}

pub(crate) struct MediaLeg {
    pub(crate) plan: MediaPlan,
    pub(crate) law: Law,
    filter: Option<SourceFilter>,
    pbx_ips: Vec<IpAddr>,
    pub(crate) jitter: JitterBuffer,
    pub(crate) pacer: Pacer,
    dtmf: Option<DtmfReceiver>,
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) last_rtp: Instant,
    /// Outgoing packets of this tick, oldest at `out_head`.
    out: [[u8; SLOT]; SLOTS],
    out_len: [usize; SLOTS],
    out_head: usize,
    out_count: usize,
    out_to: Option<SocketAddr>,
}

impl MediaLeg {
    pub(crate) fn new(
        now: Instant,
        plan: MediaPlan,
        law: Law,
        jitter: JitterConfig,
        pbx_ips: Vec<IpAddr>,
        seed: u64,
    ) -> MediaLeg {
        MediaLeg {
            filter: plan.remote.map(|r| SourceFilter::new(r, &pbx_ips, payload_types(&plan))),
            pbx_ips,
            jitter: JitterBuffer::new(jitter),
            pacer: pacer_for(&plan, law, seed, now),
            dtmf: plan.dtmf_pt.map(DtmfReceiver::new),
            plan,
            law,
            packets_in: 0,
            packets_out: 0,
            last_rtp: now,
            out: [[0; SLOT]; SLOTS],
            out_len: [0; SLOTS],
            out_head: 0,
            out_count: 0,
            out_to: None,
        }
    }

    /// Apply a renegotiated plan (hold, resume, moved remote, new codec).
    pub(crate) fn replan(&mut self, now: Instant, plan: MediaPlan, seed: u64) {
        match (plan.remote, self.filter.as_mut()) {
            (Some(r), Some(f)) => f.renegotiate(r, payload_types(&plan)),
            (Some(r), None) => self.filter = Some(SourceFilter::new(r, &self.pbx_ips, payload_types(&plan))),
            _ => {}
        }
        if let Some(law) = law_of(plan.codec).filter(|l| *l != self.law) {
            let hold = self.pacer.hold_tone_on();
            self.pacer = pacer_for(&plan, law, seed, now);
            self.pacer.set_hold_tone(hold);
            self.law = law;
        }
        match (plan.dtmf_pt, self.dtmf.as_mut()) {
            (Some(pt), Some(d)) => d.set_payload_type(pt),
            (Some(pt), None) => self.dtmf = Some(DtmfReceiver::new(pt)),
            (None, _) => self.dtmf = None,
        }
        self.last_rtp = now;
        self.plan = plan;
    }

    /// One datagram from the RTP socket: parsed first, so only valid RTP of a negotiated
    /// payload type from the call's source (see [`SourceFilter`]) gets any further.
    pub(crate) fn receive(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Received {
        let Some(filter) = self.filter.as_mut() else { return Received::Dropped };
        let Ok(packet) = RtpPacket::parse(bytes) else { return Received::Dropped };
        match filter.check(now, from, &packet.header) {
            SourceVerdict::Reject => return Received::Dropped,
            SourceVerdict::Latched(addr) => {
                tracing::info!(%addr, ssrc = packet.header.ssrc, "RTP moved to the address it really comes from")
            }
            SourceVerdict::Accept => {}
        }
        self.packets_in += 1;
        self.last_rtp = now;
        if let Some(dtmf) = self.dtmf.as_mut() {
            if dtmf.accepts(&packet) {
                return match dtmf.handle(&packet) {
                    Some(DtmfEvent::Pressed { digit }) => Received::Digit(digit),
                    _ => Received::Media,
                };
            }
        }
        if packet.header.payload_type == self.plan.pt {
            self.jitter.push(now, &packet);
        }
        Received::Media
    }

    /// Where our RTP goes: where the caller's really comes from, else the SDP's address.
    fn send_target(&self) -> Option<SocketAddr> {
        self.filter.as_ref().map(|f| f.remote()).or(self.plan.remote)
    }

    /// The pacer's next due packet at `now`, queued for the driver when we send on this
    /// call (not on hold). Returns what the pacer sent, and its bytes.
    pub(crate) fn transmit(&mut self, now: Instant) -> Option<(Transmit, &[u8])> {
        let slot = (self.out_head + self.out_count) % SLOTS;
        let tx = self.pacer.poll_transmit(now, &mut self.out[slot])?;
        let to = if self.plan.direction.we_send() { self.send_target() } else { None };
        if let (Some(to), true) = (to, self.out_count < SLOTS) {
            self.out_len[slot] = tx.len;
            self.out_count += 1;
            self.out_to = Some(to);
            self.packets_out += 1;
        }
        let bytes = self.out[slot].get(..tx.len).unwrap_or(&[]);
        Some((tx, bytes))
    }

    /// The oldest queued packet, copied into `buf`.
    pub(crate) fn take_packet(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        if self.out_count == 0 {
            return None;
        }
        let slot = self.out_head;
        self.out_head = (self.out_head + 1) % SLOTS;
        self.out_count -= 1;
        let len = self.out_len[slot];
        let dst = buf.get_mut(..len)?;
        dst.copy_from_slice(self.out[slot].get(..len)?);
        Some((len, self.out_to?))
    }

    /// No RTP for longer than `timeout` while the PBX should be sending to us. A held
    /// call (anything but sendrecv) has no timeout: Asterisk's hold re-INVITE says
    /// `a=sendonly` and then stops its RTP (music on hold may or may not flow), and a
    /// caller on hold must not be hung up. The clock restarts on resume.
    pub(crate) fn timed_out(&self, now: Instant, timeout: Duration) -> bool {
        self.plan.direction == Direction::SendRecv && now.duration_since(self.last_rtp) > timeout
    }

    /// The call's RTP figures: for the summary line, the metrics and the record.
    pub(crate) fn stats(&self) -> MediaStats {
        let s = self.jitter.stats();
        MediaStats {
            packets_in: self.packets_in,
            packets_out: self.packets_out,
            lost: s.lost,
            late: s.late,
            concealed: s.concealed,
            jitter_ms: f64::from(s.jitter) / 8.0,
        }
    }
}
