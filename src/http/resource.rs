//! Token use and endings: `userinfo` (OIDC Core §5.3, Bearer), `introspect` (RFC 7662, rules in
//! `grants::introspection`), `revoke` (RFC 7009, rules in `grants::revocation`). The handlers
//! parse, authenticate the client and serialize; they decide nothing about tokens.

use super::body::{read_params, Accept};
use super::error::{no_store, ApiError};
use super::ratelimit::Budget;
use super::AppState;
use crate::domain::error::OAuthError;
use crate::domain::grant::Reject;
use crate::domain::model::{Client, Family};
use crate::grants::access_token;
use crate::grants::introspection::{self, Introspection};
use crate::grants::revocation;
use crate::jose::jwt::AccessClaims;
use crate::params::Params;
use crate::paths;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::net::SocketAddr;

/// An access token that is still active (see `grants::access_token::active`).
async fn active_access(st: &AppState, token: &str) -> Result<Option<(AccessClaims, Option<Family>)>, OAuthError> {
    access_token::active(&st.app, token).await
}

/// The authentication scheme of a protected-resource request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// A 401/403 with the `WWW-Authenticate` challenge of `scheme` (RFC 6750 §3, RFC 9449 §7.1).
fn challenge(scheme: Scheme, status: StatusCode, error: Option<&str>, description: &str) -> Response {
    let mut c = match scheme {
        Scheme::Bearer => "Bearer realm=\"autional\"".to_string(),
        Scheme::Dpop => format!("DPoP algs=\"{}\"", crate::jose::dpop::ALGS.join(" ")),
    };
    if let Some(e) = error {
        c.push_str(&format!(", error=\"{e}\", error_description=\"{description}\""));
    }
    let mut resp = match error {
        Some(e) => (
            status,
            axum::Json(json!({"error": e, "error_description": description})),
        )
            .into_response(),
        None => status.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(&mut resp);
    resp
}

fn bearer_error(status: StatusCode, error: Option<&str>, description: &str) -> Response {
    challenge(Scheme::Bearer, status, error, description)
}

/// RFC 9449 §7: a DPoP-bound token only with the `DPoP` scheme and a fresh proof of its key with
/// the right `ath`; an unbound token only with `Bearer`.
async fn check_binding(
    st: &AppState,
    headers: &HeaderMap,
    method: &str,
    scheme: Scheme,
    token: &str,
    claims: &AccessClaims,
) -> Result<(), Response> {
    let unauthorized = |error: &str, d: &str| challenge(Scheme::Dpop, StatusCode::UNAUTHORIZED, Some(error), d);
    let Some(cnf) = &claims.cnf else {
        return match scheme {
            Scheme::Bearer => Ok(()),
            Scheme::Dpop => Err(unauthorized(
                "invalid_token",
                "the access token is not DPoP-bound: use Bearer",
            )),
        };
    };
    if scheme != Scheme::Dpop {
        return Err(unauthorized(
            "invalid_token",
            "the access token is DPoP-bound: use the DPoP scheme with a proof",
        ));
    }
    let proof = match super::dpop::proof(st, headers, method, paths::USERINFO, Some(token)) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(unauthorized("invalid_dpop_proof", "a DPoP proof is required")),
        Err(super::dpop::DpopFailure::Invalid(d)) => return Err(unauthorized("invalid_dpop_proof", d)),
        Err(super::dpop::DpopFailure::UseNonce(d, nonce)) => {
            let mut resp = unauthorized("use_dpop_nonce", d);
            if let Ok(v) = HeaderValue::from_str(&nonce) {
                resp.headers_mut().insert("dpop-nonce", v);
            }
            return Err(resp);
        }
    };
    if proof.jkt != cnf.jkt {
        return Err(unauthorized(
            "invalid_dpop_proof",
            "the DPoP proof key is not the key the token is bound to",
        ));
    }
    match crate::grants::dpop::record(&st.app, &proof).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(unauthorized("invalid_dpop_proof", Reject::DpopReplay.description())),
        Err(e) => Err(ApiError(OAuthError::from(e)).into_response()),
    }
}

