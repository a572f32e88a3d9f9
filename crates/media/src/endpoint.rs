//! Turn-taking for an agent that has no endpointing of its own (the pipeline agent): the
//! [`Endpointer`] finds the caller's utterances in their audio and decides when a turn
//! is over, with the settings in [`EndpointSettings`]. Sans-IO: it is fed the caller's
//! audio one 20 ms frame at a time and the frame count is its clock.
//!
//! # What a frame does
//!
//! Each [`Endpointer::push`] is one 20 ms frame (160 samples at 8 kHz, 320 at 16 kHz,
//! chosen in [`Endpointer::new`]); every duration below is counted in frames, each
//! setting rounded *up* to whole frames (`end_silence_ms = 710` waits 36 frames). A frame
//! of another length still counts as 20 ms: its level is measured over all of it and the
//! first frame's worth of samples is stored (zero-padded when short).
//!
//! A frame is *loud* when the energy detector ([`SpeechDetector`], the caller-side
//! settings of [`CallerVad`](crate::vad::CallerVad): 12 dB over the adaptive noise floor)
//! says so, with the noise gate as its floor: a frame at or below `noise_gate_dbfs` is
//! never loud, whatever the noise floor. While the agent's audio is playing (`playing`)
//! the threshold is raised by `playback_margin_db`, a crude guard against the echo of
//! our own playback. Speech *starts* after 3 loud frames in a row (60 ms, the onset run);
//! the first frame of that run is the *onset*.
//!
//! # Events ([`EndpointEvent`], one per push)
//!
//! - `SpeechStarted`: the onset run just completed; an utterance is in progress
//!   ([`Endpointer::speaking`]) from here on.
//! - `BargeIn`: `playing` is true on this frame, this frame is loud, and the utterance's
//!   speech (onset to this frame) has lasted `barge_in_min_ms`. At most once per
//!   utterance, never on the `SpeechStarted` frame itself.
//! - `TurnEnded { .. }`: the utterance is ready in [`Endpointer::utterance`], because
//!   - `Silence`: `end_silence_ms` of quiet frames followed the last loud frame;
//!   - `MaxLength`: `max_utterance_ms` have passed since the onset (the frame that
//!     reaches it ends the turn even if the caller is still talking);
//!   - `Key`: [`Endpointer::end_turn_now`] was called (an end-of-turn DTMF key).
//! - `Discarded { speech }`: the utterance ended (by silence or key) with less than
//!   `min_speech_ms` of speech (a cough, a click): nothing to transcribe.
//! - `None`: anything else.
//!
//! *Speech* is measured from the onset to the end of the last loud frame, quiet gaps
//! between words included. After `MaxLength` or `Key` while the caller still talks, the
//! next loud frame starts the next utterance at once (`SpeechStarted` again, no onset
//! run needed, since the detector never saw the speech end).
//!
//! # The utterance
//!
//! [`Endpointer::utterance`] is valid from the push (or `end_turn_now`) that returned
//! `TurnEnded` until the next push, `end_turn_now` or `reset`; otherwise it is empty. It
//! is exactly `prefix` + `speech` + `trailing_silence` of audio (the event's fields):
//! - `prefix`: up to `prefix_padding_ms` of the frames before the onset, so the first
//!   syllable is not clipped; less when fewer frames were pushed since the previous turn
//!   ended (or since `reset`): the prefix never reaches back into an earlier turn;
//! - `speech`: onset to the end of the last loud frame;
//! - `trailing_silence`: the quiet frames after it, at most [`TRAILING_KEEP_MS`] (the
//!   rest of the end-of-turn silence is trimmed).
//!
//! So it is never longer than `prefix_padding_ms + max_utterance_ms` (rounded up to
//! frames). One buffer of that size is reserved in [`Endpointer::new`]; `push`,
//! `end_turn_now` and `reset` allocate nothing.
//!
//! # Latency
//!
//! `TurnEnded::endpointing` is the endpointing latency: from the end of the last loud
//! frame to the decision, in frame time (the quiet frames since the last loud one). For
//! `Silence` it is `end_silence_ms` (in frames); for `MaxLength` usually zero; for `Key`
//! whatever silence had passed when the key came. It does not include the time the frame
//! spent in the jitter buffer before it was pushed.

