//! Clients' JWK Sets fetched from their `jwks_uri` (RFC 7591 §2) for `private_key_jwt`: a
//! cache keyed by URL with single flight, negative caching and a bounded size, on top of the
//! policy-checked, size- and time-capped [`Outbound`] client.
//!
//! - Keyed by URL, not by client: a client whose `jwks_uri` changes (RFC 7592 update, CLI) is
//!   verified with the new URL's keys at once, in every process, because each process reads
//!   the client record fresh and so looks up the new URL.
//! - Single flight: one async lock per URL; a caller that finds a fetch in progress waits for
//!   it and takes its result, so N concurrent assertions cause one request.
//! - A fetched set is used for `client_auth.jwks_cache_ttl`; an unknown `kid` refetches, but
//!   not within `MIN_REFETCH_MS` of the last attempt.
//! - Failures are cached with exponential back-off (`BACKOFF_MIN_MS` doubling up to
//!   `BACKOFF_MAX_MS`): until it passes, callers get the cached failure without a request. A
//!   refusal because every outbound slot is busy is not cached (nothing was sent).
//! - At most `client_auth.jwks_cache_entries` URLs are kept: past that the least recently used
//!   entries not in use are dropped, so URLs of deleted clients do not pile up.
//!
//! Design note: `docs/design/jwks-fetch.md`.

use crate::outbound::{FetchError, Outbound};
use crate::util::now_ms;
use jsonwebtoken::jwk::JwkSet;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The least time between two fetches of one URL (an unknown `kid` refetches).
pub const MIN_REFETCH_MS: i64 = 10_000;
/// The first back-off after a failed fetch; it doubles with each failure in a row.
pub const BACKOFF_MIN_MS: i64 = 5_000;
/// The longest back-off.
pub const BACKOFF_MAX_MS: i64 = 300_000;

/// A fetch that failed now or earlier (cached), and when to try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwksFailure {
    pub error: FetchError,
    /// Seconds until this URL is fetched again (at least 1).
    pub retry_after_s: u64,
}

#[derive(Default)]
struct State {
    /// The last good set and when it was fetched.
    keys: Option<(i64, Arc<JwkSet>)>,
    /// When a request was last sent (good or not).
    last_attempt_ms: i64,
    /// The last failure, while no fetch has succeeded since.
    failure: Option<Failure>,
}

struct Failure {
    error: FetchError,
    until_ms: i64,
    streak: u32,
}

struct Slot {
    state: tokio::sync::Mutex<State>,
    last_used_ms: AtomicI64,
}

pub struct JwksFetcher {
    outbound: Outbound,
    slots: std::sync::Mutex<HashMap<String, Arc<Slot>>>,
    ttl_ms: i64,
    max_entries: usize,
}

fn secs_until(until_ms: i64, now: i64) -> u64 {
    (((until_ms - now).max(0) + 999) / 1000).max(1) as u64
}

impl JwksFetcher {
    pub fn new(outbound: Outbound, ttl_ms: i64, max_entries: usize) -> JwksFetcher {
        JwksFetcher {
            outbound,
            slots: Default::default(),
            ttl_ms,
            max_entries: max_entries.max(1),
        }
    }

