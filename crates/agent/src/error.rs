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
        /// The provider's own code for the error, when it gave one (Deepgram's
        /// `Error.code`, e.g. `CLIENT_MESSAGE_TIMEOUT`).
        code: Option<ProviderCode>,
    },
}

impl AgentError {
    /// The variant as a short word (`provider`, `closed`, ...): a bounded metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            AgentError::UnsupportedFormat { .. } => "unsupported_format",
            AgentError::FrameTooLarge { .. } => "frame_too_large",
            AgentError::InvalidDigit { .. } => "invalid_digit",
            AgentError::InputFull { .. } => "input_full",
            AgentError::Closed { .. } => "closed",
            AgentError::AgentStopped { .. } => "agent_stopped",
            AgentError::Provider { .. } => "provider",
        }
    }

    /// The provider's own error code, when it gave a well-formed one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AgentError::Provider { code, .. } => code.as_ref().map(ProviderCode::as_str),
            _ => None,
        }
    }
}

/// A provider's error code, checked to be a bounded word: 3 to 48 characters of
/// `A-Z`, `0-9` and `_` (safe as a metric label and in a log line).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderCode(String);

impl ProviderCode {
    /// The code, or None when `code` is not such a word.
    pub fn new(code: &str) -> Option<ProviderCode> {
        let word = code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        (word && (3..=48).contains(&code.len())).then(|| ProviderCode(code.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProviderCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_code_is_a_bounded_upper_case_word() {
        assert_eq!(
            ProviderCode::new("CLIENT_MESSAGE_TIMEOUT").map(|c| c.to_string()).as_deref(),
            Some("CLIENT_MESSAGE_TIMEOUT")
        );
        assert!(ProviderCode::new("E42").is_some());
        assert!(ProviderCode::new(&"A".repeat(48)).is_some());
        for bad in
            ["", "AB", "lower_case", "SPACE IN", "DASH-ED", "ÜMLAUT", "NEW\nLINE", "A".repeat(49).as_str()]
        {
            assert_eq!(ProviderCode::new(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn kind_and_code_name_the_variant_and_the_provider_s_code() {
        let e = AgentError::Provider {
            provider: "deepgram".into(),
            detail: "Deepgram error CLIENT_MESSAGE_TIMEOUT: We waited too long".into(),
            code: ProviderCode::new("CLIENT_MESSAGE_TIMEOUT"),
        };
        assert_eq!((e.kind(), e.code()), ("provider", Some("CLIENT_MESSAGE_TIMEOUT")));
        let e = AgentError::Provider {
            provider: "deepgram".into(),
            detail: "error FAKE_CODE".into(),
            code: None,
        };
        assert_eq!(e.code(), None, "the text is never parsed for a code");
        let e = AgentError::Closed { side: "agent" };
        assert_eq!((e.kind(), e.code()), ("closed", None));
    }
}
