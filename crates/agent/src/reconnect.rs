//! Reconnecting a provider's session when its socket drops mid-call, sans-IO and shared
//! by Deepgram and OpenAI: the policy ([`ReconnectPolicy`]: how many attempts, within
//! what budget), the schedule of one reconnect ([`Reconnect`]: the first attempt at once,
//! the next ones after 250 ms, 500 ms, 1 s…, each bounded so the whole reconnect answers
//! within the window), which failures are worth another attempt ([`worth_retrying`]),
//! and the call's tally of reconnects that bounds them ([`Tally`]).
//!
//! A reconnect opens the session the renewal opens (the conversation carried over, no
//! greeting): the providers' sessions say when, the shells only open sockets.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::provider::{AgentEvent, HoldReason};
use crate::{AgentError, ProviderCode};

/// Connection attempts per reconnect by default.
pub const DEFAULT_RECONNECT_ATTEMPTS: u32 = 3;
/// A reconnect's budget by default: from the drop to the last attempt's end.
pub const DEFAULT_RECONNECT_WINDOW: Duration = Duration::from_millis(2000);
/// The wait before the second attempt; it doubles for each one after.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// A session reconnected less than this long ago that drops again is not reconnected:
/// a provider that fails every session at once would otherwise keep the caller on hold
/// forever.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// At most this many reconnects in one call; the next drop goes to the fallback.
pub const MAX_RECONNECTS_PER_CALL: u32 = 5;

/// How a provider reconnects a dropped session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Connection attempts per reconnect; 0 never reconnects (a drop ends the session,
    /// and the call falls back at once).
    pub attempts: u32,
    /// The budget of one reconnect, from the drop: no attempt starts or runs past it.
    pub window: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy { attempts: DEFAULT_RECONNECT_ATTEMPTS, window: DEFAULT_RECONNECT_WINDOW }
    }
}

impl ReconnectPolicy {
    /// Never reconnect.
    pub const fn off() -> Self {
        ReconnectPolicy { attempts: 0, window: Duration::ZERO }
    }

    /// Reconnecting is on.
    pub fn enabled(&self) -> bool {
        self.attempts > 0 && !self.window.is_zero()
    }

    /// The wait before attempt `n` (1-based) once the one before failed: none for the
    /// first, then [`FIRST_BACKOFF`], doubling.
    pub fn backoff(n: u32) -> Duration {
        match n {
            0 | 1 => Duration::ZERO,
            n => FIRST_BACKOFF.saturating_mul(1 << (n - 2).min(16)),
        }
    }

    /// How long one attempt (connect and handshake) may take: the whole window when it is
    /// the only one, else half of it, so a connect that hangs leaves room for another.
    pub fn attempt_limit(&self) -> Duration {
        if self.attempts <= 1 {
            self.window
        } else {
            self.window / 2
        }
    }
}

/// What a reconnect asks of its session now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start attempt `n` (1-based): open a new session with the conversation.
    Attempt(u32),
    /// Nothing to do before [`Reconnect::poll_timeout`].
    Wait,
    /// No attempt is left (or worth making): the reason, for the one failure line.
    GiveUp(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// An attempt is under way; it has failed if it is not streaming by then.
    Connecting { deadline: Instant },
    /// Waiting to start the next attempt.
    Waiting { until: Instant },
}

/// One reconnect, from the drop to its end: which attempt, and when.
#[derive(Debug, Clone)]
pub(crate) struct Reconnect {
    policy: ReconnectPolicy,
    dropped: Instant,
    /// Why the session dropped, for the log and the failure line.
    cause: String,
    /// Attempts started.
    attempt: u32,
    phase: Phase,
    /// The last attempt's failure.
    last_error: Option<String>,
}

impl Reconnect {
    /// The session dropped at `now` because of `cause`: attempt 1 starts at once.
    pub(crate) fn start(now: Instant, policy: ReconnectPolicy, cause: String) -> Reconnect {
        let mut r = Reconnect {
            policy,
            dropped: now,
            cause,
            attempt: 0,
            phase: Phase::Waiting { until: now },
            last_error: None,
        };
        r.begin(now);
        r
    }

    fn end(&self) -> Instant {
        self.dropped + self.policy.window
    }

    fn begin(&mut self, now: Instant) {
        self.attempt += 1;
        let deadline = (now + self.policy.attempt_limit()).min(self.end());
        self.phase = Phase::Connecting { deadline };
    }

