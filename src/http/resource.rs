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
