//! One call's record: plain data, filled in by the call task and written by the
//! [`RecordWriter`](crate::RecordWriter).

use crate::time::{self, ser};
use crate::turn::{median_latency_ms, TurnFigures};
use crate::CallOutcome;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Everything kept about one call. Times are stored with millisecond precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CallRecord {
    /// Our record id, unique per call: see [`CallRecord::new_id`].
    pub id: String,
    pub sip_call_id: String,
    /// The caller's number (user part of From), e.g. `1001`.
    pub caller: String,
    /// The caller's display name, when the PBX sent one.
    pub caller_display: Option<String>,
    /// Who was called (user part of To or the Request-URI), e.g. `9000`.
    pub callee: String,
    /// When the INVITE arrived.
    #[serde(serialize_with = "ser::time")]
    pub started: SystemTime,
    /// When the call was answered (200 OK sent).
    #[serde(serialize_with = "ser::opt_time")]
    pub answered: Option<SystemTime>,
    #[serde(serialize_with = "ser::opt_time")]
    pub ended: Option<SystemTime>,
    /// `PCMU`, `PCMA`, …; `None` when no codec was agreed.
    pub codec: Option<String>,
    /// How the call ended; stored as its word ([`CallOutcome::as_str`]).
    pub outcome: CallOutcome,
    /// One human line: why the call ended.
    pub end_reason: String,
    /// `caller`, `agent`, `voice-ua`, … (free text).
    pub hung_up_by: String,
    pub media: MediaStats,
    /// The agent provider's name, e.g. `deepgram` or `echo`.
    pub agent: Option<String>,
    /// The provider's id for the session, e.g. Deepgram's `request_id`.
    pub agent_session_id: Option<String>,
    /// In the order they were made.
    pub tool_calls: Vec<ToolCall>,
    /// Where the call was transferred to, if it was.
    pub transfer_target: Option<String>,
    /// In the order they were said.
    pub transcript: Vec<TranscriptLine>,
    /// Each turn's latency and the agent's stages, in order; at most
    /// [`MAX_TURNS`](crate::MAX_TURNS).
    pub turns: Vec<TurnFigures>,
    /// Turns the call had past [`MAX_TURNS`](crate::MAX_TURNS): counted, not kept.
    pub turns_dropped: u64,
    /// The call's WAV file, when recorded (cleared when retention deletes the file).
    pub recording: Option<PathBuf>,
    /// The agent's tokens and cost estimate, summed over the call; `None` when the agent
    /// reported none (Deepgram, echo) or the call never reached an agent.
    pub usage: Option<AgentUsage>,
}

/// The call's RTP figures, as in the call's summary log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MediaStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub lost: u64,
    pub late: u64,
    pub concealed: u64,
    pub jitter_ms: f64,
}

/// What the agent used over the call, as its provider reported it. Cached input
/// tokens are a part of the input tokens, not more of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AgentUsage {
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
    /// The cost estimate at the configured prices, in millionths of a US dollar; `0`
    /// when no prices are configured.
    pub cost_micro_usd: u64,
}

impl AgentUsage {
    /// Every figure is zero: the agent reported nothing.
    pub fn is_empty(&self) -> bool {
        *self == AgentUsage::default()
    }

    /// Input and output tokens of every kind (cached ones are already among the input).
    pub fn total_tokens(&self) -> u64 {
        [self.input_audio_tokens, self.input_text_tokens, self.output_audio_tokens, self.output_text_tokens]
            .into_iter()
            .fold(0, u64::saturating_add)
    }

    /// The cost for people, e.g. `$0.0123`; `None` when it is zero (no prices configured).
    pub fn cost(&self) -> Option<String> {
        (self.cost_micro_usd > 0).then(|| usd(self.cost_micro_usd))
    }
}

/// Millionths of a US dollar as dollars to the hundredth of a cent, rounded half up:
/// `12_345` is `$0.0123`, `1_500_000` is `$1.5000`; an amount under `$0.00005` that is
/// not zero is `<$0.0001` rather than a misleading `$0.0000`.
pub fn usd(micro: u64) -> String {
    let units = micro / 100 + u64::from(micro % 100 >= 50);
    if units == 0 && micro > 0 {
        return "<$0.0001".into();
    }
    format!("${}.{:04}", units / 10_000, units % 10_000)
}

