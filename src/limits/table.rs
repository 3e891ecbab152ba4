//! A bounded map from a limit's key to its state, shared by the rate limiters and the account
//! back-off. Keys are spread over shards, each a `Mutex<HashMap>` holding at most
//! `max_keys / SHARDS` entries. An entry whose state is back to "never seen" (idle) is dropped
//! when room is needed and by [`Table::sweep`]; when a shard is full of live entries, the eighth
//! of it that is closest to idle is evicted (amortised O(1) per insert). Memory is therefore
//! bounded whatever the number of distinct keys an attacker sends; the price is that under such
//! a flood some keys lose their state early (documented in `docs/design/rate-limits.md`).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 16;

/// What a table needs to know about a state.
pub trait Slot {
    /// The state is equivalent to no entry at all at time `now` (nanoseconds).
    fn idle(&self, now: u64) -> bool;
    /// Eviction order when a shard is full: the smallest rank is evicted first.
    fn rank(&self) -> u64;
}

pub struct Table<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq, V: Slot> Table<K, V> {
    /// A table holding at most `max_keys` entries (at least one per shard).
    pub fn new(max_keys: usize) -> Self {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (max_keys / SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the key's state (`None`: no entry) and stores what it leaves (`None`
    /// removes the entry), making room first when a new key would overflow its shard.
    pub fn update<R>(&self, key: K, now: u64, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        let mut shard = self.shard(&key);
        let mut slot = shard.remove(&key).filter(|v| !v.idle(now));
        let r = f(&mut slot);
        if let Some(v) = slot {
            if shard.len() >= self.per_shard {
                make_room(&mut shard, self.per_shard, now);
            }
            shard.insert(key, v);
        }
        r
    }

    /// Reads the key's state without changing anything.
    pub fn read<R>(&self, key: &K, now: u64, f: impl FnOnce(Option<&V>) -> R) -> R {
        let shard = self.shard(key);
        f(shard.get(key).filter(|v| !v.idle(now)))
    }

    /// Drops idle entries and returns memory of shards that shrank (called periodically).
    pub fn sweep(&self, now: u64) {
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            s.retain(|_, v| !v.idle(now));
            if s.capacity() > 2 * s.len() + 16 {
                s.shrink_to_fit();
            }
        }
    }

    /// Number of entries (idle ones included until swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }
}

/// Drops idle entries; if that frees less than an eighth of the shard, evicts the lowest-ranked
/// entries down to seven eighths.
fn make_room<K: Hash + Eq, V: Slot>(shard: &mut HashMap<K, V>, per_shard: usize, now: u64) {
    shard.retain(|_, v| !v.idle(now));
    let keep = (per_shard - per_shard / 8).min(per_shard - 1);
    if shard.len() <= keep {
        return;
    }
    let mut ranks: Vec<u64> = shard.values().map(Slot::rank).collect();
    let drop = ranks.len() - keep;
    let (_, nth, _) = ranks.select_nth_unstable(drop - 1);
    let threshold = *nth;
    // Ties at the threshold may evict a few more than needed; never fewer.
    shard.retain(|_, v| v.rank() > threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state that is live until `until`.
    struct Until(u64);
    impl Slot for Until {
        fn idle(&self, now: u64) -> bool {
            now >= self.0
        }
        fn rank(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let t: Table<u32, Until> = Table::new(160);
        for k in 0..100_000u32 {
            t.update(k, 0, |s| *s = Some(Until(u64::from(k) + 1)));
            assert!(t.len() <= t.capacity());
        }
        assert!(t.len() <= 160);
        // The most recent (highest-ranked) keys survive eviction.
        assert!(t.read(&99_999, 0, |v| v.is_some()));
    }

    #[test]
    fn idle_entries_count_as_absent_and_are_swept() {
        let t: Table<u32, Until> = Table::new(1000);
        t.update(1, 0, |s| *s = Some(Until(10)));
        assert!(t.read(&1, 5, |v| v.is_some()));
        assert!(t.read(&1, 10, |v| v.is_none()));
        t.update(1, 10, |s| assert!(s.is_none()));
        t.update(2, 0, |s| *s = Some(Until(10)));
        t.sweep(20);
        assert!(t.is_empty());
    }
}
