//! Keeping the call when OpenAI's socket drops mid-call (or OpenAI sends an error a new
//! session may not get): the caller is put on hold, and the session asks its shell for
//! new sessions ([`Output::Reconnect`]) opened like a renewal — the conversation
//! re-created as message items, no greeting — on the schedule of [`crate::reconnect`].
//! The new session takes the call over ([`OpenAiSession::take_over`]); when no attempt
//! is left, the session fails as before and the call falls back.
//!
//! While it reconnects: caller audio is dropped (the new session must not answer stale
//! speech; a half-filled append is dropped too); agent audio already queued at the call
//! plays out, then the hold tone; a function result that comes back is dropped with a
//! log line (a `function_call_output` must name a `function_call` item of the new
//! conversation, and the restored one holds only messages).

use std::time::Instant;

use super::{AppendBatch, OpenAiSession, Output, State, PROVIDER};
use crate::provider::{AgentEvent, HoldReason, Role};
use crate::reconnect::{log_reconnected, Act};
use crate::AgentError;

impl OpenAiSession {
    /// A reconnect is under way: the socket is dead, nothing is written to it.
    pub fn reconnecting(&self) -> bool {
        self.reconnect.active()
    }

    /// The seed of the next reconnect attempt's session ([`OpenAiSession::new`]): the
    /// renewal's ([`OpenAiSession::renewal_seed`]: the conversation, no greeting), or
    /// `None` when nothing has been said or played yet (the greeting is still due).
    pub fn reconnect_seed(&mut self) -> Option<Vec<(Role, String)>> {
        if self.history.heard() == 0 && self.play_until.is_none() {
            return None;
        }
        Some(self.renewal_seed())
    }

    /// Switch-over: this session, opened by the shell for `previous` (a renewal or a
    /// reconnect) and streaming, takes the call over: the reconnect policy and tally,
    /// and — after a reconnect — `Hold off`, [`AgentEvent::Reconnected`] and one log
    /// line; `previous`'s running function calls are now stale. Call it after
    /// [`OpenAiSession::continue_from`].
    pub fn take_over(&mut self, now: Instant, previous: &OpenAiSession) {
        let pending = previous.pending_tools.keys().cloned();
        if let Some((events, attempts, after)) = self.reconnect.take_over(now, &previous.reconnect, pending) {
            log_reconnected(attempts, after, self.history.len());
            for event in events {
                self.event(event);
            }
        }
    }

    /// The reconnect attempt the shell opened failed with `error`.
    pub fn reconnect_failed(&mut self, now: Instant, error: &AgentError) {
        let act = self.reconnect.failed(now, PROVIDER, error);
        self.reconnect_act(act);
    }

    /// The session was lost (`detail`, `code` as the failure would carry it): mid-call,
    /// reconnect when that is on, worth it and allowed; else fail as before.
    pub(super) fn lost(&mut self, now: Instant, detail: String, code: &str) {
        let streaming = self.state == State::Streaming;
        match self.reconnect.lost(now, streaming, detail, Some(code)) {
            Ok(()) => {
                // A slow function's filler or tone ends with its session: the reconnect's
                // hold takes over, and the function's result will be dropped.
                self.stop_fillers();
                self.batch = AppendBatch::EMPTY;
                self.batch_frames = 0;
                self.event(AgentEvent::Hold { reason: HoldReason::Reconnect, on: true });
                self.out.push_back(Output::Reconnect);
            }
            Err((detail, _)) => self.fail(detail, code),
        }
    }

    /// When the reconnect under way is next due.
    pub(super) fn reconnect_timeout(&self) -> Option<Instant> {
        self.reconnect.poll_timeout()
    }

    /// Time has passed for the reconnect under way; false when there is none.
    pub(super) fn reconnect_on_timeout(&mut self, now: Instant) -> bool {
        match self.reconnect.handle_timeout(now) {
            Some(act) => {
                self.reconnect_act(act);
                true
            }
            None => false,
        }
    }

    /// A function result that must not reach OpenAI: its session is gone, or a new one
    /// is being opened.
    pub(super) fn tool_result_stale(&mut self, call_id: &str, name: &str) -> bool {
        let running = self.pending_tools.contains_key(call_id);
        let stale = self.reconnect.tool_result_stale(call_id, name, running);
        if stale {
            self.pending_tools.remove(call_id);
        }
        stale
    }

    fn reconnect_act(&mut self, act: Act) {
        match act {
            Act::Nothing => {}
            Act::Attempt => self.out.push_back(Output::Reconnect),
            Act::Fail { detail, code, attempts, after } => {
                for event in Act::events(attempts, after) {
                    self.event(event);
                }
                let code = code.map(|c| c.as_str().to_owned()).unwrap_or_default();
                self.fail(detail, &code);
            }
        }
    }
}
