//! The `asp` dialect, sans-IO: voice-ua in the place of theo-ai-voice-agent's PJSUA2
//! media server, speaking the Audio Session Protocol the way that project's code does
//! (where its specification differs, the code wins; docs/websocket-bots.md has the
//! details and the sources).
//!
//! ```text
//! AwaitingCapabilities --protocol.capabilities (or 5 s: a legacy peer)/session.start--> AwaitingStarted
//! AwaitingStarted --session.started accepted--> Streaming --call ended/session.end--> Ending --session.ended (or 300 ms)--> closed
//!       \-- rejected, 10 s without an answer, malformed, close ----------------------------> Ended(Failed)
//! ```
//!
//! - Audio both ways is binary: a 12-byte header (`0x01`, direction `0x00` in / `0x01`
//!   out, the first 8 bytes of MD5(session_id), two zero bytes) and PCM16 LE at 8 kHz.
//!   Caller frames leave one per 20 ms; the agent's bursts are cut into frames for the
//!   call's pacer. Frames with another session's hash are dropped.
//! - End of turn is ours: an energy VAD ([`CallerVad`], 500 ms of silence) sends
//!   `audio.end` after at least 250 ms of speech, the only turn trigger the agent reads.
//! - Like the original media server, the caller's audio starts after the greeting and
//!   pauses while a response plays ("monitor mode"): the agent drops it then anyway.
//!   Playback is tracked with [`AgentEvent::Mark`]s after each burst.
//! - Barge-in is ours: caller speech starting while a response (not the greeting)
//!   plays flushes it at once ([`AgentEvent::FlushPlayback`]) and resumes the caller's
//!   audio; ASP has no message for it.
//! - `response.start {text}` is the agent's transcript line; `call.action` hangs up
//!   after the queued audio, or transfers once it has played (the call waits for it).
//! - `session.end` when the call ends, then the close after `session.ended`.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use voice_ua_media::vad::CallerVad;

use super::audio::{Bridge, PCM16_8K};
use super::session::{valid_transfer_target, Closed, Common, DialectCore, FailureCode, Transmit};
use crate::provider::{AgentEvent, AudioFormat, AudioFrame, CallFacts, CallInput, ReplyFigures, Role};

/// The first byte of every audio frame.
pub const AUDIO_MAGIC: u8 = 0x01;
/// Direction byte: caller → agent.
pub const DIRECTION_INBOUND: u8 = 0x00;
/// Direction byte: agent → caller.
pub const DIRECTION_OUTBOUND: u8 = 0x01;
/// The header's length.
pub const HEADER_LEN: usize = 12;

/// How long the agent has to send `protocol.capabilities` before voice-ua takes it for a
/// legacy peer and sends `session.start` anyway (the media server's `ASP_CAPS_TIMEOUT`).
pub const CAPABILITIES_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `session.started` may take (the media server's `WS_SESSION_START_TIMEOUT`).
pub const SESSION_START_TIMEOUT: Duration = Duration::from_secs(10);
/// The caller's audio starts at the greeting's `response.end`, or this long after
/// `session.started` when no greeting comes (`CALL_GREETING_TIMEOUT`).
pub const GREETING_WAIT: Duration = Duration::from_secs(30);
/// A response with no audio and no `response.end` for this long is taken as over
/// (`CALL_PLAYBACK_DRAIN_TIMEOUT`): the caller is never left unheard.
pub const RESPONSE_IDLE: Duration = Duration::from_secs(10);
/// How long voice-ua waits for `session.ended` before it closes.
pub const SESSION_END_WAIT: Duration = Duration::from_millis(300);

/// End of speech: this much silence (the agent's `silence_threshold_ms`).
pub const SILENCE_THRESHOLD_MS: u32 = 500;
/// A turn needs at least this much speech (the agent's `min_speech_ms`).
pub const MIN_SPEECH_MS: u32 = 250;

/// The agent's audio, an `AudioFormat`.
const WIRE: AudioFormat = PCM16_8K;

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connecting, or connected and waiting for `protocol.capabilities`.
    AwaitingCapabilities,
    /// `session.start` sent.
    AwaitingStarted,
    /// Accepted: audio flows.
    Streaming,
    /// `session.end` sent (or the session failed); closing.
    Ending,
    /// Closed.
    Closed,
}

