//! Adaptive jitter buffer for G.711 (PCMU/PCMA, 8 kHz) or G.722 (16 kHz audio on an
//! 8 kHz RTP clock): reorders packets, drops duplicates and late ones, conceals losses,
//! follows SSRC changes and timestamp jumps, and adapts its delay between configured
//! bounds. `pop` yields exactly one 20 ms frame per call (160 or 320 samples).
//!
//! Audio is placed by RTP timestamp (any ptime works) into a ring sized once from the
//! configured maximum delay; steady-state push and pop allocate nothing. Positions are
//! in RTP timestamp units, which are payload bytes for both codecs. G.711 is decoded as
//! it arrives (it is stateless); G.722 is kept as codes and decoded at playout, in order,
//! because its ADPCM decoder must see the codes in sequence: a reordered packet is
//! decoded at its place, and a lost one is concealed while the decoder keeps its state
//! and goes on with the next packet (a reset would restart its scale factors from the
//! minimum and converge more slowly; see `g722`). A frame dropped to shrink the delay is
//! still decoded (into nothing) to keep the decoder in step; a new SSRC resets it (a new
//! source's encoder starts from its own reset state).
//!
//! Delay model: the frame at play position `p` leaves at the pop that consumes `p`. A packet
//! arriving with `lead = position - play_position` samples leaves after `lead / 160 + 1`
//! pops, so the buffer keeps `end - play_position <= max_delay` for everything it holds:
//! no frame waits longer than `max_delay`. It grows by one frame (a concealed frame without
//! advancing) after a late packet and shrinks by one frame (skipping a missing or quiet one)
//! when a whole window of packets arrived at least one frame earlier than needed.

use std::time::{Duration, Instant};

use crate::codec::{AudioCodec, MAX_FRAME_SAMPLES};
use crate::g711::Law;
use crate::g722::G722Decoder;
use crate::plc::{Plc, FRAME_SAMPLES};
use crate::rtp::{seq_diff, ts_diff, RtpPacket, MAX_PACKET_LEN};

const SAMPLE_RATE: u64 = 8000;
const FRAME: i64 = FRAME_SAMPLES as i64;
/// A packet further than this from the play position (either way) with a newer sequence
/// number means the sender's timeline jumped: restart rather than wait or drop.
const JUMP: i64 = SAMPLE_RATE as i64; // 1 s
/// Packets per adaptation window (about 1 s of 20 ms packets).
const WINDOW: u32 = 50;
/// No shrinking for this long after growing.
const SHRINK_HOLDOFF: Duration = Duration::from_secs(3);
/// Concealed frames in a row after which the stream counts as stopped (hold, end of talk).
const STALL_FRAMES: u32 = 50;
/// Packets from the previous SSRC are ignored this long after a change.
const STALE_SOURCE: Duration = Duration::from_millis(200);
/// A frame whose mean absolute level is below this is "quiet" and may be dropped to shrink.
const QUIET_LEVEL: u32 = 300;
/// Pops to wait for a quiet or missing frame before shrinking on a loud one.
const SHRINK_PATIENCE: u32 = 25;

/// Jitter-buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Delay at the start of a stream (rounded to 20 ms). Default 40 ms.
    pub start_delay: Duration,
    /// Lowest delay adaptation may reach. Default 20 ms.
    pub min_delay: Duration,
    /// Highest delay; no frame is held longer. Default 200 ms.
    pub max_delay: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            start_delay: Duration::from_millis(40),
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        }
    }
}

/// What `push` did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Buffered for playout.
    Accepted,
    /// Buffered, and the stream restarted from it (new SSRC, timestamp jump, talkspurt
    /// after silence, or first packet).
    Restarted,
    /// Arrived after its playout time: dropped (counted in `late`).
    Late,
    /// Already buffered or played: dropped.
    Duplicate,
    /// From the SSRC that was just replaced: dropped.
    StaleSource,
    /// Not this buffer's codec (PCMU/PCMA, or G.722) or empty: not for this buffer
    /// (telephone-event, comfort noise, ...).
    Ignored,
}

