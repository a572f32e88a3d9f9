//! The echo agent's sans-IO core: caller audio and digits in, playback audio and events
//! out. No clock, no channels, no tasks: each [`EchoCore::push_frame`] is 20 ms of time.
//!
//! Behaviour, like a PBX echo-test extension:
//! - **Greeting** (optional): two short 440 Hz beeps when the call starts, so whoever
//!   installs voice-ua hears at once that agent audio reaches the phone.
//! - **Echo**: [`SpeechDetector`] finds the caller's utterance. Recording starts
//!   [`PREROLL_FRAMES`] before the onset run (nothing of the first syllable is lost) and is
//!   kept to [`TAIL_FRAMES`] after the last loud frame. Once the caller has been quiet for
//!   the hangover (600 ms), the recording is played back byte for byte. Recording stops
//!   growing at `max_utterance_ms`; the rest of that utterance is not recorded.
//! - **Barge-in**: speech that starts while playback is still audible emits
//!   [`EchoOutput::FlushPlayback`] and starts a new recording. During playback the
//!   threshold is raised by `barge_in_extra_db`, so the caller's phone echoing the
//!   playback back is less likely to interrupt it.
//! - **Digits** are read back as their own DTMF tone pair (ITU-T Q.23, `tone_ms` long,
//!   followed by 60 ms of silence); a digit interrupts a recording's playback (flush),
//!   and digits pressed while tones play queue up behind them.
//!
//! Playback is released at most [`LEAD_FRAMES`] (200 ms) ahead of real time, one 20 ms
//! frame per [`EchoOutput::Audio`], so a flush never has much to throw away.
//!
//! All buffers are reserved in [`EchoCore::new`]; pushing and polling allocate nothing.

use std::collections::VecDeque;

use voice_ua_media::SpeechDetector;

use super::tone;
use super::vad::level_dbfs;
use crate::provider::{AudioFormat, AudioFrame, Digit};
use crate::AgentError;

/// Frames kept before the onset run when a recording starts: 80 ms.
pub const PREROLL_FRAMES: usize = 4;
/// Frames kept after the last loud frame of an utterance: 200 ms.
pub const TAIL_FRAMES: usize = 10;
/// How far playback runs ahead of real time, in frames: 200 ms.
pub const LEAD_FRAMES: u64 = 10;
/// Recent input frames remembered for the pre-roll.
const HISTORY_FRAMES: usize = 16;
/// Room for queued DTMF read-back tones.
const TONE_BUFFER_MS: usize = 2000;
/// Silence after each read-back tone.
const DIGIT_GAP_MS: u32 = 60;
/// Discrete outputs waiting for [`EchoCore::poll_output`].
const QUEUE_CAPACITY: usize = 16;
/// The longest recording any configuration gets (the buffer is reserved up front).
pub const MAX_UTTERANCE_MS: u32 = 120_000;
/// The longest onset, hangover or read-back tone any configuration gets.
pub const MAX_TIMING_MS: u32 = 10_000;

/// Tunables of the echo agent.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoConfig {
    /// Loud time before speech counts as started.
    pub onset_ms: u32,
    /// Quiet time before speech counts as ended (and playback starts).
    pub hangover_ms: u32,
    /// How far above the noise floor a loud frame is.
    pub margin_db: f32,
    /// A loud frame is at least this loud, whatever the floor.
    pub min_speech_dbfs: f32,
    /// Extra threshold while playback is audible.
    pub barge_in_extra_db: f32,
    /// Longest recording (at most [`MAX_UTTERANCE_MS`]).
    pub max_utterance_ms: u32,
    /// Length of a digit's read-back tone.
    pub tone_ms: u32,
    /// Play two beeps when the call starts.
    pub greeting: bool,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            onset_ms: 60,
            hangover_ms: 600,
            margin_db: 12.0,
            min_speech_dbfs: -45.0,
            barge_in_extra_db: 6.0,
            max_utterance_ms: 15_000,
            tone_ms: 100,
            greeting: true,
        }
    }
}

