//! Echo-safe barge-in: the caller's audio cleaned of our own playback's echo before
//! anything hears it, and the core's own decision whether the agent's request to
//! flush its playback is carried out.
//!
//! [`EchoGuard`] per tick: the caller's frame out of the jitter buffer goes through the
//! [`EchoCanceller`] with what the caller heard on the tick before as the reference
//! (the echo of this tick's packet cannot be in a frame already received), before the
//! turn VAD and before it is encoded for the agent, so every provider's own VAD
//! (Deepgram's UserStartedSpeaking, OpenAI's speech_started, the pipeline's endpointer)
//! gets echo-cancelled audio. [`SpeechOverEcho`] then marks the frames where the caller
//! really talks, over the last 500 ms.
//!
//! The gate: while agent audio is queued (or its echo can still come back), an
//! `AgentEvent::FlushPlayback` is carried out
//! only once the caller has talked for `barge_in_min_ms` of the last 500 ms. A request
//! without that is held for up to [`HOLD`] waiting for it, then dropped and counted (a
//! false barge-in: the agent heard its own echo). With `duck_ms`, a confirmed barge-in
//! first attenuates the playback by [`DUCK_GAIN_DB`] for that long, then flushes.
//! Without playback, with echo cancellation off, or once a second of playback found no
//! echo on the line at all (nothing to fool the agent with), requests pass at once, as
//! before.
//! Nothing here allocates per frame (the canceller is made on the first frame and again
//! only when the frame length, i.e. the rate, changes).

use crate::core::CallCore;
use crate::io::Observation;
use std::time::Duration;
use voice_ua_media::g722::G722Decoder;
use voice_ua_media::vad::SILENCE_DBFS;
use voice_ua_media::{AudioCodec, EchoCanceller, Law, SpeechOverEcho};

/// How long a flush request without caller speech waits for it.
pub const HOLD: Duration = Duration::from_millis(300);
/// [`HOLD`] in ticks.
const HOLD_TICKS: u32 = 15;
/// Frames the speech history covers (500 ms).
const WINDOW_FRAMES: u32 = 25;
/// After a keypress, flush requests pass for this long.
pub const KEY_PASS: Duration = Duration::from_secs(2);
/// [`KEY_PASS`] in ticks.
const KEY_PASS_TICKS: u32 = (KEY_PASS.as_millis() / 20) as u32;
/// The playback's attenuation while ducking, in dB.
pub const DUCK_GAIN_DB: f32 = -12.0;
/// The longest frame handled (20 ms at 16 kHz).
const MAX_FRAME: usize = 320;

/// What the gate decided on a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateStep {
    Nothing,
    /// Carry out the held (or ducked) flush now.
    Flush,
    /// The held request timed out without caller speech: dropped.
    Dropped,
}

pub(crate) struct EchoGuard {
    enabled: bool,
    canceller: Option<EchoCanceller>,
    detector: SpeechOverEcho,
    /// What the caller heard on the last tick (zeros when nothing): this tick's reference.
    reference: [i16; MAX_FRAME],
    reference_len: usize,
    cleaned: [i16; MAX_FRAME],
    /// Caller speech per frame, bit i = i frames ago.
    speech: u32,
    min_frames: u32,
    /// Ticks of ducking before a confirmed flush (0: none).
    duck_ticks: u32,
    /// A flush request waiting for caller speech: ticks left.
    held: Option<u32>,
    /// Ducking: ticks left, then the flush.
    ducking: Option<u32>,
    /// Flush requests dropped for want of caller speech.
    pub(crate) suppressed: u64,
    /// What the caller hears of a G.722 call, decoded as their phone decodes it.
    g722: Option<G722Decoder>,
    /// Ticks left in which a flush passes because the caller pressed a key: an agent
    /// that stops talking on a keypress (a DTMF barge-in) is obeyed, speech or not.
    key_ticks: u32,
}