/// What a popped frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Received audio.
    Audio,
    /// Concealment of audio that did not arrive in time (counted in `concealed`).
    Concealed,
    /// Concealment inserted to grow the delay after late packets (counted in `stretched`).
    Stretched,
    /// Nothing to play: no stream yet, start-up delay, or the stream stopped.
    Silence,
}

/// One 20 ms frame of linear audio at the codec's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// 160 samples (8 kHz, G.711) or 320 (16 kHz, G.722).
    pub samples: &'a [i16],
    /// Where they came from.
    pub kind: FrameKind,
    /// RTP timestamp of the first sample in the current stream's timeline (for a
    /// `Stretched` frame: of the frame that follows it).
    pub timestamp: u32,
}

/// Counters, cumulative over the buffer's life (all SSRCs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Packets buffered (on time, not duplicates).
    pub received: u64,
    /// Packets dropped for arriving after their playout time.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicate: u64,
    /// RFC 3550 cumulative packets lost (expected − received, late ones count as received).
    pub lost: u64,
    /// Frames concealed because their audio was missing at playout.
    pub concealed: u64,
    /// Frames inserted to grow the delay.
    pub stretched: u64,
    /// Received frames dropped to shrink the delay or respect the maximum.
    pub discarded: u64,
    /// Missing frames skipped to shrink the delay (never played nor concealed).
    pub skipped: u64,
    /// Stream restarts (new SSRC, timestamp jump, talkspurt re-sync).
    pub restarts: u64,
    /// Packets ignored (other payload types, empty, stale SSRC).
    pub ignored: u64,
    /// RFC 3550 interarrival jitter, in 8 kHz timestamp units.
    pub jitter: u32,
    /// Current buffering delay target.
    pub delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqVerdict {
    /// Newer than anything seen.
    Newest,
    /// Older than the newest, not seen before.
    Reordered,
    Duplicate,
    /// Too old to tell (or an unconfirmed backwards jump).
    TooOld,
    /// Second sequential packet after a large backwards jump: numbering restarted.
    Renumbered,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    /// Extended highest sequence number (cycles in the high bits).
    highest: i64,
    base: i64,
    received: u64,
    /// Bit i set: sequence `highest - i` seen.
    seen: u128,
    /// A large backwards jump waits for this sequence number to confirm it.
    probation: Option<u16>,
    /// Arrival (8 kHz units) minus RTP timestamp of the previous packet, for jitter.
    last_transit: Option<i64>,
    jitter_q4: u64,
}

impl Source {
    fn new(ssrc: u32, seq: u16) -> Self {
        Source {
            ssrc,
            highest: i64::from(seq) - 1,
            base: i64::from(seq),
            received: 0,
            seen: 0,
            probation: None,
            last_transit: None,
            jitter_q4: 0,
        }
    }

    fn expected(&self) -> u64 {
        (self.highest - self.base + 1).max(0) as u64
    }

    fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    fn record(&mut self, seq: u16) -> SeqVerdict {
        let delta = i64::from(seq_diff(seq, self.highest as u16));
        let verdict = if delta > 0 {
            if delta > 3000 {
                // RFC 3550 A.1 large jump: do not count the gap as lost.
                self.base += delta - 1;
            }
            self.seen = if delta >= 128 { 0 } else { self.seen << delta };
            self.seen |= 1;
            self.highest += delta;
            SeqVerdict::Newest
        } else {
            let back = delta.unsigned_abs();
            if back >= 3000 {
                if self.probation == Some(seq) {
                    // Two sequential packets: the sender restarted its numbering.
                    let lost = self.lost();
                    self.highest = i64::from(seq);
                    self.base = self.highest - (self.received + lost) as i64;
                    self.seen = 1;
                    self.probation = None;
                    self.received += 1;
                    return SeqVerdict::Renumbered;
                }
                self.probation = Some(seq.wrapping_add(1));
                return SeqVerdict::TooOld;
            }
            if back >= 128 {
                return SeqVerdict::TooOld;
            }
            if self.seen & (1u128 << back) != 0 {
                return SeqVerdict::Duplicate;
            }
            self.seen |= 1u128 << back;
            SeqVerdict::Reordered
        };
        self.received += 1;
        verdict
    }