use std::time::Duration;

use crate::vad::{pcm_level_dbfs, SpeechDetector, CALLER_MARGIN_DB, CALLER_ONSET_FRAMES};
use crate::MediaError;

/// One frame is 20 ms.
pub const FRAME_MS: u32 = 20;
/// The most trailing silence an utterance keeps after its last loud frame.
pub const TRAILING_KEEP_MS: u32 = 200;
/// Loud frames in a row before speech starts (the caller-side detector's onset run).
pub const ONSET_FRAMES: u32 = CALLER_ONSET_FRAMES;

/// Endpointing settings. Durations in milliseconds, levels in dB; check them with
/// [`EndpointSettings::validate`] (which [`Endpointer::new`] calls).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointSettings {
    /// Speech shorter than this ends as `Discarded` (a cough, a click). 0 to 5000.
    pub min_speech_ms: u32,
    /// Quiet after the last loud frame that ends the turn. 100 to 10000.
    pub end_silence_ms: u32,
    /// An utterance this long (from its onset) ends the turn even if the caller keeps
    /// talking. 1000 to 120000.
    pub max_utterance_ms: u32,
    /// Audio kept from before the onset, at the start of the utterance. 0 to 2000.
    pub prefix_padding_ms: u32,
    /// Frames at or below this level are never speech. -100 to -10 dBFS.
    pub noise_gate_dbfs: f32,
    /// Speech while the agent is playing needed for `BargeIn`. 20 to 5000, and at most
    /// `max_utterance_ms`.
    pub barge_in_min_ms: u32,
    /// Added to the speech threshold while the agent is playing. 0 to 40 dB.
    pub playback_margin_db: f32,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        EndpointSettings {
            min_speech_ms: 200,
            end_silence_ms: 700,
            max_utterance_ms: 15_000,
            prefix_padding_ms: 300,
            noise_gate_dbfs: -45.0,
            barge_in_min_ms: 300,
            playback_margin_db: 6.0,
        }
    }
}

/// `value` of `setting` within `lo..=hi` (a NaN never is), or the error naming both.
fn check<T: PartialOrd + ToString>(
    setting: &'static str,
    value: T,
    lo: T,
    hi: T,
    expected: &'static str,
) -> Result<(), MediaError> {
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(MediaError::BadEndpointSetting { setting, value: value.to_string(), expected })
    }
}

impl EndpointSettings {
    /// Every setting within its range (see each field), or the first one that is not.
    pub fn validate(&self) -> Result<(), MediaError> {
        check("min_speech_ms", self.min_speech_ms, 0, 5000, "use 0 to 5000 ms")?;
        check("end_silence_ms", self.end_silence_ms, 100, 10_000, "use 100 to 10000 ms")?;
        check("max_utterance_ms", self.max_utterance_ms, 1000, 120_000, "use 1000 to 120000 ms")?;
        check("prefix_padding_ms", self.prefix_padding_ms, 0, 2000, "use 0 to 2000 ms")?;
        check("noise_gate_dbfs", self.noise_gate_dbfs, -100.0, -10.0, "use -100 to -10 dBFS")?;
        check("barge_in_min_ms", self.barge_in_min_ms, 20, 5000, "use 20 to 5000 ms")?;
        check("playback_margin_db", self.playback_margin_db, 0.0, 40.0, "use 0 to 40 dB")?;
        check(
            "min_speech_ms",
            self.min_speech_ms,
            0,
            self.max_utterance_ms,
            "must not exceed max_utterance_ms",
        )?;
        check(
            "barge_in_min_ms",
            self.barge_in_min_ms,
            0,
            self.max_utterance_ms,
            "must not exceed max_utterance_ms",
        )
    }
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `end_silence_ms` of quiet after the speech.
    Silence,
    /// The utterance reached `max_utterance_ms`.
    MaxLength,
    /// [`Endpointer::end_turn_now`] (the end-of-turn DTMF key).
    Key,
}

