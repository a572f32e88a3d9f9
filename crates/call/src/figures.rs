//! The record's figures the call collects as it goes (the conversation, the tools the
//! agent used, the agent's session id, where the caller was sent), with wall-clock
//! times derived from the core's `now` (the core reads no clock).

use std::time::{Instant, SystemTime};
use voice_ua_agent::{Role, Usage};
use voice_ua_records::{AgentUsage, ToolCall, TranscriptLine};

/// Maps the core's monotonic `now` to wall-clock time for the record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    at: Instant,
    wall: SystemTime,
}

impl WallClock {
    pub(crate) fn new(at: Instant, wall: SystemTime) -> WallClock {
        WallClock { at, wall }
    }

    pub(crate) fn wall(&self, now: Instant) -> SystemTime {
        self.wall + now.saturating_duration_since(self.at)
    }

    pub(crate) fn start(&self) -> Instant {
        self.at
    }
}

#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub(crate) transcript: Vec<TranscriptLine>,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) agent_session_id: Option<String>,
    /// Where the caller was last transferred to.
    pub(crate) transfer_target: Option<String>,
    /// What the agent used, summed over its replies.
    pub(crate) usage: Usage,
}

impl Figures {
    pub(crate) fn said(&mut self, at: SystemTime, role: Role, text: String) {
        let role = if role == Role::User { "user" } else { "agent" };
        self.transcript.push(TranscriptLine { at, role: role.into(), text });
    }

    pub(crate) fn tool(&mut self, at: SystemTime, name: &str, result: &str) {
        self.tool_calls.push(ToolCall { at, name: name.to_string(), result: result.to_string() });
    }

    /// The agent's usage for the record: `None` when it reported nothing (every figure 0).
    pub(crate) fn usage(&self) -> Option<AgentUsage> {
        let u = self.usage;
        let usage = AgentUsage {
            input_audio_tokens: u.input_audio_tokens,
            input_text_tokens: u.input_text_tokens,
            cached_input_tokens: u.cached_input_tokens,
            output_audio_tokens: u.output_audio_tokens,
            output_text_tokens: u.output_text_tokens,
            cost_micro_usd: u.cost_micro_usd,
        };
        (!usage.is_empty()).then_some(usage)
    }
}
