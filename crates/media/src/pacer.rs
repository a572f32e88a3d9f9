//! Outbound pacer: audio from the agent in any chunk size, faster than real time, out as
//! exactly one 20 ms RTP packet (G.711, or G.722) per frame period on the injected clock.
//!
//! Sequence numbers and timestamps run on without gaps; when the queue is empty the pacer
//! sends encoded silence (never an RTP gap) and sets the marker bit on the first packet of
//! each talkspurt. [`Pacer::flush`] (barge-in) drops everything queued: the very next packet
//! is silence. Frames are due at `start + n × 20 ms`; a late tick sends every frame that is
//! due (up to a burst limit), so the stream never drifts from the clock.
//!
//! The queue is a ring allocated once (it grows on demand up to `max_queue`); pushing and
//! polling allocate nothing in steady state. G.711 is queued encoded (it is stateless);
//! G.722 is queued as 16 kHz linear audio and encoded as each packet leaves, silence
//! included, so the encoder's ADPCM state follows exactly what the far end decodes: a
//! flush drops audio that was never encoded, and the far end's decoder stays in step.
//! RTP timestamps advance by 160 per packet for both (G.722's 8 kHz RTP clock).

use std::time::{Duration, Instant};

use crate::codec::{AudioCodec, FRAME_UNITS};
use crate::dtmf::DtmfSender;
use crate::g711::Law;
use crate::g722::G722Encoder;
use crate::hold_tone::HoldTone;
use crate::rtp::{RtpHeader, HEADER_LEN};
use crate::MediaError;

const FRAME_TIME: Duration = Duration::from_millis(20);

/// Bytes of one outgoing packet: header + 20 ms of G.711 or G.722 (160 bytes each).
pub const PACKET_LEN: usize = HEADER_LEN + FRAME_UNITS;

/// The queue's first size: 2 s of audio.
const INITIAL_QUEUE: Duration = Duration::from_secs(2);

/// What happens to audio pushed into a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Accept what fits; the push returns how many samples were taken (back-pressure).
    #[default]
    Reject,
    /// Make room by dropping the oldest queued audio (keeps latency bounded).
    DropOldest,
}

/// Pacer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    /// PCMU, PCMA or G.722.
    pub codec: AudioCodec,
    /// RTP payload type (normally the codec's static one).
    pub payload_type: u8,
    /// Our SSRC.
    pub ssrc: u32,
    /// First sequence number (random per RFC 3550).
    pub initial_sequence: u16,
    /// First timestamp (random per RFC 3550).
    pub initial_timestamp: u32,
    /// Most audio the queue holds. Default 30 s.
    pub max_queue: Duration,
    /// Full-queue policy.
    pub overflow: Overflow,
    /// Most frames one late tick sends; beyond that the pacer skips ahead (timestamps keep
    /// following the clock, queued audio is kept). Default 10 (200 ms).
    pub max_burst: u32,
    /// Payload type negotiated for telephone-event (RFC 4733), if any. Default 101.
    pub dtmf_payload_type: Option<u8>,
}

impl PacerConfig {
    /// Defaults for G.711 `law` with the given SSRC and random starting points.
    pub fn new(law: Law, ssrc: u32, initial_sequence: u16, initial_timestamp: u32) -> Self {
        PacerConfig::for_codec(AudioCodec::G711(law), ssrc, initial_sequence, initial_timestamp)
    }

    /// Defaults for `codec` with the given SSRC and random starting points.
    pub fn for_codec(codec: AudioCodec, ssrc: u32, initial_sequence: u16, initial_timestamp: u32) -> Self {
        PacerConfig {
            codec,
            payload_type: codec.payload_type(),
            ssrc,
            initial_sequence,
            initial_timestamp,
            max_queue: Duration::from_secs(30),
            overflow: Overflow::Reject,
            max_burst: 10,
            dtmf_payload_type: Some(101),
        }
    }
}

