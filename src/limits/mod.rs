//! Abuse limits of one server process: rate limits (GCRA) per client address, per
//! authenticated client and per signed-in user; per-account sign-in back-off; and the bound on
//! concurrent password hashes. The HTTP handlers call the methods of [`Limits`] and turn a
//! refusal into a response; the rules live here. Design and threat model:
//! `docs/design/rate-limits.md`.
//!
//! Every address-keyed limit uses [`address_key`] (IPv6 by /64, IPv4-mapped as IPv4), and every
//! keyed state lives in a bounded table (`rate_limit.max_keys` keys per limiter).

pub mod address;
pub mod backoff;
pub mod gcra;
pub mod hashing;
pub mod table;

pub use address::address_key;

use crate::config::Config;
use crate::domain::error::OAuthError;
use crate::domain::model::Client;
use backoff::Backoff;
use gcra::{Limiter, Quota};
use hashing::HashGate;
use std::net::IpAddr;
use std::time::Duration;

/// A refusal's `Retry-After` in whole seconds (at least 1).
fn retry_after(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn limited(wait: Duration) -> OAuthError {
    OAuthError::rate_limited(retry_after(wait))
}

/// The 503 of a request that found every password-hash slot busy.
pub fn busy() -> OAuthError {
    let mut e = OAuthError::new(
        503,
        crate::domain::error::ErrorCode::TemporarilyUnavailable,
        "the server is busy, retry shortly",
    );
    e.retry_after = Some(1);
    e
}

/// Which per-client budget an authenticated request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Token, refresh, PAR and device authorization.
    Token,
    /// Introspection and revocation.
    Introspection,
}

/// How a sign-in attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    Succeeded,
    Failed,
    /// Not decided (no hash slot): the attempt does not count.
    NotChecked,
}

/// The account back-off key: a digest of the username as typed (usernames match exactly), so
/// that long names cost no more memory than short ones. Unknown usernames are throttled the
/// same way, so the throttle does not tell which accounts exist.
fn account_key(username: &str) -> [u8; 32] {
    crate::util::sha256(username.as_bytes())
}

pub struct Limits {
    enabled: bool,
    /// Client-authenticated endpoints, per address.
    address: Limiter<IpAddr>,
    /// Failed client authentications, per address.
    failed_auth: Limiter<IpAddr>,
    /// Token-ish requests per authenticated confidential client.
    client: Limiter<String>,
    /// Introspection and revocation per authenticated confidential client.
    introspection: Limiter<String>,
    login: Limiter<IpAddr>,
    account: Backoff<[u8; 32]>,
    user_code_address: Limiter<IpAddr>,
    user_code_user: Limiter<String>,
    registration: Limiter<IpAddr>,
    hashes: HashGate,
}

impl Limits {
    pub fn new(cfg: &Config) -> Limits {
        let r = &cfg.rate_limit;
        let keys = r.max_keys;
        let sec = Duration::from_secs(1);
        let min = Duration::from_secs(60);
        let user_codes = cfg.device.user_code_attempts_per_minute;
        Limits {
            enabled: r.enabled,
            address: Limiter::new(Quota::new(r.address_per_second, sec, r.address_burst), keys),
            failed_auth: Limiter::new(
                Quota::new(r.failed_client_auth_per_minute, min, r.failed_client_auth_per_minute),
                keys,
            ),
            client: Limiter::new(Quota::new(r.token_per_second, sec, r.token_burst), keys),
            introspection: Limiter::new(Quota::new(r.introspection_per_second, sec, r.introspection_burst), keys),
            login: Limiter::new(Quota::new(r.login_per_minute, min, r.login_per_minute), keys),
            account: Backoff::new(r.account_free_failures, sec, r.account_max_backoff.0, keys),
            user_code_address: Limiter::new(Quota::new(user_codes, min, user_codes), keys),
            user_code_user: Limiter::new(Quota::new(user_codes, min, user_codes), keys),
            registration: Limiter::new(
                Quota::new(
                    r.registration_per_hour,
                    Duration::from_secs(3600),
                    r.registration_per_hour,
                ),
                keys,
            ),
            hashes: HashGate::new(r.max_concurrent_hashes, Duration::from_millis(r.hash_wait_ms)),
        }
    }