/// What the core asks of the call.
// Audio is returned by value (no heap); the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoOutput {
    /// Play these bytes (one frame or less), after everything played before.
    Audio(AudioFrame),
    /// Drop all audio queued for playback now.
    FlushPlayback,
    /// Speech started with frame number `frame` (0-based count of pushed frames).
    SpeechStarted {
        /// The frame that completed the onset run.
        frame: u64,
        /// It interrupted playback.
        barge_in: bool,
    },
    /// Speech ended with frame `frame`; playback of `recorded_bytes` starts now.
    SpeechEnded {
        /// The frame that completed the hangover run.
        frame: u64,
        /// Length of the recording about to be played.
        recorded_bytes: usize,
        /// The utterance was longer than `max_utterance_ms` and was cut.
        truncated: bool,
    },
    /// A digit is being read back (`queued == false`: the tone buffer was full, skipped).
    DigitRead {
        /// The digit.
        digit: Digit,
        /// Its tone was queued.
        queued: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Recording,
    Tones,
}

#[derive(Debug, Clone, Copy)]
struct Playback {
    source: Source,
    /// Bytes already handed out.
    pos: usize,
    /// Frame count when playback started.
    start: u64,
}

/// The echo agent for one call.
#[derive(Debug)]
pub struct EchoCore {
    format: AudioFormat,
    frame_bytes: usize,
    config: EchoConfig,
    vad: SpeechDetector,
    /// Frames pushed so far: the core's clock.
    frames: u64,
    history: [AudioFrame; HISTORY_FRAMES],
    history_len: usize,
    history_next: usize,
    onset_frames: usize,
    recording: Vec<u8>,
    recording_cap: usize,
    recording_active: bool,
    /// Recording length at the end of the last loud frame.
    last_loud_len: usize,
    truncated: bool,
    tones: Vec<u8>,
    playback: Option<Playback>,
    queue: VecDeque<EchoOutput>,
}

impl EchoCore {
    /// A core for a call in `format`; reserves every buffer it will use.
    /// Timings beyond [`MAX_TIMING_MS`] and recordings beyond [`MAX_UTTERANCE_MS`] are
    /// clamped to them.
    pub fn new(format: AudioFormat, mut config: EchoConfig) -> Result<Self, AgentError> {
        format.validate()?;
        config.max_utterance_ms = config.max_utterance_ms.min(MAX_UTTERANCE_MS);
        config.onset_ms = config.onset_ms.min(MAX_TIMING_MS);
        config.hangover_ms = config.hangover_ms.min(MAX_TIMING_MS);
        config.tone_ms = config.tone_ms.min(MAX_TIMING_MS);
        let frame_bytes = format.frame_bytes();
        let onset_frames = (config.onset_ms.div_ceil(20) as usize).clamp(1, HISTORY_FRAMES - PREROLL_FRAMES);
        let hangover_frames = config.hangover_ms.div_ceil(20).max(1);
        let frames_cap = (config.max_utterance_ms as usize / 20).max(onset_frames + PREROLL_FRAMES);
        let recording_cap = frames_cap * frame_bytes;
        let vad = SpeechDetector::new(
            config.margin_db,
            config.min_speech_dbfs,
            onset_frames as u32,
            hangover_frames,
        );
        let mut core = EchoCore {
            format,
            frame_bytes,
            vad,
            frames: 0,
            history: [AudioFrame::silence(format); HISTORY_FRAMES],
            history_len: 0,
            history_next: 0,
            onset_frames,
            recording: Vec::with_capacity(recording_cap),
            recording_cap,
            recording_active: false,
            last_loud_len: 0,
            truncated: false,
            tones: Vec::with_capacity(TONE_BUFFER_MS * format.bytes_per_second() / 1000),
            playback: None,
            queue: VecDeque::with_capacity(QUEUE_CAPACITY),
            config,
        };
        if core.config.greeting && tone::render_greeting(format, &mut core.tones) {
            core.playback = Some(Playback { source: Source::Tones, pos: 0, start: 0 });
        }
        Ok(core)
    }