/// What a packet from [`Pacer::poll_transmit`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    /// Queued agent audio (the rest of the frame is silence when the queue ran short).
    Audio,
    /// Encoded silence: nothing was queued.
    Silence,
    /// An RFC 4733 telephone-event packet.
    Dtmf,
    /// The hold tone: nothing was queued while the hold tone is on
    /// ([`Pacer::set_hold_tone`]). Not agent audio: no marker, not counted in
    /// [`PacerStats::audio_samples`].
    HoldTone,
}

/// One packet written by [`Pacer::poll_transmit`]: its length in the buffer and what its
/// header says, so the caller never re-reads the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes written at the start of the buffer.
    pub len: usize,
    /// The RTP marker bit: the first packet of a talkspurt, or of a DTMF event.
    pub marker: bool,
    /// The RTP payload type (the codec's, or telephone-event's for [`TransmitKind::Dtmf`]).
    pub payload_type: u8,
    /// What the packet carries.
    pub kind: TransmitKind,
}

/// Counters for the outbound stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacerStats {
    /// Packets produced.
    pub packets: u64,
    /// Packets that were all silence.
    pub silence: u64,
    /// Packets that ran out of audio mid-talkspurt (padded with silence).
    pub underruns: u64,
    /// Samples refused or dropped because the queue was full.
    pub overflow_samples: u64,
    /// Samples dropped by `flush`.
    pub flushed_samples: u64,
    /// Queued samples that went out in packets (the audio the far end has been sent,
    /// silence padding not counted), at the codec's rate (16 kHz for G.722).
    pub audio_samples: u64,
    /// Frame periods skipped after a tick later than the burst limit.
    pub skipped_frames: u64,
    /// Packets that carried the hold tone.
    pub hold_tone: u64,
}

/// A ring of queued audio units (G.711 codes or G.722's linear samples): allocated small,
/// grown on demand up to a limit.
#[derive(Debug)]
struct Ring<T> {
    buf: Vec<T>,
    head: usize,
    len: usize,
    /// What a fresh slot holds.
    fill: T,
}

impl<T: Copy> Ring<T> {
    fn new(size: usize, fill: T) -> Self {
        Ring { buf: vec![fill; size], head: 0, len: 0, fill }
    }

    /// Re-allocate with `size` slots, queued audio first.
    fn grow(&mut self, size: usize) {
        let mut bigger = vec![self.fill; size];
        let capacity = self.buf.len();
        for (i, slot) in bigger.iter_mut().take(self.len).enumerate() {
            if let Some(b) = self.buf.get((self.head + i) % capacity) {
                *slot = *b;
            }
        }
        self.buf = bigger;
        self.head = 0;
    }

    /// Apply the overflow policy for `wanted` new units (the ring grows up to `max`):
    /// how many of them to skip from the front and how many to take.
    fn make_room(
        &mut self,
        wanted: usize,
        max: usize,
        overflow: Overflow,
        stats: &mut PacerStats,
    ) -> (usize, usize) {
        if wanted > self.buf.len() - self.len && self.buf.len() < max {
            self.grow((self.len + wanted).max(self.buf.len() * 2).min(max));
        }
        let capacity = self.buf.len();
        let free = capacity - self.len;
        if wanted <= free {
            return (0, wanted);
        }
        match overflow {
            Overflow::Reject => {
                stats.overflow_samples += (wanted - free) as u64;
                (0, free)
            }
            Overflow::DropOldest => {
                let take = wanted.min(capacity);
                let skip = wanted - take;
                let drop = (take - free).min(self.len);
                self.head = (self.head + drop) % capacity.max(1);
                self.len -= drop;
                stats.overflow_samples += (skip + drop) as u64;
                (skip, take)
            }
        }
    }

