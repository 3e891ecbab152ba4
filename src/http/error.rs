//! Error responses: `OAuthErrorResponse` as flat JSON with `Cache-Control: no-store`, the
//! `WWW-Authenticate` challenge for `invalid_client` over Basic, and `Retry-After` for 429.

use crate::domain::error::OAuthError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An `OAuthError` on its way out.
pub struct ApiError(pub OAuthError);

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        ApiError(e)
    }
}

/// `OAuthErrorResponse` (RFC 6749 §5.2): the error code and, usually, what is wrong.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = OAuthErrorResponse)]
pub struct OAuthErrorBody<'a> {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_dpop_proof`, `use_dpop_nonce`,
    /// `invalid_authorization_details`, `rate_limit_exceeded`, `temporarily_unavailable`, …
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = OAuthErrorBody {
            error: e.code.as_str(),
            error_description: e.description.as_deref(),
        };
        let mut resp = (status, axum::Json(body)).into_response();
        no_store(&mut resp);
        if e.basic_challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"autional\", charset=\"UTF-8\""),
            );
        }
        if let Some(n) = e.dpop_nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            resp.headers_mut().insert("dpop-nonce", n);
        }
        if let Some(secs) = e.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub async fn not_found() -> Response {
    ApiError(OAuthError::new(
        404,
        crate::domain::error::ErrorCode::NotFound,
        "no such endpoint",
    ))
    .into_response()
}