    /// RFC 3550 A.8 interarrival jitter update.
    fn update_jitter(&mut self, arrival: i64, timestamp: u32) {
        let transit = arrival.wrapping_sub(i64::from(timestamp));
        if let Some(last) = self.last_transit {
            // Timestamps wrap: reduce the difference to the nearest 32-bit distance.
            let d = i64::from(transit.wrapping_sub(last) as i32).unsigned_abs();
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }
}

/// The adaptive jitter buffer for one call (see the module documentation).
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    codec: AudioCodec,
    /// G.711: decoded samples, one per timestamp unit (empty for G.722).
    samples: Vec<i16>,
    /// G.722: codes, one per timestamp unit (empty for G.711).
    codes: Vec<u8>,
    decoder: G722Decoder,
    /// Mean absolute level of the last G.722 frame played (its codes say nothing of it).
    last_level: u32,
    valid: Vec<bool>,
    /// Earliest arrival of any audio in each 20 ms slot (for the maximum-delay check).
    arrivals: Vec<Option<Instant>>,
    out: [i16; MAX_FRAME_SAMPLES],
    plc: Plc,
    source: Option<Source>,
    previous_ssrc: Option<(u32, Instant)>,
    /// Absolute sample position of the next sample to play, and its RTP timestamp.
    play_pos: i64,
    play_ts: u32,
    /// One past the newest buffered sample.
    end_pos: i64,
    /// Until the first audio after a restart, missing frames are silence, not losses.
    preroll: bool,
    started: bool,
    stalled: bool,
    epoch: Option<Instant>,
    target_frames: i64,
    min_frames: i64,
    max_frames: i64,
    pending_stretch: i64,
    pending_shrink: i64,
    shrink_wait: u32,
    window_packets: u32,
    window_min_lead: i64,
    last_growth: Option<Instant>,
    concealed_run: u32,
    finished_lost: u64,
    stats: JitterStats,
}

fn frames_of(d: Duration) -> i64 {
    ((d.as_millis() as i64) + 10) / 20
}

const FRAME_TIME: Duration = Duration::from_millis(20);

impl JitterBuffer {
    /// A G.711 buffer with `config` (bounds are sanitised: 20 ms ≤ min ≤ start ≤ max ≤ 2 s;
    /// the maximum is rounded down to 20 ms, the others to the nearest 20 ms). It takes
    /// PCMU and PCMA packets alike, each decoded by its own law.
    pub fn new(config: JitterConfig) -> Self {
        JitterBuffer::with_codec(config, AudioCodec::G711(Law::Ulaw))
    }

    /// A buffer for `codec`: G.711 (either law, as [`JitterBuffer::new`]) or G.722
    /// (payload type 9, frames of 320 samples at 16 kHz).
    pub fn with_codec(config: JitterConfig, codec: AudioCodec) -> Self {
        // The maximum rounds down: no frame may wait longer than configured.
        let max_frames = (config.max_delay.as_millis() as i64 / 20).clamp(1, 100);
        let min_frames = frames_of(config.min_delay).clamp(1, max_frames);
        let target_frames = frames_of(config.start_delay).clamp(min_frames, max_frames);
        // Room for the maximum delay plus one packet of the largest size.
        let capacity = (max_frames as usize + 1) * FRAME_SAMPLES + MAX_PACKET_LEN;
        let slots = capacity.div_ceil(FRAME_SAMPLES);
        let capacity = slots * FRAME_SAMPLES;
        let g722 = codec == AudioCodec::G722;
        JitterBuffer {
            config,
            codec,
            samples: vec![0; if g722 { 0 } else { capacity }],
            codes: vec![0; if g722 { capacity } else { 0 }],
            decoder: G722Decoder::new(),
            last_level: 0,
            valid: vec![false; capacity],
            arrivals: vec![None; slots],
            out: [0; MAX_FRAME_SAMPLES],
            plc: Plc::with_rate(codec.sample_rate()),
            source: None,
            previous_ssrc: None,
            play_pos: 0,
            play_ts: 0,
            end_pos: 0,
            preroll: false,
            started: false,
            stalled: false,
            epoch: None,
            target_frames,
            min_frames,
            max_frames,
            pending_stretch: 0,
            pending_shrink: 0,
            shrink_wait: 0,
            window_packets: 0,
            window_min_lead: i64::MAX,
            last_growth: None,
            concealed_run: 0,
            finished_lost: 0,
            stats: JitterStats { delay: FRAME_TIME * target_frames as u32, ..JitterStats::default() },
        }
    }

