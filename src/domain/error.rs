//! `OAuthError`: one type for every error the protocol endpoints return. It carries the
//! RFC 6749 §5.2 error code, the HTTP status and an optional description; the HTTP layer turns
//! it into the flat `OAuthErrorResponse` JSON (or a redirect, or a `WWW-Authenticate` header).

use std::borrow::Cow;

/// Seconds a client is asked to wait after a 503 (`Retry-After`).
pub const RETRY_AFTER_UNAVAILABLE_S: u64 = 1;

/// The error codes we answer with: RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8628
/// §3.5, RFC 9126, RFC 9396, RFC 9449, OIDC Core §3.1.2.6, and ours (`rate_limit_exceeded`,
/// `not_found`). Code that must react to a kind of error matches on this, never on the string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    LoginRequired,
    ConsentRequired,
    RequestNotSupported,
    InvalidRequestUri,
    InvalidClientMetadata,
    InvalidRedirectUri,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    InvalidAuthorizationDetails,
    InvalidDpopProof,
    UseDpopNonce,
    RateLimitExceeded,
    NotFound,
}

impl ErrorCode {
    /// The code as it is sent (`error`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidAuthorizationDetails => "invalid_authorization_details",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::NotFound => "not_found",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    /// What kind of error: match on this.
    pub code: ErrorCode,
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
    pub fn new(status: u16, code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            status,
            code,
            description: Some(description.into()),
            basic_challenge: false,
            retry_after: None,
            dpop_nonce: None,
        }
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(401, ErrorCode::InvalidClient, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, ErrorCode::InvalidScope, d)
    }
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, ErrorCode::UnauthorizedClient, d)
    }
    pub fn unsupported_grant_type(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, ErrorCode::UnsupportedGrantType, d)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(429, ErrorCode::RateLimitExceeded, "too many requests, retry later");
        e.retry_after = Some(retry_after.max(1));
        e
    }
    pub fn invalid_dpop_proof(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, ErrorCode::InvalidDpopProof, d)
    }
    pub fn invalid_authorization_details(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, ErrorCode::InvalidAuthorizationDetails, d)
    }
    pub fn server_error() -> Self {
        Self::new(500, ErrorCode::ServerError, "the server could not complete the request")
    }
    /// A dependency (the database) failed or is too slow: 503 `temporarily_unavailable` with
    /// `Retry-After`, so that clients retry instead of treating the grant as lost.
    pub fn temporarily_unavailable() -> Self {
        let mut e = Self::new(
            503,
            ErrorCode::TemporarilyUnavailable,
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
        write!(f, "{}", self.code)?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sent_code_is_the_typed_code() {
        let e = OAuthError::invalid_grant("x");
        assert_eq!((e.code, e.code.as_str()), (ErrorCode::InvalidGrant, "invalid_grant"));
        assert_eq!(e.to_string(), "invalid_grant: x");
        assert_eq!(ErrorCode::UseDpopNonce.to_string(), "use_dpop_nonce");
    }
}