/// What the agent's audio is doing, for barge-in and the caller's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    /// No response yet: the greeting is awaited.
    BeforeGreeting,
    /// Between `response.start` and `response.end`.
    Sending { greeting: bool },
    /// The response was sent; its audio may still be playing.
    Sent { greeting: bool },
    /// Nothing playing.
    Idle,
}

// Frames travel by value in the queue (reserved once), like the seam's own events: no
// heap per frame, so the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Pending {
    SessionStart,
    Audio(AudioFrame),
    AudioEnd,
    SessionEnd(&'static str),
    Close,
}

/// The ASP core for one call.
#[derive(Debug)]
pub struct AspCore {
    common: Common,
    state: State,
    format: AudioFormat,
    session_id: String,
    hash: [u8; 8],
    call: CallFacts,
    /// Wall-clock time at `created`, for the messages' timestamps.
    wall: SystemTime,
    created: Instant,
    /// When the current wait started (connect, session.start, session.end).
    step_started: Instant,
    legacy: bool,
    tx: VecDeque<Pending>,
    vad: CallerVad,
    /// 20 ms frames of speech in the current utterance.
    speech_frames: u32,
    /// The caller's audio goes to the agent.
    capturing: bool,
    started_at: Option<Instant>,
    response: Response,
    last_response_activity: Instant,
    /// Marks sent after bursts of agent audio and not yet answered.
    marks_out: u32,
    next_mark: u32,
    /// The call's format ↔ the wire's PCM16 8 kHz.
    bridge: Bridge,
    converted: Vec<u8>,
    /// One caller frame, decoded for the VAD (at the call's rate).
    pcm: [i16; 320],
    frames_sent: u64,
    frames_dropped: u64,
    foreign_frames: u64,
}

impl AspCore {
    /// A core for `call` (its format checked by the provider); `random` makes the
    /// session id.
    pub fn new(now: Instant, call: &CallFacts, random: [u8; 16]) -> AspCore {
        Self::with_clock(now, SystemTime::now(), call, random)
    }

    /// [`AspCore::new`] with the wall-clock time at `now` given (tests).
    pub fn with_clock(now: Instant, wall: SystemTime, call: &CallFacts, random: [u8; 16]) -> AspCore {
        let session_id = uuid4(random);
        let hash = session_hash(&session_id);
        AspCore {
            common: Common::new(),
            state: State::AwaitingCapabilities,
            format: call.format,
            session_id,
            hash,
            call: call.clone(),
            wall,
            created: now,
            step_started: now,
            legacy: false,
            tx: VecDeque::with_capacity(64),
            vad: CallerVad::with_hangover(SILENCE_THRESHOLD_MS / 20),
            speech_frames: 0,
            capturing: false,
            started_at: None,
            response: Response::BeforeGreeting,
            last_response_activity: now,
            marks_out: 0,
            next_mark: 1,
            bridge: Bridge::new(call.format, WIRE),
            converted: Vec::with_capacity(4096),
            pcm: [0; 320],
            frames_sent: 0,
            frames_dropped: 0,
            foreign_frames: 0,
        }
    }

