//! Outbound pacer: audio from the agent in any chunk size, faster than real time, out as
//! exactly one 20 ms G.711 RTP packet per frame period on the injected clock.
//!
//! Sequence numbers and timestamps run on without gaps; when the queue is empty the pacer
//! sends encoded silence (never an RTP gap) and sets the marker bit on the first packet of
//! each talkspurt. [`Pacer::flush`] (barge-in) drops everything queued: the very next packet
//! is silence. Frames are due at `start + n × 20 ms`; a late tick sends every frame that is
//! due (up to a burst limit), so the stream never drifts from the clock.
//!
//! The queue is a ring of encoded bytes allocated once; pushing and polling allocate nothing.

use std::time::{Duration, Instant};

use crate::dtmf::DtmfSender;
use crate::g711::Law;
use crate::hold_tone::HoldTone;
use crate::plc::FRAME_SAMPLES;
use crate::rtp::{RtpHeader, HEADER_LEN};
use crate::MediaError;

const FRAME_TIME: Duration = Duration::from_millis(20);

/// Bytes of one outgoing packet: header + 20 ms of G.711.
pub const PACKET_LEN: usize = HEADER_LEN + FRAME_SAMPLES;

/// The queue's first size: 2 s of audio.
const INITIAL_QUEUE_SAMPLES: usize = 16_000;

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
    /// PCMU or PCMA.
    pub law: Law,
    /// RTP payload type (normally the law's static one).
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
    /// Defaults for `law` with the given SSRC and random starting points.
    pub fn new(law: Law, ssrc: u32, initial_sequence: u16, initial_timestamp: u32) -> Self {
        PacerConfig {
            law,
            payload_type: law.payload_type(),
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
    /// silence padding not counted).
    pub audio_samples: u64,
    /// Frame periods skipped after a tick later than the burst limit.
    pub skipped_frames: u64,
    /// Packets that carried the hold tone.
    pub hold_tone: u64,
}

/// The outbound pacer for one call.
#[derive(Debug)]
pub struct Pacer {
    config: PacerConfig,
    /// The most samples the queue may hold (`max_queue`).
    max_samples: usize,
    /// Ring buffer; its length grows from `INITIAL_QUEUE_SAMPLES` up to `max_samples`.
    queue: Vec<u8>,
    head: usize,
    len: usize,
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
        let max_samples = (config.max_queue.as_millis() as usize * 8).max(FRAME_SAMPLES);
        // Start small and grow on demand up to `max_queue`: most calls never queue more
        // than a few seconds, and growth is rare, so steady state still allocates nothing.
        let initial = max_samples.min(INITIAL_QUEUE_SAMPLES);
        Pacer {
            config,
            max_samples,
            queue: vec![config.law.silence(); initial],
            head: 0,
            len: 0,
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

    /// Counters.
    pub fn stats(&self) -> &PacerStats {
        &self.stats
    }

    /// Audio waiting to be sent.
    pub fn queued(&self) -> Duration {
        Duration::from_micros(self.len as u64 * 125)
    }

    /// Queued samples.
    pub fn queued_samples(&self) -> usize {
        self.len
    }

    /// When the next frame is due: sleep until then, then call [`poll_transmit`](Self::poll_transmit).
    pub fn poll_timeout(&self) -> Instant {
        self.next_due
    }

    /// Queue 8 kHz linear audio; returns the samples taken (all, unless the queue is full
    /// under [`Overflow::Reject`]; under [`Overflow::DropOldest`] the newest are kept).
    pub fn push_linear(&mut self, pcm: &[i16]) -> usize {
        let law = self.config.law;
        let (skip, take) = self.make_room(pcm.len());
        let mut rest = pcm.get(skip..skip + take).unwrap_or(&[]);
        while !rest.is_empty() {
            let (dst, _) = self.free_run();
            let run = law.encode_slice(rest, dst);
            self.len += run;
            rest = rest.get(run..).unwrap_or(&[]);
            if run == 0 {
                break;
            }
        }
        take
    }

    /// Queue audio already encoded in this pacer's law; returns the samples taken.
    pub fn push_encoded(&mut self, codes: &[u8]) -> usize {
        let (skip, take) = self.make_room(codes.len());
        let mut rest = codes.get(skip..skip + take).unwrap_or(&[]);
        while !rest.is_empty() {
            let (dst, _) = self.free_run();
            let run = rest.len().min(dst.len());
            if let (Some(d), Some(src)) = (dst.get_mut(..run), rest.get(..run)) {
                d.copy_from_slice(src);
            }
            self.len += run;
            rest = rest.get(run..).unwrap_or(&[]);
            if run == 0 {
                break;
            }
        }
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
            (true, false) => self.hold_tone = Some(HoldTone::new(8000)),
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
        self.stats.flushed_samples += self.len as u64;
        self.head = 0;
        self.len = 0;
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
            self.timestamp = self.timestamp.wrapping_add(skip.wrapping_mul(FRAME_SAMPLES as u32));
            self.stats.skipped_frames += u64::from(skip);
            self.talking = false;
        }
        if let Some(tx) = self.transmit_dtmf(out) {
            return Some(tx);
        }
        let (header_bytes, payload) = out.split_at_mut(HEADER_LEN);
        let payload = payload.get_mut(..FRAME_SAMPLES)?;
        let available = self.len.min(FRAME_SAMPLES);
        let mut filled = 0;
        while filled < available {
            let capacity = self.queue.len();
            let run = (available - filled).min(capacity - self.head);
            if let (Some(dst), Some(src)) =
                (payload.get_mut(filled..filled + run), self.queue.get(self.head..self.head + run))
            {
                dst.copy_from_slice(src);
            }
            self.head = (self.head + run) % capacity;
            self.len -= run;
            filled += run;
        }
        payload.iter_mut().skip(available).for_each(|s| *s = self.config.law.silence());
        let marker = available > 0 && !self.talking;
        let mut kind = if available == 0 { TransmitKind::Silence } else { TransmitKind::Audio };
        if let (0, Some(tone)) = (available, self.hold_tone.as_mut()) {
            let mut pcm = [0i16; FRAME_SAMPLES];
            tone.next_frame(&mut pcm);
            self.config.law.encode_slice(&pcm, payload);
            kind = TransmitKind::HoldTone;
            self.stats.hold_tone += 1;
        }
        if available == 0 {
            self.talking = false;
            self.stats.silence += 1;
        } else {
            if available < FRAME_SAMPLES {
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
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
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
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        self.next_due += FRAME_TIME;
        self.stats.packets += 1;
        Some(Transmit { len, marker, payload_type, kind: TransmitKind::Dtmf })
    }

    /// Re-allocate the ring with `size` slots, queued audio first.
    fn grow(&mut self, size: usize) {
        let mut bigger = vec![self.config.law.silence(); size];
        let capacity = self.queue.len();
        for (i, slot) in bigger.iter_mut().take(self.len).enumerate() {
            if let Some(b) = self.queue.get((self.head + i) % capacity) {
                *slot = *b;
            }
        }
        self.queue = bigger;
        self.head = 0;
    }

    /// Apply the overflow policy for `wanted` new samples: returns how many of them to
    /// skip from the front and how many to take.
    fn make_room(&mut self, wanted: usize) -> (usize, usize) {
        if wanted > self.queue.len() - self.len && self.queue.len() < self.max_samples {
            self.grow((self.len + wanted).max(self.queue.len() * 2).min(self.max_samples));
        }
        let capacity = self.queue.len();
        let free = capacity - self.len;
        if wanted <= free {
            return (0, wanted);
        }
        match self.config.overflow {
            Overflow::Reject => {
                self.stats.overflow_samples += (wanted - free) as u64;
                (0, free)
            }
            Overflow::DropOldest => {
                let take = wanted.min(capacity);
                let skip = wanted - take;
                let drop = (take - free).min(self.len);
                self.head = (self.head + drop) % capacity;
                self.len -= drop;
                self.stats.overflow_samples += (skip + drop) as u64;
                (skip, take)
            }
        }
    }

    /// The contiguous free run after the queued audio (may be shorter than all free space).
    fn free_run(&mut self) -> (&mut [u8], usize) {
        let capacity = self.queue.len();
        let tail = (self.head + self.len) % capacity;
        let free = capacity - self.len;
        let run = free.min(capacity - tail);
        (self.queue.get_mut(tail..tail + run).unwrap_or(&mut []), run)
    }
}
