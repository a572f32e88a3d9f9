//! The agent provider seam: how one call talks to one AI voice agent, whoever runs it.
//!
//! A call opens a session with [`AgentProvider::open`], passing its [`CallFacts`] (ids,
//! parties and the call's [`AudioFormat`]). The [`AgentSession`] it gets back is the
//! call's whole view of the agent:
//!
//! - **call → agent** ([`CallInput`]): one [`AudioFrame`] of 20 ms in the call's format
//!   every 20 ms, continuous (the call sends silence or concealment during RTP gaps, so
//!   frame count is the agent's clock), DTMF [`Digit`]s as they are pressed, one
//!   [`CallInput::TransferResult`] per transfer it asked for, and [`CallInput::CallEnded`] once.
//! - **agent → call** ([`AgentEvent`]): agent audio in the call's format in chunks of at
//!   most [`MAX_FRAME_BYTES`] (faster than real time is fine: the call's pacer queues
//!   it), [`AgentEvent::FlushPlayback`] (barge-in: drop queued agent audio now),
//!   [`AgentEvent::HangUp`], [`AgentEvent::Transfer`], [`AgentEvent::SendDigits`],
//!   [`AgentEvent::Transcript`], [`AgentEvent::ReplyStarted`], [`AgentEvent::Usage`],
//!   [`AgentEvent::Hold`] and [`AgentEvent::Reconnected`] around a reconnect, and at most
//!   one [`AgentEvent::Ended`], last.
//! - **playback, back to the agent**: an [`AgentEvent::Mark`] in the audio is answered
//!   with [`CallInput::MarkPlayed`] when the caller has heard the audio before it (Twilio's
//!   `mark`); an [`AgentEvent::FlushPlayback`] is answered with
//!   [`CallInput::PlaybackFlushed`], how much agent audio the caller had heard (OpenAI's
//!   `conversation.item.truncate`), and with `MarkPlayed { cleared: true }` for each
//!   mark the flush dropped.
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
    /// The extension voice-ua is registered as (`9000`): which line answered.
    pub extension: String,
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
    /// What became of the last [`AgentEvent::Transfer`] (one per transfer).
    TransferResult(TransferOutcome),
    /// The caller has heard the agent's audio up to this [`AgentEvent::Mark`]
    /// (`cleared: false`), or a flush dropped the audio before it (`cleared: true`).
    /// Every mark is answered once, in the order they were sent.
    MarkPlayed {
        /// The mark's id, as the agent sent it.
        id: u32,
        /// The mark was reached by a flush, not by playing the audio before it.
        cleared: bool,
    },
    /// The answer to an [`AgentEvent::FlushPlayback`]: how much of the agent's audio the
    /// caller had heard when it was flushed, in 8 kHz samples counted from the session's
    /// first agent audio (8 samples are 1 ms). A provider that knows where each reply
    /// began in that count knows how much of the reply was heard (OpenAI's truncate).
    PlaybackFlushed {
        /// Agent audio samples sent to the caller in this session, up to the flush.
        played_samples: u64,
    },
    /// The call is over; the agent should stop.
    CallEnded,
}

/// How a blind transfer went, as the call saw it in SIP: the REFER's response, then the
/// NOTIFYs that report the new call's progress (RFC 3515).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The PBX took the REFER (202) and has not reported the end yet: the caller is being
    /// connected.
    Accepted,
    /// The PBX reported the transfer done (NOTIFY `200`): the caller has left this call.
    Completed,
    /// The PBX refused the REFER with this status.
    Refused {
        /// The REFER's final status.
        status: u16,
    },
    /// The PBX took the REFER but the transfer target failed (NOTIFY with this status:
    /// busy, no answer, unavailable).
    Failed {
        /// The status the NOTIFY carried.
        status: u16,
    },
    /// The REFER got no answer (timeout or transport error).
    NoAnswer,
    /// Another transfer is still under way; this one was not started.
    AlreadyInProgress,
}

impl TransferOutcome {
    /// The outcome as one word, for metrics, the call record and the bots that are told:
    /// `accepted`, `completed`, `refused`, `failed`, `no_answer`, `busy` (another
    /// transfer is under way).
    pub const fn word(self) -> &'static str {
        match self {
            TransferOutcome::Accepted => "accepted",
            TransferOutcome::Completed => "completed",
            TransferOutcome::Refused { .. } => "refused",
            TransferOutcome::Failed { .. } => "failed",
            TransferOutcome::NoAnswer => "no_answer",
            TransferOutcome::AlreadyInProgress => "busy",
        }
    }

    /// The caller has been (or is being) handed over.
    pub fn succeeded(self) -> bool {
        matches!(self, TransferOutcome::Accepted | TransferOutcome::Completed)
    }
}

