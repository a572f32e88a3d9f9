//! Renewing a session before Deepgram's 2 h cap, sans-IO: the conversation kept for the
//! next session's `agent.context` ([`History`], bounded, the oldest lines out first) and
//! when to ask for the renewal ([`RenewalTimer`]: due, at a quiet moment or forced,
//! retried after a failure).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::super::messages::{Context, HistoryMessage};
use crate::provider::Role;

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
/// At most this many conversation lines are carried into a renewed session.
pub const HISTORY_MAX_LINES: usize = 200;
/// And at most this many characters of them (the oldest go first).
pub const HISTORY_MAX_CHARS: usize = 24_000;

/// The conversation so far, for a renewal: at most [`HISTORY_MAX_LINES`] lines and
/// [`HISTORY_MAX_CHARS`] characters.
#[derive(Debug, Default)]
pub(super) struct History {
    lines: VecDeque<(Role, String)>,
    chars: usize,
    /// Lines ever added (the oldest are dropped; this only grows).
    heard: u64,
    /// `heard` when the last renewal's context was taken.
    mark: u64,
}

impl History {
    /// The history a renewed session starts with: the user's and the agent's lines of the
    /// `agent.context` it was opened with.
    pub(super) fn carried(context: Option<&Context>) -> Self {
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

    /// One more line, dropping the oldest past the bounds.
    pub(super) fn remember(&mut self, role: Role, text: &str) {
        self.lines.push_back((role, text.to_owned()));
        self.chars += text.len();
        self.heard += 1;
        while self.lines.len() > HISTORY_MAX_LINES || self.chars > HISTORY_MAX_CHARS {
            match self.lines.pop_front() {
                Some((_, old)) => self.chars -= old.len(),
                None => break,
            }
        }
    }

    /// The lines, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Role, &str)> {
        self.lines.iter().map(|(r, t)| (*r, t.as_str()))
    }

    pub(super) fn len(&self) -> usize {
        self.lines.len()
    }

    /// The lines as `agent.context` for a renewed session; later lines are
    /// [`History::since_context`].
    pub(super) fn context(&mut self) -> Context {
        self.mark = self.heard;
        let messages = self
            .lines
            .iter()
            .map(|(role, text)| {
                let role = if *role == Role::User { "user" } else { "assistant" };
                HistoryMessage::new(role, text)
            })
            .collect();
        Context { messages }
    }

    /// The lines heard since the last [`History::context`], oldest first.
    pub(super) fn since_context(&self) -> impl Iterator<Item = (Role, &str)> {
        let late = self.heard.saturating_sub(self.mark);
        let late = usize::try_from(late).unwrap_or(usize::MAX).min(self.lines.len());
        self.iter().skip(self.lines.len() - late)
    }
}

/// Why a renewal is asked for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Moment {
    /// No agent audio for [`RENEW_QUIET`], no tool running, the caller not speaking.
    Quiet,
    /// Not quiet, but due for [`RENEW_FORCE_AFTER`].
    Forced,
}

/// When to ask for a renewal.
#[derive(Debug, Default)]
pub(super) struct RenewalTimer {
    /// Due from this instant (set when streaming starts, or by the warning)…
    due: Option<Instant>,
    /// …forced from this one…
    force: Option<Instant>,
    /// …and asked for and not yet resolved.
    asked: bool,
}

impl RenewalTimer {
    /// Streaming started: due after [`RENEW_AFTER`], forced [`RENEW_FORCE_AFTER`] later.
    pub(super) fn start(&mut self, now: Instant) {
        self.due = Some(now + RENEW_AFTER);
        self.force = Some(now + RENEW_AFTER + RENEW_FORCE_AFTER);
    }

    /// Deepgram warned that the cap nears: due now, forced after [`RENEW_FORCE_AFTER`].
    pub(super) fn warned(&mut self, now: Instant) {
        self.due = Some(now);
        self.force = Some(now + RENEW_FORCE_AFTER);
    }

    /// The renewal asked for could not be opened: due again after [`RENEW_RETRY`].
    pub(super) fn failed(&mut self, now: Instant) {
        self.asked = false;
        self.due = Some(now + RENEW_RETRY);
    }

    /// `Some` when the renewal is to be asked for now (and it is then taken as asked for,
    /// until [`RenewalTimer::failed`]). `busy`: a tool runs or the caller speaks. When
    /// it is due but not quiet, the next check moves to when the agent's audio will be
    /// [`RENEW_QUIET`] old, else a little later, and at the latest to when it is forced.
    pub(super) fn check(
        &mut self,
        now: Instant,
        busy: bool,
        last_agent_audio: Option<Instant>,
    ) -> Option<Moment> {
        if self.asked || self.due.is_none_or(|t| now < t) {
            return None;
        }
        let quiet = !busy && last_agent_audio.is_none_or(|t| now >= t + RENEW_QUIET);
        let moment = if quiet {
            Some(Moment::Quiet)
        } else if self.force.is_some_and(|t| now >= t) {
            Some(Moment::Forced)
        } else {
            None
        };
        if moment.is_some() {
            self.asked = true;
            return moment;
        }
        let quiet_at = last_agent_audio.map(|t| t + RENEW_QUIET).filter(|q| *q > now);
        let next = quiet_at.unwrap_or(now + RENEW_QUIET);
        self.due = Some(self.force.map_or(next, |f| next.min(f.max(now))));
        None
    }

    /// When [`RenewalTimer::check`] should next run; none while a renewal is asked for.
    pub(super) fn next_check(&self) -> Option<Instant> {
        if self.asked {
            return None;
        }
        self.due
    }
}
