//! The Deepgram session state machine, sans-IO: WebSocket frames and call inputs in, with
//! the time injected; frames to send, seam events and tool calls out. No socket, no clock,
//! no task: the shell in `connection.rs` moves bytes, and tests drive it in virtual time.
//!
//! ```text
//! AwaitingWelcome --Welcome/send Settings--> AwaitingSettingsApplied --SettingsApplied--> Streaming
//!        \___________________ Error, close, timeout, call ended ___________________/--> Ended
//! ```
//!
//! Rules it enforces (reference §2, §6, §7):
//! - `Settings` is sent exactly once, after `Welcome`; caller audio is passed on only in
//!   `Streaming` (earlier frames are dropped and counted; the call is barely a second old).
//! - Everything the client sends, JSON and caller audio alike, leaves through one queue
//!   ([`DeepgramSession::poll_output`]) in the order it was decided.
//! - Audio normally flows every 20 ms, so `KeepAlive` is sent only when nothing has been
//!   sent for [`KEEPALIVE_AFTER`] (the call stopped feeding frames, or a tool is running
//!   and the call is stalled): never alongside audio.
//! - `UserStartedSpeaking` → [`AgentEvent::FlushPlayback`] at once. `AgentAudioDone` is
//!   only logged: after a barge-in it may never come, so no state waits for it.
//! - `Error` → `Ended(Failed)` with the code and description on one line — or, mid-call
//!   and when a new session may fare better, a reconnect (as when the socket drops):
//!   the caller on hold, new sessions with the conversation (`reconnect`).
//! - Before the 2 h cap, [`Output::Renew`] at a quiet moment (or forced), the conversation
//!   carried over; the history and the timer are [`crate::renewal`]'s.
//!
//! **Turn latency.** `AgentStartedSpeaking`'s figures go to the call as
//! [`AgentEvent::ReplyStarted`]; the call measures the turn itself, from the caller's end
//! of speech (its own speech detector) to the reply's first RTP packet, and logs both.
//! This session keeps a provider-side figure for tests and debug logs: the user's
//! `ConversationText` (Deepgram's end of turn) → the first agent audio frame.

mod filler;
mod keypad;
mod reconnect;
mod renewal;

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

pub use self::renewal::{
    HISTORY_MAX_CHARS, HISTORY_MAX_LINES, RENEW_AFTER, RENEW_FORCE_AFTER, RENEW_QUIET, RENEW_RETRY,
};
use super::messages::{ClientMessage, ConversationRole, FunctionCallResponse, ServerMessage, Settings};
use crate::keypad::Keypad;
use crate::provider::{AgentEvent, AudioFormat, AudioFrame, ReplyFigures, Role, SessionEnd};
use crate::renewal::{History, Moment, RenewalTimer};
use crate::tools::Fillers;
use crate::{AgentError, ProviderCode};

/// Send a `KeepAlive` when no frame has gone out for this long (Deepgram: "every 8 s";
/// its timeout is undocumented, so stay well inside it).
pub const KEEPALIVE_AFTER: Duration = Duration::from_secs(5);
/// How long `Welcome` and then `SettingsApplied` may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Client-side function calls run at once; more are answered with an error at once.
pub const MAX_PENDING_TOOLS: usize = 8;

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "deepgram";

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected; waiting for `Welcome`.
    AwaitingWelcome,
    /// `Settings` sent; waiting for `SettingsApplied`.
    AwaitingSettingsApplied,
    /// Audio flows both ways.
    Streaming,
    /// Over; nothing more is sent.
    Ended,
}

/// A client-side function the agent asked for.
pub use crate::tools::ToolCall;

/// What the shell must do: a caller frame goes as a binary frame, by value (it is `Copy`,
/// a fixed array). `Renew`: open a fresh session with
/// [`DeepgramSession::renewal_settings`]; on failure, call
/// [`DeepgramSession::renew_failed`].
pub type Output = crate::ws::Output<AudioFrame>;

/// One finished turn's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnLatency {
    /// User's `ConversationText` → first agent audio frame, as seen by voice-ua.
    pub bridge: Duration,
    /// Deepgram's `total_latency`, when it sent one.
    pub total: Option<Duration>,
}