impl std::fmt::Display for TransferOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferOutcome::Accepted => f.write_str("accepted by the PBX; the caller is being connected"),
            TransferOutcome::Completed => f.write_str("completed; the caller has been connected"),
            TransferOutcome::Refused { status } => write!(f, "refused by the PBX (SIP {status})"),
            TransferOutcome::Failed { status } => {
                let why = match status {
                    486 | 600 => "the line is busy",
                    408 | 480 | 487 => "nobody answered",
                    404 | 484 | 604 => "the number does not exist",
                    403 | 603 => "the call was declined",
                    _ => "the transfer target could not be reached",
                };
                write!(f, "failed: {why} (SIP {status})")
            }
            TransferOutcome::NoAnswer => f.write_str("failed: the PBX did not answer the transfer request"),
            TransferOutcome::AlreadyInProgress => f.write_str("not started: another transfer is under way"),
        }
    }
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
    /// Transfer the caller (blind transfer, SIP REFER) to this extension or URI. The call
    /// answers with exactly one [`CallInput::TransferResult`].
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
    /// A function the agent called ran inside the provider (an HTTP tool): its name and
    /// whether it worked. Built-ins the call carries out are not reported this way.
    ToolFinished {
        /// The function's configured name, or `unknown` for one that is not configured.
        name: String,
        /// It answered; false when it failed (the agent was told why).
        ok: bool,
    },
    /// The agent's own id for this conversation (Deepgram's `request_id`), for the call
    /// record.
    SessionOpened {
        /// The id.
        id: String,
    },
    /// The agent starts a reply, with its own latency figures when it gave them (logged
    /// beside the turn latency the call measures).
    ReplyStarted(ReplyFigures),
    /// A point in the agent's audio: the call answers [`CallInput::MarkPlayed`] with this
    /// id once the audio sent before it has played (or was flushed).
    Mark(u32),
    /// What a reply (or a transcription) used, as the provider bills it; the call adds
    /// these up for the record.
    Usage(Usage),
    /// The agent is busy with something the caller cannot hear (a slow tool, a
    /// reconnect): from `on: true` to `on: false` for the same reason, the call plays its
    /// hold tone whenever no agent audio is queued, so the line is never dead air.
    Hold {
        /// What the caller is waiting for.
        reason: HoldReason,
        /// Start (true) or end (false) of the wait.
        on: bool,
    },
    /// A reconnect is over (the connection to the agent dropped mid-call and was opened
    /// again, between a `Hold { Reconnect, on: true }` and its `on: false`): `ok`, the
    /// call goes on with a new session and the conversation so far; not `ok`, an
    /// `Ended(Failed)` follows. For the metrics and the record.
    Reconnected {
        /// It worked.
        ok: bool,
        /// Connection attempts made.
        attempts: u32,
        /// From the drop to the new session streaming (or to giving up).
        after: std::time::Duration,
    },
    /// The session is over; nothing follows.
    Ended(SessionEnd),
}

/// What a caller on hold ([`AgentEvent::Hold`]) is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldReason {
    /// A function the agent called runs longer than its filler threshold.
    Tool,
    /// The agent's connection dropped and is being opened again.
    Reconnect,
}

impl HoldReason {
    /// The reason as one word, for logs and metrics: `tool`, `reconnect`.
    pub const fn word(self) -> &'static str {
        match self {
            HoldReason::Tool => "tool",
            HoldReason::Reconnect => "reconnect",
        }
    }

    /// A bit of its own, for a set of reasons.
    pub const fn bit(self) -> u8 {
        match self {
            HoldReason::Tool => 1,
            HoldReason::Reconnect => 2,
        }
    }
}

/// An agent's own account of a reply's latency (Deepgram's `AgentStartedSpeaking`, the
/// pipeline's stages). A turn runs: end of the caller's speech → end of turn decided
/// (`endpointing`) → transcript back (`transcribe`) → the LLM's first token (`think`) →
/// the first synthesized audio (`speak`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyFigures {
    /// From the caller's end of speech to the reply's first audio, as the agent counts it.
    pub total: Option<std::time::Duration>,
    /// From the caller's last speech to the end of the turn being decided (the silence
    /// the endpointer waited for, or less when a DTMF key ended the turn).
    pub endpointing: Option<std::time::Duration>,
    /// Speech to text: from the utterance sent to its transcript back.
    pub transcribe: Option<std::time::Duration>,
    /// Time to the LLM's answer (text): to its first token, where it streams.
    pub think: Option<std::time::Duration>,
    /// Time to the first synthesized audio: from the text sent to TTS to its first byte.
    pub speak: Option<std::time::Duration>,
}

/// Tokens an agent used, and what they cost at the configured prices. Each event carries
/// one reply's (or one transcription's) figures; the call sums them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Input tokens that were audio (the caller's speech, and the conversation re-read).
    pub input_audio_tokens: u64,
    /// Input tokens that were text (instructions, tools, transcripts, tool results).
    pub input_text_tokens: u64,
    /// Input tokens served from the provider's cache (a subset of the two above).
    pub cached_input_tokens: u64,
    /// Output tokens that were audio (the agent's speech).
    pub output_audio_tokens: u64,
    /// Output tokens that were text (transcripts of its speech, function arguments).
    pub output_text_tokens: u64,
    /// The estimate at the configured prices, in millionths of a US dollar.
    pub cost_micro_usd: u64,
}

impl Usage {
    /// Both added together, saturating.
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            input_audio_tokens: self.input_audio_tokens.saturating_add(other.input_audio_tokens),
            input_text_tokens: self.input_text_tokens.saturating_add(other.input_text_tokens),
            cached_input_tokens: self.cached_input_tokens.saturating_add(other.cached_input_tokens),
            output_audio_tokens: self.output_audio_tokens.saturating_add(other.output_audio_tokens),
            output_text_tokens: self.output_text_tokens.saturating_add(other.output_text_tokens),
            cost_micro_usd: self.cost_micro_usd.saturating_add(other.cost_micro_usd),
        }
    }
}

/// Something that can be an agent for a call: Deepgram, the echo test, a test double.
#[async_trait::async_trait]
pub trait AgentProvider: Send + Sync {
    /// A short name for logs and errors ("echo", "deepgram").
    fn name(&self) -> &str;

    /// Start an agent for this call. Call it inside the call's tracing span.
    async fn open(&self, call: CallFacts) -> Result<AgentSession, AgentError>;
}
