//! The caller's keypad for the Deepgram session: digits typed go to the agent as the
//! caller's words (`InjectUserMessage`, [`crate::keypad::typed_text`]); the end-of-turn
//! key alone sends `ForceEndTurn` when the listener is Flux (Nova answers it with
//! `Warning FORCE_END_TURN_UNSUPPORTED`, so it is not sent then).

use std::time::Instant;

use super::{DeepgramSession, State};
use crate::deepgram::messages::ClientMessage;
use crate::keypad::{typed_text, Keypad, KeypadEvent};
use crate::provider::Digit;

impl DeepgramSession {
    /// Turn control with this end-of-turn key (none: every key is a digit).
    pub fn with_end_of_turn_key(mut self, key: Option<char>) -> Self {
        self.keypad = Keypad::new(key);
        self
    }

    /// The listener is Flux (`ForceEndTurn` works).
    pub fn flux(&self) -> bool {
        self.flux
    }

    /// The caller pressed a key.
    pub fn handle_digit(&mut self, now: Instant, digit: Digit) {
        if self.state != State::Streaming || self.reconnecting() {
            tracing::debug!(%digit, "a key while the agent does not listen: ignored");
            return;
        }
        let event = self.keypad.press(now, digit);
        self.keypad_event(now, event);
    }

    /// The keypad's timer.
    pub(super) fn keypad_timeout(&mut self, now: Instant) {
        let event = self.keypad.handle_timeout(now);
        self.keypad_event(now, event);
    }

    fn keypad_event(&mut self, now: Instant, event: Option<KeypadEvent>) {
        match event {
            None => {}
            Some(KeypadEvent::Typed(digits)) => {
                tracing::info!(count = digits.len(), "the caller typed digits: sent to the agent as text");
                self.send(now, &ClientMessage::InjectUserMessage { content: typed_text(&digits) });
            }
            Some(KeypadEvent::EndOfTurn) if self.flux => {
                tracing::debug!("end-of-turn key: ForceEndTurn");
                self.send(now, &ClientMessage::ForceEndTurn);
            }
            Some(KeypadEvent::EndOfTurn) => {
                tracing::debug!("end-of-turn key: Deepgram ends turns itself without Flux (no ForceEndTurn)");
            }
        }
    }
}
