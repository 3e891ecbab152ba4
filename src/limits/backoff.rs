//! Per-account sign-in throttling with exponential back-off. Every attempt counts as a failure
//! when it starts (so parallel attempts cannot share one open slot) and is cleared by a
//! success. After `free` failures, the next attempt must wait `base · 2^(failures − free)`,
//! capped at `max`, from the last one; attempts during the wait are refused without checking
//! the password. Failures are forgotten after [`FORGET`] without attempts.
//!
//! Trade-off: the wait never exceeds `max` (60 s by default), so an attacker cannot lock an
//! account for longer than that after their last attempt; while an attacker keeps trying, the
//! account owner competes with them for one attempt per `max`, and the attacker gets at most
//! that many guesses. A hard lock-out would stop guessing completely but hand every attacker a
//! way to lock any user out (see `docs/design/rate-limits.md`).

use super::table::{Slot, Table};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Failures without a further attempt for this long are forgotten.
pub const FORGET: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: u64,
}

impl Slot for Failures {
    fn idle(&self, now: u64) -> bool {
        self.count == 0 || now.saturating_sub(self.last) >= FORGET.as_nanos() as u64
    }
    fn rank(&self) -> u64 {
        self.last
    }
}

pub struct Backoff<K> {
    table: Table<K, Failures>,
    free: u32,
    base: u64,
    max: u64,
    origin: Instant,
}

impl<K: Hash + Eq> Backoff<K> {
    /// `free` failures without delay, then waits from `base` doubling up to `max`.
    pub fn new(free: u32, base: Duration, max: Duration, max_keys: usize) -> Self {
        Backoff {
            table: Table::new(max_keys),
            free,
            base: base.as_nanos() as u64,
            max: max.as_nanos() as u64,
            origin: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// The wait after `count` failures.
    fn wait(&self, count: u32) -> u64 {
        if count < self.free {
            return 0;
        }
        let doublings = (count - self.free).min(40);
        self.base.saturating_mul(1u64 << doublings).min(self.max)
    }

    /// Starts an attempt: refused with the remaining wait, or counted as a failure until
    /// [`Backoff::succeeded`] or [`Backoff::cancel`].
    pub fn begin(&self, key: K) -> Result<(), Duration> {
        self.begin_at(key, self.now())
    }

    fn begin_at(&self, key: K, now: u64) -> Result<(), Duration> {
        self.table.update(key, now, |slot| {
            let f = slot.unwrap_or(Failures { count: 0, last: now });
            let open_at = f.last.saturating_add(self.wait(f.count));
            if f.count > 0 && now < open_at {
                return Err(Duration::from_nanos(open_at - now));
            }
            *slot = Some(Failures {
                count: f.count.saturating_add(1),
                last: now,
            });
            Ok(())
        })
    }

    /// The attempt proved the password: the account's failures are cleared.
    pub fn succeeded(&self, key: K) {
        self.table.update(key, self.now(), |slot| *slot = None);
    }

    /// The attempt was not decided (the server was busy): it no longer counts.
    pub fn cancel(&self, key: K) {
        self.table.update(key, self.now(), |slot| {
            if let Some(f) = slot {
                f.count = f.count.saturating_sub(1);
            }
        });
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

    fn throttle() -> Backoff<&'static str> {
        Backoff::new(3, Duration::from_secs(1), Duration::from_secs(8), 100)
    }

    #[test]
    fn free_failures_then_doubling_waits_capped() {
        let b = throttle();
        let t = 100 * S;
        for _ in 0..3 {
            assert!(b.begin_at("alice", t).is_ok());
        }
        assert_eq!(b.begin_at("alice", t), Err(Duration::from_secs(1)));
        assert!(b.begin_at("alice", t + S).is_ok());
        assert_eq!(b.begin_at("alice", t + S), Err(Duration::from_secs(2)));
        assert!(b.begin_at("alice", t + 3 * S).is_ok());
        assert_eq!(b.begin_at("alice", t + 3 * S), Err(Duration::from_secs(4)));
        assert!(b.begin_at("alice", t + 7 * S).is_ok());
        assert_eq!(b.begin_at("alice", t + 7 * S), Err(Duration::from_secs(8)));
        assert!(b.begin_at("alice", t + 15 * S).is_ok());
        // Capped at the maximum.
        assert_eq!(b.begin_at("alice", t + 15 * S), Err(Duration::from_secs(8)));
        // Other accounts are not affected.
        assert!(b.begin_at("bob", t + 15 * S).is_ok());
    }

    #[test]
    fn success_resets_and_failures_are_forgotten() {
        let b = throttle();
        for _ in 0..4 {
            let _ = b.begin_at("alice", 0);
        }
        assert!(b.begin_at("alice", 0).is_err());
        b.table.update("alice", 0, |s| *s = None);
        assert!(b.begin_at("alice", 0).is_ok());
        for _ in 0..4 {
            let _ = b.begin_at("bob", 0);
        }
        let later = FORGET.as_nanos() as u64 + 1;
        assert!(b.begin_at("bob", later).is_ok());
        assert!(b.begin_at("bob", later).is_ok(), "forgotten: free failures again");
    }

    #[test]
    fn cancel_gives_the_attempt_back() {
        let b = throttle();
        for _ in 0..3 {
            let _ = b.begin_at("alice", 0);
        }
        b.cancel("alice");
        assert!(b.begin_at("alice", 0).is_ok());
        assert!(b.begin_at("alice", 0).is_err());
    }
}