    /// The session id sent in `session.start`.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The 8 hash bytes of every audio header.
    pub fn hash(&self) -> [u8; 8] {
        self.hash
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The peer sent no capabilities: a legacy peer.
    pub fn legacy(&self) -> bool {
        self.legacy
    }

    /// The caller's audio goes to the agent now.
    pub fn capturing(&self) -> bool {
        self.capturing
    }

    /// Caller frames sent to the agent, and dropped (before the session, or paused).
    pub fn frame_counts(&self) -> (u64, u64) {
        (self.frames_sent, self.frames_dropped)
    }

    fn timestamp(&self, now: Instant) -> String {
        iso_utc(self.wall + now.saturating_duration_since(self.created))
    }

    fn send_session_start(&mut self, now: Instant) {
        self.tx.push_back(Pending::SessionStart);
        self.state = State::AwaitingStarted;
        self.step_started = now;
    }

    /// End the session: `session.end`, then the close after `session.ended` (or at once
    /// when the session never started).
    fn end_session(&mut self, now: Instant, reason: &'static str, wait: bool) {
        match self.state {
            State::Ending | State::Closed => {}
            State::Streaming | State::AwaitingStarted => {
                self.tx.push_back(Pending::SessionEnd(reason));
                self.state = State::Ending;
                self.step_started = now;
                if !wait {
                    self.tx.push_back(Pending::Close);
                    self.state = State::Closed;
                }
            }
            State::AwaitingCapabilities => {
                self.tx.push_back(Pending::Close);
                self.state = State::Closed;
            }
        }
    }

    fn close_now(&mut self) {
        if self.state != State::Closed {
            self.tx.push_back(Pending::Close);
            self.state = State::Closed;
        }
    }

    fn fail_now(&mut self, now: Instant, code: FailureCode, detail: String) {
        if self.common.fail(code, detail) {
            self.end_session(now, "error", false);
        }
    }

    fn on_message(&mut self, now: Instant, m: Incoming) {
        if let Some(id) = &m.session_id {
            if id != &self.session_id && self.state != State::AwaitingCapabilities {
                tracing::debug!(kind = %m.kind, "ignoring an ASP message for another session");
                return;
            }
        }
        match m.kind.as_str() {
            "protocol.capabilities" => self.on_capabilities(now, &m),
            "session.started" => self.on_started(now, m),
            "response.start" => {
                if self.state != State::Streaming {
                    return;
                }
                let greeting = self.response == Response::BeforeGreeting;
                self.response = Response::Sending { greeting };
                self.last_response_activity = now;
                // Monitor mode: the agent drops the caller's audio while it answers.
                self.capturing = false;
                self.common.event(AgentEvent::ReplyStarted(ReplyFigures::default()));
                if let Some(text) = m.text.filter(|t| !t.trim().is_empty()) {
                    self.common.event(AgentEvent::Transcript {
                        role: Role::Agent,
                        text,
                        at: SystemTime::now(),
                    });
                }
            }
            "response.end" => {
                if let Response::Sending { greeting } = self.response {
                    self.response = Response::Sent { greeting };
                    if m.interrupted == Some(true) {
                        tracing::debug!("the agent reports its response interrupted");
                    }
                    self.check_drained();
                }
            }
            "call.action" => self.on_action(m),
            "session.ended" => {
                tracing::debug!("the agent ended the ASP session");
                // An answer to ours, or the agent ending the session: hang up after playback.
                if self.state == State::Ending || self.common.finish("the agent ended the session".into()) {
                    self.close_now();
                }
            }
            "session.updated" => tracing::debug!("ASP session updated"),
            "protocol.error" => {
                let e = m.error.unwrap_or_default();
                let detail = format!(
                    "the agent reported {} ({}): {}",
                    e.code.as_deref().unwrap_or("an error"),
                    e.category.as_deref().unwrap_or("no category"),
                    one_line(e.message.as_deref().unwrap_or("")),
                );
                if e.recoverable == Some(true) && self.state == State::Streaming {
                    tracing::warn!(%detail, "recoverable ASP protocol error");
                } else {
                    self.fail_now(now, FailureCode::BotError, detail);
                }
            }
            "error" => {
                let detail = format!(
                    "the agent reported {}: {}",
                    m.code.as_deref().unwrap_or("an error"),
                    one_line(m.message.as_deref().unwrap_or(""))
                );
                if self.state == State::Streaming {
                    // The legacy pipeline error: that turn got no answer; the session lives on.
                    tracing::warn!(%detail, "the agent could not answer a turn");
                } else {
                    self.fail_now(now, FailureCode::BotError, detail);
                }
            }
            other => self.common.unknown(now, other),
        }
    }

    fn on_capabilities(&mut self, now: Instant, m: &Incoming) {
        if self.state != State::AwaitingCapabilities {
            tracing::debug!("a second protocol.capabilities ignored");
            return;
        }
        let caps = m.capabilities.as_ref();
        let offers = |key: &str, want: Value| {
            caps.and_then(|c| c.get(key)).and_then(Value::as_array).is_none_or(|a| a.contains(&want))
        };
        if !offers("supported_encodings", Value::from("pcm_s16le"))
            || !offers("supported_sample_rates", Value::from(8000))
        {
            tracing::warn!("the agent does not list pcm_s16le at 8000 Hz; asking for it anyway");
        }
        tracing::debug!(version = m.version.as_deref().unwrap_or("?"), "ASP capabilities received");
        self.send_session_start(now);
    }

    fn on_started(&mut self, now: Instant, m: Incoming) {
        if self.state != State::AwaitingStarted {
            tracing::debug!("an unexpected session.started ignored");
            return;
        }
        match m.status.as_deref() {
            // A legacy peer answers without a status.
            None | Some("accepted") | Some("accepted_with_changes") => {
                if let Some(audio) = m.negotiated.as_ref().and_then(|n| n.get("audio")) {
                    let rate = audio.get("sample_rate").and_then(Value::as_u64);
                    let encoding = audio.get("encoding").and_then(Value::as_str);
                    if rate.is_some_and(|r| r != 8000) || encoding.is_some_and(|e| e != "pcm_s16le") {
                        tracing::warn!(
                            ?rate,
                            ?encoding,
                            "the agent negotiated other audio; it sends and reads 8000 Hz PCM16 regardless"
                        );
                    }
                }
                let changes = m.negotiated.as_ref().and_then(|n| n.get("adjustments")).map(Value::to_string);
                tracing::info!(
                    session_id = %self.session_id,
                    legacy = self.legacy,
                    adjustments = changes.as_deref().unwrap_or("[]"),
                    "ASP session accepted"
                );
                self.state = State::Streaming;
                self.started_at = Some(now);
                self.common.event(AgentEvent::SessionOpened { id: self.session_id.clone() });
            }
            Some(status) => {
                let why: Vec<String> = m
                    .errors
                    .unwrap_or_default()
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.code.as_deref().unwrap_or("?"),
                            one_line(e.message.as_deref().unwrap_or(""))
                        )
                    })
                    .collect();
                let detail = format!("the agent {} the session ({})", one_line(status), why.join("; "));
                if self.common.fail(FailureCode::SessionRejected, detail) {
                    self.close_now();
                }
            }
        }
    }

    fn on_action(&mut self, m: Incoming) {
        if self.state != State::Streaming {
            return;
        }
        match m.action.as_deref() {
            Some("hangup") => {
                let reason = m.reason.map(|r| one_line(&r)).unwrap_or_else(|| "the agent hung up".into());
                tracing::info!(%reason, "the agent hangs up (after its audio)");
                self.common.event(AgentEvent::HangUp { after_playback: true, reason });
            }
            Some("transfer") => match m.target.as_deref() {
                Some(target) if valid_transfer_target(target) => {
                    tracing::info!(%target, "the agent transfers the caller (after its audio)");
                    self.common.event(AgentEvent::Transfer { target: target.to_owned() });
                }
                other => tracing::warn!(
                    target = other.map(one_line).unwrap_or_default(),
                    "call.action transfer without a usable target: ignored"
                ),
            },
            other => {
                tracing::warn!(
                    action = other.map(one_line).unwrap_or_default(),
                    "unknown call.action ignored"
                )
            }
        }
    }

    /// The response's audio has played (or there is none left): the caller's audio goes
    /// to the agent again, with a fresh VAD.
    fn check_drained(&mut self) {
        if matches!(self.response, Response::Sent { .. }) && self.marks_out == 0 {
            self.response = Response::Idle;
            if !self.capturing {
                self.capturing = true;
                self.vad = CallerVad::with_hangover(SILENCE_THRESHOLD_MS / 20);
                self.speech_frames = 0;
            }
        }
    }

    fn playing_response(&self) -> bool {
        match self.response {
            Response::Sending { greeting } | Response::Sent { greeting } => !greeting,
            Response::BeforeGreeting | Response::Idle => false,
        }
    }

    fn on_caller_audio(&mut self, frame: AudioFrame) {
        if self.state != State::Streaming || frame.is_empty() {
            self.frames_dropped += 1;
            return;
        }
        // The VAD runs on every frame, captured or not (barge-in needs it).
        let n = frame.len() / self.format.bytes_per_sample();
        let n = n.min(self.pcm.len());
        for i in 0..n {
            self.pcm[i] = self.format.sample(frame.as_bytes(), i).unwrap_or(0);
        }
        let step = self.vad.push(&self.pcm[..n]);
        if step.started && self.playing_response() {
            tracing::debug!("caller speech over the agent's response: barge-in");
            self.common.event(AgentEvent::FlushPlayback);
            self.response = Response::Idle;
            self.capturing = true;
        }
        if self.capturing {
            self.frames_sent += 1;
            self.tx.push_back(Pending::Audio(frame));
        } else {
            self.frames_dropped += 1;
        }
        if self.vad.speaking() || step.ended {
            self.speech_frames += u32::from(step.loud);
        }
        if step.ended {
            let spoke_ms = self.speech_frames * 20;
            self.speech_frames = 0;
            if self.capturing && spoke_ms >= MIN_SPEECH_MS {
                tracing::debug!(spoke_ms, "caller's end of speech: audio.end");
                self.tx.push_back(Pending::AudioEnd);
            }
        }
    }

    fn write(&mut self, message: &Pending, out: &mut Vec<u8>, now_hint: Instant) -> Transmit {
        let written = match message {
            Pending::SessionStart => {
                let caller_name = self.call.caller_display.as_deref();
                let start = SessionStart {
                    kind: "session.start",
                    session_id: &self.session_id,
                    audio: AudioOut {
                        sample_rate: 8000,
                        encoding: "pcm_s16le",
                        channels: 1,
                        frame_duration_ms: 20,
                    },
                    vad: VadOut {
                        enabled: true,
                        silence_threshold_ms: SILENCE_THRESHOLD_MS,
                        min_speech_ms: MIN_SPEECH_MS,
                        threshold: 0.5,
                        ring_buffer_frames: 5,
                        speech_ratio: 0.4,
                        prefix_padding_ms: 300,
                    },
                    timestamp: &self.timestamp(now_hint),
                    call_id: &self.call.call_id,
                    metadata: Metadata {
                        source: "voice-ua",
                        caller: super::twilio::caller_number(&self.call.caller_uri),
                        caller_uri: &self.call.caller_uri,
                        caller_name,
                        callee: &self.call.callee,
                        extension: &self.call.extension,
                    },
                };
                serde_json::to_writer(&mut *out, &start)
            }
            Pending::Audio(frame) => {
                out.push(AUDIO_MAGIC);
                out.push(DIRECTION_INBOUND);
                out.extend_from_slice(&self.hash);
                out.extend_from_slice(&[0, 0]);
                self.bridge.to_wire(frame.as_bytes(), out);
                return Transmit::Binary;
            }
            Pending::AudioEnd => {
                serde_json::to_writer(&mut *out, &Plain { kind: "audio.end", session_id: &self.session_id })
            }
            Pending::SessionEnd(reason) => {
                let end = SessionEnd {
                    kind: "session.end",
                    session_id: &self.session_id,
                    timestamp: &self.timestamp(now_hint),
                    reason,
                };
                serde_json::to_writer(&mut *out, &end)
            }
            Pending::Close => return Transmit::Close,
        };
        if let Err(e) = written {
            tracing::warn!(%e, "could not write an ASP message");
        }
        Transmit::Text
    }
}

