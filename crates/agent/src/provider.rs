//! The agent provider seam: how one call talks to one AI voice agent, whoever runs it.
//!
//! A call opens a session with [`AgentProvider::open`], passing its [`CallFacts`] (ids,
//! parties and the call's [`AudioFormat`]). The [`AgentSession`] it gets back is the
//! call's whole view of the agent:
//!
//! - **call → agent** ([`CallInput`]): one [`AudioFrame`] of 20 ms in the call's format
//!   every 20 ms, continuous (the call sends silence or concealment during RTP gaps, so
//!   frame count is the agent's clock), DTMF [`Digit`]s as they are pressed, and
//!   [`CallInput::CallEnded`] once.
//! - **agent → call** ([`AgentEvent`]): agent audio in the call's format in chunks of at
//!   most [`MAX_FRAME_BYTES`] (faster than real time is fine: the call's pacer queues
//!   it), [`AgentEvent::FlushPlayback`] (barge-in: drop queued agent audio now),
//!   [`AgentEvent::HangUp`], [`AgentEvent::Transfer`], [`AgentEvent::SendDigits`],
//!   [`AgentEvent::Transcript`], and at most one [`AgentEvent::Ended`], last.
//!
//! # Contract
//!
//! - **Ordering.** Each direction is one FIFO channel: inputs reach the agent in the order
//!   the call sent them (a digit stays between the frames it was pressed between), and
//!   events reach the call in the order the agent sent them. A `FlushPlayback` applies to
//!   all audio sent before it and none sent after it.
//! - **The call never waits.** [`AgentSession::send_audio`] and
//!   [`AgentSession::send_digit`] use `try_send` and return at once; the call's audio
//!   loop reads events with [`AgentSession::try_event`] once per tick.
//! - **Slow agent: oldest audio goes first.** The input channel holds
//!   [`INPUT_CAPACITY`] items (1 s of audio). When the agent falls behind by more than
//!   [`INPUT_STALE_FRAMES`] (200 ms), [`AgentIo::recv`] skips the oldest audio frames
//!   until it is within that bound again; if the agent stops reading altogether and the
//!   channel fills, new frames are dropped at the call side. Both count in
//!   [`SessionStats::input_frames_dropped`]. Digits and `CallEnded` are never skipped;
//!   a digit that meets a full channel is an [`AgentError::InputFull`] for the call to log.
//! - **The agent may wait.** [`AgentIo::send`] awaits room in the [`EVENT_CAPACITY`]-event
//!   channel, so a fast agent is slowed down by the call rather than dropping audio.
//! - **Ending.** The session ends when the agent sends `Ended` (its reason is one log
//!   line), when the call sends `CallEnded` ([`AgentSession::finish`] does so and waits a
//!   grace period), or when the call drops the session, which aborts the agent task. If the
//!   agent task stops without `Ended`, the session reports
//!   [`AgentError::AgentStopped`] once.
//! - **No per-frame allocation.** Frames and audio chunks are fixed-size `Copy` values
//!   moved through preallocated bounded channels; only rare events (transcripts, hang-up
//!   reasons) carry `String`s.
//! - **Logging.** The caller opens the session inside the call's tracing span; the agent
//!   task is spawned in that span, so providers just use `tracing` macros.

mod format;
mod session;

use std::time::SystemTime;

pub use format::{AudioFormat, AudioFrame, Digit, MAX_FRAME_BYTES};
pub use session::{AgentIo, AgentSession, SessionStats, EVENT_CAPACITY, INPUT_CAPACITY, INPUT_STALE_FRAMES};

use crate::AgentError;

/// What a provider learns about the call it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// The SIP Call-ID (for logs and the agent's own records).
    pub call_id: String,
    /// The caller's display name, when the From header had one.
    pub caller_display: Option<String>,
    /// The caller's URI (`sip:2001@pbx`).
    pub caller_uri: String,
    /// Who was called: the dialled extension or the To URI.
    pub callee: String,
    /// The audio format of frames in both directions.
    pub format: AudioFormat,
}

/// Call → agent.
// Frames travel by value in preallocated channel slots: no heap, so the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallInput {
    /// 20 ms of the caller's audio in the call's format.
    Audio(AudioFrame),
    /// A DTMF key the caller pressed.
    Digit(Digit),
    /// The call is over; the agent should stop.
    CallEnded,
}

/// Who said something, in a [`AgentEvent::Transcript`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The caller.
    User,
    /// The agent.
    Agent,
}

/// Why a session ended: one line for the call's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The call sent `CallEnded` or closed its side.
    #[error("call ended")]
    CallEnded,
    /// The agent finished the conversation on its own.
    #[error("agent finished: {reason}")]
    AgentFinished {
        /// The agent's reason.
        reason: String,
    },
    /// The agent failed.
    #[error(transparent)]
    Failed(AgentError),
}

/// Agent → call.
// Audio travels by value in preallocated channel slots: no heap, so the size is the point.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// Agent audio in the call's format, at most [`MAX_FRAME_BYTES`] per chunk.
    Audio(AudioFrame),
    /// Barge-in: drop all agent audio queued for playback now.
    FlushPlayback,
    /// End the call, at once or once queued agent audio has played.
    HangUp {
        /// Wait for queued agent audio to play out first.
        after_playback: bool,
        /// Why, for the log.
        reason: String,
    },
    /// Transfer the caller (blind transfer, SIP REFER) to this extension or URI.
    Transfer {
        /// Extension number or SIP URI.
        target: String,
    },
    /// Send these DTMF digits to the far end (RFC 4733).
    SendDigits(String),
    /// A piece of the conversation as text.
    Transcript {
        /// Who spoke.
        role: Role,
        /// What was said.
        text: String,
        /// When the provider learnt it.
        at: SystemTime,
    },
    /// The session is over; nothing follows.
    Ended(SessionEnd),
}

/// Something that can be an agent for a call: Deepgram, the echo test, a test double.
#[async_trait::async_trait]
pub trait AgentProvider: Send + Sync {
    /// A short name for logs and errors ("echo", "deepgram").
    fn name(&self) -> &str;

    /// Start an agent for this call. Call it inside the call's tracing span.
    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError>;
}
