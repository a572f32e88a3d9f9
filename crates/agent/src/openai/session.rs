//! The OpenAI Realtime session state machine, sans-IO: WebSocket text frames and call
//! inputs in, with the time injected; events to send, seam events and tool calls out. No
//! socket, no clock, no task: the shell in `connection.rs` moves bytes, and tests drive
//! it in virtual time.
//!
//! ```text
//! AwaitingSessionUpdated --session.updated--> Streaming
//!        \______ error, close, timeout, call ended ______/--> Ended
//! ```
//!
//! Rules it enforces (shared/openai-realtime.md):
//! - `session.update` (`type: realtime`, the call's G.711 law both ways) is queued at
//!   once; caller audio is appended only once `session.updated` has confirmed it (earlier
//!   frames are dropped and counted). Then the history of a renewed session, then the
//!   greeting (a `response.create` with instructions to say it).
//! - Caller frames leave a few at a time ([`OpenAiConfig::append_frames`]) as
//!   [`Output::SendAudio`], by value; the shell writes the append event into a reused
//!   buffer. Everything leaves through one queue ([`OpenAiSession::poll_output`]) in the
//!   order it was decided.
//! - Agent audio (`response.output_audio.delta`) is decoded into one reused buffer and
//!   goes to the call in 20 ms chunks, unless its response was interrupted or cancelled:
//!   late deltas never play.
//! - Barge-in (§5): `input_audio_buffer.speech_started` → [`AgentEvent::FlushPlayback`],
//!   once, when agent audio may still be playing; the call's
//!   [`CallInput::PlaybackFlushed`](crate::CallInput::PlaybackFlushed) →
//!   `conversation.item.truncate` of the item that was playing, at what was heard
//!   ([`Playback`]).
//! - Function calls run in the shell ([`Output::RunTool`]); each result goes back as a
//!   `function_call_output` item, and once every call of a completed response is answered,
//!   one `response.create` makes the model speak the results.
//! - `response.done` → [`AgentEvent::Usage`] at the configured prices.
//! - `error`: logged and survived, except a refused `session.update` and the
//!   session-fatal ones; those, a close mid-call and a handshake that never completes end
//!   the session as `Failed` with a typed [`ProviderCode`] — unless, mid-call, a new
//!   session may fare better: then the caller is put on hold and the session reconnects
//!   with the conversation (`reconnect`).
//! - Before OpenAI's 60-minute cap, [`Output::Renew`] at a quiet moment (or forced): a new
//!   connection, the conversation re-seeded as message items.

mod playback;
mod reconnect;
mod turns;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

pub use self::playback::{Playback, Truncate};
use super::config::{OpenAiConfig, Prices, RENEW_HARD_LIMIT};
use super::messages::{AudioDelta, ClientEvent, ErrorDetail, Item, ResponseInfo, ServerEvent};
use crate::keypad::Keypad;
use crate::provider::{AgentEvent, AudioFormat, AudioFrame, Role, SessionEnd};
use crate::renewal::{History, Moment, Policy, RenewalTimer};
pub use crate::renewal::{HISTORY_MAX_CHARS, HISTORY_MAX_LINES};
use crate::tools::{Fillers, ToolCall};
use crate::{AgentError, ProviderCode};

/// How long `session.updated` may take after connecting.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest server event read (a second of G.711 is 11 KB of base64): a larger one
/// ends the session as a provider failure.
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Client-side function calls run at once; more are answered with an error at once.
pub const MAX_PENDING_TOOLS: usize = 8;
/// Agent audio may still be playing this long after the call would have played all that
/// was sent, had it started at once: a barge-in then still flushes.
pub const PLAYING_MARGIN: Duration = Duration::from_millis(500);
/// A renewal waits for this much quiet (no agent audio, no tool running, the caller not
/// mid-utterance, no response in progress)...
pub const RENEW_QUIET: Duration = Duration::from_millis(1500);
/// A failed renewal is retried after this long (the old session still runs meanwhile).
pub const RENEW_RETRY: Duration = Duration::from_secs(20);
/// The `event_id` of the `session.update`: an error naming it refuses the configuration.
pub const SESSION_UPDATE_ID: &str = "voice-ua-session-update";
/// The most caller bytes one append carries: [`super::config::MAX_APPEND_FRAMES`] frames
/// of 20 ms of PCM at 24 kHz (960 bytes; a G.711 frame is 160).
pub const MAX_APPEND_BYTES: usize = super::config::MAX_APPEND_FRAMES * 960;