/// One function the agent called.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    #[serde(serialize_with = "ser::time")]
    pub at: SystemTime,
    pub name: String,
    /// What the tool answered, or the error text.
    pub result: String,
}

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptLine {
    #[serde(serialize_with = "ser::time")]
    pub at: SystemTime,
    /// `user` (the caller) or `agent`.
    pub role: String,
    pub text: String,
}

impl CallRecord {
    /// A record for a call that just arrived: outcome [`CallOutcome::InProgress`],
    /// everything else empty.
    pub fn new(
        id: impl Into<String>,
        sip_call_id: impl Into<String>,
        caller: impl Into<String>,
        callee: impl Into<String>,
        started: SystemTime,
    ) -> Self {
        CallRecord {
            id: id.into(),
            sip_call_id: sip_call_id.into(),
            caller: caller.into(),
            caller_display: None,
            callee: callee.into(),
            started,
            answered: None,
            ended: None,
            codec: None,
            outcome: CallOutcome::InProgress,
            end_reason: String::new(),
            hung_up_by: String::new(),
            media: MediaStats::default(),
            agent: None,
            agent_session_id: None,
            tool_calls: Vec::new(),
            transfer_target: None,
            transcript: Vec::new(),
            turns: Vec::new(),
            turns_dropped: 0,
            recording: None,
            usage: None,
        }
    }

    /// A new record id: the start time in UTC and 32 random bits,
    /// e.g. `20250301T140509Z-9f86d081`. Sortable by time, and safe as a file name
    /// (the recording is `<id>.wav`).
    pub fn new_id(started: SystemTime) -> String {
        let mut r = [0u8; 4];
        if getrandom::getrandom(&mut r).is_err() {
            // No entropy source: fall back to the sub-second clock; still unique per
            // millisecond, which is finer than calls arrive.
            r = (time::to_ms(started) as u32).to_be_bytes();
        }
        format!("{}-{:08x}", time::compact(started), u32::from_be_bytes(r))
    }

    /// From the INVITE to the end, when the call has ended.
    pub fn duration(&self) -> Option<Duration> {
        self.ended?.duration_since(self.started).ok()
    }

    /// From the answer to the end, when the call was answered and has ended.
    pub fn talk_time(&self) -> Option<Duration> {
        self.ended?.duration_since(self.answered?).ok()
    }

    /// The median latency of the turns kept (the lower of the middle two for an even
    /// count), in milliseconds; `None` when the call had no turn.
    pub fn median_turn_latency_ms(&self) -> Option<u64> {
        median_latency_ms(&self.turns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_read_as_dollars_to_the_hundredth_of_a_cent() {
        assert_eq!(usd(0), "$0.0000");
        assert_eq!(usd(12_300), "$0.0123");
        assert_eq!(usd(12_349), "$0.0123");
        assert_eq!(usd(12_350), "$0.0124", "half up");
        assert_eq!(usd(1_500_000), "$1.5000");
        assert_eq!(usd(123_456_789), "$123.4568");
        assert_eq!(usd(49), "<$0.0001", "not zero, so not $0.0000");
        assert_eq!(usd(50), "$0.0001");
        assert_eq!(usd(u64::MAX), "$18446744073709.5516");
    }

    #[test]
    fn usage_totals_and_cost() {
        let u = AgentUsage {
            input_audio_tokens: 1000,
            input_text_tokens: 200,
            cached_input_tokens: 900,
            output_audio_tokens: 300,
            output_text_tokens: 40,
            cost_micro_usd: 12_300,
        };
        assert_eq!(u.total_tokens(), 1540, "cached tokens are among the input ones");
        assert_eq!(u.cost().as_deref(), Some("$0.0123"));
        assert!(!u.is_empty());
        let unpriced = AgentUsage { cost_micro_usd: 0, ..u };
        assert_eq!(unpriced.cost(), None, "no prices configured: no cost to show");
        assert!(AgentUsage::default().is_empty());
    }
}
