//! Identifiers SIP needs to be unique (Call-ID, tags, Via branches, cnonces), drawn
//! from a small seeded generator so the sans-IO cores stay deterministic in tests;
//! the shell seeds it from the operating system.

/// xorshift64* — not for secrets, only for identifiers that must not collide.
#[derive(Debug, Clone)]
pub struct IdSource {
    state: u64,
}

impl IdSource {
    pub fn from_seed(seed: u64) -> IdSource {
        IdSource { state: seed | 1 }
    }

    /// Seeded from the operating system's random source (falls back to the clock).
    pub fn from_os() -> IdSource {
        let mut b = [0u8; 8];
        if getrandom::getrandom(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15);
            b = t.to_le_bytes();
        }
        IdSource::from_seed(u64::from_le_bytes(b))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` * 16 lower-case hex digits.
    pub fn hex(&mut self, words: usize) -> String {
        (0..words).map(|_| format!("{:016x}", self.next_u64())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::IdSource;

    #[test]
    fn ids_do_not_repeat() {
        let mut s = IdSource::from_seed(0);
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| s.hex(1)).collect();
        assert_eq!(ids.len(), 10_000);
        assert_eq!(s.hex(2).len(), 32);
    }
}
