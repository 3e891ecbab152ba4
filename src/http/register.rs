//! Dynamic client registration (RFC 7591) and management (RFC 7592) at `/oauth/register`:
//! off unless `registration.enabled`; registrations are rate-limited per address (429
//! `rate_limit_exceeded` with `Retry-After`); each client gets a registration access token
//! (stored as SHA-256) for `GET/PUT/DELETE /oauth/register/{client_id}`. What anybody may
//! register is bounded by `registration.allowed_*` (see `domain::registration::Policy`).

use super::body::{client_ip, MAX_BODY};
use super::error::{no_store, ApiError};
use super::AppState;
use crate::domain::error::OAuthError;
use crate::domain::model::Client;
use crate::domain::registration::{apply, describe, Invalid, Metadata, Policy, Profile};
use crate::grants::clients;
use crate::util::{ct_eq, now_ms, random_id, random_token, sha256};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(v)).into_response();
    no_store(&mut resp);
    resp
}

fn enabled(st: &AppState) -> Result<(), OAuthError> {
    if st.app.cfg.registration.enabled {
        Ok(())
    } else {
        Err(OAuthError::new(
            403,
            crate::domain::error::ErrorCode::AccessDenied,
            "dynamic client registration is disabled",
        ))
    }
}

async fn metadata(headers: &HeaderMap, body: Body) -> Result<Metadata, OAuthError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !is_json {
        return Err(OAuthError::invalid_request("Content-Type must be application/json"));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        OAuthError::new(
            413,
            crate::domain::error::ErrorCode::InvalidRequest,
            "request body is too large",
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        OAuthError::new(
            400,
            crate::domain::error::ErrorCode::InvalidClientMetadata,
            format!("invalid metadata: {e}"),
        )
    })
}

/// The anonymous-registration policy of the configuration.
fn policy(st: &AppState) -> Policy<'_> {
    let cfg = &st.app.cfg;
    Policy {
        profile: Profile::Registrant,
        custom_scopes: &cfg.scopes.custom,
        allowed_grant_types: &cfg.registration.allowed_grant_types,
        allowed_scopes: &cfg.registration.allowed_scopes,
        allow_http_loopback: cfg.events.allow_http_loopback,
    }
}

fn invalid(e: Invalid) -> OAuthError {
    OAuthError::new(400, e.code, e.description)
}

/// `POST /oauth/register` (RFC 7591 §3): 201 with the client's metadata, its secret (shown
/// once) and its registration access token.
#[utoipa::path(post, path = crate::paths::REGISTER, tag = "oauth",
    request_body(content = crate::domain::registration::Metadata, description = "Client metadata (RFC 7591 §2)", content_type = "application/json"),
    responses(
        (status = 201, description = "Registered (RFC 7591 §3.2.1)", body = Object),
        (status = 403, description = "Dynamic registration is disabled (`access_denied`)", body = crate::http::error::OAuthErrorBody<'static>),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn register(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        enabled(&st)?;
        st.limits
            .check_registration(client_ip(addr.ip(), &headers, st.app.cfg.http.forwarded_hops))?;
        let m = metadata(&headers, body).await?;
        let now = now_ms();
        let mut client = Client::blank(random_id(), now);
        apply(&m, &mut client, &policy(&st)).map_err(invalid)?;
        let secret = clients::issue_secret(&mut client);
        let rat = random_token();
        client.registration_token_hash = Some(sha256(rat.as_bytes()).to_vec());
        st.app
            .store
            .insert_client(client.clone())
            .await
            .map_err(OAuthError::from)?;
        let mut out = describe(&client);
        if let Some(s) = secret {
            out["client_secret"] = s.into();
            out["client_secret_expires_at"] = 0.into();
        }
        out["registration_access_token"] = rat.into();
        out["registration_client_uri"] =
            format!("{}{}/{}", st.app.cfg.issuer, crate::paths::REGISTER, client.id).into();
        Ok::<_, OAuthError>(out)
    }
    .await;
    match r {
        Ok(v) => json(StatusCode::CREATED, v),
        Err(e) => ApiError(e).into_response(),
    }
}