/// What one frame (or [`Endpointer::end_turn_now`]) decided. See the module comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointEvent {
    /// Nothing to act on.
    None,
    /// The onset run completed: an utterance is in progress.
    SpeechStarted,
    /// The caller has talked over the agent's playback for `barge_in_min_ms`.
    BargeIn,
    /// The utterance is ready in [`Endpointer::utterance`].
    TurnEnded {
        /// Why the turn ended.
        reason: EndReason,
        /// Onset to the end of the last loud frame.
        speech: Duration,
        /// Audio before the onset at the start of the utterance.
        prefix: Duration,
        /// Quiet kept at the end of the utterance (at most [`TRAILING_KEEP_MS`]).
        trailing_silence: Duration,
        /// End of the last loud frame to this decision: the endpointing latency.
        endpointing: Duration,
    },
    /// The utterance ended with less than `min_speech_ms` of speech; nothing to send.
    Discarded {
        /// Onset to the end of the last loud frame.
        speech: Duration,
    },
}

/// An utterance in progress, positions in frames from the start of the buffer.
#[derive(Debug, Clone, Copy)]
struct Utterance {
    /// Frames stored (prefix and speech so far).
    frames: usize,
    /// The onset frame.
    onset: usize,
    /// The most recent loud frame.
    last_loud: usize,
    barge_in_sent: bool,
}

/// The caller's turn-taking for one call. See the module comment for the semantics.
#[derive(Debug, Clone)]
pub struct Endpointer {
    settings: EndpointSettings,
    sample_rate: u32,
    frame_len: usize,
    detector: SpeechDetector,
    min_speech_frames: usize,
    max_frames: usize,
    prefix_frames: usize,
    barge_in_frames: usize,
    /// Frames of the pre-onset ring (prefix plus the onset run) at the buffer's start.
    ring_frames: usize,
    /// Ring slot the next idle frame goes to.
    ring_next: usize,
    /// Valid frames in the ring.
    ring_len: usize,
    /// Prefix padding plus the longest utterance; while idle, its start is the ring.
    buf: Vec<i16>,
    utterance: Option<Utterance>,
    /// Samples of `buf` that are the finished utterance (0 when none is ready).
    ready_len: usize,
    frames: u64,
}

fn frames_of(ms: u32) -> usize {
    ms.div_ceil(FRAME_MS) as usize
}

fn duration_of(frames: usize) -> Duration {
    Duration::from_millis(frames as u64 * u64::from(FRAME_MS))
}

