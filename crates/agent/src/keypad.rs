//! The caller's keypad as turn control, sans-IO: [`Keypad`] collects the DTMF digits the
//! caller types and decides — with the time injected — when they go to the agent as one
//! line of text ([`typed_text`]: "The caller typed 4711 on the keypad."), and when the
//! configured end-of-turn key ends the caller's turn.
//!
//! - Digits (0-9, `*`, `#`, A-D) are collected until the end-of-turn key, until no key
//!   has come for [`DIGIT_TIMEOUT`], or until [`MAX_TYPED`] are waiting.
//! - The end-of-turn key is never part of the text. Pressed with digits waiting, it
//!   sends them at once ([`KeypadEvent::Typed`]); pressed alone, it ends the caller's
//!   spoken turn ([`KeypadEvent::EndOfTurn`]: Deepgram Flux's `ForceEndTurn`).
//! - Without an end-of-turn key every key, `#` too, is a digit.
//!
//! Deepgram and OpenAI use it; the pipeline has its own endpointer and keeps its keys
//! for the next user message, in the same words ([`typed_text`]).

use std::time::{Duration, Instant};

use crate::provider::Digit;

/// Digits are sent when no key has come for this long.
pub const DIGIT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most digits collected; one more sends them.
pub const MAX_TYPED: usize = 32;

/// The line the agent gets for digits the caller typed.
pub fn typed_text(digits: &str) -> String {
    format!("The caller typed {digits} on the keypad.")
}

/// What the provider must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeypadEvent {
    /// Tell the agent, as the caller's words, that they typed these digits
    /// ([`typed_text`]).
    Typed(String),
    /// The end-of-turn key with no digits waiting: end the caller's turn now.
    EndOfTurn,
}

/// One call's keypad. See the module comment.
#[derive(Debug, Clone, Default)]
pub struct Keypad {
    end_key: Option<char>,
    digits: String,
    /// When the last digit was pressed, while digits wait.
    last: Option<Instant>,
}

impl Keypad {
    /// A keypad whose `end_key` (when set) ends the turn.
    pub fn new(end_key: Option<char>) -> Self {
        Keypad { end_key, digits: String::new(), last: None }
    }

    /// The end-of-turn key.
    pub fn end_key(&self) -> Option<char> {
        self.end_key
    }

    /// The caller pressed `digit` at `now`.
    pub fn press(&mut self, now: Instant, digit: Digit) -> Option<KeypadEvent> {
        let c = digit.as_char();
        if self.end_key == Some(c) {
            return Some(self.take().map_or(KeypadEvent::EndOfTurn, KeypadEvent::Typed));
        }
        self.digits.push(c);
        self.last = Some(now);
        if self.digits.len() >= MAX_TYPED {
            return self.take().map(KeypadEvent::Typed);
        }
        None
    }

    /// When [`Keypad::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.last.map(|t| t + DIGIT_TIMEOUT)
    }

    /// Time has passed: the digits, when the caller has stopped typing.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<KeypadEvent> {
        match self.last {
            Some(t) if now >= t + DIGIT_TIMEOUT => self.take().map(KeypadEvent::Typed),
            _ => None,
        }
    }

    /// Digits waiting to be sent.
    pub fn waiting(&self) -> &str {
        &self.digits
    }

    fn take(&mut self) -> Option<String> {
        self.last = None;
        (!self.digits.is_empty()).then(|| std::mem::take(&mut self.digits))
    }
}