    /// Before client authentication: the address's request budget (taken) and its
    /// failed-authentication budget (only looked at). Nothing is charged to the client the
    /// request claims to be: it has not proved it yet.
    pub fn before_client_auth(&self, ip: IpAddr) -> Result<(), OAuthError> {
        if !self.enabled {
            return Ok(());
        }
        let key = address_key(ip);
        self.address.check(key).map_err(limited)?;
        self.failed_auth.peek(&key).map_err(limited)
    }

    /// A client authentication from `ip` failed (`invalid_client`).
    pub fn client_auth_failed(&self, ip: IpAddr) {
        if self.enabled {
            let _ = self.failed_auth.check(address_key(ip));
        }
    }

    /// After authentication: the client's own budget. Public clients prove nothing (anyone can
    /// name them), so they have none: their users are limited per address only.
    pub fn after_client_auth(&self, client: &Client, budget: Budget) -> Result<(), OAuthError> {
        if !self.enabled || client.is_public() {
            return Ok(());
        }
        let limiter = match budget {
            Budget::Token => &self.client,
            Budget::Introspection => &self.introspection,
        };
        limiter.check(client.id.clone()).map_err(limited)
    }

    /// Starts a sign-in attempt for `username` from `ip`: the address's budget, then the
    /// account's back-off. The attempt counts as failed until [`Limits::end_sign_in`] says
    /// otherwise.
    pub fn begin_sign_in(&self, ip: IpAddr, username: &str) -> Result<(), OAuthError> {
        if self.enabled {
            self.login.check(address_key(ip)).map_err(limited)?;
        }
        self.account.begin(account_key(username)).map_err(limited)
    }

    pub fn end_sign_in(&self, username: &str, outcome: SignIn) {
        match outcome {
            SignIn::Succeeded => self.account.succeeded(account_key(username)),
            SignIn::Failed => {}
            SignIn::NotChecked => self.account.cancel(account_key(username)),
        }
    }

    /// Checks a password against a PHC string (`None`: an unknown user, checked against a dummy
    /// hash and false) with a bounded number of hashes at once; `temporarily_unavailable` (503,
    /// `Retry-After`) when no slot came free in time.
    pub async fn verify_password(&self, password: String, phc: Option<String>) -> Result<bool, OAuthError> {
        self.hashes.verify(password, phc).await.map_err(|_| busy())
    }

    /// A user code entered on `/oauth/device` (looked up, approved or denied), by the
    /// signed-in `user_id` from `ip` (RFC 8628 §5.1). Always on.
    pub fn check_user_code(&self, ip: IpAddr, user_id: &str) -> Result<(), OAuthError> {
        let key = address_key(ip);
        let user = user_id.to_string();
        self.user_code_address.peek(&key).map_err(limited)?;
        self.user_code_user.peek(&user).map_err(limited)?;
        self.user_code_address.check(key).map_err(limited)?;
        self.user_code_user.check(user).map_err(limited)
    }

    /// Dynamic registrations per address.
    pub fn check_registration(&self, ip: IpAddr) -> Result<(), OAuthError> {
        if !self.enabled {
            return Ok(());
        }
        self.registration.check(address_key(ip)).map_err(limited)
    }

    /// Forgets keys whose budget is full again and returns memory (called periodically).
    pub fn shrink(&self) {
        self.address.sweep();
        self.failed_auth.sweep();
        self.client.sweep();
        self.introspection.sweep();
        self.login.sweep();
        self.account.sweep();
        self.user_code_address.sweep();
        self.user_code_user.sweep();
        self.registration.sweep();
    }
}