    /// Why the session dropped.
    pub(crate) fn cause(&self) -> &str {
        &self.cause
    }

    /// Attempts started so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// From the drop to `now`.
    pub(crate) fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.dropped)
    }

    /// When [`Reconnect::handle_timeout`] is next due.
    pub(crate) fn poll_timeout(&self) -> Instant {
        match self.phase {
            Phase::Connecting { deadline } => deadline,
            Phase::Waiting { until } => until,
        }
    }

    /// Time has passed: an attempt past its deadline has failed; a wait that is over
    /// starts the next attempt.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Next {
        match self.phase {
            Phase::Connecting { deadline } if now >= deadline => {
                let limit = deadline.saturating_duration_since(self.dropped);
                let why =
                    format!("attempt {} not streaming {} ms after the drop", self.attempt, limit.as_millis());
                self.failed(now, why, true)
            }
            Phase::Waiting { until } if now >= until => {
                self.begin(now);
                Next::Attempt(self.attempt)
            }
            _ => Next::Wait,
        }
    }

    /// The attempt under way failed (`why`, one line); `retry`: another attempt may
    /// fare better ([`worth_retrying`]). The next attempt is scheduled when one is left
    /// and it can start before the window ends.
    pub(crate) fn failed(&mut self, now: Instant, why: String, retry: bool) -> Next {
        self.last_error = Some(why);
        let next = self.attempt + 1;
        let until = now + ReconnectPolicy::backoff(next);
        if !retry || next > self.policy.attempts || until >= self.end() {
            return Next::GiveUp(self.summary(now));
        }
        self.phase = Phase::Waiting { until };
        Next::Wait
    }

    /// The failure line's tail: `reconnecting failed after 3 attempts in 1.75 s: …`.
    fn summary(&self, now: Instant) -> String {
        let n = self.attempt;
        let s = if n == 1 { "" } else { "s" };
        let last = self.last_error.as_deref().unwrap_or("no attempt left");
        format!(
            "reconnecting failed after {n} attempt{s} in {:.2} s: {last}",
            self.elapsed(now).as_secs_f64()
        )
    }
}

/// Whether a failure (of the session mid-call, or of a reconnect attempt) may go away
/// with a new connection. Not: the key refused (HTTP 401/403) or any other 4xx answer
/// to the upgrade but 408 and 429, a TLS failure, and the provider's errors that say our
/// settings or messages are wrong (they would repeat): Deepgram's
/// `UNPARSABLE_CLIENT_MESSAGE`, `NON_SETTINGS_MESSAGE_BEFORE_SETTINGS`,
/// `SETTINGS_ALREADY_APPLIED`, `INVALID_SETTINGS`, `USER_AUDIO_FORMAT`; OpenAI's
/// `invalid_api_key`, `insufficient_quota`, `model_not_found`, `beta_api_shape_disabled`
/// and a refused configuration. Everything else (a reset, a timeout, 5xx, Deepgram's
/// `INTERNAL_SERVER_ERROR`, `CLIENT_MESSAGE_TIMEOUT`, `ASR_*`, OpenAI's `server_error`,
/// `session_expired`, an unknown code) is worth another attempt.
pub fn worth_retrying(error: &AgentError) -> bool {
    match error.code() {
        Some(code) => code_worth_retrying(code),
        None => true,
    }
}

/// [`worth_retrying`] for a provider's code (upper case, as [`crate::ProviderCode`]s are).
pub fn code_worth_retrying(code: &str) -> bool {
    if let Some(status) = code.strip_prefix("HTTP_").and_then(|s| s.parse::<u16>().ok()) {
        return !(400..500).contains(&status) || status == 408 || status == 429;
    }
    !NO_RETRY_CODES.contains(&code)
}

/// Codes that a new connection would get again.
const NO_RETRY_CODES: &[&str] = &[
    // ws::connect's own.
    "TLS_FAILED",
    // Deepgram (reference §10).
    "UNPARSABLE_CLIENT_MESSAGE",
    "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS",
    "SETTINGS_ALREADY_APPLIED",
    "INVALID_SETTINGS",
    "USER_AUDIO_FORMAT",
    // OpenAI (shared/openai-realtime.md), upper-cased.
    "INVALID_API_KEY",
    "INSUFFICIENT_QUOTA",
    "MODEL_NOT_FOUND",
    "BETA_API_SHAPE_DISABLED",
    "SESSION_REFUSED",
    "EVENT_TOO_LARGE",
    "RENEWAL_FAILED",
];

