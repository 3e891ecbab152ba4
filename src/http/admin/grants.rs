//! Admin API: grants (token families) of a client or a user: list them, revoke one, revoke all
//! at once or after a `grace_period`.

use super::{authorize, found, known_params, paginate};
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::domain::model::{Family, RevocationReason};
use crate::http::envelope::{fail, from_oauth, list_page, ok, Envelope, ListEnvelope};
use crate::http::AppState;
use crate::paths;
use crate::store::GrantsOf;
use crate::util::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// A grant (a token family: one sign-in's refresh chain and its access tokens), as the
/// reference lists tokens (`user_id, scope, token_type, created_at, expires_at`), with what an
/// operator needs to tell grants apart.
#[derive(Serialize, ToSchema)]
pub struct GrantItem {
    pub grant_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    /// `refresh_token`.
    pub token_type: &'static str,
    pub created_at: i64,
    /// When it ends unless used again (the sooner of the idle and absolute limits).
    pub expires_at: i64,
    pub last_used_at: i64,
    pub user_agent: Option<String>,
    pub dpop_bound: bool,
    /// When a scheduled revocation (`grace_period`) ends it, Unix seconds; null if none.
    pub revoked_at: Option<i64>,
}

fn grant_item(f: &Family) -> GrantItem {
    GrantItem {
        grant_id: f.id.clone(),
        user_id: f.user_id.clone(),
        client_id: f.client_id.clone(),
        scope: f.scope.to_string_sorted(),
        token_type: "refresh_token",
        created_at: f.created_at_ms / 1000,
        expires_at: f.absolute_expires_at_ms.min(f.idle_expires_at_ms) / 1000,
        last_used_at: f.last_used_at_ms / 1000,
        user_agent: f.last_user_agent.clone(),
        dpop_bound: f.dpop_jkt.is_some(),
        revoked_at: f.revoked_at_ms.map(|t| t / 1000),
    }
}

/// The reference's `RevokeClientTokensResponse` / `BatchRevokeUserTokensResponse`: how many
/// grants were revoked (each is one refresh chain and its access tokens) and after how long.
#[derive(Serialize, ToSchema)]
pub struct RevokeTokensResponse {
    /// Seconds until the revocation takes effect (0: at once).
    pub grace_period: u64,
    pub revoked_grants: u64,
    pub revoked_refresh_tokens: u64,
    pub revoked_access_tokens: u64,
}