/// A linear16 call's audio resampled to OpenAI's 24 kHz PCM and back (buffers reused).
#[derive(Debug)]
struct Pcm24 {
    up: voice_ua_media::Resampler,
    down: voice_ua_media::Resampler,
    samples: Vec<i16>,
    resampled: Vec<i16>,
    bytes: Vec<u8>,
    /// The call's samples per 8 kHz sample (1 or 2): the playback counts at 8 kHz.
    per_8k: u64,
}

impl Pcm24 {
    fn new(format: AudioFormat) -> Option<Box<Pcm24>> {
        let AudioFormat::Linear16 { rate_hz } = format else { return None };
        let up = voice_ua_media::Resampler::new(rate_hz, super::messages::PCM_RATE).ok()?;
        let down = voice_ua_media::Resampler::new(super::messages::PCM_RATE, rate_hz).ok()?;
        Some(Box::new(Pcm24 {
            up,
            down,
            samples: Vec::with_capacity(4096),
            resampled: Vec::with_capacity(4096),
            bytes: Vec::with_capacity(8192),
            per_8k: u64::from(rate_hz / 8000).max(1),
        }))
    }

    /// Little-endian PCM `bytes` at `from` Hz through `resampler` into `self.bytes`.
    fn convert(&mut self, bytes: &[u8], to_openai: bool) -> &[u8] {
        self.samples.clear();
        self.samples.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
        let (resampler, ratio) = if to_openai { (&mut self.up, 3) } else { (&mut self.down, 1) };
        // Room for every output: 16→24 kHz makes 3 of 2, 24→16 kHz 2 of 3 (8 kHz: 3×, ⅓).
        self.resampled.clear();
        self.resampled.resize(self.samples.len() * ratio + 2, 0);
        let n = resampler.process(&self.samples, &mut self.resampled);
        self.bytes.clear();
        for x in self.resampled.iter().take(n) {
            self.bytes.extend_from_slice(&x.to_le_bytes());
        }
        &self.bytes
    }
}

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "openai";

/// Error codes after which the session cannot go on (the rest are recoverable).
const FATAL_CODES: &[&str] = &[
    "session_expired",
    "invalid_api_key",
    "insufficient_quota",
    "model_not_found",
    "beta_api_shape_disabled",
];
/// Response and item ids remembered as interrupted or cancelled.
const DEAD_RESPONSES: usize = 8;
/// Log lines for unknown events, malformed frames and recoverable errors: the first few,
/// then one in this many.
const LOG_EVERY: u64 = 100;

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `session.update` sent; waiting for `session.updated`.
    AwaitingSessionUpdated,
    /// Audio flows both ways.
    Streaming,
    /// Over; nothing more is sent.
    Ended,
}

/// A few caller frames for one `input_audio_buffer.append`, by value (no heap).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AppendBatch {
    len: u16,
    buf: [u8; MAX_APPEND_BYTES],
}

impl AppendBatch {
    const EMPTY: AppendBatch = AppendBatch { len: 0, buf: [0; MAX_APPEND_BYTES] };

    /// The caller's audio, in the call's law.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    fn push(&mut self, bytes: &[u8]) {
        let start = usize::from(self.len);
        let n = bytes.len().min(MAX_APPEND_BYTES - start);
        self.buf[start..start + n].copy_from_slice(&bytes[..n]);
        self.len += n as u16;
    }
}

impl std::fmt::Debug for AppendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppendBatch({} bytes)", self.len)
    }
}

/// What the shell must do: caller frames go a few at a time as one
/// `input_audio_buffer.append` ([`super::messages::append_json`]), by value. `Renew`:
/// open a fresh session ([`OpenAiSession::renewal_seed`], [`OpenAiSession::new`]) and,
/// once it streams, switch over with [`OpenAiSession::continue_from`]; on failure, call
/// [`OpenAiSession::renew_failed`].
pub type Output = crate::ws::Output<AppendBatch>;

/// How the WebSocket ended, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A close frame.
    Frame {
        /// Its code.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The connection dropped without a close frame.
    Dropped,
    /// A read or write failed.
    Broken(String),
    /// A frame larger than [`MAX_EVENT_BYTES`].
    TooLarge(usize),
}

/// A response's function calls, until they are all answered.
#[derive(Debug)]
struct ToolTurn {
    response_id: String,
    /// Calls of it still running.
    running: usize,
    /// Its `response.done`: `Some(true)` when completed (the model then speaks the
    /// results), `Some(false)` when it was cut short.
    completed: Option<bool>,
}