/// The call's reconnects so far, carried from session to session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Reconnects that worked.
    pub count: u32,
    /// When the last one worked.
    pub last: Option<Instant>,
}

impl Tally {
    /// Why a drop at `now` is not reconnected, when it is not.
    pub(crate) fn refuse(&self, now: Instant) -> Option<String> {
        if self.count >= MAX_RECONNECTS_PER_CALL {
            return Some(format!("not reconnecting again: {} reconnects in this call already", self.count));
        }
        match self.last {
            Some(t) if now < t + STABLE_AFTER => Some(format!(
                "not reconnecting again: the session reconnected {} ms ago dropped too",
                now.saturating_duration_since(t).as_millis()
            )),
            _ => None,
        }
    }

    /// One more reconnect worked at `now`.
    pub(crate) fn worked(&mut self, now: Instant) {
        self.count = self.count.saturating_add(1);
        self.last = Some(now);
    }
}

/// What a provider's session does next about its reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Act {
    /// Nothing for now.
    Nothing,
    /// Ask the shell for the next attempt ([`crate::ws::Output::Reconnect`]).
    Attempt,
    /// End the session as failed with this line and code, after the call is told
    /// ([`Act::events`]).
    Fail {
        /// The failure line.
        detail: String,
        /// The code of the failure that started the reconnect.
        code: Option<ProviderCode>,
        /// Attempts made.
        attempts: u32,
        /// From the drop to giving up.
        after: Duration,
    },
}

impl Act {
    /// The call's two events before a failed reconnect's end: `Hold off` and
    /// `Reconnected { ok: false }`.
    pub(crate) fn events(attempts: u32, after: Duration) -> [AgentEvent; 2] {
        [
            AgentEvent::Hold { reason: HoldReason::Reconnect, on: false },
            AgentEvent::Reconnected { ok: false, attempts, after },
        ]
    }
}

/// A provider session's reconnect state: its policy, the reconnect under way, the
/// call's tally and the function calls of a dead session. Each provider keeps one and
/// maps its [`Act`]s to outputs.
#[derive(Debug, Default)]
pub(crate) struct Reconnecting {
    policy: Option<ReconnectPolicy>,
    current: Option<Reconnect>,
    /// The code of the failure that started the current reconnect, for the final one.
    code: Option<ProviderCode>,
    tally: Tally,
    /// Function calls of a dead session: their results are dropped.
    stale_tools: HashSet<String>,
}

impl Reconnecting {
    pub(crate) fn set_policy(&mut self, policy: ReconnectPolicy) {
        self.policy = Some(policy);
    }

    /// A reconnect is under way.
    pub(crate) fn active(&self) -> bool {
        self.current.is_some()
    }

    /// The session was lost (`detail`, with the provider's `code` when it gave one;
    /// `streaming`: mid-call). `Ok`: a reconnect started (put the caller on hold, ask
    /// for the first attempt); `Err`: fail as before with this line and code.
    pub(crate) fn lost(
        &mut self,
        now: Instant,
        streaming: bool,
        detail: String,
        code: Option<&str>,
    ) -> Result<(), (String, Option<ProviderCode>)> {
        let policy = self.policy.unwrap_or(ReconnectPolicy::off());
        let typed = code.and_then(ProviderCode::new);
        if !policy.enabled() || !streaming || code.is_some_and(|c| !code_worth_retrying(c)) {
            return Err((detail, typed));
        }
        if let Some(why) = self.tally.refuse(now) {
            return Err((format!("{detail}; {why}"), typed));
        }
        tracing::warn!("{detail}: reconnecting, the caller on hold");
        self.code = typed;
        self.current = Some(Reconnect::start(now, policy, detail));
        Ok(())
    }