    /// The codec this buffer carries.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// The settings this buffer was made with.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Counters and current delay.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// RFC 3550 interarrival jitter as a duration.
    pub fn jitter(&self) -> Duration {
        Duration::from_micros(u64::from(self.stats.jitter) * 125)
    }

    /// Offer a received packet (already filtered by source address).
    pub fn push(&mut self, now: Instant, packet: &RtpPacket<'_>) -> Pushed {
        let header = packet.header;
        let payload = packet.payload();
        // G.711: the packet's own law; G.722: its payload type only.
        let law = match self.codec {
            AudioCodec::G711(_) => Law::from_payload_type(header.payload_type),
            AudioCodec::G722 => None,
        };
        if law.is_none() && AudioCodec::from_payload_type(header.payload_type) != Some(self.codec) {
            self.stats.ignored += 1;
            return Pushed::Ignored;
        }
        if payload.is_empty() {
            self.stats.ignored += 1;
            return Pushed::Ignored;
        }
        let epoch = *self.epoch.get_or_insert(now);
        let since = now.saturating_duration_since(epoch);
        let arrival = (since.as_secs() * SAMPLE_RATE
            + u64::from(since.subsec_nanos()) / (1_000_000_000 / SAMPLE_RATE as u32) as u64)
            as i64;

        // A new SSRC restarts the stream; the old one's stragglers are dropped for a while.
        let mut restart = false;
        match self.source {
            Some(ref s) if s.ssrc == header.ssrc => {}
            Some(ref s) => {
                if let Some((old, at)) = self.previous_ssrc {
                    if old == header.ssrc && now.saturating_duration_since(at) < STALE_SOURCE {
                        self.stats.ignored += 1;
                        return Pushed::StaleSource;
                    }
                }
                self.previous_ssrc = Some((s.ssrc, now));
                self.finished_lost += s.lost();
                restart = true;
            }
            None => restart = true,
        }
        if restart {
            self.source = Some(Source::new(header.ssrc, header.sequence));
            self.decoder.reset();
        }
        let Some(source) = self.source.as_mut() else {
            return Pushed::Ignored;
        };
        let verdict = source.record(header.sequence);
        match verdict {
            SeqVerdict::Duplicate => {
                self.stats.duplicate += 1;
                return Pushed::Duplicate;
            }
            SeqVerdict::TooOld => {
                self.stats.late += 1;
                return Pushed::Late;
            }
            _ => {}
        }
        source.update_jitter(arrival, header.timestamp);
        self.stats.jitter = (source.jitter_q4 >> 4) as u32;
        self.stats.lost = self.finished_lost + source.lost();
        let newer = matches!(verdict, SeqVerdict::Newest | SeqVerdict::Renumbered);

        let len = payload.len() as i64;
        let mut pos = self.play_pos + i64::from(ts_diff(header.timestamp, self.play_ts));
        let mut far = pos + len <= self.play_pos - JUMP || pos > self.play_pos + JUMP;
        // A talkspurt after silence suppression: the newest packet, marked, while nothing is
        // buffered and the last frame was concealed. Re-anchor it at the target delay.
        let talkspurt = header.marker
            && newer
            && (self.stalled || self.plc.is_concealing())
            && self.end_pos <= self.play_pos;
        if !self.started || restart || self.stalled || (far && newer) || talkspurt {
            self.restart_at();
            pos = self.target_frames * FRAME;
            self.play_ts = header.timestamp.wrapping_sub((self.target_frames * FRAME) as u32);
            far = false;
            restart = true;
        }

        let lead = pos - self.play_pos;
        if pos + len <= self.play_pos || far {
            self.stats.late += 1;
            if !far {
                self.grow(now, -lead);
            }
            return Pushed::Late;
        }
        // Respect the maximum delay: move the play position forward if this packet would
        // otherwise wait longer than max_delay.
        let excess = pos + len - self.play_pos - self.max_frames * FRAME;
        if excess > 0 {
            for _ in 0..(excess + FRAME - 1) / FRAME {
                self.drop_frame();
            }
            self.pending_stretch = 0;
        }
        if lead < 0 {
            self.grow(now, -lead);
        } else {
            self.observe_lead(now, pos - self.play_pos);
        }
        let written = self.store(law, pos, payload, now);
        if written == 0 {
            self.stats.late += 1;
            return Pushed::Late;
        }
        self.end_pos = self.end_pos.max(pos + len);
        self.stats.received += 1;
        if restart {
            Pushed::Restarted
        } else {
            Pushed::Accepted
        }
    }

