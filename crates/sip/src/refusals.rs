//! Counts of INVITEs refused before they became calls: the application never sees
//! those, so this is how it can report them (e.g. as metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared counters, bumped by the INVITE router.
#[derive(Debug, Default)]
pub struct RefusalCounts {
    forbidden: AtomicU64,
    busy: AtomicU64,
    timer_too_small: AtomicU64,
    unavailable: AtomicU64,
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

    /// The counts so far.
    pub fn snapshot(&self) -> Refusals {
        Refusals {
            forbidden: self.forbidden.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            timer_too_small: self.timer_too_small.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
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
        assert_eq!(c.snapshot(), Refusals { forbidden: 2, busy: 1, timer_too_small: 1, unavailable: 2 });
    }
}
