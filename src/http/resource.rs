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

/// A refused protected-resource request: its status and `WWW-Authenticate` challenge (RFC 6750
/// §3, RFC 9449 §7.1), with the body of an OAuth endpoint ([`Challenge::oauth`]) or of the
/// envelope's endpoints ([`Challenge::envelope`]).
pub(super) struct Challenge {
    scheme: Scheme,
    status: StatusCode,
    error: Option<&'static str>,
    description: String,
    /// The scope an `insufficient_scope` refusal names.
    scope: Option<&'static str>,
    /// A fresh nonce for `use_dpop_nonce`.
    nonce: Option<String>,
}

impl Challenge {
    fn new(scheme: Scheme, status: StatusCode, error: Option<&'static str>, description: &str) -> Challenge {
        Challenge {
            scheme,
            status,
            error,
            description: description.to_string(),
            scope: None,
            nonce: None,
        }
    }

    /// A Bearer challenge.
    pub(super) fn bearer(status: StatusCode, error: Option<&'static str>, description: &str) -> Challenge {
        Challenge::new(Scheme::Bearer, status, error, description)
    }

    /// A 403 `insufficient_scope` naming the scope needed.
    pub(super) fn insufficient_scope(scope: &'static str, description: &str) -> Challenge {
        Challenge {
            scope: Some(scope),
            ..Challenge::bearer(StatusCode::FORBIDDEN, Some("insufficient_scope"), description)
        }
    }

    /// Adds the challenge header (and the nonce) to `resp`.
    fn finish(self, mut resp: Response) -> Response {
        let mut c = match self.scheme {
            Scheme::Bearer => "Bearer realm=\"autional\"".to_string(),
            Scheme::Dpop => format!("DPoP algs=\"{}\"", crate::jose::dpop::ALGS.join(" ")),
        };
        if let Some(e) = self.error {
            c.push_str(&format!(", error=\"{e}\", error_description=\"{}\"", self.description));
        }
        if let Some(s) = self.scope {
            c.push_str(&format!(", scope=\"{s}\""));
        }
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(v) = self.nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            resp.headers_mut().insert("dpop-nonce", v);
        }
        no_store(&mut resp);
        resp
    }

    /// As an OAuth endpoint answers: `{error, error_description}` (no body without an error).
    fn oauth(self) -> Response {
        let resp = match self.error {
            Some(e) => (
                self.status,
                axum::Json(json!({"error": e, "error_description": self.description})),
            )
                .into_response(),
            None => self.status.into_response(),
        };
        self.finish(resp)
    }

    /// As the envelope's endpoints answer: `SimpleResponse {code, message, timestamp}`.
    pub(super) fn envelope(self) -> Response {
        let message = if self.description.is_empty() {
            "an access token is required"
        } else {
            &self.description
        };
        let resp = super::envelope::fail(self.status, message);
        self.finish(resp)
    }
}

/// Why a protected-resource request was refused: a challenge, or a failing store (503).
pub(super) enum Refusal {
    Challenge(Challenge),
    Failed(OAuthError),
}

impl From<Challenge> for Refusal {
    fn from(c: Challenge) -> Refusal {
        Refusal::Challenge(c)
    }
}

impl Refusal {
    fn oauth(self) -> Response {
        match self {
            Refusal::Challenge(c) => c.oauth(),
            Refusal::Failed(e) => ApiError(e).into_response(),
        }
    }

    /// As the envelope's endpoints answer.
    pub(super) fn envelope(self) -> Response {
        match self {
            Refusal::Challenge(c) => c.envelope(),
            Refusal::Failed(e) => super::envelope::from_oauth(e),
        }
    }
}

fn bearer_error(status: StatusCode, error: Option<&'static str>, description: &str) -> Response {
    Challenge::bearer(status, error, description).oauth()
}

/// RFC 9449 §7: a DPoP-bound token only with the `DPoP` scheme and a fresh proof of its key (for
/// `method` at `path`) with the right `ath`; an unbound token only with `Bearer`.
async fn check_binding(
    st: &AppState,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    scheme: Scheme,
    token: &str,
    claims: &AccessClaims,
) -> Result<(), Refusal> {
    let unauthorized = |error: &'static str, d: &str| {
        Refusal::from(Challenge::new(Scheme::Dpop, StatusCode::UNAUTHORIZED, Some(error), d))
    };
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
    let proof = match super::dpop::proof(st, headers, method, path, Some(token)) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(unauthorized("invalid_dpop_proof", "a DPoP proof is required")),
        Err(super::dpop::DpopFailure::Invalid(d)) => return Err(unauthorized("invalid_dpop_proof", d)),
        Err(super::dpop::DpopFailure::UseNonce(d, nonce)) => {
            return Err(Refusal::Challenge(Challenge {
                nonce: Some(nonce),
                ..Challenge::new(Scheme::Dpop, StatusCode::UNAUTHORIZED, Some("use_dpop_nonce"), d)
            }))
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
        Err(e) => Err(Refusal::Failed(OAuthError::from(e))),
    }
}

/// The token of an `Authorization` header with the `Bearer` or `DPoP` scheme.
fn header_token(auth: Option<&str>) -> Option<(Scheme, String)> {
    let (scheme, t) = auth?.split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return None;
    };
    Some((scheme, t.trim().to_string()))
}

/// A token presented with `scheme` that is active and bound as it must be, with its family.
async fn verified(
    st: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    scheme: Scheme,
    token: &str,
) -> Result<(AccessClaims, Option<Family>), Refusal> {
    let Some((claims, family)) = active_access(st, token).await.map_err(Refusal::Failed)? else {
        return Err(Challenge::new(
            scheme,
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the access token is invalid, expired or revoked",
        )
        .into());
    };
    check_binding(st, headers, method.as_str(), path, scheme, token, &claims).await?;
    Ok((claims, family))
}

/// The caller of a protected resource at `path` (the request's own path, for DPoP's `htu`): the
/// access token of its `Authorization` header (`Bearer`, or `DPoP` with a proof), active and
/// bound as it must be, with its family (`None` for a client's own token).
pub(super) async fn caller(
    st: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> Result<(AccessClaims, Option<Family>), Refusal> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some((scheme, token)) = header_token(auth) else {
        return Err(match auth {
            Some(_) => Challenge::bearer(
                StatusCode::UNAUTHORIZED,
                Some("invalid_request"),
                "use the Bearer or DPoP scheme",
            ),
            None => Challenge::bearer(StatusCode::UNAUTHORIZED, None, ""),
        }
        .into());
    };
    verified(st, headers, method, path, scheme, &token).await
}

pub async fn userinfo(State(st): State<AppState>, method: Method, headers: HeaderMap, body: Body) -> Response {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let header_token = header_token(auth);
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
    let (claims, _) = match verified(&st, &headers, &method, paths::USERINFO, scheme, &token).await {
        Ok(x) => x,
        Err(r) => return r.oauth(),
    };
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
