//! Counts of INVITEs refused before they became calls, of requests refused inside
//! a dialog and of datagrams dropped unanswered: the application never sees those,
//! so this is how it can report them (e.g. as metrics). Each kind of refusal also
//! has its own log gate: a flood writes one line per window, with the count held
//! back.

use crate::ratelimit::RateLimit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often each kind of refusal may write a log line.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Shared counters, bumped by the router and the SIP socket's screen.
#[derive(Debug)]
pub struct RefusalCounts {
    forbidden: AtomicU64,
    busy: AtomicU64,
    timer_too_small: AtomicU64,
    unavailable: AtomicU64,
    in_dialog_forbidden: AtomicU64,
    dropped: AtomicU64,
    logs: [Mutex<RateLimit>; 4],
}

impl Default for RefusalCounts {
    fn default() -> RefusalCounts {
        RefusalCounts {
            forbidden: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            timer_too_small: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            in_dialog_forbidden: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            logs: std::array::from_fn(|_| Mutex::new(RateLimit::new(LOG_EVERY))),
        }
    }
}

/// The kinds of refusal that log, each behind its own gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalLog {
    /// An INVITE from an address that may not call (403).
    Stranger,
    /// An INVITE over the call limit (486).
    Busy,
    /// A request inside a dialog from outside its route (403).
    InDialog,
    /// Datagrams dropped unanswered (over a source's budget, or nothing a stranger
    /// gets an answer to).
    Dropped,
}

/// A snapshot of [`RefusalCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// 403: not from the PBX (or an allowed address).
    pub forbidden: u64,
    /// 486: over the concurrent call limit.
    pub busy: u64,
    /// 422: the session timer asked for was too short.
    pub timer_too_small: u64,
    /// 480 or 500: the application could not take the call.
    pub unavailable: u64,
    /// 403 to a BYE, re-INVITE, INFO, NOTIFY, REFER… from outside the dialog's route.
    pub in_dialog_forbidden: u64,
    /// Datagrams dropped unanswered: over their source's budget, or from a stranger
    /// and nothing a stranger gets an answer to.
    pub dropped: u64,
}

impl RefusalCounts {
    /// Count one refusal by its status.
    pub fn count(&self, status: u16) {
        let counter = match status {
            403 => &self.forbidden,
            486 => &self.busy,
            422 => &self.timer_too_small,
            _ => &self.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one 403 to a request inside a dialog.
    pub fn count_in_dialog_forbidden(&self) {
        self.in_dialog_forbidden.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one datagram dropped unanswered.
    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// May a line about this kind of refusal be written now? Some(number held back
    /// since the last one) when it may.
    pub fn may_log(&self, kind: RefusalLog, now: Instant) -> Option<u64> {
        let i = match kind {
            RefusalLog::Stranger => 0,
            RefusalLog::Busy => 1,
            RefusalLog::InDialog => 2,
            RefusalLog::Dropped => 3,
        };
        self.logs.get(i)?.lock().ok()?.allow(now)
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Refusals {
        Refusals {
            forbidden: self.forbidden.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            timer_too_small: self.timer_too_small.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            in_dialog_forbidden: self.in_dialog_forbidden.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_land_in_their_counters() {
        let c = RefusalCounts::default();
        for s in [403, 403, 486, 422, 480, 500] {
            c.count(s);
        }
        c.count_in_dialog_forbidden();
        c.count_dropped();
        c.count_dropped();
        let want = Refusals {
            forbidden: 2,
            busy: 1,
            timer_too_small: 1,
            unavailable: 2,
            in_dialog_forbidden: 1,
            dropped: 2,
        };
        assert_eq!(c.snapshot(), want);
    }

    #[test]
    fn a_flood_of_refusals_logs_one_line_per_window_per_kind() {
        let c = RefusalCounts::default();
        let t0 = Instant::now();
        let lines = |kind, from: u64, to: u64| {
            (from..to).filter_map(|ms| c.may_log(kind, t0 + Duration::from_millis(ms))).collect::<Vec<_>>()
        };
        // 10,000 refused INVITEs over 10 s: one line, then the next says 9,999.
        assert_eq!(lines(RefusalLog::Stranger, 0, 10_000), vec![0]);
        assert_eq!(lines(RefusalLog::Stranger, 10_000, 10_001), vec![9_999]);
        // Another kind has its own gate: a flood of one never hides the other.
        assert_eq!(lines(RefusalLog::Busy, 5_000, 5_002), vec![0]);
        assert_eq!(lines(RefusalLog::InDialog, 0, 1), vec![0]);
        assert_eq!(lines(RefusalLog::Dropped, 0, 1), vec![0]);
    }
}