impl Endpointer {
    /// An endpointer for `sample_rate` (8000 or 16000) audio, starting in silence. Reserves
    /// its one buffer (`prefix_padding_ms + max_utterance_ms`: 15.3 s, 490 KB at 16 kHz by
    /// default).
    pub fn new(settings: EndpointSettings, sample_rate: u32) -> Result<Self, MediaError> {
        settings.validate()?;
        let frame_len = match sample_rate {
            8000 | 16000 => sample_rate as usize / 50,
            other => return Err(MediaError::EndpointRate(other)),
        };
        let end_silence_frames = frames_of(settings.end_silence_ms) as u32;
        let detector =
            SpeechDetector::new(CALLER_MARGIN_DB, settings.noise_gate_dbfs, ONSET_FRAMES, end_silence_frames);
        let prefix_frames = frames_of(settings.prefix_padding_ms);
        let max_frames = frames_of(settings.max_utterance_ms);
        Ok(Endpointer {
            settings,
            sample_rate,
            frame_len,
            detector,
            min_speech_frames: frames_of(settings.min_speech_ms),
            max_frames,
            prefix_frames,
            barge_in_frames: frames_of(settings.barge_in_min_ms),
            ring_frames: prefix_frames + ONSET_FRAMES as usize,
            ring_next: 0,
            ring_len: 0,
            buf: vec![0; (prefix_frames + max_frames) * frame_len],
            utterance: None,
            ready_len: 0,
            frames: 0,
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &EndpointSettings {
        &self.settings
    }

    /// The sample rate given to [`new`](Self::new).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Samples in one 20 ms frame (160 or 320).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Frames pushed so far: the clock (× 20 ms).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// An utterance is in progress (after `SpeechStarted`, before it ended).
    pub fn speaking(&self) -> bool {
        self.utterance.is_some()
    }

    /// The noise floor the detector currently estimates, in dBFS.
    pub fn noise_floor_dbfs(&self) -> f32 {
        self.detector.floor_dbfs()
    }

    /// The finished utterance: valid after `TurnEnded` until the next `push`,
    /// `end_turn_now` or `reset`; empty otherwise.
    pub fn utterance(&self) -> &[i16] {
        self.buf.get(..self.ready_len).unwrap_or(&[])
    }

    /// Feed the caller's next 20 ms frame; `playing` is whether the agent's audio is
    /// playing to the caller during this frame.
    pub fn push(&mut self, pcm: &[i16], playing: bool) -> EndpointEvent {
        self.ready_len = 0;
        self.frames += 1;
        let extra_db = if playing { self.settings.playback_margin_db } else { 0.0 };
        let step = self.detector.push(pcm_level_dbfs(pcm), extra_db);

        let Some(mut u) = self.utterance else {
            self.remember(pcm);
            let run = if step.started {
                ONSET_FRAMES as usize
            } else if step.loud && self.detector.speaking() {
                // Still talking after a turn ended by length or key: no new onset run.
                1
            } else {
                return EndpointEvent::None;
            };
            self.start_utterance(run);
            return EndpointEvent::SpeechStarted;
        };

        self.store(u.frames, pcm);
        u.frames += 1;
        if step.loud {
            u.last_loud = u.frames - 1;
        }
        self.utterance = Some(u);
        if step.ended {
            return self.finish(EndReason::Silence);
        }
        if u.frames - u.onset >= self.max_frames {
            return self.finish(EndReason::MaxLength);
        }
        if playing && step.loud && !u.barge_in_sent && u.last_loud + 1 - u.onset >= self.barge_in_frames {
            self.utterance = Some(Utterance { barge_in_sent: true, ..u });
            return EndpointEvent::BargeIn;
        }
        EndpointEvent::None
    }

    /// End the turn in progress now (the end-of-turn DTMF key): `TurnEnded` with reason
    /// `Key` (or `Discarded` if its speech is shorter than `min_speech_ms`); `None` when no
    /// utterance is in progress.
    pub fn end_turn_now(&mut self) -> Option<EndpointEvent> {
        self.ready_len = 0;
        self.utterance?;
        Some(self.finish(EndReason::Key))
    }

    /// Drop the utterance in progress (if any) and the audio remembered for the next
    /// prefix, e.g. because the agent's reply began. The noise floor is kept; if the
    /// caller is still talking, their next loud frame starts a new utterance.
    pub fn reset(&mut self) {
        self.utterance = None;
        self.ready_len = 0;
        self.ring_next = 0;
        self.ring_len = 0;
    }

    /// Copy one frame into frame slot `slot` of the buffer (truncated or zero-padded to
    /// the frame length).
    fn store(&mut self, slot: usize, pcm: &[i16]) {
        let fl = self.frame_len;
        let Some(dst) = self.buf.get_mut(slot * fl..(slot + 1) * fl) else {
            return;
        };
        let n = pcm.len().min(fl);
        let (head, tail) = dst.split_at_mut(n);
        head.copy_from_slice(pcm.get(..n).unwrap_or(&[]));
        tail.fill(0);
    }

    /// While idle: keep the frame in the pre-onset ring.
    fn remember(&mut self, pcm: &[i16]) {
        self.store(self.ring_next, pcm);
        self.ring_next = (self.ring_next + 1) % self.ring_frames;
        self.ring_len = (self.ring_len + 1).min(self.ring_frames);
    }

    /// Speech started; the newest `run` ring frames are speech (the onset run). Lay the
    /// ring out in order at the buffer's start, keeping at most the prefix before them.
    fn start_utterance(&mut self, run: usize) {
        let fl = self.frame_len;
        if self.ring_len == self.ring_frames {
            if let Some(ring) = self.buf.get_mut(..self.ring_frames * fl) {
                ring.rotate_left(self.ring_next * fl);
            }
        }
        let run = run.min(self.ring_len);
        let keep = self.ring_len.min(self.prefix_frames + run);
        let drop = self.ring_len - keep;
        if drop > 0 {
            self.buf.copy_within(drop * fl..self.ring_len * fl, 0);
        }
        self.ring_next = 0;
        self.ring_len = 0;
        self.utterance = Some(Utterance {
            frames: keep,
            onset: keep - run,
            last_loud: keep.saturating_sub(1),
            barge_in_sent: false,
        });
    }

    /// The utterance in progress is over: `TurnEnded` (its audio made ready) or `Discarded`.
    fn finish(&mut self, reason: EndReason) -> EndpointEvent {
        let Some(u) = self.utterance.take() else {
            return EndpointEvent::None;
        };
        self.ring_next = 0;
        self.ring_len = 0;
        let speech_frames = u.last_loud + 1 - u.onset;
        if speech_frames < self.min_speech_frames && reason != EndReason::MaxLength {
            return EndpointEvent::Discarded { speech: duration_of(speech_frames) };
        }
        let quiet = u.frames - 1 - u.last_loud;
        let trailing = quiet.min(frames_of(TRAILING_KEEP_MS));
        self.ready_len = (u.last_loud + 1 + trailing) * self.frame_len;
        EndpointEvent::TurnEnded {
            reason,
            speech: duration_of(speech_frames),
            prefix: duration_of(u.onset),
            trailing_silence: duration_of(trailing),
            endpointing: duration_of(quiet),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nonsense_settings() {
        let ok = EndpointSettings::default();
        assert!(ok.validate().is_ok());
        let cases = [
            ("end_silence_ms", EndpointSettings { end_silence_ms: 0, ..ok }),
            ("max_utterance_ms", EndpointSettings { max_utterance_ms: 500_000, ..ok }),
            ("prefix_padding_ms", EndpointSettings { prefix_padding_ms: 60_000, ..ok }),
            ("noise_gate_dbfs", EndpointSettings { noise_gate_dbfs: 45.0, ..ok }),
            ("noise_gate_dbfs", EndpointSettings { noise_gate_dbfs: f32::NAN, ..ok }),
            ("barge_in_min_ms", EndpointSettings { barge_in_min_ms: 0, ..ok }),
            ("playback_margin_db", EndpointSettings { playback_margin_db: -3.0, ..ok }),
            ("min_speech_ms", EndpointSettings { min_speech_ms: 3000, max_utterance_ms: 2000, ..ok }),
            ("barge_in_min_ms", EndpointSettings { barge_in_min_ms: 1500, max_utterance_ms: 1000, ..ok }),
        ];
        for (name, s) in cases {
            match Endpointer::new(s, 8000) {
                Err(MediaError::BadEndpointSetting { setting, .. }) => assert_eq!(setting, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(Endpointer::new(ok, 22050).err(), Some(MediaError::EndpointRate(22050)));
        let e = Endpointer::new(EndpointSettings { end_silence_ms: 0, ..ok }, 8000).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("endpointing setting end_silence_ms = 0 is out of range: use 100 to 10000 ms")
        );
    }

    #[test]
    fn frame_sizes_and_buffer() {
        let e = Endpointer::new(EndpointSettings::default(), 16000).expect("valid");
        assert_eq!(e.frame_len(), 320);
        assert_eq!(e.buf.len(), (15 + 750) * 320);
        assert_eq!(e.ring_frames, 18);
        let e = Endpointer::new(EndpointSettings::default(), 8000).expect("valid");
        assert_eq!(e.frame_len(), 160);
        assert!(e.utterance().is_empty());
    }
}
