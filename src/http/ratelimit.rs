//! Rate limits (GCRA, `governor`): per client and per remote address on the token and refresh
//! endpoints, per address on sign-in. Exceeding one gives 429 `rate_limit_exceeded` with
//! `Retry-After`. Counters are per process.

use crate::config::RateLimitConfig;
use crate::domain::error::OAuthError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

pub struct Limits {
    enabled: bool,
    client: DefaultKeyedRateLimiter<String>,
    address: DefaultKeyedRateLimiter<IpAddr>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    user_code: DefaultKeyedRateLimiter<IpAddr>,
    registration: DefaultKeyedRateLimiter<IpAddr>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

fn retry_after(wait: std::time::Duration) -> OAuthError {
    OAuthError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

impl Limits {
    pub fn new(cfg: &RateLimitConfig, user_code_per_minute: u32) -> Limits {
        Limits {
            enabled: cfg.enabled,
            client: RateLimiter::keyed(Quota::per_second(nz(cfg.token_per_second)).allow_burst(nz(cfg.token_burst))),
            address: RateLimiter::keyed(
                Quota::per_second(nz(cfg.address_per_second)).allow_burst(nz(cfg.address_burst)),
            ),
            login: RateLimiter::keyed(
                Quota::per_minute(nz(cfg.login_per_minute)).allow_burst(nz(cfg.login_per_minute)),
            ),
            registration: RateLimiter::keyed(
                Quota::with_period(std::time::Duration::from_secs(3600) / cfg.registration_per_hour.max(1))
                    .unwrap_or(Quota::per_hour(NonZeroU32::MIN))
                    .allow_burst(nz(cfg.registration_per_hour)),
            ),
            user_code: RateLimiter::keyed(
                Quota::per_minute(nz(user_code_per_minute)).allow_burst(nz(user_code_per_minute)),
            ),
        }
    }

    /// Token and refresh requests: the client's budget and the address's.
    pub fn check_token(&self, client: Option<&str>, ip: IpAddr) -> Result<(), OAuthError> {
        if !self.enabled {
            return Ok(());
        }
        let now = DefaultClock::default().now();
        self.address
            .check_key(&ip)
            .map_err(|n| retry_after(n.wait_time_from(now)))?;
        if let Some(c) = client {
            self.client
                .check_key(&c.to_string())
                .map_err(|n| retry_after(n.wait_time_from(now)))?;
        }
        Ok(())
    }

    pub fn check_login(&self, ip: IpAddr) -> Result<(), OAuthError> {
        if !self.enabled {
            return Ok(());
        }
        let now = DefaultClock::default().now();
        self.login
            .check_key(&ip)
            .map_err(|n| retry_after(n.wait_time_from(now)))
    }

    /// User-code lookups on the device page (RFC 8628 §5.1: limit guessing). Always on.
    pub fn check_user_code(&self, ip: IpAddr) -> Result<(), OAuthError> {
        let now = DefaultClock::default().now();
        self.user_code
            .check_key(&ip)
            .map_err(|n| retry_after(n.wait_time_from(now)))
    }

    /// Dynamic registrations per address.
    pub fn check_registration(&self, ip: IpAddr) -> Result<(), OAuthError> {
        if !self.enabled {
            return Ok(());
        }
        let now = DefaultClock::default().now();
        self.registration
            .check_key(&ip)
            .map_err(|n| retry_after(n.wait_time_from(now)))
    }

    /// Forgets keys whose budget is full again, so the maps stay bounded.
    pub fn shrink(&self) {
        self.client.retain_recent();
        self.address.retain_recent();
        self.login.retain_recent();
        self.user_code.retain_recent();
        self.registration.retain_recent();
    }
}
