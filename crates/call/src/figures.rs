//! The record's figures the call collects as it goes (the conversation, the tools the
//! agent used, the agent's session id, where the caller was sent, each turn's latency
//! and the agent's stages), with wall-clock times derived from the core's `now` (the
//! core reads no clock).

use std::time::{Duration, Instant, SystemTime};
use voice_ua_agent::{ReplyFigures, Role, Usage};
use voice_ua_records::{AgentUsage, ToolCall, TranscriptLine, TurnFigures, MAX_TURNS};

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
    /// The turns so far, at most [`MAX_TURNS`].
    pub(crate) turns: Vec<TurnFigures>,
    /// Turns past [`MAX_TURNS`]: counted, not kept.
    pub(crate) turns_dropped: u64,
    /// Times the agent's connection dropped mid-call and was opened again.
    pub(crate) agent_reconnects: u32,
}

impl Figures {
    pub(crate) fn said(&mut self, at: SystemTime, role: Role, text: String) {
        let role = if role == Role::User { "user" } else { "agent" };
        self.transcript.push(TranscriptLine { at, role: role.into(), text });
    }

    pub(crate) fn tool(&mut self, at: SystemTime, name: &str, result: &str) {
        self.tool_calls.push(ToolCall { at, name: name.to_string(), result: result.to_string() });
    }

    /// A turn ended at `at` (the reply's first packet) after `latency`, with the agent's
    /// own figures: kept for the record while there is room, else counted.
    pub(crate) fn turn(&mut self, at: SystemTime, latency: Duration, f: &ReplyFigures) -> TurnFigures {
        let count = (self.turns.len() as u64).saturating_add(self.turns_dropped);
        let turn = TurnFigures {
            index: u32::try_from(count).unwrap_or(u32::MAX),
            at,
            latency_ms: ms(latency),
            endpointing_ms: f.endpointing.map(ms),
            transcribe_ms: f.transcribe.map(ms),
            think_ms: f.think.map(ms),
            speak_ms: f.speak.map(ms),
            agent_total_ms: f.total.map(ms),
        };
        if self.turns.len() < MAX_TURNS {
            self.turns.push(turn);
        } else {
            self.turns_dropped = self.turns_dropped.saturating_add(1);
        }
        turn
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

/// Whole milliseconds, saturating: the record's precision.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_past_the_bound_are_counted_not_kept_and_numbered_on() {
        let mut f = Figures::default();
        let t0 = SystemTime::UNIX_EPOCH;
        let reply = ReplyFigures {
            endpointing: Some(Duration::from_micros(600_900)),
            think: Some(Duration::from_millis(70)),
            ..ReplyFigures::default()
        };
        for i in 0..MAX_TURNS + 3 {
            let t = f.turn(t0 + Duration::from_secs(i as u64), Duration::from_millis(800 + i as u64), &reply);
            assert_eq!(t.index as usize, i, "every turn is numbered, kept or not");
        }
        assert_eq!(f.turns.len(), MAX_TURNS);
        assert_eq!(f.turns_dropped, 3);
        let last = f.turns[MAX_TURNS - 1];
        assert_eq!((last.index as usize, last.latency_ms), (MAX_TURNS - 1, 800 + MAX_TURNS as u64 - 1));
        let first = f.turns[0];
        assert_eq!(first.at, t0);
        assert_eq!(first.endpointing_ms, Some(600), "whole milliseconds");
        assert_eq!(
            (first.think_ms, first.transcribe_ms, first.speak_ms, first.agent_total_ms),
            (Some(70), None, None, None)
        );
    }
}
