//! The crate's one error type. Each message says what failed and what to do about it.

use crate::provider::AudioFormat;

/// Everything that can go wrong between a call and its agent.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentError {
    /// A linear16 rate whose 20 ms frame does not fit an [`crate::AudioFrame`].
    #[error("audio format {format} is not supported by the agent bridge: offer PCMU, PCMA or linear16 at 8000-16000 Hz (a multiple of 50 Hz)")]
    UnsupportedFormat {
        /// The format asked for.
        format: AudioFormat,
    },
    /// Audio handed over in one piece larger than a frame can hold.
    #[error("audio chunk of {len} bytes exceeds the {max}-byte frame limit: split it (AudioFrame::chunks)")]
    FrameTooLarge {
        /// Bytes offered.
        len: usize,
        /// The limit, [`crate::provider::MAX_FRAME_BYTES`].
        max: usize,
    },
    /// A character that is not a DTMF key.
    #[error("{digit:?} is not a DTMF digit: use 0-9, *, #, A-D")]
    InvalidDigit {
        /// The character offered.
        digit: char,
    },
    /// The call → agent channel was full, so a control message could not be queued.
    #[error(
        "agent input queue is full ({capacity} items), so the {what} was dropped: the agent task is stalled"
    )]
    InputFull {
        /// What was dropped: "digit" or "call-ended notice".
        what: &'static str,
        /// The channel's capacity.
        capacity: usize,
    },
    /// The other end of the session is gone.
    #[error("agent session is closed ({side} side gone): end the call or open a new session")]
    Closed {
        /// Which side went away: "agent" or "call".
        side: &'static str,
    },
    /// The agent task stopped without saying why (it returned or panicked).
    #[error("agent {provider} stopped without an end event: see the log lines before this one")]
    AgentStopped {
        /// The provider's name.
        provider: String,
    },
    /// A provider could not start or keep its agent (connect, auth, protocol).
    #[error("agent {provider} failed: {detail}")]
    Provider {
        /// The provider's name.
        provider: String,
        /// One line: what failed and what to do.
        detail: String,
    },
}