    /// Append `units` through `convert` (which fills a slice from the front of the input
    /// and returns how many it took), in at most two contiguous runs.
    fn append<U>(&mut self, mut rest: &[U], convert: impl Fn(&[U], &mut [T]) -> usize) {
        while !rest.is_empty() {
            let capacity = self.buf.len();
            if capacity == 0 {
                break;
            }
            let tail = (self.head + self.len) % capacity;
            let run = (capacity - self.len).min(capacity - tail);
            let dst = self.buf.get_mut(tail..tail + run).unwrap_or(&mut []);
            let n = convert(rest, dst);
            self.len += n;
            rest = rest.get(n..).unwrap_or(&[]);
            if n == 0 {
                break;
            }
        }
    }

    /// Move up to `dst.len()` units out, oldest first; returns how many.
    fn take_into(&mut self, dst: &mut [T]) -> usize {
        let available = self.len.min(dst.len());
        let mut filled = 0;
        while filled < available {
            let capacity = self.buf.len();
            let run = (available - filled).min(capacity - self.head);
            if let (Some(d), Some(src)) =
                (dst.get_mut(filled..filled + run), self.buf.get(self.head..self.head + run))
            {
                d.copy_from_slice(src);
            }
            self.head = (self.head + run) % capacity;
            self.len -= run;
            filled += run;
        }
        available
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// The outbound pacer for one call.
#[derive(Debug)]
pub struct Pacer {
    config: PacerConfig,
    /// The most samples the queue may hold (`max_queue`).
    max_samples: usize,
    /// G.711: encoded audio (empty for G.722).
    coded: Ring<u8>,
    /// G.722: linear 16 kHz audio, encoded as it leaves (empty for G.711).
    linear: Ring<i16>,
    encoder: G722Encoder,
    sequence: u16,
    timestamp: u32,
    next_due: Instant,
    talking: bool,
    /// The event being sent and its (constant) timestamp; digits waiting behind it.
    dtmf: Option<(DtmfSender, u32)>,
    dtmf_queue: [Option<DtmfSender>; 16],
    dtmf_head: usize,
    dtmf_len: usize,
    stats: PacerStats,
    /// The hold tone, while it is on: it fills frames with nothing queued.
    hold_tone: Option<HoldTone>,
}

impl Pacer {
    /// A pacer whose first frame is due at `start`.
    pub fn new(config: PacerConfig, start: Instant) -> Self {
        let per_ms = config.codec.sample_rate() as usize / 1000;
        let frame = config.codec.frame_samples();
        let max_samples = (config.max_queue.as_millis() as usize * per_ms).max(frame);
        // Start small and grow on demand up to `max_queue`: most calls never queue more
        // than a few seconds, and growth is rare, so steady state still allocates nothing.
        let initial = max_samples.min(INITIAL_QUEUE.as_millis() as usize * per_ms);
        let (coded, linear) = match config.codec {
            AudioCodec::G711(law) => (Ring::new(initial, law.silence()), Ring::new(0, 0)),
            AudioCodec::G722 => (Ring::new(0, 0), Ring::new(initial, 0)),
        };
        Pacer {
            config,
            max_samples,
            coded,
            linear,
            encoder: G722Encoder::new(),
            sequence: config.initial_sequence,
            timestamp: config.initial_timestamp,
            next_due: start,
            talking: false,
            dtmf: None,
            dtmf_queue: std::array::from_fn(|_| None),
            dtmf_head: 0,
            dtmf_len: 0,
            stats: PacerStats::default(),
            hold_tone: None,
        }
    }

    /// The codec this pacer sends.
    pub fn codec(&self) -> AudioCodec {
        self.config.codec
    }

    /// Counters.
    pub fn stats(&self) -> &PacerStats {
        &self.stats
    }

    /// Audio waiting to be sent.
    pub fn queued(&self) -> Duration {
        let rate = u64::from(self.config.codec.sample_rate());
        Duration::from_micros(self.queued_samples() as u64 * 1_000_000 / rate)
    }

    /// Queued samples (at the codec's rate).
    pub fn queued_samples(&self) -> usize {
        self.coded.len + self.linear.len
    }

    /// When the next frame is due: sleep until then, then call [`poll_transmit`](Self::poll_transmit).
    pub fn poll_timeout(&self) -> Instant {
        self.next_due
    }

    /// Queue linear audio at the codec's rate (8 kHz G.711, 16 kHz G.722); returns the
    /// samples taken (all, unless the queue is full under [`Overflow::Reject`]; under
    /// [`Overflow::DropOldest`] the newest are kept).
    pub fn push_linear(&mut self, pcm: &[i16]) -> usize {
        let (max, overflow) = (self.max_samples, self.config.overflow);
        match self.config.codec {
            AudioCodec::G711(law) => {
                let (skip, take) = self.coded.make_room(pcm.len(), max, overflow, &mut self.stats);
                let rest = pcm.get(skip..skip + take).unwrap_or(&[]);
                self.coded.append(rest, |src, dst| law.encode_slice(src, dst));
                take
            }
            AudioCodec::G722 => {
                let (skip, take) = self.linear.make_room(pcm.len(), max, overflow, &mut self.stats);
                let rest = pcm.get(skip..skip + take).unwrap_or(&[]);
                self.linear.append(rest, copy_run);
                take
            }
        }
    }

    /// Queue audio already encoded in this pacer's G.711 law; returns the samples taken.
    /// A G.722 pacer takes no encoded audio (its encoder must see all it sends): 0.
    pub fn push_encoded(&mut self, codes: &[u8]) -> usize {
        if self.config.codec == AudioCodec::G722 {
            return 0;
        }
        let (skip, take) =
            self.coded.make_room(codes.len(), self.max_samples, self.config.overflow, &mut self.stats);
        let rest = codes.get(skip..skip + take).unwrap_or(&[]);
        self.coded.append(rest, copy_run);
        take
    }

    /// Send a DTMF digit as RFC 4733 events (after any digit already being sent). Audio
    /// queued meanwhile waits; it resumes with a new talkspurt after the event.
    pub fn send_dtmf(&mut self, digit: char, duration: Duration) -> Result<(), MediaError> {
        if self.config.dtmf_payload_type.is_none() {
            return Err(MediaError::BadHeader("no telephone-event payload type negotiated"));
        }
        let sender = DtmfSender::new(digit, duration, 10)?;
        if self.dtmf_len >= self.dtmf_queue.len() {
            return Err(MediaError::BadHeader("too many DTMF digits queued"));
        }
        let index = (self.dtmf_head + self.dtmf_len) % self.dtmf_queue.len();
        if let Some(slot) = self.dtmf_queue.get_mut(index) {
            *slot = Some(sender);
            self.dtmf_len += 1;
        }
        Ok(())
    }

    /// Turn the hold tone on or off. While on, a frame with no queued audio carries the
    /// tone instead of silence ([`TransmitKind::HoldTone`]); queued audio always goes
    /// first. Turning it on when it is off starts with a beep.
    pub fn set_hold_tone(&mut self, on: bool) {
        match (on, self.hold_tone.is_some()) {
            (true, false) => self.hold_tone = Some(HoldTone::new(self.config.codec.sample_rate())),
            (false, true) => self.hold_tone = None,
            _ => {}
        }
    }

    /// The hold tone is on.
    pub fn hold_tone_on(&self) -> bool {
        self.hold_tone.is_some()
    }

    /// Barge-in: drop all queued audio. The next packet is silence.
    pub fn flush(&mut self) {
        self.stats.flushed_samples += self.queued_samples() as u64;
        self.coded.clear();
        self.linear.clear();
        self.talking = false;
    }

    /// If a frame is due at `now`, write its packet into `out` (at least [`PACKET_LEN`]
    /// bytes) and say what it is. Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        if now < self.next_due || out.len() < PACKET_LEN {
            return None;
        }
        let behind = now.saturating_duration_since(self.next_due).as_micros() / 20_000;
        let limit = u128::from(self.config.max_burst.max(1));
        if behind >= limit {
            // Far behind (suspended process, stalled runtime): keep timestamps on the
            // clock but do not flood the network.
            let skip = (behind + 1 - limit) as u32;
            self.next_due += FRAME_TIME * skip;
            self.timestamp = self.timestamp.wrapping_add(skip.wrapping_mul(FRAME_UNITS as u32));
            self.stats.skipped_frames += u64::from(skip);
            self.talking = false;
        }
        if let Some(tx) = self.transmit_dtmf(out) {
            return Some(tx);
        }
        let (header_bytes, payload) = out.split_at_mut(HEADER_LEN);
        let payload = payload.get_mut(..FRAME_UNITS)?;
        let frame = self.config.codec.frame_samples();
        // With nothing queued, the hold tone (when on) fills the frame instead of silence.
        let mut held = false;
        let mut pcm = [0i16; crate::codec::MAX_FRAME_SAMPLES];
        let pcm = pcm.get_mut(..frame).unwrap_or(&mut []);
        let available = match self.config.codec {
            AudioCodec::G711(law) => {
                let available = self.coded.take_into(payload);
                match self.hold_tone.as_mut() {
                    Some(tone) if available == 0 => {
                        tone.next_frame(pcm);
                        law.encode_slice(pcm, payload);
                        held = true;
                    }
                    _ => payload.iter_mut().skip(available).for_each(|s| *s = law.silence()),
                }
                available
            }
            AudioCodec::G722 => {
                // The frame's audio, padded with silence (or the hold tone), through the
                // encoder.
                let available = self.linear.take_into(pcm);
                if let (0, Some(tone)) = (available, self.hold_tone.as_mut()) {
                    tone.next_frame(pcm);
                    held = true;
                }
                self.encoder.encode(pcm, payload);
                available
            }
        };
        let marker = available > 0 && !self.talking;
        let mut kind = if available == 0 { TransmitKind::Silence } else { TransmitKind::Audio };
        if held {
            kind = TransmitKind::HoldTone;
            self.stats.hold_tone += 1;
        }
        if available == 0 {
            self.talking = false;
            self.stats.silence += 1;
        } else {
            if available < frame {
                self.stats.underruns += 1;
            }
            self.stats.audio_samples += available as u64;
            self.talking = true;
        }
        let header = RtpHeader {
            marker,
            payload_type: self.config.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.config.ssrc,
        };
        header.write_packet(&[], header_bytes).ok()?;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_UNITS as u32);
        self.next_due += FRAME_TIME;
        self.stats.packets += 1;
        Some(Transmit { len: PACKET_LEN, marker, payload_type: header.payload_type, kind })
    }

    /// If a telephone-event is due, write its packet instead of audio.
    fn transmit_dtmf(&mut self, out: &mut [u8]) -> Option<Transmit> {
        let payload_type = self.config.dtmf_payload_type?;
        if self.dtmf.is_none() && self.dtmf_len > 0 {
            let next = self.dtmf_queue.get_mut(self.dtmf_head).and_then(Option::take);
            self.dtmf_head = (self.dtmf_head + 1) % self.dtmf_queue.len();
            self.dtmf_len -= 1;
            self.dtmf = next.map(|sender| (sender, self.timestamp));
        }
        let (sender, event_ts) = self.dtmf.as_mut()?;
        let Some((payload, marker)) = sender.next_payload() else {
            self.dtmf = None;
            return None;
        };
        let header = RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp: *event_ts,
            ssrc: self.config.ssrc,
        };
        let len = header.write_packet(&payload, out).ok()?;
        if sender.is_done() {
            self.dtmf = None;
        }
        self.talking = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_UNITS as u32);
        self.next_due += FRAME_TIME;
        self.stats.packets += 1;
        Some(Transmit { len, marker, payload_type, kind: TransmitKind::Dtmf })
    }
}

/// Copy as much of `src` as fits into `dst`; returns the count.
fn copy_run<T: Copy>(src: &[T], dst: &mut [T]) -> usize {
    let n = src.len().min(dst.len());
    if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
    n
}