/// Counts kept for the log and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Caller frames appended.
    pub frames_sent: u64,
    /// Caller frames dropped before `session.updated`.
    pub frames_dropped: u64,
    /// `input_audio_buffer.append` events.
    pub appends: u64,
    /// Agent deltas dropped because their response was interrupted or cancelled.
    pub stale_deltas: u64,
    /// Frames that were not JSON, or an event that did not fit its schema.
    pub malformed: u64,
    /// Events of a type voice-ua does not model.
    pub unknown: u64,
    /// Recoverable `error` events.
    pub errors: u64,
}

/// The sans-IO OpenAI Realtime session.
#[derive(Debug)]
pub struct OpenAiSession {
    state: State,
    format: AudioFormat,
    out: VecDeque<Output>,
    /// When the connection opened (the handshake's clock).
    opened: Instant,
    session_id: Option<String>,
    /// Sent once `session.updated` arrives: the history items of a renewal, the greeting.
    after_update: Vec<ClientEvent>,
    append_frames: usize,
    batch: AppendBatch,
    batch_frames: usize,
    /// Agent audio, decoded (reused).
    decoded: Vec<u8>,
    /// A linear16 call's resampling to and from OpenAI's 24 kHz.
    pcm24: Option<Box<Pcm24>>,
    playback: Playback,
    /// When the call will have played all agent audio sent, had it started at once.
    play_until: Option<Instant>,
    user_speaking: bool,
    /// A flush went out for the current utterance.
    flushed: bool,
    /// The response in progress.
    active_response: Option<String>,
    /// Responses interrupted or cancelled: their late deltas are dropped.
    dead_responses: VecDeque<String>,
    /// Function names from `response.output_item.added`, by call id.
    call_names: HashMap<String, String>,
    /// Running calls: call id → response id.
    pending_tools: HashMap<String, String>,
    tool_turns: Vec<ToolTurn>,
    prices: Prices,
    history: History,
    renewal: RenewalTimer,
    /// The socket closed while a renewal was being opened: the renewal must succeed.
    closed_for_renewal: bool,
    /// The caller stopped speaking: a turn's start, for the debug latency line.
    turn_start: Option<Instant>,
    counts: Counts,
    /// Opening the session again when its socket drops mid-call.
    reconnect: crate::reconnect::Reconnecting,
    /// What the caller hears while a slow function runs (`session/turns.rs`).
    fillers: Fillers,
    /// Digits typed and the end-of-turn key (`session/turns.rs`).
    keypad: Keypad,
    /// Typed digits went in while a response ran: they get a `response.create` once it
    /// is done.
    typed_waiting: bool,
}

/// The renewal timings for `config`: due after `renew_after`, forced by
/// [`RENEW_HARD_LIMIT`].
fn policy(config: &OpenAiConfig) -> Policy {
    let after = config.renew_after.min(RENEW_HARD_LIMIT);
    Policy { after, quiet: RENEW_QUIET, force_after: RENEW_HARD_LIMIT - after, retry: RENEW_RETRY }
}