impl EchoGuard {
    pub(crate) fn new(enabled: bool, barge_in_min_ms: u32, duck_ms: u32) -> EchoGuard {
        EchoGuard {
            enabled,
            canceller: None,
            detector: SpeechOverEcho::new(),
            reference: [0; MAX_FRAME],
            reference_len: 0,
            cleaned: [0; MAX_FRAME],
            speech: 0,
            min_frames: barge_in_min_ms.div_ceil(20).clamp(1, WINDOW_FRAMES),
            duck_ticks: duck_ms.div_ceil(20),
            held: None,
            ducking: None,
            suppressed: 0,
            key_ticks: 0,
            g722: None,
        }
    }

    /// This tick's caller frame, cleaned of the echo (the frame itself when off or of
    /// an unknown length); updates the caller-speech history.
    pub(crate) fn caller_frame<'a>(&'a mut self, samples: &'a [i16]) -> &'a [i16] {
        self.key_ticks = self.key_ticks.saturating_sub(1);
        let n = samples.len();
        if !self.enabled || n == 0 || n > MAX_FRAME {
            return samples;
        }
        let rate = n as u32 * 50;
        if self.canceller.as_ref().is_none_or(|c| c.rate() != rate) {
            self.canceller = EchoCanceller::new(rate).ok();
        }
        let Some(aec) = self.canceller.as_mut() else { return samples };
        let out = &mut self.cleaned[..n];
        out.copy_from_slice(samples);
        if self.reference_len != n {
            self.reference[..n].iter_mut().for_each(|s| *s = 0);
        }
        aec.process(&self.reference[..n], out);
        let talking = self.detector.push(out, aec.echo_bound_dbfs());
        self.speech = ((self.speech << 1) | u32::from(talking)) & ((1 << WINDOW_FRAMES) - 1);
        // Until the next tick's packet says otherwise, the caller heard nothing.
        self.reference_len = 0;
        &self.cleaned[..n]
    }

    /// An audio packet's payload sent this tick (what the caller hears), in `codec`;
    /// the first of the tick is the reference (after a stall the pacer sends a burst).
    /// G.722 is decoded by a decoder of our own kept in step with the caller's: it sees
    /// every packet sent, not only the first of a tick.
    pub(crate) fn played(&mut self, codec: AudioCodec, payload: &[u8]) {
        if !self.enabled {
            return;
        }
        let first = self.reference_len == 0;
        match codec {
            AudioCodec::G711(law) if first => {
                let n = payload.len().min(MAX_FRAME);
                law.decode_slice(&payload[..n], &mut self.reference[..n]);
                self.reference_len = n;
            }
            AudioCodec::G711(_) => {}
            AudioCodec::G722 => {
                let decoder = self.g722.get_or_insert_with(G722Decoder::new);
                let mut pcm = [0i16; MAX_FRAME];
                let n = decoder.decode(payload, &mut pcm);
                if first {
                    self.reference[..n].copy_from_slice(&pcm[..n]);
                    self.reference_len = n;
                }
            }
        }
    }

    /// The caller has talked for the minimum within the last 500 ms.
    pub(crate) fn confirmed(&self) -> bool {
        self.speech.count_ones() >= self.min_frames
    }

    /// The agent asked to flush, with agent audio `playing` (queued): true to flush at
    /// once; false when the request is held (or ducking started). The playback's echo
    /// outlasts it by the echo's delay, so the gate holds as long as an echo can come.
    pub(crate) fn request(&mut self, playing: bool) -> bool {
        let echoing = self.canceller.as_ref().is_some_and(|c| c.echo_bound_dbfs() > SILENCE_DBFS);
        if !self.engaged() || !(playing || echoing) || self.key_ticks > 0 {
            return true;
        }
        if self.ducking.is_some() {
            return false;
        }
        if self.confirmed() {
            return self.start();
        }
        if self.held.is_none() {
            self.held = Some(HOLD_TICKS);
        }
        false
    }

