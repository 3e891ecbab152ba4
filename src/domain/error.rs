//! `OAuthError`: one type for every error the protocol endpoints return. It carries the
//! RFC 6749 §5.2 error code, the HTTP status and an optional description; the HTTP layer turns
//! it into the flat `OAuthErrorResponse` JSON (or a redirect, or a `WWW-Authenticate` header).

use std::borrow::Cow;

/// Seconds a client is asked to wait after a 503 (`Retry-After`).
pub const RETRY_AFTER_UNAVAILABLE_S: u64 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: Option<Cow<'static, str>>,
    /// Set for `invalid_client` when the client tried HTTP Basic (RFC 6749 §5.2 asks for a
    /// `WWW-Authenticate` header then).
    pub basic_challenge: bool,
    /// Seconds to put in `Retry-After` (rate limiting).
    pub retry_after: Option<u64>,
    /// A fresh server nonce for the `DPoP-Nonce` header (`use_dpop_nonce`).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(status: u16, error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            status,
            error,
            description: Some(description.into()),
            basic_challenge: false,
            retry_after: None,
            dpop_nonce: None,
        }
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "invalid_grant", d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(401, "invalid_client", d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "invalid_scope", d)
    }
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "unauthorized_client", d)
    }
    pub fn unsupported_grant_type(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "unsupported_grant_type", d)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(429, "rate_limit_exceeded", "too many requests, retry later");
        e.retry_after = Some(retry_after.max(1));
        e
    }
    pub fn invalid_dpop_proof(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "invalid_dpop_proof", d)
    }
    pub fn invalid_authorization_details(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, "invalid_authorization_details", d)
    }
    pub fn server_error() -> Self {
        Self::new(500, "server_error", "the server could not complete the request")
    }
    /// A dependency (the database) failed or is too slow: 503 `temporarily_unavailable` with
    /// `Retry-After`, so that clients retry instead of treating the grant as lost.
    pub fn temporarily_unavailable() -> Self {
        let mut e = Self::new(
            503,
            "temporarily_unavailable",
            "the service is temporarily unavailable, retry later",
        );
        e.retry_after = Some(crate::domain::error::RETRY_AFTER_UNAVAILABLE_S);
        e
    }
    pub fn with_basic_challenge(mut self) -> Self {
        self.basic_challenge = true;
        self
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}
