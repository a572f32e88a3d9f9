//! A gate for log lines that hostile or broken peers can trigger at will: at most one
//! line per interval, and the next line says how many were held back.

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

#[cfg(test)]
mod tests {
    use super::*;

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
