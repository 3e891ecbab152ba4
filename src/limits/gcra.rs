//! A keyed rate limiter (GCRA, the "virtual scheduling" form of a token bucket): per key one
//! number, the theoretical arrival time (TAT) of the next request. A request at `now` is allowed
//! when `TAT - now <= tolerance` and then moves TAT by one emission interval; a key whose TAT is
//! in the past has its full burst again and is equivalent to no entry. Keys live in a bounded
//! [`Table`].

use super::table::{Slot, Table};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Sustained rate and burst.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    interval: u64,
    tolerance: u64,
}

impl Quota {
    /// `count` requests per `period`, up to `burst` at once (both at least 1).
    pub fn new(count: u32, period: Duration, burst: u32) -> Quota {
        let interval = (period.as_nanos() / u128::from(count.max(1))).clamp(1, u128::from(u64::MAX / 2)) as u64;
        Quota {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1) - 1)),
        }
    }
}

struct Tat(u64);

impl Slot for Tat {
    fn idle(&self, now: u64) -> bool {
        self.0 <= now
    }
    fn rank(&self) -> u64 {
        self.0
    }
}

pub struct Limiter<K> {
    table: Table<K, Tat>,
    quota: Quota,
    origin: Instant,
}

impl<K: Hash + Eq> Limiter<K> {
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        Limiter {
            table: Table::new(max_keys),
            quota,
            origin: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        // Offset by one interval so that "TAT = 0" (never seen) is always in the past.
        (self.origin.elapsed().as_nanos() as u64).saturating_add(self.quota.interval)
    }

    /// Takes one request from the key's budget, or says how long to wait.
    pub fn check(&self, key: K) -> Result<(), Duration> {
        self.check_at(key, self.now())
    }

    /// Whether a request would be allowed now, without taking it.
    pub fn peek(&self, key: &K) -> Result<(), Duration> {
        let now = self.now();
        self.table
            .read(key, now, |t| self.decide(t.map_or(now, |t| t.0.max(now)), now))
    }

    fn decide(&self, tat: u64, now: u64) -> Result<(), Duration> {
        let ahead = tat - now;
        if ahead > self.quota.tolerance {
            Err(Duration::from_nanos(ahead - self.quota.tolerance))
        } else {
            Ok(())
        }
    }

    fn check_at(&self, key: K, now: u64) -> Result<(), Duration> {
        self.table.update(key, now, |slot| {
            let tat = slot.as_ref().map_or(now, |t| t.0.max(now));
            self.decide(tat, now)?;
            *slot = Some(Tat(tat + self.quota.interval));
            Ok(())
        })
    }

    pub fn sweep(&self) {
        self.table.sweep(self.now());
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_sustained_rate() {
        // 1 per second, burst 3.
        let l: Limiter<&str> = Limiter::new(Quota::new(1, Duration::from_secs(1), 3), 100);
        let t0 = 10 * S;
        for _ in 0..3 {
            assert!(l.check_at("a", t0).is_ok());
        }
        let wait = l.check_at("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        // Another key has its own budget.
        assert!(l.check_at("b", t0).is_ok());
        // One more after one interval, not two.
        assert!(l.check_at("a", t0 + S).is_ok());
        assert!(l.check_at("a", t0 + S).is_err());
        // A refused request takes nothing.
        assert!(l.check_at("a", t0 + 2 * S).is_ok());
    }

    #[test]
    fn peek_takes_nothing() {
        let l: Limiter<&str> = Limiter::new(Quota::new(1, Duration::from_secs(60), 1), 100);
        assert!(l.peek(&"a").is_ok());
        assert!(l.peek(&"a").is_ok());
        assert!(l.check("a").is_ok());
        assert!(l.peek(&"a").is_err());
        assert!(l.check("a").is_err());
    }

    #[test]
    fn key_space_is_bounded() {
        let l: Limiter<u64> = Limiter::new(Quota::new(1, Duration::from_secs(3600), 1), 1000);
        for k in 0..50_000 {
            let _ = l.check(k);
        }
        assert!(l.len() <= 1000, "{}", l.len());
    }
}
