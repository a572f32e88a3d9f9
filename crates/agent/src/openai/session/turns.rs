//! Turn helpers for the OpenAI session: no dead air while a function runs (the shared
//! [`Fillers`](crate::tools::Fillers) timer; OpenAI gets the hold tone, since
//! shared/openai-realtime.md does not say an out-of-band `response.create` may run while
//! a function call waits for its output), and the caller's keypad: typed digits go in as
//! a user `input_text` item ([`crate::keypad::typed_text`]) followed by a
//! `response.create` — at once, or when the response in progress is done.

use std::time::Instant;

use super::{item_create, OpenAiSession, State};
use crate::keypad::{typed_text, KeypadEvent};
use crate::openai::messages::ClientEvent;
use crate::provider::{AgentEvent, Digit, HoldReason, Role};
use crate::tools::FillerAction;

impl OpenAiSession {
    /// Whether the caller is hearing the tool hold tone.
    pub fn tool_hold(&self) -> bool {
        self.fillers.holding()
    }

    /// The caller pressed a key.
    pub fn handle_digit(&mut self, now: Instant, digit: Digit) {
        if self.state != State::Streaming || self.closed_for_renewal || self.reconnecting() {
            tracing::debug!(%digit, "a key while the agent does not listen: ignored");
            return;
        }
        let event = self.keypad.press(now, digit);
        self.keypad_event(event);
    }

    /// The fillers' and the keypad's timers.
    pub(super) fn turn_timers(&mut self, now: Instant) {
        self.fillers.handle_timeout(now);
        self.drain_fillers();
        let event = self.keypad.handle_timeout(now);
        self.keypad_event(event);
    }

    /// When [`OpenAiSession::turn_timers`] is next due.
    pub(super) fn turn_timeout(&self) -> Option<Instant> {
        [self.fillers.poll_timeout(), self.keypad.poll_timeout()].into_iter().flatten().min()
    }

    /// Hold events for what the fillers decided (OpenAI says no phrase of ours).
    pub(super) fn drain_fillers(&mut self) {
        while let Some(action) = self.fillers.poll_action() {
            if let FillerAction::Hold(on) = action {
                self.event(AgentEvent::Hold { reason: HoldReason::Tool, on });
            }
        }
    }

    /// The session ends: the hold with it.
    pub(super) fn stop_fillers(&mut self) {
        self.fillers.stop();
        self.drain_fillers();
    }

    /// A response is done: the typed digits waiting for it get their answer now.
    pub(super) fn answer_typed(&mut self) {
        if self.typed_waiting && self.active_response.is_none() && self.state == State::Streaming {
            self.typed_waiting = false;
            self.send(&ClientEvent::ResponseCreate { response: None });
        }
    }

    fn keypad_event(&mut self, event: Option<KeypadEvent>) {
        match event {
            None => {}
            Some(KeypadEvent::Typed(digits)) => {
                tracing::info!(count = digits.len(), "the caller typed digits: sent to the agent as text");
                let text = typed_text(&digits);
                self.send(&item_create(Role::User, &text));
                self.said(Role::User, text);
                self.typed_waiting = true;
                self.answer_typed();
            }
            Some(KeypadEvent::EndOfTurn) => {
                tracing::debug!("end-of-turn key with no digits: OpenAI's turn detection ends turns itself");
            }
        }
    }
}
