//! The store as callers see it: every operation bounded in time, and a failing database answered
//! fast. `Guarded` wraps a backend and implements the same `Store` trait:
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

use super::*;
use crate::domain::model::RevocationReason;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How long calls fail fast after a call timed out.
const COOL_DOWN: Duration = Duration::from_secs(1);

/// A backend behind a timeout and a fail-fast switch (see the module comment).
pub struct Guarded {
    inner: DynStore,
    timeout: Duration,
    /// Milliseconds (process clock) until which calls fail fast; 0 when closed.
    open_until_ms: AtomicI64,
    started: std::time::Instant,
}

impl Guarded {
    pub fn new(inner: DynStore, timeout: Duration) -> Guarded {
        Guarded {
            inner,
            timeout,
            open_until_ms: AtomicI64::new(0),
            started: std::time::Instant::now(),
        }
    }

    fn clock_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Runs one store call under the timeout and the open switch.
    async fn call<T>(&self, op: &'static str, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
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
    async fn bounded<T>(
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

/// Implements `Store` for `Guarded` by sending each listed method through `call`.
macro_rules! guarded_store {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        #[async_trait]
        impl Store for Guarded {
            async fn ping(&self) -> Result<()> {
                self.bounded("ping", self.timeout, self.inner.ping()).await
            }

            async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
                // A sweep works through large deletes in the background: a longer bound.
                self.bounded("sweep", self.timeout * 20, self.inner.sweep(now_ms, policy)).await
            }

            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
                    self.call(stringify!($name), self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

guarded_store! {
    fn insert_client(&self, client: Client) -> ();
    fn get_client(&self, id: &str) -> Option<Client>;
    fn list_clients(&self) -> Vec<Client>;
    fn delete_client(&self, id: &str, now_ms: i64) -> bool;
    fn set_client_secrets(&self, id: &str, secrets: Vec<SecretHash>) -> bool;
    fn update_client(&self, client: Client) -> bool;
    fn insert_user(&self, user: User) -> ();
    fn get_user(&self, id: &str) -> Option<User>;
    fn find_user_by_username(&self, username: &str) -> Option<User>;
    fn set_password(&self, user_id: &str, password_hash: &str, now_ms: i64) -> bool;
    fn delete_user(&self, user_id: &str, now_ms: i64) -> bool;
    fn revoke_consent(&self, user_id: &str, client_id: &str, now_ms: i64) -> u64;
    fn list_user_families(&self, user_id: &str) -> Vec<Family>;
    fn revoke_user_family(&self, user_id: &str, family_id: &str, reason: RevocationReason, now_ms: i64) -> bool;
    fn insert_device(&self, device: DeviceCode) -> ();
    fn find_device(&self, user_code: &str) -> Option<DeviceCode>;
    fn decide_device(&self, user_code: &str, approval: Option<(String, String, i64)>, now_ms: i64) -> bool;
    fn poll_device(&self, req: PollDevice) -> DeviceOutcome;
    fn list_keys(&self) -> Vec<KeyRecord>;
    fn add_key(&self, key: KeyRecord) -> ();
    fn ensure_key(&self, key: KeyRecord) -> ();
    fn server_secret(&self, name: &str, candidate: Vec<u8>) -> Vec<u8>;
    fn insert_session(&self, session: Session) -> ();
    fn get_session_by_token(&self, token_hash: [u8; 32]) -> Option<Session>;
    fn end_session(&self, id: &str, now_ms: i64) -> u64;
    fn list_user_sessions(&self, user_id: &str) -> Vec<Session>;
    fn get_consent(&self, user_id: &str, client_id: &str) -> Option<String>;
    fn save_consent(&self, user_id: &str, client_id: &str, scope: &str, now_ms: i64) -> ();
    fn insert_code(&self, code: AuthCode) -> ();
    fn redeem_code(&self, req: RedeemCode) -> RedeemOutcome;
    fn rotate_refresh(&self, req: RotateRequest) -> RotateOutcome;
    fn find_refresh(&self, hash: [u8; 32]) -> Option<(i64, Family)>;
    fn get_family(&self, id: &str) -> Option<Family>;
    fn revoke_family(&self, id: &str, reason: RevocationReason, now_ms: i64) -> bool;
    fn revoke_access_token(&self, jti: &str, expires_at_ms: i64) -> ();
    fn is_access_token_revoked(&self, jti: &str) -> bool;
    fn audit(&self, event: AuditEvent, now_ms: i64) -> ();
    fn use_dpop_jti(&self, key: [u8; 32], expires_at_ms: i64) -> bool;
    fn insert_par(&self, request: ParRequest) -> ();
    fn get_par(&self, hash: [u8; 32]) -> Option<ParRequest>;
    fn mark_par_used(&self, hash: [u8; 32], now_ms: i64) -> bool;
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