    /// Decode `payload` into the ring at absolute position `pos` (the part inside the
    /// window `[play_pos, play_pos + capacity)`), in at most two contiguous runs.
    fn store(&mut self, law: Option<Law>, pos: i64, payload: &[u8], now: Instant) -> usize {
        let capacity = self.valid.len() as i64;
        let start = pos.max(self.play_pos);
        let end = (pos + payload.len() as i64).min(self.play_pos + capacity);
        let mut at = start;
        let mut written = 0;
        while at < end {
            let index = self.index(at);
            let run = (end - at).min(capacity - index as i64) as usize;
            let from = (at - pos) as usize;
            let stored = match (law, payload.get(from..from + run)) {
                (Some(law), Some(src)) => {
                    self.samples.get_mut(index..index + run).map(|dst| law.decode_slice(src, dst))
                }
                (None, Some(src)) => {
                    self.codes.get_mut(index..index + run).map(|dst| dst.copy_from_slice(src)).map(|()| run)
                }
                (_, None) => None,
            };
            if let (Some(_), Some(valid)) = (stored, self.valid.get_mut(index..index + run)) {
                valid.fill(true);
                written += run;
            }
            at += run as i64;
        }
        // Remember when audio for each touched 20 ms slot first arrived.
        let mut slot_pos = start - start.rem_euclid(FRAME);
        while slot_pos < end {
            let slot = self.slot(slot_pos);
            if let Some(a) = self.arrivals.get_mut(slot) {
                a.get_or_insert(now);
            }
            slot_pos += FRAME;
        }
        written
    }

