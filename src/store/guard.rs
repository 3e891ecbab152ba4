//! The store as callers see it: every operation bounded in time, and a failing database answered
//! fast. Every `Store` call of a `SqlStore` goes through its `Guard`:
//!
//! - each call runs under `store.timeout`; one that does not finish in time fails with
//!   `StoreError::Unavailable` (the HTTP layer answers 503 `temporarily_unavailable` with
//!   `Retry-After`). A database that hangs (PostgreSQL stopped with `SIGSTOP`, a stalled disk)
//!   therefore costs a request at most the timeout, never a hang;
//! - after a timeout the guard is *open* for `COOL_DOWN`: calls fail at once instead of each
//!   waiting out the timeout on a database known to hang, so a stalled database neither ties up
//!   every connection slot nor lets waiting requests pile up. The first call after the cool-down
//!   goes through again; any success closes the guard;
//! - `ping` (readiness) and `sweep` (background) ignore the open state: readiness must look at
//!   the database itself, and `/readyz` is how an operator sees recovery.
//!
//! Errors the database answers with (connection refused, disk full, read-only file) already come
//! back fast and are passed through unchanged; they do not open the guard.
//!
//! A timed-out call is abandoned, not undone: a write may still commit after its caller was told
//! 503. Every store operation is one transaction, so the outcome is one of the two states a lost
//! response leaves (the crash-consistency rule of `docs/reliability.md`), never a partial write.

use super::{Result, StoreError};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How long calls fail fast after a call timed out.
const COOL_DOWN: Duration = Duration::from_secs(1);

/// A time limit and a fail-fast switch (see the module comment).
pub struct Guard {
    pub(crate) timeout: Duration,
    /// Milliseconds (process clock) until which calls fail fast; 0 when closed.
    open_until_ms: AtomicI64,
    started: std::time::Instant,
}

impl Guard {
    pub fn new(timeout: Duration) -> Guard {
        Guard {
            timeout,
            open_until_ms: AtomicI64::new(0),
            started: std::time::Instant::now(),
        }
    }

    fn clock_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Runs one store call under the timeout and the open switch.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let open_until = self.open_until_ms.load(Ordering::Relaxed);
        if open_until != 0 && self.clock_ms() < open_until {
            return Err(StoreError::Unavailable(format!(
                "{op}: the database timed out less than {}s ago",
                COOL_DOWN.as_secs()
            )));
        }
        self.bounded(op, self.timeout, fut).await
    }

    /// Runs a call under `limit` without looking at the open switch.
    pub(crate) async fn bounded<T>(
        &self,
        op: &'static str,
        limit: Duration,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => {
                if r.is_ok() && self.open_until_ms.load(Ordering::Relaxed) != 0 {
                    self.open_until_ms.store(0, Ordering::Relaxed);
                    tracing::info!("store answering again");
                }
                r
            }
            Err(_) => {
                self.open_until_ms
                    .store(self.clock_ms() + COOL_DOWN.as_millis() as i64, Ordering::Relaxed);
                metrics::counter!("autional_store_timeouts_total").increment(1);
                Err(StoreError::Unavailable(format!(
                    "{op}: no answer from the database within {} ms",
                    limit.as_millis()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_but_a_conflict_is_an_outage() {
        assert!(StoreError::Backend("x".into()).is_outage());
        assert!(StoreError::Unavailable("x".into()).is_outage());
        assert!(!StoreError::Conflict("x".into()).is_outage());
        let e = crate::domain::error::OAuthError::from(StoreError::Backend("disk full".into()));
        assert_eq!(
            (e.status, e.code, e.retry_after),
            (503, crate::domain::error::ErrorCode::TemporarilyUnavailable, Some(1))
        );
    }
}