/// The sans-IO Deepgram session.
#[derive(Debug)]
pub struct DeepgramSession {
    state: State,
    format: AudioFormat,
    settings: Option<Settings>,
    request_id: Option<String>,
    out: VecDeque<Output>,
    /// When the last frame was sent (or the session started).
    last_sent: Instant,
    /// When the current handshake step started.
    step_started: Instant,
    /// User's text arrived and no agent audio yet: the turn's start.
    turn_start: Option<Instant>,
    /// Deepgram's figures for the current reply.
    agent_figures: Option<(Option<f64>, Option<f64>, Option<f64>)>,
    turns: u32,
    last_turn: Option<TurnLatency>,
    pending_tools: HashSet<String>,
    cancelled_tools: HashSet<String>,
    audio_frames_sent: u64,
    audio_frames_dropped: u64,
    /// The conversation so far, for a renewal (bounded).
    history: History,
    /// When to ask for a renewal ([`Output::Renew`]).
    renewal: RenewalTimer,
    last_agent_audio: Option<Instant>,
    /// Between `UserStartedSpeaking` and the user's `ConversationText`.
    user_speaking: bool,
    /// Opening the session again when its socket drops mid-call.
    reconnect: crate::reconnect::Reconnecting,
    /// What the caller hears while a slow function runs (`session/filler.rs`).
    fillers: Fillers,
    /// Digits typed and the end-of-turn key (`session/keypad.rs`).
    keypad: Keypad,
    /// The listener is Flux (`ForceEndTurn` works).
    flux: bool,
}

impl DeepgramSession {
    /// A session for a call in `format`, that will send `settings` after `Welcome`.
    /// When `settings` carry `agent.context` (a renewal), the session's history starts
    /// with it, so the next renewal carries it on.
    pub fn new(now: Instant, format: AudioFormat, settings: Settings) -> Self {
        DeepgramSession {
            state: State::AwaitingWelcome,
            format,
            request_id: None,
            out: VecDeque::new(),
            last_sent: now,
            step_started: now,
            turn_start: None,
            agent_figures: None,
            turns: 0,
            last_turn: None,
            pending_tools: HashSet::new(),
            cancelled_tools: HashSet::new(),
            audio_frames_sent: 0,
            audio_frames_dropped: 0,
            history: renewal::carried(settings.agent.context.as_ref()),
            renewal: RenewalTimer::new(renewal::POLICY),
            fillers: Fillers::default(),
            keypad: Keypad::default(),
            flux: settings.agent.listen.provider.is_flux(),
            settings: Some(settings),
            last_agent_audio: None,
            user_speaking: false,
            reconnect: crate::reconnect::Reconnecting::default(),
        }
    }

    /// The conversation so far, oldest first (at most [`HISTORY_MAX_LINES`] lines and
    /// [`HISTORY_MAX_CHARS`] characters).
    pub fn history(&self) -> impl Iterator<Item = (Role, &str)> {
        self.history.iter()
    }

    /// `base` (this call's Settings) for a session that continues this one: the history
    /// as `agent.context.messages`, and no greeting. Once the new session is streaming,
    /// hand it this one with [`DeepgramSession::continue_from`].
    pub fn renewal_settings(&mut self, mut base: Settings) -> Settings {
        base.agent.greeting = None;
        base.agent.context = Some(renewal::context(&mut self.history));
        base
    }

    /// Switch-over: this session (opened with `previous`'s
    /// [`DeepgramSession::renewal_settings`]) takes on the lines `previous` heard after
    /// those settings were taken, while this one was being opened, so that its history
    /// (and the next renewal's context) is the whole conversation.
    pub fn continue_from(&mut self, previous: &DeepgramSession) {
        for (role, text) in previous.history.since_mark() {
            self.history.remember(role, text);
        }
    }

    /// The renewal asked for with [`Output::Renew`] could not be opened: keep this
    /// session and try again after [`RENEW_RETRY`].
    pub fn renew_failed(&mut self, now: Instant) {
        self.renewal.failed(now);
    }

