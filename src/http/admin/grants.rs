//! Admin API: grants (token families) of a client or a user: list them, revoke one, revoke all
//! at once or after a `grace_period`.

use super::{authorize, found, known_params, paginate};
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::domain::model::{Family, RevocationReason};
use crate::http::envelope::{fail, from_oauth, list_page, ok};
use crate::http::AppState;
use crate::store::GrantsOf;
use crate::util::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A grant (a token family: one sign-in's refresh chain and its access tokens), as the
/// reference lists tokens (`user_id, scope, token_type, created_at, expires_at`), with what an
/// operator needs to tell grants apart.
fn grant_item(f: &Family) -> Value {
    json!({
        "grant_id": f.id,
        "user_id": f.user_id,
        "client_id": f.client_id,
        "scope": f.scope.to_string_sorted(),
        "token_type": "refresh_token",
        "created_at": f.created_at_ms / 1000,
        "expires_at": f.absolute_expires_at_ms.min(f.idle_expires_at_ms) / 1000,
        "last_used_at": f.last_used_at_ms / 1000,
        "user_agent": f.last_user_agent,
        "dpop_bound": f.dpop_jkt.is_some(),
    })
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
            json!({"grace_period": grace_s, "revoked_grants": n, "revoked_refresh_tokens": n, "revoked_access_tokens": n}),
        ),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}

/// Whose grants a path names: a user's (`/admin/oauth/tokens/user/{user_id}`) or a client's
/// (`/admin/oauth/clients/{client_id}/tokens`).
fn whose<const USER: bool>(id: String) -> GrantsOf {
    if USER {
        GrantsOf::User(id)
    } else {
        GrantsOf::Client(id)
    }
}

/// `GET` on either path: the live grants.
pub(super) async fn list_of<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_grants(&st, &headers, &q, whose::<USER>(id)).await
}

/// `DELETE` on either path: revokes all of them.
pub(super) async fn revoke_all_of<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    revoke_grants(&st, &headers, &q, whose::<USER>(id)).await
}

/// `DELETE /admin/oauth/tokens/{grant_id}`: revokes one grant.
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
