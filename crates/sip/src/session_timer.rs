//! RFC 4028 session timers for a call we answer. From the INVITE's Session-Expires,
//! Min-SE and Supported we decide the interval and who refreshes, give the headers
//! for our 200 OK, and then keep time: when we refresh, a refresh is due at half the
//! interval; when the PBX refreshes (Asterisk's usual `refresher=uac`), a call with
//! no refresh for the whole interval (less a margin) has died and is ended with BYE.
//! Every refresh the PBX sends (re-INVITE or UPDATE) restarts the clock.
//!
//! When we refresh, the refresh runs beside the call (the media never waits for it) and
//! reports back with [`SessionTimer::refreshed`] or [`SessionTimer::refresh_failed`]. A
//! failed refresh is retried after a back-off (2 s after a 491 glare, RFC 3261 §14.1;
//! else 2 s, 4 s, 8 s ... up to 30 s) while the session lasts; a 481 means the dialog is
//! gone. At the session's expiry without a successful refresh the call is ended.

use std::time::{Duration, Instant};

/// The smallest interval we accept (RFC 4028's minimum, also Asterisk's default Min-SE).
pub const MIN_SE: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The PBX (the UAC of the INVITE) refreshes.
    Them,
    /// We refresh.
    Us,
}

/// What the INVITE asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerRequest {
    pub session_expires: Option<u32>,
    /// `refresher=` parameter of Session-Expires, if any: true for uac.
    pub refresher_uac: Option<bool>,
    pub min_se: Option<u32>,
    /// `Supported: timer` was present.
    pub supported: bool,
}

impl TimerRequest {
    /// Read the three headers' values (None when absent).
    pub fn from_headers(
        session_expires: Option<&str>,
        min_se: Option<&str>,
        supported: &[&str],
    ) -> TimerRequest {
        let mut r = TimerRequest {
            supported: supported
                .iter()
                .flat_map(|s| s.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case("timer")),
            ..Default::default()
        };
        if let Some(v) = session_expires {
            let mut parts = v.split(';');
            r.session_expires = parts.next().and_then(|n| n.trim().parse().ok());
            for p in parts {
                if let Some((k, val)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("refresher") {
                        r.refresher_uac = Some(val.trim().eq_ignore_ascii_case("uac"));
                    }
                }
            }
        }
        r.min_se = min_se.and_then(|v| v.split(';').next()).and_then(|n| n.trim().parse().ok());
        r
    }
}

/// The decision for the INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerDecision {
    /// No session timer on this call.
    None,
    /// 422 Session Interval Too Small, with our Min-SE.
    TooSmall { min_se: u32 },
    /// Run a timer; put `Session-Expires: {interval};refresher=...` and `Require: timer`
    /// (when the peer supports it) in the 200 OK.
    Run { interval: u32, refresher: Refresher, require_timer: bool },
}

impl TimerDecision {
    pub fn decide(req: &TimerRequest) -> TimerDecision {
        let Some(se) = req.session_expires else { return TimerDecision::None };
        if se < MIN_SE {
            return TimerDecision::TooSmall { min_se: MIN_SE.max(req.min_se.unwrap_or(0)) };
        }
        // A peer that does not support timers cannot refresh: we must (RFC 4028 §9).
        let refresher = match (req.supported, req.refresher_uac) {
            (false, _) => Refresher::Us,
            (true, Some(false)) => Refresher::Us,
            (true, _) => Refresher::Them,
        };
        TimerDecision::Run { interval: se, refresher, require_timer: req.supported }
    }

    /// Header lines for the 200 OK.
    pub fn response_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            TimerDecision::Run { interval, refresher, require_timer } => {
                let who = if *refresher == Refresher::Them { "uac" } else { "uas" };
                let mut h = vec![("Session-Expires", format!("{interval};refresher={who}"))];
                if *require_timer {
                    h.push(("Require", "timer".into()));
                }
                h
            }
            _ => vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Send a session refresh (re-INVITE or UPDATE with the current SDP) now, and report
    /// its outcome with [`SessionTimer::refreshed`] or [`SessionTimer::refresh_failed`].
    Refresh,
    /// The session expired without a refresh (or the dialog is gone): send BYE.
    Expired,
}

/// The first back-off after a failed refresh of ours; it doubles per failure.
pub const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest back-off between two refresh attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// The running timer of one call.
#[derive(Debug, Clone)]
pub struct SessionTimer {
    interval: Duration,
    refresher: Refresher,
    last_refresh: Instant,
    fired: bool,
    /// A refresh of ours is under way (its outcome not yet reported).
    refreshing: bool,
    /// The next attempt after a failed one.
    retry_at: Option<Instant>,
    /// Failed attempts since the last successful refresh.
    failures: u32,
}

