//! The call's RTP leg: what the PBX sends us (source filter → RTP parse →
//! telephone-event digits or jitter buffer) and what we send it (the pacer's packets,
//! kept in a small fixed ring until the driver takes them), with the counters the
//! record and the summary need; and the codec's side of the agent seam: a G.711 call
//! talks G.711 with the agent, a G.722 call linear16 at 16 kHz. No allocation after
//! construction (but for the fallback prompt, played once).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use voice_ua_agent::AudioFormat;
use voice_ua_media::{
    AudioCodec, DtmfEvent, DtmfReceiver, JitterBuffer, JitterConfig, Law, Pacer, PacerConfig, PayloadTypes,
    Resampler, RtpPacket, SourceFilter, SourceVerdict, Transmit, MAX_FRAME_SAMPLES,
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

/// The G.711 law of a codec; None for G.722.
pub fn law_of(codec: Codec) -> Option<Law> {
    match codec {
        Codec::Pcmu => Some(Law::Ulaw),
        Codec::Pcma => Some(Law::Alaw),
        Codec::G722 => None,
    }
}

/// How a negotiated codec is carried end to end; None for one that is not (there is
/// none today: every codec the SDP side offers is carried).
pub fn codec_of(codec: Codec) -> Option<AudioCodec> {
    match codec {
        Codec::Pcmu => Some(AudioCodec::G711(Law::Ulaw)),
        Codec::Pcma => Some(AudioCodec::G711(Law::Alaw)),
        Codec::G722 => Some(AudioCodec::G722),
    }
}

/// The agent's audio format for a call in `codec`: G.711 as it is, G.722 as linear16 at
/// 16 kHz (the wideband audio reaches the agent; providers that need another rate
/// resample on their side).
pub fn agent_format(codec: AudioCodec) -> AudioFormat {
    match codec {
        AudioCodec::G711(law) => AudioFormat::for_law(law),
        AudioCodec::G722 => AudioFormat::Linear16 { rate_hz: 16_000 },
    }
}

/// One played-out caller frame in the agent's format ([`agent_format`]) into `out`
/// (at least 640 bytes); returns the bytes written.
pub(crate) fn to_agent(codec: AudioCodec, samples: &[i16], out: &mut [u8]) -> usize {
    match codec {
        AudioCodec::G711(law) => law.encode_slice(samples, out),
        AudioCodec::G722 => {
            let mut n = 0;
            for (pair, &x) in out.chunks_exact_mut(2).zip(samples) {
                pair.copy_from_slice(&x.to_le_bytes());
                n += 2;
            }
            n
        }
    }
}

/// The payload types the source filter lets through.
fn payload_types(plan: &MediaPlan) -> PayloadTypes {
    PayloadTypes { audio: plan.pt, telephone_event: plan.dtmf_pt }
}

fn pacer_for(plan: &MediaPlan, codec: AudioCodec, seed: u64, now: Instant) -> Pacer {
    let mut pc = PacerConfig::for_codec(codec, seed as u32, (seed >> 32) as u16, (seed >> 48) as u32);
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
    pub(crate) codec: AudioCodec,
    filter: Option<SourceFilter>,
    pbx_ips: Vec<IpAddr>,
    pub(crate) jitter: JitterBuffer,
    pub(crate) pacer: Pacer,
    /// G.722: 8 → 16 kHz for the μ-law prompts (made once per call).
    prompt_up: Option<Resampler>,
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
        codec: AudioCodec,
        jitter: JitterConfig,
        pbx_ips: Vec<IpAddr>,
        seed: u64,
    ) -> MediaLeg {
        MediaLeg {
            filter: plan.remote.map(|r| SourceFilter::new(r, &pbx_ips, payload_types(&plan))),
            pbx_ips,
            jitter: JitterBuffer::with_codec(jitter, codec),
            pacer: pacer_for(&plan, codec, seed, now),
            prompt_up: (codec == AudioCodec::G722).then(|| Resampler::new(8000, 16_000).ok()).flatten(),
            dtmf: plan.dtmf_pt.map(DtmfReceiver::new),
            plan,
            codec,
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

    /// Whether a renegotiated codec can replace this leg's: one at the same audio rate
    /// (PCMU ↔ PCMA). The agent's format is fixed for the session, so a switch between
    /// 8 and 16 kHz mid-call is refused.
    pub(crate) fn can_switch_to(&self, codec: Codec) -> bool {
        codec_of(codec).is_some_and(|c| c.sample_rate() == self.codec.sample_rate())
    }

    /// Apply a renegotiated plan (hold, resume, moved remote, new codec of the same rate).
    pub(crate) fn replan(&mut self, now: Instant, plan: MediaPlan, seed: u64) {
        match (plan.remote, self.filter.as_mut()) {
            (Some(r), Some(f)) => f.renegotiate(r, payload_types(&plan)),
            (Some(r), None) => self.filter = Some(SourceFilter::new(r, &self.pbx_ips, payload_types(&plan))),
            _ => {}
        }
        if let Some(codec) =
            codec_of(plan.codec).filter(|c| *c != self.codec && self.can_switch_to(plan.codec))
        {
            // The G.711 jitter buffer takes either law; only the pacer changes.
            let hold = self.pacer.hold_tone_on();
            self.pacer = pacer_for(&plan, codec, seed, now);
            self.pacer.set_hold_tone(hold);
            self.codec = codec;
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

    /// Queue audio from the agent, in the call's agent format ([`agent_format`]):
    /// G.711 codes as they are, linear16 (16 kHz, little-endian) for G.722.
    pub(crate) fn play(&mut self, bytes: &[u8]) {
        match self.codec {
            AudioCodec::G711(_) => {
                self.pacer.push_encoded(bytes);
            }
            AudioCodec::G722 => {
                let mut pcm = [0i16; MAX_FRAME_SAMPLES];
                for chunk in bytes.chunks(2 * MAX_FRAME_SAMPLES) {
                    let mut n = 0;
                    for (x, b) in pcm.iter_mut().zip(chunk.chunks_exact(2)) {
                        *x = i16::from_le_bytes([b[0], b[1]]);
                        n += 1;
                    }
                    self.pacer.push_linear(pcm.get(..n).unwrap_or(&[]));
                }
            }
        }
    }

    /// Queue a prompt (μ-law, 8 kHz: the fallback, the consent notice) for the caller:
    /// transcoded for A-law, decoded and resampled to 16 kHz for G.722 (with the leg's
    /// upsampler, a 20 ms silence after it flushing the filter). Returns the samples
    /// queued, at the codec's rate. Allocates nothing.
    pub(crate) fn play_ulaw(&mut self, ulaw: &[u8]) -> u64 {
        let mut queued = 0u64;
        match (self.codec, self.prompt_up.as_mut()) {
            (AudioCodec::G711(law), _) => {
                let mut chunk = [0u8; FRAME];
                for part in ulaw.chunks(FRAME) {
                    let out = chunk.get_mut(..part.len()).unwrap_or(&mut []);
                    out.copy_from_slice(part);
                    if law == Law::Alaw {
                        voice_ua_media::g711::ulaw_to_alaw_in_place(out);
                    }
                    queued += self.pacer.push_encoded(out) as u64;
                }
            }
            (AudioCodec::G722, Some(up)) => {
                let (mut narrow, mut wide) = ([0i16; FRAME], [0i16; 2 * FRAME + 2]);
                for part in ulaw.chunks(FRAME).chain(std::iter::once(&[0xFFu8; FRAME][..])) {
                    let n = Law::Ulaw.decode_slice(part, &mut narrow);
                    let m = up.process(narrow.get(..n).unwrap_or(&[]), &mut wide);
                    queued += self.pacer.push_linear(wide.get(..m).unwrap_or(&[])) as u64;
                }
            }
            (AudioCodec::G722, None) => {}
        }
        queued
    }

    /// Audio samples per 8 kHz sample: 1 for G.711, 2 for G.722.
    pub(crate) fn samples_per_8k(&self) -> u64 {
        u64::from(self.codec.sample_rate() / 8000).max(1)
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
