//! How a call ended: the one vocabulary the call record, the `outcome` metric label
//! and the call's summary log line all take.

use serde::{Serialize, Serializer};
use std::fmt;

/// How a call ended (or that it has not yet). [`as_str`](CallOutcome::as_str) is the
/// word stored in the records database, shown by `voice-ua calls` and used as the
/// `outcome` label of `voice_ua_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// Answered and still going: what [`RecordWriter::started`](crate::RecordWriter::started) writes.
    InProgress,
    /// Was in progress when voice-ua stopped without finishing the record (crash,
    /// power cut, kill -9); set when the database is next opened for writing.
    Interrupted,
    CallerHangup,
    AgentHangup,
    Transferred,
    /// Refused (or hung up at the ACK) with 488: no G.711 in the offer or answer.
    NoCodec,
    /// No RTP for the configured media timeout.
    MediaTimeout,
    /// The session timer expired, or our refresh was refused.
    SessionExpired,
    /// The caller gave up while it rang.
    CallerCancel,
    /// voice-ua was stopping.
    Shutdown,
    Failed,
    /// INVITEs the SIP layer refused before they became calls.
    Refused403,
    Refused486,
    Refused422,
    RefusedUnavailable,
}

impl CallOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [CallOutcome; 15] = [
        CallOutcome::InProgress,
        CallOutcome::Interrupted,
        CallOutcome::CallerHangup,
        CallOutcome::AgentHangup,
        CallOutcome::Transferred,
        CallOutcome::NoCodec,
        CallOutcome::MediaTimeout,
        CallOutcome::SessionExpired,
        CallOutcome::CallerCancel,
        CallOutcome::Shutdown,
        CallOutcome::Failed,
        CallOutcome::Refused403,
        CallOutcome::Refused486,
        CallOutcome::Refused422,
        CallOutcome::RefusedUnavailable,
    ];

    /// The outcome's word, e.g. `caller_hangup`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::InProgress => "in_progress",
            CallOutcome::Interrupted => "interrupted",
            CallOutcome::CallerHangup => "caller_hangup",
            CallOutcome::AgentHangup => "agent_hangup",
            CallOutcome::Transferred => "transferred",
            CallOutcome::NoCodec => "no_codec_488",
            CallOutcome::MediaTimeout => "media_timeout",
            CallOutcome::SessionExpired => "session_expired",
            CallOutcome::CallerCancel => "caller_cancel",
            CallOutcome::Shutdown => "shutdown",
            CallOutcome::Failed => "failed",
            CallOutcome::Refused403 => "refused_403",
            CallOutcome::Refused486 => "refused_486",
            CallOutcome::Refused422 => "refused_422",
            CallOutcome::RefusedUnavailable => "refused_unavailable",
        }
    }

    /// The outcome whose word is `s`, if any.
    pub fn parse(s: &str) -> Option<CallOutcome> {
        CallOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether a call can end with it: false for [`InProgress`](Self::InProgress) and
    /// [`Interrupted`](Self::Interrupted), which only the records use.
    pub const fn is_end(self) -> bool {
        !matches!(self, CallOutcome::InProgress | CallOutcome::Interrupted)
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CallOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_to_its_outcome() {
        for o in CallOutcome::ALL {
            assert_eq!(CallOutcome::parse(o.as_str()), Some(o));
            assert_eq!(o.to_string(), o.as_str());
        }
        let mut words: Vec<_> = CallOutcome::ALL.iter().map(|o| o.as_str()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), CallOutcome::ALL.len(), "each word is used once");
        assert_eq!(CallOutcome::parse("no_codec"), None);
        assert_eq!(CallOutcome::parse("Caller_Hangup"), None);
    }

    #[test]
    fn today_s_words_are_kept() {
        assert_eq!(CallOutcome::NoCodec.as_str(), "no_codec_488");
        assert_eq!(CallOutcome::RefusedUnavailable.as_str(), "refused_unavailable");
        assert_eq!(
            serde_json::to_string(&CallOutcome::CallerHangup).ok().as_deref(),
            Some("\"caller_hangup\"")
        );
        let ends: Vec<_> = CallOutcome::ALL.into_iter().filter(|o| o.is_end()).collect();
        assert_eq!(ends.len(), 13);
        assert!(!ends.contains(&CallOutcome::InProgress) && !ends.contains(&CallOutcome::Interrupted));
    }
}
