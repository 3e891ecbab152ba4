//! How many refreshes each client made, for the admin API's stats (`refreshes_24h`). A rotation
//! writes no row of its own (issue 12), and a counter row updated by every refresh would make
//! all of one client's refreshes queue on one row lock; so each process counts in memory
//! ([`RefreshCounts::record`]: one uncontended lock of one of 16 shards) and adds its counts to
//! the database every [`FLUSH_EVERY`] ([`flush`]), into buckets of [`BUCKET_MS`] per client
//! (`refresh_counts`; buckets older than [`KEEP_MS`] are dropped then). A count is therefore at
//! most one flush late in other processes, and a process that dies loses at most its last
//! interval's counts — figures for an operator, not for billing.

use crate::store::{DynStore, StoreError};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

/// The width of a stored bucket: "the last 24 hours" is counted to within this.
pub const BUCKET_MS: i64 = 600_000;
/// How long buckets are kept (the stats read 24 hours).
pub const KEEP_MS: i64 = 2 * 86_400_000;
/// How often a process adds its counts to the database.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

const SHARDS: usize = 16;

/// This process's refreshes by client since its last flush.
pub struct RefreshCounts {
    hasher: RandomState,
    shards: [Mutex<HashMap<String, i64>>; SHARDS],
}

impl Default for RefreshCounts {
    fn default() -> Self {
        RefreshCounts {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl RefreshCounts {
    fn shard(&self, client_id: &str) -> &Mutex<HashMap<String, i64>> {
        &self.shards[self.hasher.hash_one(client_id) as usize % SHARDS]
    }

    /// One refresh of `client_id` (a rotation issued).
    pub fn record(&self, client_id: &str) {
        self.add(client_id, 1);
    }

    fn add(&self, client_id: &str, n: i64) {
        let mut m = self.shard(client_id).lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(client_id) {
            Some(c) => *c += n,
            None => {
                m.insert(client_id.to_string(), n);
            }
        }
    }

    /// The refreshes of `client_id` not yet in the database.
    pub fn pending(&self, client_id: &str) -> i64 {
        let m = self.shard(client_id).lock().unwrap_or_else(|e| e.into_inner());
        m.get(client_id).copied().unwrap_or(0)
    }

    /// Takes every pending count (they are this caller's to store, or to [`Self::put_back`]).
    pub fn take(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for s in &self.shards {
            let mut m = s.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(m.drain());
        }
        out
    }

    /// Counts that could not be stored, kept for the next flush.
    pub fn put_back(&self, counts: Vec<(String, i64)>) {
        for (id, n) in counts {
            self.add(&id, n);
        }
    }
}

/// The bucket `at_ms` falls in.
pub fn bucket(at_ms: i64) -> i64 {
    at_ms - at_ms.rem_euclid(BUCKET_MS)
}

/// Adds the pending counts to the database (into the current bucket) and drops old buckets; on
/// failure the counts stay pending.
pub async fn flush(counts: &RefreshCounts, store: &DynStore, now_ms: i64) -> Result<(), StoreError> {
    let pending = counts.take();
    match store
        .add_refresh_counts(pending.clone(), bucket(now_ms), now_ms - KEEP_MS)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            counts.put_back(pending);
            Err(e)
        }
    }
}

/// Refreshes of `client_id` in the last 24 hours: the stored buckets that overlap them, and
/// this process's pending count.
pub async fn last_day(
    counts: &RefreshCounts,
    store: &DynStore,
    client_id: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let stored = store.count_refreshes(client_id, bucket(now_ms - 86_400_000)).await?;
    Ok(stored + counts.pending(client_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_client_and_taken_once() {
        let c = RefreshCounts::default();
        for _ in 0..3 {
            c.record("a");
        }
        c.record("b");
        assert_eq!((c.pending("a"), c.pending("b"), c.pending("x")), (3, 1, 0));
        let mut taken = c.take();
        taken.sort();
        assert_eq!(taken, vec![("a".to_string(), 3), ("b".to_string(), 1)]);
        assert_eq!(c.pending("a"), 0);
        c.record("a");
        c.put_back(taken);
        assert_eq!((c.pending("a"), c.pending("b")), (4, 1));
    }

    #[test]
    fn buckets_start_on_their_boundary() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(BUCKET_MS - 1), 0);
        assert_eq!(bucket(BUCKET_MS), BUCKET_MS);
        assert_eq!(bucket(5 * BUCKET_MS + 7), 5 * BUCKET_MS);
    }
}
