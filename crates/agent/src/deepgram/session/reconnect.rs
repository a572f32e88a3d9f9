//! Keeping the call when Deepgram's socket drops mid-call (or Deepgram sends an `Error`
//! a new session may not get): the caller is put on hold, and the session asks its shell
//! for new sessions ([`Output::Reconnect`]) opened like a renewal — the conversation as
//! `agent.context.messages`, no greeting — on the schedule of [`crate::reconnect`]. The
//! new session takes the call over ([`DeepgramSession::take_over`]); when no attempt is
//! left, the session fails as before and the call falls back.
//!
//! While it reconnects: caller audio is dropped (the new session must not answer stale
//! speech); agent audio already queued at the call plays out (it is what the restored
//! conversation says the agent said), then the hold tone; a function result that comes
//! back is dropped with a log line (its id belongs to the dead session: Deepgram's new
//! session never asked for it).

use std::time::Instant;

use super::{DeepgramSession, Output, State, PROVIDER};
use crate::deepgram::messages::Settings;
use crate::provider::{AgentEvent, HoldReason};
use crate::reconnect::{log_reconnected, Act, ReconnectPolicy};
use crate::AgentError;

impl DeepgramSession {
    /// Reconnect a session that drops mid-call with `policy` (a new session reconnects
    /// nothing until this is set: the shell sets the configured one).
    pub fn set_reconnect(&mut self, policy: ReconnectPolicy) {
        self.reconnect.set_policy(policy);
    }

    /// A reconnect is under way: the socket is dead, nothing is written to it.
    pub fn reconnecting(&self) -> bool {
        self.reconnect.active()
    }

    /// `base` (this call's Settings) for the next reconnect attempt: the renewal's
    /// ([`DeepgramSession::renewal_settings`]: the conversation, no greeting), or `base`
    /// as it is when nothing has been said or played yet (the greeting is still due).
    pub fn reconnect_settings(&mut self, base: Settings) -> Settings {
        if self.history.heard() == 0 && self.last_agent_audio.is_none() {
            return base;
        }
        self.renewal_settings(base)
    }

    /// Switch-over: this session, opened by the shell for `previous` (a renewal or a
    /// reconnect) and streaming, takes the call over: the reconnect policy and tally,
    /// and — after a reconnect — `Hold off`, [`AgentEvent::Reconnected`] and one log
    /// line; `previous`'s running function calls are now stale. Call it after
    /// [`DeepgramSession::continue_from`].
    pub fn take_over(&mut self, now: Instant, previous: &DeepgramSession) {
        let pending = previous.pending_tools.iter().cloned();
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

    /// The session was lost (`detail`, with Deepgram's `code` when it sent an `Error`):
    /// mid-call, reconnect when that is on, worth it and allowed; else fail as before.
    pub(super) fn lost(&mut self, now: Instant, detail: String, code: Option<&str>) {
        let streaming = self.state == State::Streaming;
        match self.reconnect.lost(now, streaming, detail, code) {
            Ok(()) => {
                // A slow function's filler or tone ends with its session: the reconnect's
                // hold takes over, and the function's result will be dropped.
                self.stop_fillers();
                self.event(AgentEvent::Hold { reason: HoldReason::Reconnect, on: true });
                self.out.push_back(Output::Reconnect);
            }
            Err((detail, code)) => self.fail_with_code(detail, code),
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

    /// A function result that must not reach Deepgram: its session is gone, or a new one
    /// is being opened.
    pub(super) fn tool_result_stale(&mut self, id: &str, name: &str) -> bool {
        let running = self.pending_tools.contains(id);
        let stale = self.reconnect.tool_result_stale(id, name, running);
        if stale {
            self.pending_tools.remove(id);
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
                self.fail_with_code(detail, code);
            }
        }
    }
}