impl OpenAiSession {
    /// A session for a call in `format` (G.711, or linear16 at 8 or 16 kHz, resampled to
    /// and from 24 kHz), queueing its `session.update`.
    /// `seed`: the conversation so far, when this session continues a call
    /// ([`OpenAiSession::renewal_seed`]); it is created as message items once the session
    /// is confirmed, and there is no greeting then.
    pub fn new(
        now: Instant,
        format: AudioFormat,
        config: &OpenAiConfig,
        seed: Option<Vec<(Role, String)>>,
    ) -> Result<Self, AgentError> {
        let session = config.session(format).ok_or(AgentError::UnsupportedFormat { format })?;
        let mut history = History::default();
        let mut after_update = Vec::new();
        match seed {
            Some(lines) => {
                for (role, text) in lines {
                    after_update.push(item_create(role, &text));
                    history.remember(role, &text);
                }
            }
            None => after_update.extend(config.greeting_event()),
        }
        let mut s = OpenAiSession {
            state: State::AwaitingSessionUpdated,
            format,
            out: VecDeque::new(),
            opened: now,
            session_id: None,
            after_update,
            append_frames: config.append_frames.clamp(1, super::config::MAX_APPEND_FRAMES),
            batch: AppendBatch::EMPTY,
            batch_frames: 0,
            decoded: Vec::new(),
            pcm24: Pcm24::new(format),
            playback: Playback::default(),
            play_until: None,
            user_speaking: false,
            flushed: false,
            active_response: None,
            dead_responses: VecDeque::new(),
            call_names: HashMap::new(),
            pending_tools: HashMap::new(),
            tool_turns: Vec::new(),
            prices: config.prices,
            history,
            renewal: RenewalTimer::new(policy(config)),
            closed_for_renewal: false,
            turn_start: None,
            counts: Counts::default(),
            reconnect: crate::reconnect::Reconnecting::default(),
            fillers: Fillers::new(&config.functions, false),
            keypad: Keypad::new(config.end_of_turn_key),
            typed_waiting: false,
        };
        s.reconnect.set_policy(config.reconnect);
        let update = ClientEvent::SessionUpdate {
            event_id: Some(SESSION_UPDATE_ID.into()),
            session: Box::new(session),
        };
        s.send(&update);
        Ok(s)
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// OpenAI's id for the session (`session.created`).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Counts for the log and tests.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The agent audio sent to the call and where each reply sits in it.
    pub fn playback(&self) -> &Playback {
        &self.playback
    }

    /// The conversation so far, oldest first (at most [`HISTORY_MAX_LINES`] lines and
    /// [`HISTORY_MAX_CHARS`] characters).
    pub fn history(&self) -> impl Iterator<Item = (Role, &str)> {
        self.history.iter()
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`OpenAiSession::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(t) = self.reconnect_timeout() {
            return Some(t);
        }
        match self.state {
            State::AwaitingSessionUpdated => Some(self.opened + HANDSHAKE_TIMEOUT),
            State::Streaming => [self.renewal.next_check(), self.turn_timeout()].into_iter().flatten().min(),
            State::Ended => None,
        }
    }

    /// Time has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reconnect_on_timeout(now) {
            return;
        }
        match self.state {
            State::AwaitingSessionUpdated if now >= self.opened + HANDSHAKE_TIMEOUT => self.fail(
                format!(
                    "OpenAI did not confirm the session (no session.updated within {} s of connecting): check the network path to OpenAI",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
                "HANDSHAKE_TIMEOUT",
            ),
            State::Streaming => {
                self.turn_timers(now);
                self.check_renew(now);
            }
            _ => {}
        }
    }

    /// 20 ms of caller audio. Once streaming it joins the batch, which leaves as
    /// [`Output::SendAudio`] when full; before `session.updated` (and when empty) it is
    /// dropped and counted; after the end it is ignored.
    pub fn handle_call_audio(&mut self, _now: Instant, frame: &AudioFrame) {
        if self.state != State::Streaming
            || frame.is_empty()
            || self.closed_for_renewal
            || self.reconnecting()
        {
            if self.state != State::Ended {
                self.counts.frames_dropped += 1;
            }
            return;
        }
        self.counts.frames_sent += 1;
        match self.pcm24.as_deref_mut() {
            Some(pcm) => self.batch.push(pcm.convert(frame.as_bytes(), true)),
            None => self.batch.push(frame.as_bytes()),
        }
        self.batch_frames += 1;
        if self.batch_frames >= self.append_frames {
            self.counts.appends += 1;
            self.out.push_back(Output::SendAudio(self.batch));
            self.batch = AppendBatch::EMPTY;
            self.batch_frames = 0;
        }
    }

    /// A text frame from OpenAI.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        if self.state == State::Ended || self.reconnecting() {
            return;
        }
        if text.len() > MAX_EVENT_BYTES {
            self.handle_closed(now, Closed::TooLarge(text.len()));
            return;
        }
        // The hot path: agent audio, parsed without allocating.
        if let Some(delta) = AudioDelta::parse(text) {
            self.on_audio_delta(now, &delta);
            return;
        }
        match ServerEvent::parse(text) {
            Ok(event) => self.on_event(now, event),
            Err(error) => {
                self.counts.malformed += 1;
                if sampled(self.counts.malformed) {
                    tracing::debug!(%error, count = self.counts.malformed, "ignoring an OpenAI frame voice-ua cannot read");
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: ServerEvent) {
        match event {
            ServerEvent::SessionCreated { session } => {
                let id = session.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                tracing::info!(session = %id, "OpenAI session open");
                self.event(AgentEvent::SessionOpened { id: id.clone() });
                self.session_id = Some(id);
            }
            ServerEvent::SessionUpdated { .. } => {
                if self.state == State::AwaitingSessionUpdated {
                    tracing::info!("OpenAI session configured: streaming");
                    self.state = State::Streaming;
                    self.renewal.start(now);
                    for event in std::mem::take(&mut self.after_update) {
                        self.send(&event);
                    }
                }
            }
            ServerEvent::SpeechStarted { .. } => self.on_speech_started(now),
            ServerEvent::SpeechStopped { .. } => {
                self.user_speaking = false;
                self.flushed = false;
                self.turn_start = Some(now);
            }
            ServerEvent::InputTranscriptionCompleted { transcript, .. } => {
                self.said(Role::User, transcript);
            }
            ServerEvent::InputTranscriptionFailed { error, .. } => {
                tracing::debug!(message = %error.message, "OpenAI could not transcribe the caller");
            }
            ServerEvent::OutputAudioTranscriptDone { transcript, .. } => self.said(Role::Agent, transcript),
            ServerEvent::ResponseCreated { response } => {
                self.active_response = response.id;
                // A new reply may play: the caller's next start interrupts it, even when
                // no speech_stopped came between (one flush per utterance, not per call).
                self.flushed = false;
            }
            ServerEvent::OutputItemAdded { item, .. } => {
                if let (Some(call_id), Some(name)) = (item.call_id, item.name) {
                    if self.call_names.len() < 4 * MAX_PENDING_TOOLS {
                        self.call_names.insert(call_id, name);
                    }
                }
            }
            ServerEvent::FunctionCallArgumentsDone { response_id, call_id, name, arguments, .. } => {
                self.on_function_call(now, response_id, call_id, name, arguments);
            }
            ServerEvent::ResponseDone { response } => self.on_response_done(response),
            ServerEvent::OutputAudioDelta { response_id, item_id, delta, .. } => {
                // Only when the fast parser could not take it (an escaped string).
                self.on_audio_delta(now, &AudioDelta::new(response_id.into(), item_id.into(), delta.into()));
            }
            ServerEvent::ConversationItemTruncated { item_id, audio_end_ms, .. } => {
                tracing::debug!(%item_id, audio_end_ms, "OpenAI truncated the interrupted reply");
            }
            ServerEvent::RateLimitsUpdated { rate_limits } => {
                for limit in rate_limits.iter().filter(|l| l.remaining.is_some_and(|r| r <= 0.0)) {
                    tracing::warn!(name = %limit.name, reset_seconds = ?limit.reset_seconds, "OpenAI rate limit reached");
                }
            }
            ServerEvent::Error { error } => self.on_error(now, error),
            ServerEvent::Unknown { type_name, .. } => {
                self.counts.unknown += 1;
                if sampled(self.counts.unknown) {
                    tracing::debug!(%type_name, count = self.counts.unknown, "ignoring an OpenAI event type voice-ua does not know");
                }
            }
            // Transcript deltas and the like carry what was said: only when that may be logged.
            other if crate::privacy::log_text() => tracing::trace!(event = ?other, "OpenAI event"),
            _ => tracing::trace!("OpenAI event (not logged: it may carry conversation text)"),
        }
    }

    fn on_audio_delta(&mut self, now: Instant, delta: &AudioDelta<'_>) {
        if self.state == State::Ended || self.is_dead(&delta.response_id) {
            self.counts.stale_deltas += 1;
            return;
        }
        use base64::Engine;
        self.decoded.resize(base64::decoded_len_estimate(delta.delta.len()), 0);
        let n = match base64::engine::general_purpose::STANDARD
            .decode_slice(delta.delta.as_bytes(), &mut self.decoded)
        {
            Ok(n) => n,
            Err(_) => {
                self.counts.malformed += 1;
                return;
            }
        };
        if n == 0 {
            return;
        }
        // PCM at 24 kHz for a linear16 call: back to its rate.
        let audio: &[u8] = match self.pcm24.as_deref_mut() {
            Some(pcm) => pcm.convert(self.decoded.get(..n).unwrap_or(&[]), false),
            None => self.decoded.get(..n).unwrap_or(&[]),
        };
        let samples = (audio.len() / self.format.bytes_per_sample()) as u64;
        let per_8k = self.pcm24.as_ref().map_or(1, |p| p.per_8k);
        // The playback counts 8 kHz samples (its milliseconds are 8 of them).
        self.playback.audio(&delta.item_id, samples / per_8k);
        let duration = Duration::from_micros(samples * 1_000_000 / u64::from(self.format.sample_rate()));
        self.play_until = Some(self.play_until.map_or(now, |t| t.max(now)) + duration);
        if let Some(start) = self.turn_start.take() {
            let ms = now.saturating_duration_since(start).as_millis() as u64;
            tracing::debug!(
                latency_ms = ms,
                "turn latency: caller's end of speech (OpenAI VAD) → first agent audio"
            );
        }
        // 20 ms chunks, queued for the call's pacer.
        let audio: &[u8] = match self.pcm24.as_deref() {
            Some(pcm) => &pcm.bytes,
            None => self.decoded.get(..n).unwrap_or(&[]),
        };
        for frame in AudioFrame::chunks(audio, self.format.frame_bytes()) {
            self.out.push_back(Output::Event(AgentEvent::Audio(frame)));
        }
    }

    fn on_speech_started(&mut self, now: Instant) {
        self.user_speaking = true;
        // Server VAD cancels the reply in progress (interrupt_response): whatever more
        // of it arrives must not play after the flush.
        if let Some(id) = self.active_response.take() {
            self.mark_dead(id);
        }
        let playing = self.play_until.is_some_and(|t| now < t + PLAYING_MARGIN);
        if playing && !self.flushed {
            tracing::debug!("caller started speaking over the agent: flushing its playback");
            self.flushed = true;
            self.playback.flush();
            self.event(AgentEvent::FlushPlayback);
        }
    }

    /// The call's answer to a [`AgentEvent::FlushPlayback`]: the caller had heard
    /// `played_samples` of agent audio. The reply that was playing is truncated there.
    pub fn handle_playback_flushed(&mut self, _now: Instant, played_samples: u64) {
        let per_8k = self.pcm24.as_ref().map_or(1, |p| p.per_8k);
        let cuts = self.playback.flushed(played_samples / per_8k);
        if self.state != State::Streaming || self.closed_for_renewal || self.reconnecting() {
            return;
        }
        for Truncate { item_id, audio_end_ms } in cuts {
            tracing::debug!(%item_id, audio_end_ms, "truncating the reply the caller interrupted");
            self.send(&ClientEvent::ConversationItemTruncate { item_id, content_index: 0, audio_end_ms });
        }
    }

    fn on_function_call(
        &mut self,
        now: Instant,
        response_id: String,
        call_id: String,
        name: Option<String>,
        arguments: String,
    ) {
        let name =
            name.filter(|n| !n.is_empty()).or_else(|| self.call_names.remove(&call_id)).unwrap_or_default();
        self.call_names.remove(&call_id);
        if self.is_dead(&response_id) {
            tracing::info!(%call_id, %name, "the caller interrupted the function call before it was complete: not run");
            return;
        }
        if self.pending_tools.contains_key(&call_id) {
            tracing::debug!(%call_id, "a function call already running: not run twice");
            return;
        }
        let turn = match self.tool_turns.iter().position(|t| t.response_id == response_id) {
            Some(i) => i,
            None => {
                self.tool_turns.push(ToolTurn {
                    response_id: response_id.clone(),
                    running: 0,
                    completed: None,
                });
                self.tool_turns.len() - 1
            }
        };
        if self.pending_tools.len() >= MAX_PENDING_TOOLS {
            tracing::warn!(%call_id, "too many function calls at once: refused");
            let output = format!(
                "error: too many function calls at once ({MAX_PENDING_TOOLS} are running); wait for their results, then call again"
            );
            self.send(&ClientEvent::ConversationItemCreate {
                previous_item_id: None,
                item: Item::function_call_output(&call_id, &output),
            });
            return;
        }
        tracing::info!(%call_id, %name, "agent calls a function");
        self.tool_turns[turn].running += 1;
        self.pending_tools.insert(call_id.clone(), response_id);
        self.fillers.started(now, &call_id, &name);
        self.out.push_back(Output::RunTool(ToolCall { id: call_id, name, arguments }));
        self.drain_fillers();
    }

    /// A function finished: its output goes back, and once every call of its response is
    /// answered the model is asked to go on. Unknown (or already answered) ids are
    /// dropped.
    pub fn handle_tool_result(&mut self, _now: Instant, call_id: String, name: String, content: String) {
        if self.tool_result_stale(&call_id, &name) {
            return;
        }
        let Some(response_id) = self.pending_tools.remove(&call_id) else {
            tracing::debug!(%call_id, %name, "dropping the result of an unknown function call");
            return;
        };
        self.fillers.finished(&call_id);
        if self.state == State::Ended {
            return;
        }
        self.send(&ClientEvent::ConversationItemCreate {
            previous_item_id: None,
            item: Item::function_call_output(&call_id, &content),
        });
        if let Some(turn) = self.tool_turns.iter_mut().find(|t| t.response_id == response_id) {
            turn.running = turn.running.saturating_sub(1);
        }
        self.continue_tool_turn(&response_id);
        self.drain_fillers();
    }

    /// When a response's calls are all answered and it completed, ask for the next one.
    fn continue_tool_turn(&mut self, response_id: &str) {
        let Some(i) = self.tool_turns.iter().position(|t| t.response_id == response_id) else { return };
        let turn = &self.tool_turns[i];
        if turn.running > 0 || turn.completed.is_none() {
            return;
        }
        let completed = turn.completed == Some(true);
        self.tool_turns.swap_remove(i);
        if !completed {
            tracing::debug!(%response_id, "function results sent; the response was cut short, so the caller's next turn goes on");
        } else if let Some(active) = &self.active_response {
            tracing::debug!(%active, "function results sent while another response runs: it goes on from there");
        } else {
            self.send(&ClientEvent::ResponseCreate { response: None });
        }
    }

    fn on_response_done(&mut self, response: ResponseInfo) {
        let id = response.id.unwrap_or_default();
        if self.active_response.as_deref() == Some(id.as_str()) {
            self.active_response = None;
        }
        let status = response.status.as_deref().unwrap_or("completed");
        if status != "completed" {
            let reason = response.status_details.as_ref().and_then(|d| d.reason.as_deref()).unwrap_or("");
            if status == "failed" {
                let error = response.status_details.as_ref().and_then(|d| d.error.as_ref());
                tracing::warn!(response = %id, ?error, "OpenAI response failed");
            } else {
                tracing::debug!(response = %id, status, reason, "OpenAI response ended early");
            }
            self.mark_dead(id.clone());
        }
        if let Some(usage) = response.usage {
            self.event(AgentEvent::Usage(self.prices.usage(&usage)));
        }
        if let Some(turn) = self.tool_turns.iter_mut().find(|t| t.response_id == id) {
            turn.completed = Some(status == "completed");
        }
        self.continue_tool_turn(&id);
        self.answer_typed();
    }

    fn on_error(&mut self, now: Instant, error: ErrorDetail) {
        let code = error.code.clone().unwrap_or_default();
        let refused = self.state == State::AwaitingSessionUpdated
            || error.event_id.as_deref() == Some(SESSION_UPDATE_ID);
        let fatal = refused || FATAL_CODES.contains(&code.as_str()) || error.kind == "server_error";
        let word = if code.is_empty() { error.kind.as_str() } else { code.as_str() };
        if !fatal {
            self.counts.errors += 1;
            if word == "conversation_already_has_active_response" {
                tracing::debug!("OpenAI was already responding: the extra response.create is dropped");
            } else if sampled(self.counts.errors) {
                tracing::warn!(code = %word, message = %error.message, param = ?error.param, "OpenAI error (the session goes on)");
            }
            return;
        }
        let param = error.param.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
        if refused {
            let detail =
                format!("OpenAI refused the session configuration: {word}: {}{param}", error.message);
            self.fail(detail, &word.to_ascii_uppercase());
            return;
        }
        self.lost(now, format!("OpenAI error {word}: {}{param}", error.message), &word.to_ascii_uppercase());
    }

    /// The WebSocket closed or broke.
    pub fn handle_closed(&mut self, now: Instant, closed: Closed) {
        if self.state == State::Ended || self.reconnecting() {
            return;
        }
        if self.renewal.asked() && self.state == State::Streaming && !matches!(closed, Closed::TooLarge(_)) {
            // A renewal is being opened: the call goes on with it, or fails with it.
            tracing::info!(?closed, "OpenAI closed the session while its renewal is being opened");
            self.closed_for_renewal = true;
            return;
        }
        let mid_call = self.state == State::Streaming;
        let (detail, code) = match &closed {
            Closed::Frame { code: 1001, reason } if reason.contains("maximum duration") => (
                format!(
                    "OpenAI ended the session at its 60-minute maximum (close 1001: {reason}) before voice-ua renewed it"
                ),
                "SESSION_EXPIRED".to_owned(),
            ),
            Closed::Frame { code, reason } => {
                let word = reason.trim().to_ascii_uppercase();
                let code_word = if ProviderCode::new(&word).is_some() { word } else { format!("WS_CLOSE_{code}") };
                let when = if mid_call { "closed the session mid-call" } else { "closed the connection during setup" };
                (format!("OpenAI {when} (close code {code} {reason:?})"), code_word)
            }
            Closed::Dropped | Closed::Broken(_) => {
                let why = match &closed {
                    Closed::Broken(e) => e.as_str(),
                    _ => "connection dropped",
                };
                let when = if mid_call { "the session mid-call" } else { "the connection during setup" };
                (format!("OpenAI lost {when} ({why})"), "CONNECTION_LOST".to_owned())
            }
            Closed::TooLarge(len) => (
                format!(
                    "OpenAI sent a {} KiB event, over the {} KiB limit: ending the session",
                    len / 1024,
                    MAX_EVENT_BYTES / 1024
                ),
                "EVENT_TOO_LARGE".to_owned(),
            ),
        };
        self.lost(now, detail, &code);
    }

    /// The call is over: close the socket, end with `CallEnded`.
    pub fn call_ended(&mut self) {
        if self.state == State::Ended {
            return;
        }
        self.stop_fillers();
        self.state = State::Ended;
        self.out.push_back(Output::Event(AgentEvent::Ended(SessionEnd::CallEnded)));
        self.out.push_back(Output::Close);
    }

    /// End the session as failed, with `code` (an upper-case word; dropped when it is
    /// not one): one line, then close.
    pub fn fail(&mut self, detail: String, code: &str) {
        if self.state == State::Ended {
            return;
        }
        tracing::warn!(%detail, "OpenAI session failed");
        self.stop_fillers();
        self.state = State::Ended;
        let error = AgentError::Provider { provider: PROVIDER.into(), detail, code: ProviderCode::new(code) };
        self.out.push_back(Output::Event(AgentEvent::Ended(SessionEnd::Failed(error))));
        self.out.push_back(Output::Close);
    }

    // ---- renewal

    /// Ask for a renewal when one is due and the moment is quiet (or it is forced).
    fn check_renew(&mut self, now: Instant) {
        let busy = !self.pending_tools.is_empty() || self.user_speaking || self.active_response.is_some();
        if let Some(moment) = self.renewal.check(now, busy, self.play_until) {
            tracing::info!(
                lines = self.history.len(),
                quiet = moment == Moment::Quiet,
                "renewing the OpenAI session before its 60-minute cap"
            );
            self.out.push_back(Output::Renew);
        }
    }

    /// The conversation to seed the renewed session with (given to
    /// [`OpenAiSession::new`]); lines heard after this go over with
    /// [`OpenAiSession::continue_from`].
    pub fn renewal_seed(&mut self) -> Vec<(Role, String)> {
        self.history.mark();
        self.history.iter().map(|(role, text)| (role, text.to_owned())).collect()
    }

    /// Switch-over: this session (opened with `previous`'s seed, and streaming) takes on
    /// the lines `previous` heard while it was being opened (created as items here too),
    /// and the call's count of agent audio.
    pub fn continue_from(&mut self, previous: &OpenAiSession) {
        let late: Vec<(Role, String)> =
            previous.history.since_mark().map(|(r, t)| (r, t.to_owned())).collect();
        for (role, text) in late {
            self.history.remember(role, &text);
            self.send(&item_create(role, &text));
        }
        self.playback.continue_from(&previous.playback);
        self.play_until = previous.play_until;
        self.session_id = self.session_id.take().or_else(|| previous.session_id.clone());
    }

    /// The renewal asked for with [`Output::Renew`] could not be opened: keep this
    /// session and try again after [`RENEW_RETRY`] — unless OpenAI has closed it already.
    pub fn renew_failed(&mut self, now: Instant, why: &str) {
        if self.closed_for_renewal {
            self.fail(format!("OpenAI closed the session and its renewal failed ({why})"), "RENEWAL_FAILED");
            return;
        }
        tracing::warn!("could not renew the OpenAI session (the current one goes on): {why}");
        self.renewal.failed(now);
    }

    // ---- helpers

    fn said(&mut self, role: Role, text: String) {
        if text.trim().is_empty() {
            return;
        }
        self.history.remember(role, &text);
        self.event(AgentEvent::Transcript { role, text, at: SystemTime::now() });
    }

    fn is_dead(&self, response_id: &str) -> bool {
        !response_id.is_empty() && self.dead_responses.iter().any(|r| r == response_id)
    }

    fn mark_dead(&mut self, response_id: String) {
        if response_id.is_empty() || self.is_dead(&response_id) {
            return;
        }
        if self.dead_responses.len() == DEAD_RESPONSES {
            self.dead_responses.pop_front();
        }
        self.dead_responses.push_back(response_id);
    }

    fn send(&mut self, event: &ClientEvent) {
        self.out.push_back(Output::SendText(event.to_json()));
    }

    fn event(&mut self, event: AgentEvent) {
        self.out.push_back(Output::Event(event));
    }
}

/// A line of the conversation as the item that re-seeds a renewed session.
fn item_create(role: Role, text: &str) -> ClientEvent {
    let item = match role {
        Role::User => Item::user_text(text),
        Role::Agent => Item::assistant_text(text),
    };
    ClientEvent::ConversationItemCreate { previous_item_id: None, item }
}

/// Whether the `n`th of a kind of noisy line is logged: the first five, then one in
/// [`LOG_EVERY`].
fn sampled(n: u64) -> bool {
    n <= 5 || n.is_multiple_of(LOG_EVERY)
}
