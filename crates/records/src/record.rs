//! One call's record: plain data, filled in by the call task and written by the
//! [`RecordWriter`](crate::RecordWriter).

use crate::time::{self, ser};
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
    /// The call's WAV file, when recorded (cleared when retention deletes the file).
    pub recording: Option<PathBuf>,
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
            recording: None,
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
}
