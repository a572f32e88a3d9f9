//! Renewing a session before Deepgram's 2 h cap: its timings, and the history carried as
//! the next session's `agent.context` (the bounded history and the timer are
//! [`crate::renewal`]'s, shared with the other providers).

use std::time::Duration;

use super::super::messages::{Context, HistoryMessage};
use crate::provider::Role;
use crate::renewal::{History, Policy};
pub use crate::renewal::{HISTORY_MAX_CHARS, HISTORY_MAX_LINES};

/// Deepgram caps a session at 2 hours and warns 5 minutes before
/// (`MAXIMUM_SESSION_LENGTH_APPROACHING`, reference §2.7). The warning's documentation is
/// thin, so a session is renewed after this long even without it.
pub const RENEW_AFTER: Duration = Duration::from_secs(110 * 60);
/// A renewal waits for a quiet moment (no agent audio for this long, no tool running, the
/// caller not mid-utterance)…
pub const RENEW_QUIET: Duration = Duration::from_millis(1500);
/// …but no longer than this after it became due.
pub const RENEW_FORCE_AFTER: Duration = Duration::from_secs(4 * 60);
/// A failed renewal is retried after this long (the old session still runs meanwhile).
pub const RENEW_RETRY: Duration = Duration::from_secs(20);

/// Deepgram's renewal timings.
pub(super) const POLICY: Policy =
    Policy { after: RENEW_AFTER, quiet: RENEW_QUIET, force_after: RENEW_FORCE_AFTER, retry: RENEW_RETRY };

/// The history a renewed session starts with: the user's and the agent's lines of the
/// `agent.context` it was opened with.
pub(super) fn carried(context: Option<&Context>) -> History {
    let mut history = History::default();
    for m in context.iter().flat_map(|c| c.messages.iter()) {
        match m.role.as_str() {
            "user" => history.remember(Role::User, &m.content),
            "assistant" => history.remember(Role::Agent, &m.content),
            _ => {}
        }
    }
    history
}

/// The lines as `agent.context` for a renewed session; later lines are
/// [`History::since_mark`].
pub(super) fn context(history: &mut History) -> Context {
    history.mark();
    let messages = history
        .iter()
        .map(|(role, text)| {
            let role = if role == Role::User { "user" } else { "assistant" };
            HistoryMessage::new(role, text)
        })
        .collect();
    Context { messages }
}
