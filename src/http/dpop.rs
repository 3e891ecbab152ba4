//! The `DPoP` request header at our endpoints: one header at most, checked by `jose::dpop`
//! against this endpoint's method and URL; `use_dpop_nonce` errors carry a fresh nonce.
//! Also `GET /oauth/dpop/nonce`.

use super::AppState;
use crate::domain::error::OAuthError;
use crate::jose::dpop::{self, Expect, NonceCheck, Proof, ProofError};
use crate::util::now_ms;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A fresh server nonce.
pub fn fresh_nonce(st: &AppState) -> String {
    dpop::nonce(
        &st.app.dpop_nonce_key,
        st.app.cfg.dpop.nonce_window.as_secs(),
        now_ms() / 1000,
    )
}

/// How a proof failed, for the endpoint to turn into its kind of error.
pub enum DpopFailure {
    Invalid(&'static str),
    UseNonce(&'static str, String),
}

impl DpopFailure {
    /// As a token-endpoint error (400 `invalid_dpop_proof` / `use_dpop_nonce`).
    pub fn into_oauth(self) -> OAuthError {
        match self {
            DpopFailure::Invalid(d) => OAuthError::invalid_dpop_proof(d),
            DpopFailure::UseNonce(d, nonce) => {
                let mut e = OAuthError::new(400, crate::domain::error::ErrorCode::UseDpopNonce, d);
                e.dpop_nonce = Some(nonce);
                e
            }
        }
    }
}

/// The request's proof, checked for `method` at `path` (and `ath` when `access_token` is
/// given); `None` when there is no `DPoP` header. The `jti` is recorded by the caller.
pub fn proof(
    st: &AppState,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    access_token: Option<&str>,
) -> Result<Option<Proof>, DpopFailure> {
    let mut values = headers.get_all("dpop").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DpopFailure::Invalid("more than one DPoP header"));
    }
    let value = value
        .to_str()
        .map_err(|_| DpopFailure::Invalid("DPoP header is not ASCII"))?;
    let cfg = &st.app.cfg;
    let htu = format!("{}{path}", cfg.issuer);
    let expect = Expect {
        htm: method,
        htu: &htu,
        now_s: now_ms() / 1000,
        max_age_s: cfg.dpop.proof_max_age.as_secs(),
        access_token,
        nonce: NonceCheck {
            key: &st.app.dpop_nonce_key,
            window_s: cfg.dpop.nonce_window.as_secs(),
            required: cfg.dpop.require_nonce,
        },
    };
    dpop::check(value, &expect).map(Some).map_err(|e| match e {
        ProofError::Invalid(d) => DpopFailure::Invalid(d),
        ProofError::UseNonce(d) => DpopFailure::UseNonce(d, fresh_nonce(st)),
    })
}

/// `GET /oauth/dpop/nonce`: a fresh nonce in the `DPoP-Nonce` header.
#[utoipa::path(get, path = crate::paths::DPOP_NONCE, tag = "oauth",
    responses((status = 200, description = "A fresh nonce, in the DPoP-Nonce header",
        headers(("DPoP-Nonce" = String, description = "Put it in the next DPoP proof's `nonce` claim")))))]
pub async fn nonce(State(st): State<AppState>) -> Response {
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&fresh_nonce(&st)) {
        resp.headers_mut().insert("dpop-nonce", v);
    }
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}