    /// When the reconnect under way is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().map(Reconnect::poll_timeout)
    }

    /// Time has passed; `None` when no reconnect is under way.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Act> {
        let next = self.current.as_mut()?.handle_timeout(now);
        Some(self.act(now, next))
    }

    /// The attempt under way failed with `error` (`provider`'s own errors are logged
    /// without the provider's prefix).
    pub(crate) fn failed(&mut self, now: Instant, provider: &str, error: &AgentError) -> Act {
        let Some(r) = self.current.as_mut() else { return Act::Nothing };
        let why = match error {
            AgentError::Provider { provider: p, detail, .. } if p == provider => detail.clone(),
            other => other.to_string(),
        };
        tracing::info!(attempt = r.attempts(), "reconnect attempt failed: {why}");
        let next = r.failed(now, why, worth_retrying(error));
        self.act(now, next)
    }

    fn act(&mut self, now: Instant, next: Next) -> Act {
        match next {
            Next::Wait => Act::Nothing,
            Next::Attempt(n) => {
                tracing::debug!(attempt = n, "reconnect attempt");
                Act::Attempt
            }
            Next::GiveUp(why) => {
                let Some(r) = self.current.take() else { return Act::Nothing };
                Act::Fail {
                    detail: format!("{}; {why}", r.cause()),
                    code: self.code.take(),
                    attempts: r.attempts(),
                    after: r.elapsed(now),
                }
            }
        }
    }

    /// Switch-over to the session opened for `previous` (whose function calls still
    /// running are `pending`): the policy, the tally and the stale calls carry over.
    /// After a reconnect: the call's two events (`Hold off`, `Reconnected { ok: true }`)
    /// and the attempts and time it took, for the log line.
    pub(crate) fn take_over(
        &mut self,
        now: Instant,
        previous: &Reconnecting,
        pending: impl Iterator<Item = String>,
    ) -> Option<([AgentEvent; 2], u32, Duration)> {
        self.policy = previous.policy.or(self.policy);
        self.tally = previous.tally;
        self.stale_tools = previous.stale_tools.clone();
        self.stale_tools.extend(pending);
        let r = previous.current.as_ref()?;
        let after = r.elapsed(now);
        self.tally.worked(now);
        let events = [
            AgentEvent::Hold { reason: HoldReason::Reconnect, on: false },
            AgentEvent::Reconnected { ok: true, attempts: r.attempts(), after },
        ];
        Some((events, r.attempts(), after))
    }

    /// A function result for call `id` of a dead session (or of this one while it
    /// reconnects, when `running` still held it): dropped, with one log line.
    pub(crate) fn tool_result_stale(&mut self, id: &str, name: &str, running: bool) -> bool {
        let stale = self.stale_tools.remove(id) || (self.active() && running);
        if stale {
            tracing::info!(%id, %name, "a function result dropped: the session that asked for it was lost");
        }
        stale
    }
}

/// The log line of a reconnect that worked.
pub(crate) fn log_reconnected(attempts: u32, after: Duration, lines: usize) {
    tracing::info!(
        after_ms = after.as_millis() as u64,
        attempt = attempts,
        lines,
        "agent reconnected after {} ms, attempt {attempts}, {lines} lines restored",
        after.as_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_none_then_250_ms_doubling() {
        let b: Vec<u64> = (1..=5).map(|n| ReconnectPolicy::backoff(n).as_millis() as u64).collect();
        assert_eq!(b, [0, 250, 500, 1000, 2000]);
    }

    #[test]
    fn which_codes_are_worth_another_attempt() {
        for code in [
            "HTTP_401",
            "HTTP_403",
            "HTTP_400",
            "HTTP_404",
            "TLS_FAILED",
            "INVALID_SETTINGS",
            "INVALID_API_KEY",
        ] {
            assert!(!code_worth_retrying(code), "{code}");
        }
        for code in [
            "HTTP_408",
            "HTTP_429",
            "HTTP_503",
            "CONNECT_TIMEOUT",
            "CONNECT_REFUSED",
            "INTERNAL_SERVER_ERROR",
            "CLIENT_MESSAGE_TIMEOUT",
            "SERVER_ERROR",
            "SESSION_EXPIRED",
            "CONNECTION_LOST",
            "SOMETHING_NEW",
        ] {
            assert!(code_worth_retrying(code), "{code}");
        }
    }

    #[test]
    fn the_tally_refuses_a_quick_second_drop_and_too_many() {
        let t0 = Instant::now();
        let mut t = Tally::default();
        assert_eq!(t.refuse(t0), None);
        t.worked(t0);
        assert!(t.refuse(t0 + STABLE_AFTER - Duration::from_millis(1)).is_some());
        assert_eq!(t.refuse(t0 + STABLE_AFTER), None);
        for _ in 1..MAX_RECONNECTS_PER_CALL {
            t.worked(t0);
        }
        assert!(t.refuse(t0 + Duration::from_secs(3600)).is_some_and(|w| w.contains("5 reconnects")));
    }
}
