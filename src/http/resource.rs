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
    pub(super) fn oauth(self) -> Response {
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
    /// As an OAuth endpoint answers.
    pub(super) fn oauth(self) -> Response {
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

/// The UserInfo response (OIDC Core §5.3.2): the claims the token's scopes allow.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct UserInfoResponse {
    sub: String,
    /// With `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// With `email`.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}

/// `GET` or `POST /oauth/userinfo` (OIDC Core §5.3): Bearer or DPoP token with `openid`.
#[utoipa::path(method(get, post), path = paths::USERINFO, tag = "oauth",
    params(("DPoP" = Option<String>, Header, description = "The proof for a DPoP-bound token")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfoResponse),
        (status = 400, description = "Malformed request", body = crate::http::error::OAuthErrorBody<'static>),
        (status = 401, description = "No valid token: the WWW-Authenticate challenge says why; the body is empty when the request carried no token (RFC 6750 §3.1), an `OAuthErrorResponse` otherwise",
            headers(("WWW-Authenticate" = String))),
        (status = 403, description = "The token lacks the `openid` scope", body = crate::http::error::OAuthErrorBody<'static>),
        (status = 503, description = "The database is unavailable", body = crate::http::error::OAuthErrorBody<'static>),
    ))]
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
    let profile = scope.contains("profile");
    let email = if scope.contains("email") { user.email } else { None };
    let out = UserInfoResponse {
        sub: user.id,
        preferred_username: profile.then_some(user.username),
        name: user.name.filter(|_| profile),
        email_verified: email.as_ref().map(|_| false),
        email,
    };
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

/// `TokenIntrospectionResponse` (RFC 7662 §2.2): `{active: false}` alone for a token that is
/// not active (or not the caller's), the token's facts otherwise.
#[derive(serde::Serialize, utoipa::ToSchema, Default)]
pub struct TokenIntrospectionResponse {
    active: bool,
    /// `Bearer`, `DPoP` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// A string or an array of strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = audience_schema)]
    aud: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    /// `{jkt}`: the DPoP key the token is bound to (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::domain::rar::Detail>>)]
    authorization_details: Option<Value>,
}

/// `cnf` (RFC 7800): the key's SHA-256 thumbprint (RFC 7638).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Confirmation {
    jkt: String,
}

/// `aud`'s schema: one audience or several.
fn audience_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
    )
}

/// `POST /oauth/introspect` (RFC 7662), for confidential clients.
#[utoipa::path(post, path = paths::INTROSPECT, tag = "oauth",
    request_body(content = crate::http::requests::IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "Whether the token is active and, if so, its facts", body = TokenIntrospectionResponse),
        crate::http::openapi::OAuthErrors,
    ))]
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
) -> Result<TokenIntrospectionResponse, OAuthError> {
    let (client, p) = authenticated(st, addr, headers, body, paths::INTROSPECT, Accept::Form).await?;
    Ok(match introspection::introspect(&st.app, &client, &p).await? {
        Introspection::Inactive => TokenIntrospectionResponse::default(),
        Introspection::Refresh(f) => TokenIntrospectionResponse {
            active: true,
            token_type: Some("refresh_token"),
            scope: Some(f.scope.to_string()),
            iss: Some(st.app.cfg.issuer.clone()),
            iat: Some(f.rotated_at_ms / 1000),
            exp: Some(f.idle_expires_at_ms / 1000),
            auth_time: Some(f.auth_time),
            cnf: f.dpop_jkt.clone().map(|jkt| Confirmation { jkt }),
            authorization_details: crate::grants::tokens::granted_details(&f).map(|d| json!(d)),
            client_id: Some(f.client_id),
            sub: Some(f.user_id),
            ..Default::default()
        },
        Introspection::Access(c) => TokenIntrospectionResponse {
            active: true,
            token_type: Some(if c.cnf.is_some() { "DPoP" } else { "Bearer" }),
            client_id: Some(c.client_id),
            sub: Some(c.sub),
            scope: Some(c.scope),
            iss: Some(c.iss),
            aud: Some(json!(c.aud)),
            exp: Some(c.exp),
            iat: Some(c.iat),
            jti: Some(c.jti),
            auth_time: c.auth_time,
            cnf: c.cnf.map(|cnf| Confirmation { jkt: cnf.jkt }),
            authorization_details: c.authorization_details,
        },
    })
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was active.
#[utoipa::path(post, path = paths::REVOKE, tag = "oauth",
    request_body(content(
        (crate::http::requests::RevocationRequest = "application/x-www-form-urlencoded"),
        (crate::http::requests::RevocationRequest = "application/json"),
    )),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or it was not an active token of this client"),
        crate::http::openapi::OAuthErrors,
    ))]
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