    /// Take the next 20 ms frame. Call exactly once per 20 ms, with the current time.
    pub fn pop(&mut self, now: Instant) -> Frame<'_> {
        let n = self.codec.frame_samples().min(MAX_FRAME_SAMPLES);
        if !self.started || self.stalled {
            self.out.fill(0);
            return Frame { samples: &self.out[..n], kind: FrameKind::Silence, timestamp: self.play_ts };
        }
        // Shrink: prefer a missing or quiet frame, but do not wait forever.
        while self.pending_shrink > 0 && self.play_pos + FRAME <= self.end_pos {
            let filled = self.filled(self.play_pos);
            let quiet = filled == FRAME_SAMPLES && self.level(self.play_pos) < QUIET_LEVEL;
            if filled == 0 || quiet || self.shrink_wait >= SHRINK_PATIENCE {
                self.drop_frame();
                self.pending_shrink -= 1;
                self.shrink_wait = 0;
            } else {
                self.shrink_wait += 1;
                break;
            }
        }
        if self.pending_stretch > 0 {
            if self.may_stretch(now) {
                // Grow: conceal without consuming the frame at the play position.
                self.pending_stretch -= 1;
                self.plc.conceal(&mut self.out[..n]);
                self.stats.stretched += 1;
                return Frame {
                    samples: &self.out[..n],
                    kind: FrameKind::Stretched,
                    timestamp: self.play_ts,
                };
            }
            self.pending_stretch = 0;
        }
        let filled = self.filled(self.play_pos);
        let kind = if filled == FRAME_SAMPLES {
            self.copy_frame();
            self.plc.good_frame(&mut self.out[..n]);
            self.concealed_run = 0;
            self.preroll = false;
            FrameKind::Audio
        } else if filled == 0 && self.preroll {
            self.out.fill(0);
            FrameKind::Silence
        } else if self.play_pos >= self.end_pos && self.concealed_run >= STALL_FRAMES {
            self.stalled = true;
            self.out.fill(0);
            FrameKind::Silence
        } else {
            self.plc.conceal(&mut self.out[..n]);
            if filled > 0 {
                // Partly received (odd packet sizes): keep the real samples.
                self.overlay_valid();
            }
            self.concealed_run += 1;
            self.stats.concealed += 1;
            FrameKind::Concealed
        };
        if self.codec == AudioCodec::G722 {
            let sum: u32 = self.out[..n].iter().map(|x| u32::from(x.unsigned_abs())).sum();
            self.last_level = sum / n as u32;
        }
        let timestamp = self.play_ts;
        self.advance();
        Frame { samples: &self.out[..n], kind, timestamp }
    }

    /// Whether inserting a frame now keeps every buffered frame within the maximum delay:
    /// the frame `k` slots ahead would leave at `now + (k + 1) * 20 ms`.
    fn may_stretch(&self, now: Instant) -> bool {
        let max = self.config_max();
        let mut pos = self.play_pos;
        let mut k = 0u32;
        while pos < self.end_pos {
            if let Some(Some(arrived)) = self.arrivals.get(self.slot(pos)) {
                if now + FRAME_TIME * (k + 1) > *arrived + max {
                    return false;
                }
            }
            pos += FRAME;
            k += 1;
        }
        true
    }

    fn config_max(&self) -> Duration {
        FRAME_TIME * self.max_frames as u32
    }

    fn restart_at(&mut self) {
        // Audio still buffered from the previous stream is dropped.
        let mut pos = self.play_pos;
        while pos < self.end_pos {
            if self.filled(pos) > 0 {
                self.stats.discarded += 1;
            }
            pos += FRAME;
        }
        self.valid.fill(false);
        self.arrivals.fill(None);
        self.play_pos = 0;
        self.end_pos = 0;
        self.started = true;
        self.stalled = false;
        self.preroll = true;
        self.pending_stretch = 0;
        self.pending_shrink = 0;
        self.window_packets = 0;
        self.window_min_lead = i64::MAX;
        self.concealed_run = 0;
        self.stats.restarts += 1;
    }

    /// Late by `deficit` samples: raise the delay so such a packet would have made it.
    fn grow(&mut self, now: Instant, deficit: i64) {
        let frames = (deficit.max(1) + FRAME - 1) / FRAME;
        let room = self.max_frames - self.target_frames;
        let add = frames.min(room).max(0);
        if add > 0 {
            self.target_frames += add;
            self.pending_stretch += add;
            self.pending_shrink = 0;
            self.set_delay();
        }
        self.last_growth = Some(now);
        self.window_packets = 0;
        self.window_min_lead = i64::MAX;
    }

    fn observe_lead(&mut self, now: Instant, lead: i64) {
        self.window_min_lead = self.window_min_lead.min(lead);
        self.window_packets += 1;
        if self.window_packets < WINDOW {
            return;
        }
        let held_off = self.last_growth.is_some_and(|t| now.saturating_duration_since(t) < SHRINK_HOLDOFF);
        let margin = (FRAME / 4).max(i64::from(self.stats.jitter) * 2);
        if !held_off && self.target_frames > self.min_frames && self.window_min_lead >= FRAME + margin {
            self.target_frames -= 1;
            self.pending_shrink += 1;
            self.set_delay();
        }
        self.window_packets = 0;
        self.window_min_lead = i64::MAX;
    }

    fn set_delay(&mut self) {
        self.stats.delay = FRAME_TIME * self.target_frames as u32;
    }

    fn index(&self, pos: i64) -> usize {
        pos.rem_euclid(self.valid.len() as i64) as usize
    }

    fn slot(&self, pos: i64) -> usize {
        self.index(pos) / FRAME_SAMPLES
    }

    fn filled(&self, pos: i64) -> usize {
        let start = self.index(pos);
        self.valid.get(start..start + FRAME_SAMPLES).map_or(0, |v| v.iter().filter(|&&b| b).count())
    }

    fn level(&self, pos: i64) -> u32 {
        if self.codec == AudioCodec::G722 {
            // Codes cannot be measured before they are decoded; a pause lasts longer than
            // a frame, so the frame after a quiet one is taken as quiet.
            return self.last_level;
        }
        let start = self.index(pos);
        let sum: u32 = self
            .samples
            .get(start..start + FRAME_SAMPLES)
            .map_or(0, |s| s.iter().map(|x| u32::from(x.unsigned_abs())).sum());
        sum / FRAME_SAMPLES as u32
    }

    fn copy_frame(&mut self) {
        let start = self.index(self.play_pos);
        match self.codec {
            AudioCodec::G711(_) => {
                if let (Some(src), Some(dst)) =
                    (self.samples.get(start..start + FRAME_SAMPLES), self.out.get_mut(..FRAME_SAMPLES))
                {
                    dst.copy_from_slice(src);
                }
            }
            AudioCodec::G722 => {
                if let Some(src) = self.codes.get(start..start + FRAME_SAMPLES) {
                    self.decoder.decode(src, &mut self.out);
                }
            }
        }
    }

    /// Over a concealed frame, the samples that did arrive (G.722: decoded in order, the
    /// decoder skipping the missing codes).
    fn overlay_valid(&mut self) {
        let start = self.index(self.play_pos);
        let Some(v) = self.valid.get(start..start + FRAME_SAMPLES) else { return };
        match self.codec {
            AudioCodec::G711(_) => {
                if let Some(s) = self.samples.get(start..start + FRAME_SAMPLES) {
                    for ((o, &x), &ok) in self.out.iter_mut().zip(s).zip(v) {
                        if ok {
                            *o = x;
                        }
                    }
                }
            }
            AudioCodec::G722 => {
                if let Some(c) = self.codes.get(start..start + FRAME_SAMPLES) {
                    for ((pair, &code), &ok) in self.out.chunks_exact_mut(2).zip(c).zip(v) {
                        if ok {
                            let (a, b) = self.decoder.decode_code(code);
                            pair.copy_from_slice(&[a, b]);
                        }
                    }
                }
            }
        }
    }

    /// Skip the frame at the play position without playing it.
    fn drop_frame(&mut self) {
        match self.filled(self.play_pos) {
            0 => self.stats.skipped += 1,
            _ => {
                self.stats.discarded += 1;
                if self.codec == AudioCodec::G722 {
                    // Decoded into nothing: the decoder must see every code it can.
                    self.overlay_valid();
                }
            }
        }
        self.advance();
    }

    /// Consume the frame at the play position (clear it for reuse) and move on.
    fn advance(&mut self) {
        let start = self.index(self.play_pos);
        if let Some(v) = self.valid.get_mut(start..start + FRAME_SAMPLES) {
            v.fill(false);
        }
        let slot = self.slot(self.play_pos);
        if let Some(a) = self.arrivals.get_mut(slot) {
            *a = None;
        }
        self.play_pos += FRAME;
        self.play_ts = self.play_ts.wrapping_add(FRAME_SAMPLES as u32);
        self.end_pos = self.end_pos.max(self.play_pos);
    }
}
