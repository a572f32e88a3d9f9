//! No dead air while a function runs, for the Deepgram session: the shared
//! [`Fillers`](crate::tools::Fillers) timer, its phrase said with `InjectAgentMessage`
//! and behaviour `queue` (reference §4.1: spoken after the current turn), its tone as
//! [`AgentEvent::Hold`]; an `InjectionRefused` of our phrase falls back to the tone.

use std::time::Instant;

use super::DeepgramSession;
use crate::deepgram::messages::ClientMessage;
use crate::provider::{AgentEvent, HoldReason};
use crate::tools::{FillerAction, Fillers, FunctionSpec};

impl DeepgramSession {
    /// The fillers of these functions (what the caller hears while a slow one runs).
    pub fn with_functions(mut self, functions: &[FunctionSpec]) -> Self {
        self.fillers = Fillers::new(functions, true);
        self
    }

    /// Whether the caller is hearing the tool hold tone.
    pub fn tool_hold(&self) -> bool {
        self.fillers.holding()
    }

    /// Deepgram refused an injected message: ours falls back to the tone.
    pub(super) fn injection_refused(&mut self, now: Instant, message: &str) {
        tracing::debug!(chars = message.chars().count(), "Deepgram refused an injected message");
        self.fillers.phrase_refused(now);
        self.drain_fillers(now);
    }

    /// The session ends: the hold with it.
    pub(super) fn stop_fillers(&mut self) {
        self.fillers.stop();
        while let Some(action) = self.fillers.poll_action() {
            if let FillerAction::Hold(on) = action {
                self.event(AgentEvent::Hold { reason: HoldReason::Tool, on });
            }
        }
    }

    /// Act on what the fillers decided.
    pub(super) fn drain_fillers(&mut self, now: Instant) {
        while let Some(action) = self.fillers.poll_action() {
            match action {
                FillerAction::Say(message) => {
                    if self.state == super::State::Streaming {
                        tracing::debug!("a function is slow: the agent says its filler phrase");
                        let say =
                            ClientMessage::InjectAgentMessage { message, behavior: Some("queue".into()) };
                        self.send(now, &say);
                    }
                }
                FillerAction::Hold(on) => self.event(AgentEvent::Hold { reason: HoldReason::Tool, on }),
            }
        }
    }
}