impl SessionTimer {
    pub fn start(now: Instant, interval_secs: u32, refresher: Refresher) -> SessionTimer {
        SessionTimer {
            interval: Duration::from_secs(u64::from(interval_secs)),
            refresher,
            last_refresh: now,
            fired: false,
            refreshing: false,
            retry_at: None,
            failures: 0,
        }
    }

    pub fn refresher(&self) -> Refresher {
        self.refresher
    }

    pub fn interval_secs(&self) -> u64 {
        self.interval.as_secs()
    }

    /// A refresh happened (theirs arrived, or ours succeeded).
    pub fn refreshed(&mut self, now: Instant) {
        self.last_refresh = now;
        self.fired = false;
        self.refreshing = false;
        self.retry_at = None;
        self.failures = 0;
    }

    /// Our refresh failed with `status` (0: no response, the transaction timed out).
    /// Schedules a retry and returns None, or returns [`TimerAction::Expired`] when the
    /// dialog is gone (481) and the call should end now.
    pub fn refresh_failed(&mut self, now: Instant, status: u16) -> Option<TimerAction> {
        // Not under way any more: a refresh from the PBX (or the expiry) settled it.
        if !std::mem::replace(&mut self.refreshing, false) || self.fired {
            return None;
        }
        if status == 481 {
            self.fired = true;
            return Some(TimerAction::Expired);
        }
        let backoff = if status == 491 {
            RETRY_FIRST
        } else {
            RETRY_FIRST.saturating_mul(1u32 << self.failures.min(5)).min(RETRY_MAX)
        };
        self.failures = self.failures.saturating_add(1);
        // A retry due at or after the expiry is never sent: the expiry ends the call.
        self.retry_at = Some(now + backoff);
        None
    }