    /// Ask for a renewal when one is due and the moment is quiet (or it is forced).
    fn check_renew(&mut self, now: Instant) {
        if self.state != State::Streaming {
            return;
        }
        let busy = !self.pending_tools.is_empty() || self.user_speaking;
        if let Some(moment) = self.renewal.check(now, busy, self.last_agent_audio) {
            tracing::info!(
                lines = self.history.len(),
                quiet = moment == Moment::Quiet,
                "renewing the Deepgram session before its 2 h cap"
            );
            self.out.push_back(Output::Renew);
        }
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Deepgram's `request_id` from `Welcome`.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The latest finished turn's latency.
    pub fn last_turn_latency(&self) -> Option<TurnLatency> {
        self.last_turn
    }

    /// Caller frames sent / dropped before `SettingsApplied`.
    pub fn audio_counts(&self) -> (u64, u64) {
        (self.audio_frames_sent, self.audio_frames_dropped)
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`DeepgramSession::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(t) = self.reconnect_timeout() {
            return Some(t);
        }
        match self.state {
            State::AwaitingWelcome | State::AwaitingSettingsApplied => {
                Some(self.step_started + HANDSHAKE_TIMEOUT)
            }
            State::Streaming => {
                let keepalive = self.last_sent + KEEPALIVE_AFTER;
                let next = self.renewal.next_check().map_or(keepalive, |t| t.min(keepalive));
                let turns = [self.fillers.poll_timeout(), self.keypad.poll_timeout()];
                Some(turns.into_iter().flatten().fold(next, Instant::min))
            }
            State::Ended => None,
        }
    }

    /// Time has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reconnect_on_timeout(now) {
            return;
        }
        match self.state {
            State::AwaitingWelcome if now >= self.step_started + HANDSHAKE_TIMEOUT => {
                self.fail(
                    "no Welcome from Deepgram within 10 s of connecting: check the network path to Deepgram"
                        .into(),
                );
            }
            State::AwaitingSettingsApplied if now >= self.step_started + HANDSHAKE_TIMEOUT => {
                self.fail("Deepgram did not confirm the Settings (no SettingsApplied within 10 s)".into());
            }
            State::Streaming => {
                self.fillers.handle_timeout(now);
                self.drain_fillers(now);
                self.keypad_timeout(now);
                if now >= self.last_sent + KEEPALIVE_AFTER {
                    tracing::debug!("no audio to send: KeepAlive");
                    self.send(now, &ClientMessage::KeepAlive);
                }
                self.check_renew(now);
            }
            _ => {}
        }
    }

    /// 20 ms of caller audio. Once streaming it is queued as [`Output::SendAudio`], behind
    /// whatever was queued before it; before `SettingsApplied` (and when empty) it is
    /// dropped and counted; after the end it is ignored.
    pub fn handle_call_audio(&mut self, now: Instant, frame: &AudioFrame) {
        if self.state != State::Streaming || frame.is_empty() || self.reconnecting() {
            if self.state != State::Ended {
                self.audio_frames_dropped += 1;
            }
            return;
        }
        self.audio_frames_sent += 1;
        self.last_sent = now;
        self.out.push_back(Output::SendAudio(*frame));
    }

    /// A text frame from Deepgram.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        if self.state == State::Ended || self.reconnecting() {
            return;
        }
        let message = match ServerMessage::parse(text) {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, "ignoring a Deepgram message voice-ua cannot read");
                return;
            }
        };
        match message {
            ServerMessage::Welcome { request_id } => self.on_welcome(now, request_id),
            ServerMessage::SettingsApplied => {
                if self.state == State::AwaitingSettingsApplied {
                    tracing::info!("Deepgram settings applied: streaming");
                    self.state = State::Streaming;
                    self.renewal.start(now);
                } else {
                    tracing::warn!(state = ?self.state, "unexpected SettingsApplied");
                }
            }
            ServerMessage::UserStartedSpeaking => {
                tracing::debug!("caller started speaking: flushing agent playback");
                self.user_speaking = true;
                self.event(AgentEvent::FlushPlayback);
                self.agent_figures = None;
            }
            ServerMessage::ConversationText { role, content } => {
                let role = match role {
                    ConversationRole::User => {
                        self.user_speaking = false;
                        self.turn_start = Some(now);
                        self.agent_figures = None;
                        Role::User
                    }
                    ConversationRole::Assistant => Role::Agent,
                    ConversationRole::Other => return,
                };
                self.history.remember(role, &content);
                self.event(AgentEvent::Transcript { role, text: content, at: SystemTime::now() });
            }
            ServerMessage::AgentThinking { .. } => tracing::debug!("agent thinking"),
            ServerMessage::FunctionCallRequest { functions } => {
                for call in functions {
                    if !call.client_side {
                        tracing::debug!(name = %call.name, "server-side function: Deepgram runs it");
                        continue;
                    }
                    if self.pending_tools.contains(&call.id) {
                        tracing::debug!(id = %call.id, "a function call already running: not run twice");
                        continue;
                    }
                    if self.pending_tools.len() >= MAX_PENDING_TOOLS {
                        tracing::warn!(id = %call.id, "too many function calls at once: refused");
                        let content = format!(
                            "error: too many function calls at once ({MAX_PENDING_TOOLS} are running); \
                             wait for their results, then call again"
                        );
                        let response = FunctionCallResponse { id: Some(call.id), name: call.name, content };
                        self.send(now, &ClientMessage::FunctionCallResponse(response));
                        continue;
                    }
                    tracing::info!(id = %call.id, name = %call.name, "agent calls a function");
                    self.pending_tools.insert(call.id.clone());
                    self.fillers.started(now, &call.id, &call.name);
                    self.drain_fillers(now);
                    self.out.push_back(Output::RunTool(ToolCall {
                        id: call.id,
                        name: call.name,
                        arguments: call.arguments,
                    }));
                }
            }
            ServerMessage::FunctionCallCancelled { functions } => {
                for call in functions {
                    if self.pending_tools.remove(&call.id) {
                        self.fillers.finished(&call.id);
                        self.drain_fillers(now);
                        tracing::info!(id = %call.id, name = %call.name, "function call cancelled");
                        self.cancelled_tools.insert(call.id);
                    }
                }
            }
            ServerMessage::AgentStartedSpeaking { total_latency, tts_latency, ttt_latency } => {
                self.agent_figures = Some((total_latency, tts_latency, ttt_latency));
                let d = |s: Option<f64>| s.and_then(|s| Duration::try_from_secs_f64(s).ok());
                self.event(AgentEvent::ReplyStarted(ReplyFigures {
                    total: d(total_latency),
                    think: d(ttt_latency),
                    speak: d(tts_latency),
                    ..ReplyFigures::default()
                }));
            }
            ServerMessage::AgentAudioDone => tracing::debug!("agent audio done (sent, not played)"),
            ServerMessage::LatencyReport { stt_latency, ttt_latency, tts_latency, total_latency } => {
                tracing::debug!(
                    ?stt_latency,
                    ?ttt_latency,
                    ?tts_latency,
                    ?total_latency,
                    "Deepgram latency report"
                );
            }
            ServerMessage::Warning { code, description } if code == "MAXIMUM_SESSION_LENGTH_APPROACHING" => {
                tracing::info!(%description, "Deepgram: the session nears its 2 h cap");
                self.renewal.warned(now);
                self.check_renew(now);
            }
            ServerMessage::Warning { code, description } => {
                tracing::warn!(%code, %description, "Deepgram warning");
            }
            ServerMessage::Error { code, description } => {
                self.lost(now, format!("Deepgram error {code}: {description}"), Some(&code));
            }
            ServerMessage::InjectionRefused { message } => self.injection_refused(now, &message),
            ServerMessage::Unknown { type_name, .. } => {
                tracing::debug!(%type_name, "ignoring a Deepgram message type voice-ua does not know");
            }
            // History and the like carry what was said: only when that may be logged.
            other if crate::privacy::log_text() => tracing::trace!(message = ?other, "Deepgram message"),
            _ => tracing::trace!("Deepgram message (not logged: it may carry conversation text)"),
        }
    }

    /// A binary frame (agent audio) from Deepgram.
    pub fn handle_binary(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Ended || bytes.is_empty() || self.reconnecting() {
            return;
        }
        self.last_agent_audio = Some(now);
        if let Some(start) = self.turn_start.take() {
            self.turns += 1;
            let bridge = now.saturating_duration_since(start);
            let figures = self.agent_figures.take();
            let total = figures.and_then(|f| f.0).and_then(|s| Duration::try_from_secs_f64(s).ok());
            self.last_turn = Some(TurnLatency { bridge, total });
            let ms = |s: Option<f64>| s.map(|s| (s * 1000.0).round() as u64);
            // The call logs the turn at info, from the caller's end of speech.
            tracing::debug!(
                turn = self.turns,
                latency_ms = bridge.as_millis() as u64,
                dg_total_ms = ms(figures.and_then(|f| f.0)),
                dg_tts_ms = ms(figures.and_then(|f| f.1)),
                dg_ttt_ms = ms(figures.and_then(|f| f.2)),
                "turn latency: caller's transcript → first agent audio"
            );
        }
        // 20 ms chunks (whole samples for linear16), queued for the call's pacer.
        for frame in AudioFrame::chunks(bytes, self.format.frame_bytes()) {
            self.out.push_back(Output::Event(AgentEvent::Audio(frame)));
        }
    }

    /// A function finished. Cancelled or unknown ids are dropped.
    pub fn handle_tool_result(&mut self, now: Instant, id: String, name: String, content: String) {
        if self.tool_result_stale(&id, &name) {
            return;
        }
        if self.cancelled_tools.remove(&id) || !self.pending_tools.remove(&id) {
            tracing::debug!(%id, %name, "dropping the result of a cancelled or unknown function call");
            return;
        }
        if self.state == State::Ended {
            return;
        }
        self.fillers.finished(&id);
        let response = FunctionCallResponse { id: Some(id), name, content };
        self.send(now, &ClientMessage::FunctionCallResponse(response));
        self.drain_fillers(now);
    }

    /// Send any other client message (e.g. `InjectAgentMessage`) once streaming.
    pub fn send_message(&mut self, now: Instant, message: &ClientMessage) -> bool {
        if self.state != State::Streaming || self.reconnecting() {
            return false;
        }
        self.send(now, message);
        true
    }

    /// The WebSocket closed or broke; `why` describes it for the log line.
    pub fn handle_closed(&mut self, now: Instant, why: &str) {
        if self.state == State::Ended || self.reconnecting() {
            return;
        }
        match self.state {
            State::Streaming => self.lost(now, format!("Deepgram closed the session mid-call ({why})"), None),
            _ => self.fail(format!("Deepgram closed the connection during setup ({why})")),
        }
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

    /// End the session as failed: one line, then close.
    pub fn fail(&mut self, detail: String) {
        self.fail_with_code(detail, None);
    }

    /// [`fail`](Self::fail), with Deepgram's own code for the error when it gave one.
    fn fail_with_code(&mut self, detail: String, code: Option<ProviderCode>) {
        if self.state == State::Ended {
            return;
        }
        tracing::warn!(%detail, "Deepgram session failed");
        self.stop_fillers();
        self.state = State::Ended;
        let error = AgentError::Provider { provider: PROVIDER.into(), detail, code };
        self.out.push_back(Output::Event(AgentEvent::Ended(SessionEnd::Failed(error))));
        self.out.push_back(Output::Close);
    }

    fn on_welcome(&mut self, now: Instant, request_id: String) {
        if self.state != State::AwaitingWelcome {
            tracing::warn!("second Welcome from Deepgram ignored");
            return;
        }
        tracing::info!(%request_id, "Deepgram session open");
        self.event(AgentEvent::SessionOpened { id: request_id.clone() });
        self.request_id = Some(request_id);
        let Some(settings) = self.settings.take() else { return };
        self.send(now, &ClientMessage::Settings(Box::new(settings)));
        self.state = State::AwaitingSettingsApplied;
        self.step_started = now;
    }

    fn send(&mut self, now: Instant, message: &ClientMessage) {
        self.last_sent = now;
        self.out.push_back(Output::SendText(message.to_json()));
    }

    fn event(&mut self, event: AgentEvent) {
        self.out.push_back(Output::Event(event));
    }
}