    /// The gate applies: echo cancellation is on and the line echoes our playback, or
    /// it has not played long enough to tell (a line found without echo cannot fool
    /// the agent with it, and its flushes pass as before).
    fn engaged(&self) -> bool {
        self.enabled && self.canceller.as_ref().is_none_or(|c| c.echo_found() != Some(false))
    }

    /// Confirmed: flush now (true), or duck first.
    fn start(&mut self) -> bool {
        self.held = None;
        if self.duck_ticks == 0 {
            return true;
        }
        self.ducking = Some(self.duck_ticks);
        false
    }

    /// Once per tick, after the caller's frame: a held request confirmed, a duck run
    /// out, or a held request given up.
    pub(crate) fn step(&mut self) -> GateStep {
        if let Some(left) = self.ducking {
            if left <= 1 {
                self.ducking = None;
                return GateStep::Flush;
            }
            self.ducking = Some(left - 1);
            return GateStep::Nothing;
        }
        let Some(left) = self.held else { return GateStep::Nothing };
        if self.confirmed() || !self.engaged() || self.key_ticks > 0 {
            return if self.start() { GateStep::Flush } else { GateStep::Nothing };
        }
        if left <= 1 {
            self.held = None;
            self.suppressed += 1;
            return GateStep::Dropped;
        }
        self.held = Some(left - 1);
        GateStep::Nothing
    }

    /// The caller pressed a key: for the next [`KEY_PASS`], a flush the agent asks for
    /// is the keypress's doing (a DTMF barge-in), not an echo's, and passes.
    pub(crate) fn key_pressed(&mut self) {
        self.key_ticks = KEY_PASS_TICKS;
    }

    /// The flush happened another way (the agent failed, a new call leg): forget any
    /// held request.
    pub(crate) fn forget(&mut self) {
        self.held = None;
        self.ducking = None;
    }

    /// Ducking: the playback goes out [`DUCK_GAIN_DB`] down until the flush.
    pub(crate) fn ducking(&self) -> bool {
        self.ducking.is_some()
    }

    /// The echo's delay behind what we sent (the reference lags one tick: 20 ms more).
    pub(crate) fn delay(&self) -> Option<Duration> {
        self.canceller.as_ref()?.delay_estimate().map(|d| d + Duration::from_millis(20))
    }

    /// The canceller's running ERLE (dB).
    pub(crate) fn erle_db(&self) -> Option<f32> {
        self.canceller.as_ref().map(EchoCanceller::erle_db)
    }
}

/// Attenuate one of our outgoing RTP packets by [`DUCK_GAIN_DB`] when it carries G.711
/// audio of payload type `pt` (our packets have a plain 12-byte header).
pub(crate) fn duck_packet(law: Law, pt: u8, packet: &mut [u8]) {
    if packet.get(1).is_none_or(|b| b & 0x7F != pt) {
        return;
    }
    let gain = 10f32.powf(DUCK_GAIN_DB / 20.0);
    for code in packet.iter_mut().skip(12) {
        *code = law.encode((f32::from(law.decode(*code)) * gain) as i16);
    }
}