    /// Failed attempts since the last successful refresh.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the session ends without a refresh. Theirs: RFC 4028 §10, BYE at the
    /// interval minus min(32 s, a third of it). Ours: the interval (our retries go on
    /// until then).
    pub fn expires_at(&self) -> Instant {
        match self.refresher {
            Refresher::Us => self.last_refresh + self.interval,
            Refresher::Them => {
                self.last_refresh + self.interval - (self.interval / 3).min(Duration::from_secs(32))
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.fired {
            return None;
        }
        let expiry = self.expires_at();
        Some(match self.refresher {
            Refresher::Us if self.refreshing => expiry,
            Refresher::Us => self.retry_at.unwrap_or(self.last_refresh + self.interval / 2).min(expiry),
            Refresher::Them => expiry,
        })
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        if now >= self.expires_at() {
            self.fired = true;
            return Some(TimerAction::Expired);
        }
        // Ours is due (the first attempt or a retry); one at a time.
        self.refreshing = true;
        self.retry_at = None;
        Some(TimerAction::Refresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asterisk_style_invite_makes_the_pbx_refresh() {
        // Session-Expires: 90, no refresher, Supported: timer (asterisk-behaviour.md).
        let req = TimerRequest::from_headers(Some("90"), Some("90"), &["replaces, timer"]);
        let d = TimerDecision::decide(&req);
        assert_eq!(d, TimerDecision::Run { interval: 90, refresher: Refresher::Them, require_timer: true });
        assert_eq!(
            d.response_headers(),
            vec![("Session-Expires", "90;refresher=uac".to_string()), ("Require", "timer".to_string())]
        );
    }

    #[test]
    fn no_timer_support_means_we_refresh_and_tiny_intervals_get_422() {
        let d = TimerDecision::decide(&TimerRequest::from_headers(Some("1800"), None, &[]));
        assert_eq!(d, TimerDecision::Run { interval: 1800, refresher: Refresher::Us, require_timer: false });
        assert_eq!(d.response_headers(), vec![("Session-Expires", "1800;refresher=uas".to_string())]);
        let d =
            TimerDecision::decide(&TimerRequest::from_headers(Some("60;refresher=uac"), None, &["timer"]));
        assert_eq!(d, TimerDecision::TooSmall { min_se: 90 });
        let d =
            TimerDecision::decide(&TimerRequest::from_headers(Some("120;refresher=uas"), None, &["timer"]));
        assert!(matches!(d, TimerDecision::Run { refresher: Refresher::Us, .. }));
        assert_eq!(
            TimerDecision::decide(&TimerRequest::from_headers(None, None, &["timer"])),
            TimerDecision::None
        );
        assert_eq!(
            TimerDecision::decide(&TimerRequest::from_headers(Some("x"), None, &[])),
            TimerDecision::None
        );
    }

    #[test]
    fn their_refreshes_keep_the_call_alive_and_silence_ends_it() {
        let t0 = Instant::now();
        let mut t = SessionTimer::start(t0, 90, Refresher::Them);
        // Asterisk refreshes every 45 s: the call lives for an hour.
        let mut now = t0;
        for _ in 0..80 {
            now += Duration::from_secs(45);
            assert_eq!(t.handle_timeout(now), None);
            t.refreshed(now);
        }
        // Then the refreshes stop: BYE at 90 - 30 = 60 s after the last one.
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(60)));
        assert_eq!(t.handle_timeout(now + Duration::from_secs(59)), None);
        assert_eq!(t.handle_timeout(now + Duration::from_secs(60)), Some(TimerAction::Expired));
        assert_eq!(t.handle_timeout(now + Duration::from_secs(61)), None, "once");
    }

    #[test]
    fn we_refresh_at_half_the_interval() {
        let t0 = Instant::now();
        let mut t = SessionTimer::start(t0, 1800, Refresher::Us);
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(900)));
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(900)), Some(TimerAction::Refresh));
        assert_eq!(
            t.poll_timeout(),
            Some(t0 + Duration::from_secs(1800)),
            "while the refresh is under way only the expiry is due"
        );
        assert_eq!(t.handle_timeout(t0 + Duration::from_secs(901)), None, "one refresh at a time");
        t.refreshed(t0 + Duration::from_secs(901));
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(1801)));
    }

    #[test]
    fn a_failed_refresh_is_retried_until_the_session_expires() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = SessionTimer::start(t0, 90, Refresher::Us);
        assert_eq!(t.handle_timeout(t0 + s(45)), Some(TimerAction::Refresh));
        // The PBX never answers: the transaction times out 32 s later.
        assert_eq!(t.handle_timeout(t0 + s(60)), None);
        assert_eq!(t.refresh_failed(t0 + s(77), 0), None);
        assert_eq!(t.failures(), 1);
        assert_eq!(t.poll_timeout(), Some(t0 + s(79)), "retried after 2 s");
        assert_eq!(t.handle_timeout(t0 + s(78)), None);
        assert_eq!(t.handle_timeout(t0 + s(79)), Some(TimerAction::Refresh));
        // Refused this time: the next back-off doubles.
        assert_eq!(t.refresh_failed(t0 + s(80), 500), None);
        assert_eq!(t.poll_timeout(), Some(t0 + s(84)));
        assert_eq!(t.handle_timeout(t0 + s(84)), Some(TimerAction::Refresh));
        // Still under way at the expiry: the call ends, once.
        assert_eq!(t.poll_timeout(), Some(t0 + s(90)));
        assert_eq!(t.handle_timeout(t0 + s(90)), Some(TimerAction::Expired));
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.handle_timeout(t0 + s(91)), None);
        assert_eq!(t.refresh_failed(t0 + s(91), 0), None, "a late outcome changes nothing");
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn a_retry_that_would_come_after_the_expiry_is_never_sent() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = SessionTimer::start(t0, 90, Refresher::Us);
        assert_eq!(t.handle_timeout(t0 + s(45)), Some(TimerAction::Refresh));
        assert_eq!(t.refresh_failed(t0 + s(89), 408), None);
        assert_eq!(t.poll_timeout(), Some(t0 + s(90)), "the expiry comes first");
        assert_eq!(t.handle_timeout(t0 + s(90)), Some(TimerAction::Expired));
    }

    #[test]
    fn backoffs_glare_success_and_a_dead_dialog() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = SessionTimer::start(t0, 1800, Refresher::Us);
        let mut now = t0 + s(900);
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert_eq!(t.handle_timeout(now), Some(TimerAction::Refresh));
            assert_eq!(t.refresh_failed(now, 503), None);
            let next = t.poll_timeout().expect("a retry");
            waits.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(waits, vec![2, 4, 8, 16, 30, 30, 30, 30]);
        // Glare (491) retries after 2 s whatever came before.
        assert_eq!(t.handle_timeout(now), Some(TimerAction::Refresh));
        assert_eq!(t.refresh_failed(now, 491), None);
        assert_eq!(t.poll_timeout(), Some(now + s(2)));
        // Success resets everything: the next refresh at half the interval.
        now += s(2);
        assert_eq!(t.handle_timeout(now), Some(TimerAction::Refresh));
        t.refreshed(now);
        assert_eq!(t.failures(), 0);
        assert_eq!(t.poll_timeout(), Some(now + s(900)));
        // The PBX refreshed while ours was under way: ours failing needs no retry.
        assert_eq!(t.handle_timeout(now + s(900)), Some(TimerAction::Refresh));
        now += s(901);
        t.refreshed(now);
        assert_eq!(t.refresh_failed(now + s(1), 0), None);
        assert_eq!(t.poll_timeout(), Some(now + s(900)));
        // A 481: the dialog is gone, the call ends now.
        assert_eq!(t.handle_timeout(now + s(900)), Some(TimerAction::Refresh));
        assert_eq!(t.refresh_failed(now + s(901), 481), Some(TimerAction::Expired));
        assert_eq!(t.poll_timeout(), None);
    }
}