impl DialectCore for AspCore {
    fn handle_connected(&mut self, now: Instant) {
        self.step_started = now;
    }

    fn handle_text(&mut self, now: Instant, text: &str) {
        // While ending, only `session.ended` matters.
        if self.common.ended() && self.state != State::Ending {
            return;
        }
        match serde_json::from_str::<Incoming>(text) {
            Ok(m) => {
                self.common.parsed();
                self.on_message(now, m);
            }
            Err(e) if self.state == State::AwaitingCapabilities => {
                // The media server's rule: a first frame that is not ASP means a legacy peer.
                tracing::info!(%e, "the agent's first message is not ASP: treating it as a legacy peer");
                self.legacy = true;
                self.send_session_start(now);
            }
            Err(e) => self.common.malformed(&e),
        }
        if self.common.ended() && self.state != State::Closed {
            self.end_session(now, "error", false);
        }
    }

    fn handle_binary(&mut self, now: Instant, bytes: &[u8]) {
        if self.state != State::Streaming || self.common.ended() {
            return;
        }
        let Some((header, pcm)) = bytes.split_at_checked(HEADER_LEN) else {
            self.common.unknown(now, "(binary frame shorter than the 12-byte header)");
            return;
        };
        if header[0] != AUDIO_MAGIC || header[1] != DIRECTION_OUTBOUND {
            self.common.unknown(now, "(binary frame without the outbound audio header)");
            return;
        }
        if header[2..10] != self.hash {
            self.foreign_frames += 1;
            self.common.unknown(now, "(audio for another session)");
            return;
        }
        if pcm.len() < 2 {
            return;
        }
        if !matches!(self.response, Response::Sending { .. }) {
            // Audio outside response.start/end (the escalation path): play it all the same.
            self.response = Response::Sending { greeting: false };
        }
        self.last_response_activity = now;
        self.converted.clear();
        self.bridge.from_wire(pcm, &mut self.converted);
        for frame in AudioFrame::chunks(&self.converted, self.format.frame_bytes()) {
            self.common.event(AgentEvent::Audio(frame));
        }
        // A mark after each burst: when it is answered, this much has played.
        let id = self.next_mark;
        self.next_mark = self.next_mark.wrapping_add(1).max(1);
        self.marks_out += 1;
        self.common.event(AgentEvent::Mark(id));
    }

