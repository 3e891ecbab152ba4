//! `POST /oauth/token` (RFC 6749 §3.2: form body, RFC status codes) and `POST /oauth/refresh`
//! (SPEC §4: JSON or form, `invalid_grant` as 401). Both run `grants::refresh`. A `DPoP`
//! header is checked here (RFC 9449 §4.3) and its `jti` recorded by the grant's store operation.

use super::body::{client_ip, credentials, read_params, user_agent, Accept};
use super::dpop::{fresh_nonce, proof};
use super::error::{no_store, ApiError};
use super::ratelimit::Budget;
use super::AppState;
use crate::domain::error::{ErrorCode, OAuthError};
use crate::domain::model::{Client, GrantType};
use crate::grants::authorization_code::{exchange, CodeInput};
use crate::grants::client_auth::authenticate;
use crate::grants::refresh::{refresh as refresh_grant, RefreshInput};
use crate::grants::TokenResponse;
use crate::jose::dpop::Proof;
use crate::paths;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

fn respond(st: &AppState, r: Result<TokenResponse, OAuthError>) -> Response {
    let mut resp = match r {
        Ok(t) => {
            let mut resp = axum::Json(t).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => ApiError(e).into_response(),
    };
    // With nonces required, every answer carries the next one (RFC 9449 §8.2).
    if st.app.cfg.dpop.require_nonce && !resp.headers().contains_key("dpop-nonce") {
        if let Ok(v) = HeaderValue::from_str(&fresh_nonce(st)) {
            resp.headers_mut().insert("dpop-nonce", v);
        }
    }
    resp
}

/// The request's DPoP proof for `path`, as a token-endpoint error when it fails.
fn token_proof(st: &AppState, headers: &HeaderMap, path: &str) -> Result<Option<Proof>, OAuthError> {
    proof(st, headers, "POST", path, None).map_err(|f| f.into_oauth())
}

/// `POST /oauth/token`: the token endpoint (RFC 6749 §3.2).
#[utoipa::path(post, path = paths::TOKEN, tag = "oauth",
    request_body(content = crate::http::requests::TokenRequest, content_type = "application/x-www-form-urlencoded"),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449) to bind the tokens to its key")),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn token(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = token_inner(&st, addr, &headers, body).await;
    respond(&st, r)
}

/// Authenticates the client of a request to `path`, under the limits: the address's budgets
/// before, the client's own budget (`budget`) only once it has proved who it is, and a failure
/// charged to the address's failed-authentication budget.
pub(super) async fn authenticated(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    p: &crate::params::Params,
    path: &'static str,
    budget: Budget,
) -> Result<std::sync::Arc<Client>, OAuthError> {
    authenticate_credentials(st, addr, headers, credentials(headers, p)?, path, budget).await
}

/// [`authenticated`] for credentials already read from the request.
async fn authenticate_credentials(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    mut creds: crate::grants::client_auth::ClientCredentials,
    path: &'static str,
    budget: Budget,
) -> Result<std::sync::Arc<Client>, OAuthError> {
    creds.path = path;
    let ip = client_ip(addr.ip(), headers, st.app.cfg.http.forwarded_hops);
    st.limits.before_client_auth(ip)?;
    match authenticate(&st.app, &creds).await {
        Ok(client) => {
            st.limits.after_client_auth(&client, budget)?;
            Ok(client)
        }
        Err(e) => {
            if e.code == ErrorCode::InvalidClient {
                st.limits.client_auth_failed(ip);
            }
            Err(e)
        }
    }
}

