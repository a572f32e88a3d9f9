//! Renewing a provider's session before its cap (Deepgram's 2 h, OpenAI's 60 min),
//! sans-IO and shared by the providers: the conversation kept for the next session
//! ([`History`], bounded, the oldest lines out first) and when to ask for the renewal
//! ([`RenewalTimer`]: due, at a quiet moment or forced, retried after a failure). How
//! the history is carried over is each provider's own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::provider::Role;

/// At most this many conversation lines are carried into a renewed session.
pub const HISTORY_MAX_LINES: usize = 200;
/// And at most this many characters of them (the oldest go first).
pub const HISTORY_MAX_CHARS: usize = 24_000;

/// The conversation so far, for a renewal: at most [`HISTORY_MAX_LINES`] lines and
/// [`HISTORY_MAX_CHARS`] characters.
#[derive(Debug, Default)]
pub(crate) struct History {
    lines: VecDeque<(Role, String)>,
    chars: usize,
    /// Lines ever added (the oldest are dropped; this only grows).
    heard: u64,
    /// `heard` when the last renewal's copy was taken ([`History::mark`]).
    mark: u64,
}

impl History {
    /// One more line, dropping the oldest past the bounds.
    pub(crate) fn remember(&mut self, role: Role, text: &str) {
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
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Role, &str)> {
        self.lines.iter().map(|(r, t)| (*r, t.as_str()))
    }

    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }

    /// Lines ever added, the dropped ones too.
    pub(crate) fn heard(&self) -> u64 {
        self.heard
    }

    /// A renewal takes a copy of the lines now: later ones are [`History::since_mark`].
    pub(crate) fn mark(&mut self) {
        self.mark = self.heard;
    }

    /// The lines heard since the last [`History::mark`], oldest first.
    pub(crate) fn since_mark(&self) -> impl Iterator<Item = (Role, &str)> {
        let late = self.heard.saturating_sub(self.mark);
        let late = usize::try_from(late).unwrap_or(usize::MAX).min(self.lines.len());
        self.iter().skip(self.lines.len() - late)
    }
}

/// When a provider's session is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Due this long after streaming started.
    pub after: Duration,
    /// A renewal waits for a quiet moment: no agent audio for this long, no tool running,
    /// the caller not mid-utterance…
    pub quiet: Duration,
    /// …but no longer than this after it became due.
    pub force_after: Duration,
    /// A failed renewal is retried after this long (the old session still runs).
    pub retry: Duration,
}

/// Why a renewal is asked for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moment {
    /// No agent audio for [`Policy::quiet`], no tool running, the caller not speaking.
    Quiet,
    /// Not quiet, but due for [`Policy::force_after`].
    Forced,
}

/// When to ask for a renewal.
#[derive(Debug)]
pub(crate) struct RenewalTimer {
    policy: Policy,
    /// Due from this instant (set when streaming starts, or by a warning)…
    due: Option<Instant>,
    /// …forced from this one…
    force: Option<Instant>,
    /// …and asked for and not yet resolved.
    asked: bool,
}

impl RenewalTimer {
    pub(crate) fn new(policy: Policy) -> Self {
        RenewalTimer { policy, due: None, force: None, asked: false }
    }

    /// Streaming started: due after [`Policy::after`], forced [`Policy::force_after`] later.
    pub(crate) fn start(&mut self, now: Instant) {
        self.due = Some(now + self.policy.after);
        self.force = Some(now + self.policy.after + self.policy.force_after);
    }

    /// The provider warned that the cap nears: due now, forced after
    /// [`Policy::force_after`].
    pub(crate) fn warned(&mut self, now: Instant) {
        self.due = Some(now);
        self.force = Some(now + self.policy.force_after);
    }

    /// The renewal asked for could not be opened: due again after [`Policy::retry`].
    pub(crate) fn failed(&mut self, now: Instant) {
        self.asked = false;
        self.due = Some(now + self.policy.retry);
    }

    /// A renewal has been asked for and not resolved yet.
    pub(crate) fn asked(&self) -> bool {
        self.asked
    }

    /// `Some` when the renewal is to be asked for now (and it is then taken as asked for,
    /// until [`RenewalTimer::failed`]). `busy`: a tool runs or the caller speaks. When
    /// it is due but not quiet, the next check moves to when the agent's audio will be
    /// [`Policy::quiet`] old, else a little later, and at the latest to when it is forced.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        busy: bool,
        last_agent_audio: Option<Instant>,
    ) -> Option<Moment> {
        if self.asked || self.due.is_none_or(|t| now < t) {
            return None;
        }
        let quiet_for = self.policy.quiet;
        let quiet = !busy && last_agent_audio.is_none_or(|t| now >= t + quiet_for);
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
        let quiet_at = last_agent_audio.map(|t| t + quiet_for).filter(|q| *q > now);
        let next = quiet_at.unwrap_or(now + quiet_for);
        self.due = Some(self.force.map_or(next, |f| next.min(f.max(now))));
        None
    }

    /// When [`RenewalTimer::check`] should next run; none while a renewal is asked for.
    pub(crate) fn next_check(&self) -> Option<Instant> {
        if self.asked {
            return None;
        }
        self.due
    }
}
