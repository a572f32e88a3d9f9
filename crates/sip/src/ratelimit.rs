//! Limits for what hostile or broken peers can trigger at will. [`RateLimit`]: a
//! gate for log lines, at most one per interval, and the next line says how many
//! were held back. [`SourceBudget`]: a token bucket per source address for the
//! requests strangers send, in a table of bounded size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub const fn new(every: Duration) -> RateLimit {
        RateLimit { every, last: None, suppressed: 0 }
    }

    /// Some(number held back since the last line) when a line may be written now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// One source's tokens (fractional, refilled continuously).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per source IP: `burst` requests at once, then `per_second`.
///
/// The table holds at most `max_sources` addresses, so a flood with spoofed
/// source addresses cannot grow memory: when it is full, idle entries (refilled to
/// `burst`, indistinguishable from new ones) are pruned at most once a second, and
/// addresses that still find no room share one overflow bucket. Sans-IO: the
/// caller passes `now`.
#[derive(Debug)]
pub struct SourceBudget {
    per_second: f64,
    burst: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, Bucket>,
    overflow: Option<Bucket>,
    last_prune: Option<Instant>,
    dropped: u64,
}

impl SourceBudget {
    pub fn new(per_second: u32, burst: u32, max_sources: usize) -> SourceBudget {
        SourceBudget {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            max_sources,
            buckets: HashMap::with_capacity(max_sources.min(4096)),
            overflow: None,
            last_prune: None,
            dropped: 0,
        }
    }

    /// Spend one token of `source`'s budget: false (and counted) when it has none.
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= self.max_sources {
            self.prune(now);
        }
        let (per_second, burst) = (self.per_second, self.burst);
        let fresh = Bucket { tokens: burst, last: now };
        let bucket = if self.buckets.len() < self.max_sources || self.buckets.contains_key(&source) {
            self.buckets.entry(source).or_insert(fresh)
        } else {
            self.overflow.get_or_insert(fresh)
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Forget the sources whose bucket has refilled: they start afresh anyway.
    fn prune(&mut self, now: Instant) {
        if self.last_prune.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        self.last_prune = Some(now);
        let (per_second, burst) = (self.per_second, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * per_second < burst
        });
    }

    /// Requests refused so far.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sources with a bucket of their own.
    #[cfg(test)]
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn a_burst_then_the_rate_per_source() {
        let t0 = Instant::now();
        let mut b = SourceBudget::new(5, 20, 16);
        let allowed = (0..2_000).filter(|_| b.allow(t0, ip(1))).count();
        assert_eq!(allowed, 20, "the burst, then nothing at the same instant");
        assert_eq!(b.dropped(), 1_980);
        // Another source has its own bucket.
        assert!(b.allow(t0, ip(2)));
        // One second later: five more for the flooder.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| b.allow(t1, ip(1))).count(), 5);
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(3_600);
        assert_eq!((0..100).filter(|_| b.allow(t2, ip(1))).count(), 20);
    }

    #[test]
    fn spoofed_sources_never_grow_the_table() {
        let t0 = Instant::now();
        let mut b = SourceBudget::new(5, 20, 64);
        for i in 0..64 {
            assert!(b.allow(t0, ip(i)));
        }
        // 100,000 more addresses within one second: all share the overflow bucket.
        let through = (64..100_064).filter(|i| b.allow(t0, ip(*i))).count();
        assert_eq!(through, 20);
        assert_eq!(b.sources(), 64);
        // A known source keeps its own budget through the flood.
        assert!(b.allow(t0, ip(3)));
        // Once the old entries have refilled, they are pruned and new ones get room.
        let later = t0 + Duration::from_secs(10);
        assert!(b.allow(later, ip(500_000)));
        assert!(b.sources() <= 64);
        assert!(b.allow(later, ip(500_001)));
    }

    #[test]
    fn one_line_per_interval_then_the_count() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(Duration::from_secs(10));
        assert_eq!(r.allow(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(r.allow(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(r.allow(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(r.allow(t0 + Duration::from_secs(11)), None);
    }
}