    /// The JWK Set at `url`. `refresh` asks for a newer one than the cached (an unknown `kid`);
    /// it is fetched only when the last attempt is at least `MIN_REFETCH_MS` old.
    pub async fn get(&self, url: &str, refresh: bool) -> Result<Arc<JwkSet>, JwksFailure> {
        let slot = self.slot(url);
        let mut st = slot.state.lock().await;
        // Read the clock after the wait: a fetch by another caller may have just finished.
        let now = now_ms();
        let fresh = st
            .keys
            .as_ref()
            .filter(|(at, _)| now - at < self.ttl_ms)
            .map(|(_, k)| k.clone());
        if let Some(k) = &fresh {
            if !refresh || now - st.last_attempt_ms < MIN_REFETCH_MS {
                return Ok(k.clone());
            }
        }
        if let Some(f) = st.failure.as_ref().filter(|f| now < f.until_ms) {
            return match fresh {
                Some(k) => Ok(k),
                None => Err(JwksFailure {
                    error: f.error.clone(),
                    retry_after_s: secs_until(f.until_ms, now),
                }),
            };
        }
        let result = match self.outbound.get(url).await {
            Ok(body) => {
                serde_json::from_slice::<JwkSet>(&body).map_err(|_| FetchError::BadResponse("not a JWK Set".into()))
            }
            Err(FetchError::Busy) => {
                return Err(JwksFailure {
                    error: FetchError::Busy,
                    retry_after_s: 1,
                })
            }
            Err(e) => Err(e),
        };
        let done = now_ms();
        st.last_attempt_ms = done;
        match result {
            Ok(set) => {
                let set = Arc::new(set);
                st.keys = Some((done, set.clone()));
                st.failure = None;
                Ok(set)
            }
            Err(error) => {
                let streak = st.failure.as_ref().map_or(0, |f| f.streak).saturating_add(1);
                let backoff = BACKOFF_MIN_MS
                    .saturating_mul(1i64 << (streak - 1).min(16))
                    .min(BACKOFF_MAX_MS);
                let until_ms = done + backoff;
                st.failure = Some(Failure {
                    error: error.clone(),
                    until_ms,
                    streak,
                });
                match fresh {
                    // A failed refresh keeps the fresh set in use.
                    Some(k) => Ok(k),
                    None => Err(JwksFailure {
                        error,
                        retry_after_s: secs_until(until_ms, done),
                    }),
                }
            }
        }
    }

    /// URLs currently cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.slots.lock().expect("jwks slots").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for `url`, created if needed; makes room first when the cache is full.
    fn slot(&self, url: &str) -> Arc<Slot> {
        let now = now_ms();
        let mut slots = self.slots.lock().expect("jwks slots");
        if let Some(s) = slots.get(url) {
            s.last_used_ms.store(now, Ordering::Relaxed);
            return s.clone();
        }
        if slots.len() >= self.max_entries {
            evict(&mut slots, self.max_entries);
        }
        let s = Arc::new(Slot {
            state: Default::default(),
            last_used_ms: AtomicI64::new(now),
        });
        slots.insert(url.to_string(), s.clone());
        s
    }
}

/// Drops the least recently used quarter of the entries that no caller holds. Entries in use
/// stay (there are at most as many as requests in progress).
fn evict(slots: &mut HashMap<String, Arc<Slot>>, max: usize) {
    let mut idle: Vec<(i64, String)> = slots
        .iter()
        .filter(|(_, s)| Arc::strong_count(s) == 1)
        .map(|(u, s)| (s.last_used_ms.load(Ordering::Relaxed), u.clone()))
        .collect();
    idle.sort_unstable();
    for (_, u) in idle.into_iter().take((max / 4).max(1)) {
        slots.remove(&u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{AddressPolicy, Limits};
    use std::time::Duration;

    fn fetcher(max_entries: usize) -> JwksFetcher {
        let limits = Limits {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_bytes: 1024,
            concurrency: 2,
        };
        JwksFetcher::new(
            Outbound::new(AddressPolicy::default(), limits).unwrap(),
            60_000,
            max_entries,
        )
    }

    #[tokio::test]
    async fn refused_urls_are_cached_with_back_off_and_the_cache_is_bounded() {
        let f = fetcher(4);
        // Loopback is not allowed by default: refused before any connection, and cached.
        let e = f.get("http://127.0.0.1:9/jwks", false).await.unwrap_err();
        assert!(matches!(e.error, FetchError::Refused(_)), "{e:?}");
        assert_eq!(e.retry_after_s, (BACKOFF_MIN_MS / 1000) as u64);
        let again = f.get("http://127.0.0.1:9/jwks", true).await.unwrap_err();
        assert_eq!(again.error, e.error);
        for i in 0..20 {
            let _ = f.get(&format!("http://10.0.0.{i}/jwks"), false).await;
            assert!(f.len() <= 4, "bounded: {}", f.len());
        }
    }
}