/// The live grants of a client or a user, one page.
async fn list_grants(st: &AppState, headers: &HeaderMap, q: &HashMap<String, String>, of: GrantsOf) -> Response {
    if let Err(r) = authorize(st, headers, Need::Read).await {
        return r;
    }
    if let Err(e) = known_params(q, &["page", "page_size", "cursor"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    if let Err(r) = exists(st, &of).await {
        return r;
    }
    let store = &st.app.store;
    let now = now_ms();
    let families = match &of {
        GrantsOf::Client(id) => store.list_client_families(id, now).await,
        GrantsOf::User(id) => store.list_user_families(id, now).await,
    };
    let live = match families {
        Ok(f) => f.into_iter().filter(|f| f.is_active(now)).collect(),
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    match paginate(st, q, live, |f: &Family| f.id.as_str()) {
        Ok((page, total, size, next)) => list_page(page.iter().map(grant_item).collect(), total, size, next),
        Err(e) => fail(StatusCode::BAD_REQUEST, &e),
    }
}

/// 404 unless the client or user exists.
pub(super) async fn exists(st: &AppState, of: &GrantsOf) -> Result<(), Response> {
    let store = &st.app.store;
    match of {
        GrantsOf::Client(id) => found(store.get_client(id).await, &format!("client {id}")).map(drop),
        GrantsOf::User(id) => found(store.get_user(id).await, &format!("user {id}")).map(drop),
    }
}

/// The longest `grace_period` (30 days): a scheduled revocation is for a migration or a notice
/// period, not a way to keep grants alive indefinitely.
const MAX_GRACE_PERIOD_S: u64 = 30 * 86_400;

/// Revokes every live grant of a client or a user: at once, or after `grace_period` seconds
/// (they keep working until then; a reuse detected meanwhile still ends its family at once).
async fn revoke_grants(st: &AppState, headers: &HeaderMap, q: &HashMap<String, String>, of: GrantsOf) -> Response {
    if let Err(r) = authorize(st, headers, Need::Write).await {
        return r;
    }
    if let Err(e) = known_params(q, &["grace_period"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    let grace_s = match q.get("grace_period").map(|g| g.parse::<u64>()) {
        None => 0,
        Some(Ok(g)) if g <= MAX_GRACE_PERIOD_S => g,
        _ => {
            return fail(
                StatusCode::BAD_REQUEST,
                &format!("grace_period must be a number of seconds from 0 to {MAX_GRACE_PERIOD_S}"),
            )
        }
    };
    if let Err(r) = exists(st, &of).await {
        return r;
    }
    match st.app.store.revoke_grants(of, now_ms(), grace_s as i64 * 1000).await {
        // Each grant's access tokens stop being active (introspection, userinfo) with it.
        Ok(n) => ok(
            StatusCode::OK,
            RevokeTokensResponse {
                grace_period: grace_s,
                revoked_grants: n,
                revoked_refresh_tokens: n,
                revoked_access_tokens: n,
            },
        ),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}

/// `GET /admin/oauth/clients/{client_id}/tokens`: the client's live grants.
#[utoipa::path(get, path = paths::ADMIN_CLIENT_TOKENS, tag = "tokens", security(("admin" = ["admin:read"])),
    params(("client_id" = String, Path), super::Paged),
    responses((status = 200, description = "One page of grants", body = ListEnvelope<GrantItem>), super::openapi::AdminErrors))]
pub(super) async fn client_grants(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_grants(&st, &headers, &q, GrantsOf::Client(id)).await
}

/// `GET /admin/oauth/tokens/user/{user_id}`: the user's live grants.
#[utoipa::path(get, path = paths::ADMIN_USER_TOKENS, tag = "tokens", security(("admin" = ["admin:read"])),
    params(("user_id" = String, Path), super::Paged),
    responses((status = 200, description = "One page of grants", body = ListEnvelope<GrantItem>), super::openapi::AdminErrors))]
pub(super) async fn user_grants(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_grants(&st, &headers, &q, GrantsOf::User(id)).await
}

/// `DELETE /admin/oauth/clients/{client_id}/tokens?grace_period=`: revokes all of them.
#[utoipa::path(delete, path = paths::ADMIN_CLIENT_TOKENS, tag = "tokens", security(("admin" = ["admin:write"])),
    params(("client_id" = String, Path), ("grace_period" = Option<u64>, Query, description = "Seconds the grants keep working (0 to 2,592,000; default 0)")),
    responses((status = 200, description = "Revoked (or scheduled)", body = Envelope<RevokeTokensResponse>), super::openapi::AdminErrors))]
pub(super) async fn revoke_client_grants(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    revoke_grants(&st, &headers, &q, GrantsOf::Client(id)).await
}

/// `DELETE /admin/oauth/tokens/user/{user_id}?grace_period=`: revokes all of them.
#[utoipa::path(delete, path = paths::ADMIN_USER_TOKENS, tag = "tokens", security(("admin" = ["admin:write"])),
    params(("user_id" = String, Path), ("grace_period" = Option<u64>, Query, description = "Seconds the grants keep working (0 to 2,592,000; default 0)")),
    responses((status = 200, description = "Revoked (or scheduled)", body = Envelope<RevokeTokensResponse>), super::openapi::AdminErrors))]
pub(super) async fn revoke_user_grants(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    revoke_grants(&st, &headers, &q, GrantsOf::User(id)).await
}

/// `DELETE /admin/oauth/tokens/{grant_id}`: revokes one grant.
#[utoipa::path(delete, path = paths::ADMIN_GRANT, tag = "tokens", security(("admin" = ["admin:write"])),
    params(("grant_id" = String, Path)),
    responses((status = 204, description = "Revoked"), super::openapi::AdminErrors))]
pub(super) async fn revoke_one(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    match st
        .app
        .store
        .revoke_family(&id, RevocationReason::RevokedByAdmin, now_ms())
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => fail(StatusCode::NOT_FOUND, &format!("no live grant {id}")),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}
