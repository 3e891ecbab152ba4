//! The admin API (SPEC §8, docs/design/admin-api.md): `/admin/oauth/...` on a listener of its
//! own (`admin.listen`), JSON in and out, in the reference service's envelope
//! (`{code, message, data, timestamp}`; lists `{code, message, items, total, pagination,
//! timestamp}`; errors `SimpleResponse {code, message, timestamp}`). Every request carries an
//! access token of ours, issued by `client_credentials` to an admin client, with the scope the
//! operation needs (`domain::admin`). The handlers parse and serialize; clients are made by
//! `grants::clients::create`, as by the CLI, and deleted by the store's one cascade; their
//! secrets are managed by `grants::secrets`, as by the CLI.

use super::envelope::{fail, from_oauth};
use super::routes::{delete, get, post, put, Routes};
use super::AppState;
use crate::domain::admin::{permits, Need};
use crate::domain::error::OAuthError;
use crate::domain::scope::Scope;
use crate::grants::access_token;
use crate::jose::jwt::AccessClaims;
use crate::paths;
use crate::util::{b64url, b64url_decode, ct_eq, hmac_sha256};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;

mod audit;
mod clients;
mod devices;
mod events;
mod grants;
mod openapi;
mod secrets;
mod stats;
mod users;

/// The admin listener's routes and what they are (`http::openapi` documents each of them).
pub fn routes() -> Routes<AppState> {
    Routes::new()
        .route(paths::ADMIN_CLIENTS, get(clients::list).post(clients::create))
        .route(
            paths::ADMIN_CLIENT,
            get(clients::get).put(clients::update).delete(clients::delete),
        )
        .route(
            paths::ADMIN_CLIENT_TOKENS,
            get(grants::client_grants).delete(grants::revoke_client_grants),
        )
        .route(
            paths::ADMIN_USER_TOKENS,
            get(grants::user_grants).delete(grants::revoke_user_grants),
        )
        .route(paths::ADMIN_GRANT, delete(grants::revoke_one))
        .route(paths::ADMIN_AUDIT, get(audit::events))
        .route(paths::ADMIN_EVENTS, get(events::list))
        .route(paths::ADMIN_CLIENT_AUDIT, get(audit::client_logs))
        .route(paths::ADMIN_CLIENT_STATS, get(stats::stats))
        .route(paths::ADMIN_CLIENT_ROTATE_SECRET, post(secrets::rotate))
        .route(paths::ADMIN_CLIENT_SECRETS, get(secrets::list).post(secrets::add))
        .route(paths::ADMIN_CLIENT_SECRET, delete(secrets::delete))
        .route(paths::ADMIN_CLIENT_SECRET_DEACTIVATE, put(secrets::deactivate))
        .route(paths::ADMIN_DEVICES, get(devices::list))
        .route(paths::ADMIN_DEVICE, delete(devices::delete))
        .route(paths::ADMIN_USERS, get(users::list).post(users::create))
        .route(paths::ADMIN_USER, get(users::get).delete(users::delete))
        .route(paths::ADMIN_USER_PASSWORD, put(users::set_password))
        .route(paths::OPENAPI, get(openapi::admin_document))
}

/// The admin listener's router.
pub fn router(state: AppState) -> Router {
    routes()
        .into_router()
        .fallback(|| async { fail(StatusCode::NOT_FOUND, "no such admin endpoint") })
        .with_state(state)
}

/// The paging parameters of a list (documentation: `paginate` reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the OpenAPI derive only.
pub struct Paged {
    /// 1 to 100, default 20.
    page_size: Option<usize>,
    /// `pagination.next_cursor` of the previous page.
    cursor: Option<String>,
    /// Instead of `cursor`: the page number, from 1.
    page: Option<usize>,
}

/// The paging parameters of the audit log, newest first (cursor only).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the OpenAPI derive only.
pub struct Cursored {
    /// 1 to 100, default 20.
    page_size: Option<usize>,
    /// `pagination.next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Most items on one page of a list.
const MAX_PAGE_SIZE: usize = 100;
const DEFAULT_PAGE_SIZE: usize = 20;

/// What a lookup found, or a 404 naming `what` (503 for a failing database). The error is the
/// handler's finished answer, returned at once: boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn found<T>(r: Result<Option<T>, crate::store::StoreError>, what: &str) -> Result<T, Response> {
    match r {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(fail(StatusCode::NOT_FOUND, &format!("no {what}"))),
        Err(e) => Err(from_oauth(OAuthError::from(e))),
    }
}