impl CallCore {
    /// The gate's decision after this tick's caller frame: carry out a held (or ducked)
    /// flush, or count the one that was dropped.
    pub(crate) fn barge_in_step(&mut self) {
        match self.echo.step() {
            GateStep::Flush => self.flush_playback(),
            GateStep::Dropped => {
                self.figures.false_barge_ins_suppressed += 1;
                tracing::debug!(
                    hold_ms = HOLD.as_millis() as u64,
                    "the agent asked to flush its playback but the caller did not speak over it (its own echo?): playback goes on"
                );
                self.observe(Observation::FalseBargeInSuppressed);
            }
            GateStep::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(min_ms: u32, duck_ms: u32) -> EchoGuard {
        EchoGuard::new(true, min_ms, duck_ms)
    }

    fn speak(g: &mut EchoGuard, frames: usize, talking: bool) {
        for _ in 0..frames {
            g.speech = ((g.speech << 1) | u32::from(talking)) & ((1 << WINDOW_FRAMES) - 1);
        }
    }

    /// Step `ticks` times with no new speech; the steps' results.
    fn steps(g: &mut EchoGuard, ticks: usize) -> Vec<GateStep> {
        (0..ticks).map(|_| g.step()).collect()
    }

    #[test]
    fn without_playback_or_when_off_a_flush_passes_at_once() {
        let mut g = guard(200, 0);
        assert!(g.request(false));
        let mut off = EchoGuard::new(false, 200, 0);
        assert!(off.request(true));
        assert!(steps(&mut off, 30).iter().all(|s| *s == GateStep::Nothing));
    }

    #[test]
    fn with_200_ms_of_caller_speech_in_the_window_a_flush_passes_at_once() {
        let mut g = guard(200, 0);
        speak(&mut g, 9, true);
        speak(&mut g, 5, false);
        assert!(!g.confirmed(), "180 ms is not enough");
        speak(&mut g, 1, true);
        assert!(g.request(true));
        // 200 ms spread over 500 ms counts too; older speech does not.
        let mut g = guard(200, 0);
        for _ in 0..10 {
            speak(&mut g, 1, true);
            speak(&mut g, 1, false);
        }
        assert!(g.request(true));
        speak(&mut g, 20, false);
        assert!(!g.confirmed());
    }

    #[test]
    fn a_held_flush_is_carried_out_when_speech_confirms_it_and_dropped_after_300_ms() {
        let mut g = guard(200, 0);
        speak(&mut g, 4, true);
        assert!(!g.request(true));
        assert_eq!(g.step(), GateStep::Nothing);
        speak(&mut g, 6, true);
        assert_eq!(g.step(), GateStep::Flush);
        assert_eq!(g.step(), GateStep::Nothing, "once");
        // Echo only: held, then dropped on the 15th tick (300 ms), counted once.
        let mut g = guard(200, 0);
        assert!(!g.request(true));
        let mut got = steps(&mut g, 5);
        assert!(!g.request(true), "a second request joins the first");
        got.extend(steps(&mut g, 15));
        let dropped: Vec<usize> =
            got.iter().enumerate().filter(|(_, s)| **s == GateStep::Dropped).map(|(i, _)| i).collect();
        assert_eq!(dropped, vec![14]);
        assert!(!got.contains(&GateStep::Flush));
        assert_eq!(g.suppressed, 1);
    }

    #[test]
    fn ducking_delays_the_confirmed_flush_by_duck_ms() {
        let mut g = guard(200, 200);
        speak(&mut g, 10, true);
        assert!(!g.request(true));
        assert!(g.ducking());
        let got = steps(&mut g, 12);
        assert_eq!(got.iter().position(|s| *s == GateStep::Flush), Some(9), "the 10th tick: 200 ms");
        assert!(!g.ducking());
    }

    #[test]
    fn the_minimum_is_whole_frames_within_the_window() {
        assert_eq!(EchoGuard::new(true, 0, 0).min_frames, 1);
        assert_eq!(EchoGuard::new(true, 210, 0).min_frames, 11);
        assert_eq!(EchoGuard::new(true, 2000, 0).min_frames, WINDOW_FRAMES);
    }

    #[test]
    fn ducking_takes_a_g711_packet_12_db_down_and_leaves_others_alone() {
        let law = Law::Ulaw;
        let mut packet = [0u8; 172];
        packet[1] = 0x80;
        for (i, b) in packet[12..].iter_mut().enumerate() {
            *b = law.encode(if i % 2 == 0 { 8000 } else { -8000 });
        }
        let mut dtmf = packet;
        dtmf[1] = 101;
        duck_packet(law, 0, &mut dtmf);
        assert_eq!(dtmf[12..], packet[12..], "not our audio payload type");
        duck_packet(law, 0, &mut packet);
        let x = law.decode(packet[12]);
        assert!((1800..2200).contains(&x), "8000 at -12 dB is ~2000, got {x}");
    }
}
