//! No dead air while the pipeline's functions run: the shared
//! [`Fillers`](crate::tools::Fillers) timer, driven by the caller's frames (one every
//! 20 ms, so the threshold is kept to a frame). A phrase is spoken by the reply's TTS
//! worker as a sentence of its own, marked as a filler: it plays and is heard, but it is
//! never part of the history (the LLM did not say it) nor of the transcript; the tone is
//! [`AgentEvent::Hold`].

use std::time::Instant;

use super::{Output, PipelineCore, Spoken};
use crate::provider::{AgentEvent, HoldReason};
use crate::tools::FillerAction;

impl PipelineCore {
    /// Whether the caller is hearing the tool hold tone.
    pub fn tool_hold(&self) -> bool {
        self.fillers.holding()
    }

    /// Act on what the fillers decided.
    pub(super) fn drain_fillers(&mut self) {
        while let Some(action) = self.fillers.poll_action() {
            match action {
                FillerAction::Say(text) => self.speak_filler(text),
                FillerAction::Hold(on) => self.event(AgentEvent::Hold { reason: HoldReason::Tool, on }),
            }
        }
    }

    /// The fillers' threshold, checked with each caller frame.
    pub(super) fn filler_tick(&mut self, now: Instant) {
        if self.fillers.waiting() {
            self.fillers.handle_timeout(now);
            self.drain_fillers();
        }
    }

    /// The session ends: the hold with it (a phrase is no longer said).
    pub(super) fn stop_fillers(&mut self) {
        self.fillers.stop();
        while let Some(action) = self.fillers.poll_action() {
            if let FillerAction::Hold(on) = action {
                self.event(AgentEvent::Hold { reason: HoldReason::Tool, on });
            }
        }
    }

    fn speak_filler(&mut self, text: String) {
        let Some(reply) = self.reply.as_mut() else { return };
        if reply.interrupted || text.trim().is_empty() {
            return;
        }
        tracing::debug!("a function is slow: the agent says its filler phrase");
        let seq = reply.spoken.len() as u32;
        reply.spoken.push(Spoken { text: text.clone(), start: None, end: None, filler: true });
        let turn = reply.turn;
        self.outputs.push_back(Output::Speak { turn, seq, text });
    }
}