pub async fn userinfo(State(st): State<AppState>, method: Method, headers: HeaderMap, body: Body) -> Response {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let header_token = auth.and_then(|a| {
        let (scheme, t) = a.split_once(' ')?;
        let scheme = if scheme.eq_ignore_ascii_case("bearer") {
            Scheme::Bearer
        } else if scheme.eq_ignore_ascii_case("dpop") {
            Scheme::Dpop
        } else {
            return None;
        };
        Some((scheme, t.trim().to_string()))
    });
    let body_token = if method == Method::POST && header_token.is_none() {
        match read_params(&headers, body, Accept::Form).await {
            Ok(p) => p.get("access_token").ok().flatten().map(str::to_owned),
            Err(_) => None,
        }
    } else {
        None
    };
    let (scheme, token) = match (header_token, body_token) {
        (Some(x), None) => x,
        (None, Some(t)) => (Scheme::Bearer, t),
        _ if auth.is_some() => {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                Some("invalid_request"),
                "use the Bearer or DPoP scheme",
            )
        }
        _ => return bearer_error(StatusCode::UNAUTHORIZED, None, ""),
    };
    let (claims, _) = match active_access(&st, &token).await {
        Ok(Some(x)) => x,
        Ok(None) => {
            return challenge(
                scheme,
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token is invalid, expired or revoked",
            )
        }
        Err(e) => return ApiError(e).into_response(),
    };
    if let Err(resp) = check_binding(&st, &headers, method.as_str(), scheme, &token, &claims).await {
        return resp;
    }
    let scope = crate::domain::scope::Scope::parse(&claims.scope).unwrap_or_default();
    if !scope.contains("openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the token lacks the openid scope",
        );
    }
    let user = match st.app.store.get_user(&claims.sub).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the user no longer exists",
            )
        }
        Err(e) => return ApiError(OAuthError::from(e)).into_response(),
    };
    let mut out = json!({ "sub": user.id });
    if scope.contains("profile") {
        out["preferred_username"] = json!(user.username);
        if let Some(n) = &user.name {
            out["name"] = json!(n);
        }
    }
    if scope.contains("email") {
        if let Some(e) = &user.email {
            out["email"] = json!(e);
            out["email_verified"] = json!(false);
        }
    }
    let mut resp = axum::Json(out).into_response();
    no_store(&mut resp);
    resp
}

/// The authenticated client and the parameters of an introspection or revocation request
/// (rate-limited per address and per client, `Budget::Introspection`). Introspection takes a
/// form (RFC 7662 §2.1); revocation a form or, as the reference service, a JSON object.
async fn authenticated(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    path: &'static str,
    accept: Accept,
) -> Result<(std::sync::Arc<Client>, Params), OAuthError> {
    let p = read_params(headers, body, accept).await?;
    let client = super::token::authenticated(st, addr, headers, &p, path, Budget::Introspection).await?;
    Ok((client, p))
}

pub async fn introspect(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match introspect_inner(&st, addr, &headers, body).await {
        Ok(v) => {
            let mut resp = axum::Json(v).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}

async fn introspect_inner(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, OAuthError> {
    let (client, p) = authenticated(st, addr, headers, body, paths::INTROSPECT, Accept::Form).await?;
    Ok(match introspection::introspect(&st.app, &client, &p).await? {
        Introspection::Inactive => json!({"active": false}),
        Introspection::Refresh(f) => {
            let mut v = json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": f.client_id,
                "sub": f.user_id,
                "scope": f.scope.to_string(),
                "iss": st.app.cfg.issuer,
                "iat": f.rotated_at_ms / 1000,
                "exp": f.idle_expires_at_ms / 1000,
                "auth_time": f.auth_time,
            });
            if let Some(jkt) = &f.dpop_jkt {
                v["cnf"] = json!({ "jkt": jkt });
            }
            if let Some(d) = crate::grants::tokens::granted_details(&f) {
                v["authorization_details"] = json!(d);
            }
            v
        }
        Introspection::Access(c) => {
            let mut v = json!({
                "active": true,
                "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
                "client_id": c.client_id,
                "sub": c.sub,
                "scope": c.scope,
                "iss": c.iss,
                "aud": c.aud,
                "exp": c.exp,
                "iat": c.iat,
                "jti": c.jti,
            });
            if let Some(t) = c.auth_time {
                v["auth_time"] = json!(t);
            }
            if let Some(cnf) = c.cnf {
                v["cnf"] = json!({"jkt": cnf.jkt});
            }
            if let Some(d) = c.authorization_details {
                v["authorization_details"] = d;
            }
            v
        }
    })
}

pub async fn revoke(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match revoke_inner(&st, addr, &headers, body).await {
        Ok(()) => {
            let mut resp = StatusCode::OK.into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}

async fn revoke_inner(st: &AppState, addr: SocketAddr, headers: &HeaderMap, body: Body) -> Result<(), OAuthError> {
    let (client, p) = authenticated(st, addr, headers, body, paths::REVOKE, Accept::FormOrJson).await?;
    revocation::revoke(&st.app, &client, p.required("token")?).await
}