    fn handle_input(&mut self, now: Instant, input: CallInput) {
        match input {
            CallInput::Audio(frame) => self.on_caller_audio(frame),
            CallInput::Digit(digit) => tracing::debug!(%digit, "ASP carries no DTMF: ignored"),
            CallInput::MarkPlayed { .. } => {
                self.marks_out = self.marks_out.saturating_sub(1);
                self.check_drained();
            }
            CallInput::PlaybackFlushed { .. } => {}
            CallInput::TransferResult(outcome) => {
                // ASP has no message for it; after a failed transfer the caller talks on.
                tracing::info!(%outcome, "transfer result (ASP has no message for it)");
            }
            CallInput::CallEnded => {
                if self.common.call_ended() {
                    tracing::debug!(sent = self.frames_sent, dropped = self.frames_dropped, "ASP call ended");
                }
                self.end_session(now, "hangup", true);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitingCapabilities if now >= self.step_started + CAPABILITIES_TIMEOUT => {
                tracing::info!("no protocol.capabilities within 5 s: a legacy peer, sending session.start");
                self.legacy = true;
                self.send_session_start(now);
            }
            State::AwaitingStarted if now >= self.step_started + SESSION_START_TIMEOUT => {
                self.fail_now(
                    now,
                    FailureCode::HandshakeTimeout,
                    format!(
                        "the agent did not answer session.start within {} s",
                        SESSION_START_TIMEOUT.as_secs()
                    ),
                );
            }
            State::Streaming => {
                if self.response == Response::BeforeGreeting
                    && self.started_at.is_some_and(|t| now >= t + GREETING_WAIT)
                {
                    tracing::info!("no greeting from the agent: the caller's audio starts");
                    self.response = Response::Idle;
                    self.capturing = true;
                }
                if matches!(self.response, Response::Sending { .. })
                    && now >= self.last_response_activity + RESPONSE_IDLE
                {
                    tracing::warn!("the agent's response went quiet without response.end: listening again");
                    self.response = match self.response {
                        Response::Sending { greeting } => Response::Sent { greeting },
                        other => other,
                    };
                    self.marks_out = 0;
                    self.check_drained();
                }
            }
            State::Ending if now >= self.step_started + SESSION_END_WAIT => self.close_now(),
            _ => {}
        }
    }

    fn handle_closed(&mut self, _now: Instant, closed: Closed) {
        if self.state == State::Ending {
            // Closed while ending: that is the end either way.
            self.common.call_ended();
        } else {
            let before = match self.state {
                State::AwaitingCapabilities | State::AwaitingStarted => " during the handshake",
                _ => "",
            };
            match closed {
                Closed::Frame { code: super::session::NORMAL_CLOSE, .. } if !before.is_empty() => {
                    self.common.fail(
                        FailureCode::ClosedAbnormally,
                        format!("the agent closed the WebSocket{before}"),
                    );
                }
                other => self.common.closed(other),
            }
        }
        self.tx.clear();
        self.state = State::Closed;
        self.tx.push_back(Pending::Close);
    }

    fn fail(&mut self, code: FailureCode, detail: String) {
        let now = self.step_started.max(self.created);
        self.fail_now(now, code, detail);
    }

    fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<Transmit> {
        let message = self.tx.pop_front()?;
        out.clear();
        let now = self.step_started;
        Some(self.write(&message, out, now))
    }

    fn poll_event(&mut self) -> Option<AgentEvent> {
        self.common.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingCapabilities => Some(self.step_started + CAPABILITIES_TIMEOUT),
            State::AwaitingStarted => Some(self.step_started + SESSION_START_TIMEOUT),
            State::Streaming => {
                let greeting = (self.response == Response::BeforeGreeting)
                    .then_some(self.started_at)
                    .flatten()
                    .map(|t| t + GREETING_WAIT);
                let idle = matches!(self.response, Response::Sending { .. })
                    .then_some(self.last_response_activity + RESPONSE_IDLE);
                match (greeting, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Ending => Some(self.step_started + SESSION_END_WAIT),
            State::Closed => None,
        }
    }
}

/// The first 8 bytes of MD5(session_id): every audio header's hash.
pub fn session_hash(session_id: &str) -> [u8; 8] {
    use md5::{Digest, Md5};
    let digest = Md5::digest(session_id.as_bytes());
    let mut hash = [0u8; 8];
    hash.copy_from_slice(&digest[..8]);
    hash
}

/// A version-4 UUID string from 16 random bytes.
pub fn uuid4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the timestamps ASP writes.
pub fn iso_utc(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

fn one_line(s: &str) -> String {
    crate::tools::http::one_line(s, 200)
}

// ------------------------------------------------------------------ wire types

#[derive(Serialize)]
struct SessionStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    session_id: &'a str,
    audio: AudioOut,
    vad: VadOut,
    timestamp: &'a str,
    call_id: &'a str,
    metadata: Metadata<'a>,
}

#[derive(Serialize)]
struct AudioOut {
    sample_rate: u32,
    encoding: &'static str,
    channels: u32,
    frame_duration_ms: u32,
}

#[derive(Serialize)]
struct VadOut {
    enabled: bool,
    silence_threshold_ms: u32,
    min_speech_ms: u32,
    threshold: f32,
    ring_buffer_frames: u32,
    speech_ratio: f32,
    prefix_padding_ms: u32,
}

#[derive(Serialize)]
struct Metadata<'a> {
    source: &'static str,
    caller: &'a str,
    caller_uri: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_name: Option<&'a str>,
    callee: &'a str,
    extension: &'a str,
}

#[derive(Serialize)]
struct Plain<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    session_id: &'a str,
}

#[derive(Serialize)]
struct SessionEnd<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    session_id: &'a str,
    timestamp: &'a str,
    reason: &'a str,
}

/// Any control message from the agent: every field the code sends, all optional.
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    capabilities: Option<Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    negotiated: Option<Value>,
    #[serde(default)]
    errors: Option<Vec<ErrorBody>>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    interrupted: Option<bool>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    recoverable: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_md5_of_the_session_id() {
        // The example the agent's own traffic showed.
        let hash = session_hash("3a950ec2-59f2-4686-8734-7b70f484da8f");
        assert_eq!(hash, [0x65, 0x7a, 0x14, 0xdc, 0xcd, 0x45, 0xd9, 0xb7]);
    }

    #[test]
    fn uuids_and_timestamps() {
        let id = uuid4([0xab; 16]);
        assert_eq!(id, "abababab-abab-4bab-abab-abababababab");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_770_336_000_123);
        assert_eq!(iso_utc(t), "2026-02-06T00:00:00.123Z");
        assert_eq!(iso_utc(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