async fn token_inner(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    let p = read_params(headers, body, Accept::Form).await?;
    let grant_type = p.required("grant_type")?;
    let Some(grant_type) = GrantType::parse(grant_type) else {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{grant_type}` is not supported"
        )));
    };
    let client = authenticated(st, addr, headers, &p, paths::TOKEN, Budget::Token).await?;
    let proof = token_proof(st, headers, paths::TOKEN)?;
    let ua = user_agent(headers);
    // One arm per grant, no fall-through: a new `GrantType` does not compile until it has one.
    match grant_type {
        GrantType::AuthorizationCode => {
            let input = CodeInput {
                code: p.required("code")?,
                redirect_uri: p.get("redirect_uri")?,
                code_verifier: p.get("code_verifier")?,
                proof,
                user_agent: ua,
            };
            exchange(&st.app, &client, input).await
        }
        GrantType::ClientCredentials => {
            crate::grants::client_credentials::issue(&st.app, &client, p.get("scope")?, proof).await
        }
        GrantType::DeviceCode => {
            crate::grants::device::poll(&st.app, &client, p.required("device_code")?, proof, ua).await
        }
        GrantType::RefreshToken => {
            let input = RefreshInput {
                refresh_token: p.required("refresh_token")?,
                scope: p.get("scope")?,
                authorization_details: p.json("authorization_details")?,
                proof,
                user_agent: ua,
            };
            refresh_grant(&st.app, &client, input).await
        }
    }
}

/// `POST /oauth/refresh` (SPEC §4): refresh with rotation; `invalid_grant` is 401 here.
#[utoipa::path(post, path = paths::REFRESH, tag = "oauth",
    request_body(content(
        (crate::http::requests::RefreshRequest = "application/json"),
        (crate::http::requests::RefreshRequest = "application/x-www-form-urlencoded"),
    )),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof, required for a DPoP-bound grant")),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "A new access token and the next refresh token", body = TokenResponse),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn refresh(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = refresh_inner(&st, addr, &headers, body).await.map_err(|mut e| {
        // The reference API's deliberate deviation (SPEC §4): invalid_grant is 401 here.
        if e.code == ErrorCode::InvalidGrant {
            e.status = 401;
        }
        e
    });
    respond(&st, r)
}

async fn refresh_inner(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    let p = read_params(headers, body, Accept::FormOrJson).await?;
    if let Some(gt) = p.get("grant_type")? {
        if GrantType::parse(gt) != Some(GrantType::RefreshToken) {
            return Err(OAuthError::invalid_request(
                "grant_type must be refresh_token (or absent) here",
            ));
        }
    }
    let refresh_token = p.required("refresh_token")?;
    // Credentials are read once: the SPEC's `invalid_request` for a missing client_id here,
    // then the same credentials authenticate.
    let creds = credentials(headers, &p)?;
    if creds.claimed_id().is_none() {
        return Err(OAuthError::invalid_request("missing required parameter `client_id`"));
    }
    let client = authenticate_credentials(st, addr, headers, creds, paths::REFRESH, Budget::Token).await?;
    let input = RefreshInput {
        refresh_token,
        scope: p.get("scope")?,
        authorization_details: p.json("authorization_details")?,
        proof: token_proof(st, headers, paths::REFRESH)?,
        user_agent: user_agent(headers),
    };
    refresh_grant(&st.app, &client, input).await
}

/// `PushedAuthorizationResponse` (RFC 9126 §2.2).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PushedAuthorizationResponse {
    /// `urn:ietf:params:oauth:request_uri:…`, for `GET /oauth/authorize?client_id=&request_uri=`.
    pub request_uri: String,
    /// Seconds it stays usable.
    pub expires_in: i64,
}

/// `POST /oauth/pushed-authorization` (RFC 9126): 201 `{request_uri, expires_in}`.
#[utoipa::path(post, path = paths::PUSHED_AUTHORIZATION, tag = "oauth",
    request_body(content(
        (crate::http::requests::PushedAuthorizationRequest = "application/x-www-form-urlencoded"),
        (crate::http::requests::PushedAuthorizationRequest = "application/json"),
    )),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof: the code will be bound to its key")),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 201, description = "The request is stored", body = PushedAuthorizationResponse),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn pushed_authorization(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        // A form (RFC 9126 §2.1) or, as the reference service, a JSON object.
        let p = read_params(&headers, body, Accept::FormOrJson).await?;
        let client = authenticated(&st, addr, &headers, &p, paths::PUSHED_AUTHORIZATION, Budget::Token).await?;
        let proof = proof(&st, &headers, "POST", paths::PUSHED_AUTHORIZATION, None).map_err(|f| f.into_oauth())?;
        crate::grants::dpop::use_proof(&st.app, proof.as_ref()).await?;
        crate::grants::par::push(&st.app, &client, p.without(&["client_secret"]), proof.as_ref()).await
    }
    .await;
    match r {
        Ok(pushed) => {
            let body = PushedAuthorizationResponse {
                request_uri: pushed.request_uri,
                expires_in: pushed.expires_in,
            };
            let mut resp = (axum::http::StatusCode::CREATED, axum::Json(body)).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}