/// The client named in the path, if the request carries its registration access token.
async fn managed(st: &AppState, headers: &HeaderMap, id: &str) -> Result<Client, Response> {
    let unauthorized = || {
        let mut resp = json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "invalid_token", "error_description": "a valid registration access token is required"}),
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer error=\"invalid_token\"".parse().expect("static header"),
        );
        resp
    };
    enabled(st).map_err(|e| ApiError(e).into_response())?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .ok_or_else(unauthorized)?;
    // A failing database is a 503, not a refused token.
    let client = st
        .app
        .store
        .get_client(id)
        .await
        .map_err(|e| ApiError(OAuthError::from(e)).into_response())?
        .ok_or_else(unauthorized)?;
    match &client.registration_token_hash {
        Some(h) if ct_eq(h, &sha256(token.as_bytes())) => Ok(client),
        _ => Err(unauthorized()),
    }
}

/// `GET /oauth/register/{client_id}` (RFC 7592 §2.1).
#[utoipa::path(get, path = crate::paths::REGISTER_CLIENT, tag = "oauth", params(("client_id" = String, Path, description = "The registered client")),
    security(("registration_access_token" = [])),
    responses(
        (status = 200, description = "The client's metadata", body = Object),
        (status = 403, description = "Dynamic registration is disabled (`access_denied`)", body = crate::http::error::OAuthErrorBody<'static>),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn read(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match managed(&st, &headers, &id).await {
        Ok(c) => json(StatusCode::OK, describe(&c)),
        Err(resp) => resp,
    }
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 §2.2): the client's whole metadata, replaced.
#[utoipa::path(put, path = crate::paths::REGISTER_CLIENT, tag = "oauth", params(("client_id" = String, Path, description = "The registered client")),
    request_body(content = crate::domain::registration::Metadata, description = "Client metadata (RFC 7591 §2), with `client_id`", content_type = "application/json"),
    security(("registration_access_token" = [])),
    responses(
        (status = 200, description = "The client's new metadata", body = Object),
        (status = 403, description = "Dynamic registration is disabled (`access_denied`)", body = crate::http::error::OAuthErrorBody<'static>),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn update(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> Response {
    let client = match managed(&st, &headers, &id).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let r = async {
        let m = metadata(&headers, body).await?;
        if m.client_id.as_deref().is_some_and(|c| c != id) {
            return Err(OAuthError::invalid_request(
                "client_id in the body does not match the URL",
            ));
        }
        let client = clients::update(
            &st.app.store,
            client,
            &m,
            crate::domain::grace::Change::default(),
            &policy(&st),
        )
        .await
        .map_err(|e| match e {
            clients::CreateError::Invalid(e) => invalid(e),
            clients::CreateError::Store(e) => OAuthError::from(e),
            clients::CreateError::Exists(id) => OAuthError::invalid_request(format!("client {id} exists")),
        })?;
        Ok(describe(&client))
    }
    .await;
    match r {
        Ok(v) => json(StatusCode::OK, v),
        Err(e) => ApiError(e).into_response(),
    }
}

/// `DELETE /oauth/register/{client_id}` (RFC 7592 §2.3): the client and its grants end.
#[utoipa::path(delete, path = crate::paths::REGISTER_CLIENT, tag = "oauth", params(("client_id" = String, Path, description = "The registered client")),
    security(("registration_access_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Dynamic registration is disabled (`access_denied`)", body = crate::http::error::OAuthErrorBody<'static>),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn delete(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(resp) = managed(&st, &headers, &id).await {
        return resp;
    }
    match st.app.store.delete_client(&id, now_ms()).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError(OAuthError::from(e)).into_response(),
    }
}