/// The answer to a removal: 204 when it happened, 404 naming `what` when there was nothing to
/// remove.
fn removed(r: Result<bool, crate::store::StoreError>, what: &str) -> Response {
    match r {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => fail(StatusCode::NOT_FOUND, &format!("no {what}")),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}

// ---- authentication -------------------------------------------------------------------------

/// A 401/403 with a Bearer challenge (RFC 6750 §3) and the envelope's error body.
fn challenge(status: StatusCode, error: Option<&str>, description: &str, scope: Option<&str>) -> Response {
    let mut c = "Bearer realm=\"autional-admin\"".to_string();
    if let Some(e) = error {
        c.push_str(&format!(", error=\"{e}\", error_description=\"{description}\""));
    }
    if let Some(s) = scope {
        c.push_str(&format!(", scope=\"{s}\""));
    }
    let mut resp = fail(
        status,
        if description.is_empty() {
            "an admin access token is required"
        } else {
            description
        },
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The caller's access token, if it is active, a client's own (`client_credentials`), sent as
/// a Bearer token, and carries the scope `need` asks for.
async fn authorize(st: &AppState, headers: &HeaderMap, need: Need) -> Result<AccessClaims, Response> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(auth) = auth else {
        return Err(challenge(StatusCode::UNAUTHORIZED, None, "", None));
    };
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
        _ => {
            return Err(challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_request"),
                "use the Bearer scheme",
                None,
            ))
        }
    };
    let invalid = |d: &str| challenge(StatusCode::UNAUTHORIZED, Some("invalid_token"), d, None);
    let claims = match access_token::active(&st.app, token).await {
        Ok(Some((c, None))) => c,
        Ok(Some((_, Some(_)))) => return Err(invalid("a user's access token cannot call the admin API")),
        Ok(None) => return Err(invalid("the access token is invalid, expired or revoked")),
        Err(e) => return Err(from_oauth(e)),
    };
    if claims.cnf.is_some() {
        return Err(invalid("the admin API takes Bearer tokens; this one is DPoP-bound"));
    }
    if !permits(&Scope::parse(&claims.scope).unwrap_or_default(), need) {
        return Err(challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            &format!("this operation needs the scope {}", need.scope()),
            Some(need.scope()),
        ));
    }
    Ok(claims)
}

/// A change's preamble: the caller may write, and the body is the JSON object `T` (400 naming
/// what is wrong with it otherwise).
async fn change<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Response> {
    authorize(st, headers, Need::Write).await?;
    serde_json::from_slice(body).map_err(|e| fail(StatusCode::BAD_REQUEST, &format!("body: {e}")))
}

// ---- lists ---------------------------------------------------------------------------------------

/// An opaque position in a list (after `last_id`), authenticated so that a changed cursor is
/// refused rather than silently listing from elsewhere.
fn cursor_for(st: &AppState, last_id: &str) -> String {
    let tag = hmac_sha256(&st.app.form_secret, format!("admin-cursor\0{last_id}").as_bytes());
    format!("{}.{}", b64url(last_id.as_bytes()), b64url(&tag[..16]))
}

fn cursor_id(st: &AppState, cursor: &str) -> Option<String> {
    let (id, tag) = cursor.split_once('.')?;
    let id = String::from_utf8(b64url_decode(id)?).ok()?;
    let want = hmac_sha256(&st.app.form_secret, format!("admin-cursor\0{id}").as_bytes());
    ct_eq(&b64url_decode(tag)?, &want[..16]).then_some(id)
}

/// Where a newest-first list (audit events, outbox events) goes on: before the id its `cursor`
/// names, or why the cursor is refused.
fn before_id(st: &AppState, q: &HashMap<String, String>) -> Result<Option<i64>, String> {
    match q.get("cursor") {
        None => Ok(None),
        Some(c) => cursor_id(st, c)
            .and_then(|id| id.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| "cursor is invalid (not one this server made)".to_string()),
    }
}

/// One page of a newest-first list read with one row more than `size` (to tell whether a next
/// page exists): the page, its `next_cursor` after the last id, and no `total` (counting an
/// append-only log would read every match).
fn newest_first_page<R, T: serde::Serialize>(
    st: &AppState,
    rows: Result<Vec<R>, crate::store::StoreError>,
    size: usize,
    id: fn(&R) -> i64,
    item: fn(&R) -> T,
) -> Response {
    let mut rows = match rows {
        Ok(r) => r,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let more = rows.len() > size;
    rows.truncate(size);
    let next = more
        .then(|| rows.last().map(|r| cursor_for(st, &id(r).to_string())))
        .flatten();
    super::envelope::list_page_of(rows.iter().map(item).collect(), None, size, next)
}

/// `page_size` (1–100, default 20), or why not.
fn page_size(q: &HashMap<String, String>) -> Result<usize, String> {
    match q.get("page_size") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(format!("page_size must be an integer from 1 to {MAX_PAGE_SIZE}")),
        },
    }
}

/// Refuses query parameters the operation does not know (a typo must not widen a listing).
fn known_params(q: &HashMap<String, String>, known: &[&str]) -> Result<(), String> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown query parameter `{k}` (known: {})", known.join(", "))),
        None => Ok(()),
    }
}

/// One page of `items` as the query asks (`page_size`, and `cursor` or `page`), in the order of
/// their ids: the page, how many in all, and the cursor of the next page.
fn paginate<T>(
    st: &AppState,
    q: &HashMap<String, String>,
    mut items: Vec<T>,
    id: fn(&T) -> &str,
) -> Result<(Vec<T>, usize, usize, Option<String>), String> {
    let size = page_size(q)?;
    let after = match (q.get("cursor"), q.get("page")) {
        (Some(_), Some(_)) => return Err("give cursor or page, not both".into()),
        (Some(c), None) => Some(cursor_id(st, c).ok_or("cursor is invalid (not one this server made)")?),
        _ => None,
    };
    let page = match q.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return Err("page must be an integer from 1".into()),
    };
    items.sort_by(|a, b| id(a).cmp(id(b)));
    let total = items.len();
    let start = match &after {
        Some(last) => items.partition_point(|x| id(x) <= last.as_str()),
        None => (page - 1).saturating_mul(size).min(total),
    };
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start + page.len() < total)
        .then(|| page.last().map(|x| cursor_for(st, id(x))))
        .flatten();
    Ok((page, total, size, next))
}