    /// The call's format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Most bytes a recording holds (`max_utterance_ms`, in whole frames).
    pub fn recording_capacity(&self) -> usize {
        self.recording_cap
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Playback is still audible at the far end (counting the time its audio takes to play).
    pub fn is_playing(&self) -> bool {
        self.playback.is_some_and(|p| self.frames < p.start + self.frames_of(self.source_len(p.source)))
    }

    /// Feed the next 20 ms of caller audio (in the call's format), then drain
    /// [`EchoCore::poll_output`].
    pub fn push_frame(&mut self, frame: &[u8]) {
        let playing = self.is_playing();
        let extra = if playing { self.config.barge_in_extra_db } else { 0.0 };
        let step = self.vad.push(level_dbfs(self.format, frame), extra);
        self.remember(frame);

        if step.started {
            if playing {
                self.emit(EchoOutput::FlushPlayback);
            }
            // Whatever was playing is over (or flushed): the recording is about to be reused.
            self.playback = None;
            self.start_recording();
            self.emit(EchoOutput::SpeechStarted { frame: self.frames, barge_in: playing });
        } else if self.recording_active {
            if self.recording.len() + frame.len() <= self.recording_cap {
                self.recording.extend_from_slice(frame);
                if step.loud {
                    self.last_loud_len = self.recording.len();
                }
            } else {
                self.truncated = true;
            }
        }

        if step.ended && self.recording_active {
            let keep = self.last_loud_len + TAIL_FRAMES * self.frame_bytes;
            self.recording.truncate(keep);
            self.recording_active = false;
            self.emit(EchoOutput::SpeechEnded {
                frame: self.frames,
                recorded_bytes: self.recording.len(),
                truncated: self.truncated,
            });
            self.playback = Some(Playback { source: Source::Recording, pos: 0, start: self.frames + 1 });
        }

        self.frames += 1;
        if !self.is_playing() && self.playback.is_some_and(|p| p.pos >= self.source_len(p.source)) {
            self.playback = None;
        }
    }

    /// A DTMF key the caller pressed: read it back as its tone pair.
    pub fn push_digit(&mut self, digit: Digit) {
        let playing = self.is_playing();
        let source = self.playback.map(|p| p.source);
        if playing && source == Some(Source::Recording) {
            self.playback = None;
            self.emit(EchoOutput::FlushPlayback);
        }
        let appending = playing && source == Some(Source::Tones);
        if !appending {
            self.tones.clear();
        }
        let queued =
            tone::render_dtmf(self.format, &mut self.tones, digit, self.config.tone_ms, DIGIT_GAP_MS);
        if queued && !appending {
            self.playback = Some(Playback { source: Source::Tones, pos: 0, start: self.frames });
        }
        self.emit(EchoOutput::DigitRead { digit, queued });
    }

    /// The next output, or `None` until the next push. Call until `None` after each push.
    pub fn poll_output(&mut self) -> Option<EchoOutput> {
        if let Some(out) = self.queue.pop_front() {
            return Some(out);
        }
        let playback = self.playback.as_mut()?;
        let source = match playback.source {
            Source::Recording => &self.recording,
            Source::Tones => &self.tones,
        };
        let due_frames = self.frames.saturating_sub(playback.start) + LEAD_FRAMES;
        let due = usize::try_from(due_frames).unwrap_or(usize::MAX).saturating_mul(self.frame_bytes);
        let end = due.min(source.len()).min(playback.pos + self.frame_bytes);
        if end <= playback.pos {
            return None;
        }
        let chunk = AudioFrame::chunks(&source[playback.pos..end], self.frame_bytes).next()?;
        playback.pos = end;
        Some(EchoOutput::Audio(chunk))
    }

    fn emit(&mut self, out: EchoOutput) {
        if self.queue.len() == QUEUE_CAPACITY {
            // The driver is not polling; keep the newest rather than grow.
            self.queue.pop_front();
        }
        self.queue.push_back(out);
    }

    fn remember(&mut self, frame: &[u8]) {
        let stored =
            AudioFrame::chunks(frame, frame.len()).next().unwrap_or(AudioFrame::silence(self.format));
        self.history[self.history_next] = stored;
        self.history_next = (self.history_next + 1) % HISTORY_FRAMES;
        self.history_len = (self.history_len + 1).min(HISTORY_FRAMES);
    }

    /// Start a recording with the onset run and the pre-roll before it.
    fn start_recording(&mut self) {
        self.recording.clear();
        self.truncated = false;
        let n = self.history_len.min(self.onset_frames + PREROLL_FRAMES);
        for k in (0..n).rev() {
            let idx = (self.history_next + HISTORY_FRAMES - 1 - k) % HISTORY_FRAMES;
            let bytes = self.history[idx].as_bytes();
            if self.recording.len() + bytes.len() <= self.recording_cap {
                self.recording.extend_from_slice(bytes);
            }
        }
        self.last_loud_len = self.recording.len();
        self.recording_active = true;
    }

    fn source_len(&self, source: Source) -> usize {
        match source {
            Source::Recording => self.recording.len(),
            Source::Tones => self.tones.len(),
        }
    }

    fn frames_of(&self, bytes: usize) -> u64 {
        bytes.div_ceil(self.frame_bytes) as u64
    }
}
