//! Admin API: the outbox's events (Back-Channel Logout tokens, security events) and how their
//! delivery went, newest first: an operator sees what failed (`state=failed`), why
//! (`last_error`), and after how many attempts (docs/design/events.md).

use super::{authorize, before_id, known_params, newest_first_page, page_size, Cursored};
use crate::domain::admin::Need;
use crate::http::envelope::{fail, ListEnvelope};
use crate::http::AppState;
use crate::paths;
use crate::store::{EventQuery, EventRecord};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// One event of the outbox. Never its token: that is signed at each attempt and only sent.
#[derive(Serialize, ToSchema)]
pub struct OutboxEventItem {
    pub id: i64,
    /// The token's `jti` (the same at every attempt; receivers deduplicate by it).
    pub jti: String,
    /// `backchannel_logout`, `ssf_session_revoked`, `ssf_credential_compromise`,
    /// `ssf_verification`.
    pub kind: String,
    pub client_id: String,
    /// The receiver's URL it is (or was) sent to.
    pub endpoint: String,
    /// `pending`, `delivered` or `failed` (given up after `events.max_age`).
    pub state: String,
    pub attempts: i64,
    pub created_at: i64,
    /// When a pending event is tried next, Unix seconds.
    pub next_attempt_at: i64,
    pub updated_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

fn item(e: &EventRecord) -> OutboxEventItem {
    OutboxEventItem {
        id: e.id,
        jti: e.jti.clone(),
        kind: e.kind.clone(),
        client_id: e.client_id.clone(),
        endpoint: e.endpoint.clone(),
        state: e.state.clone(),
        attempts: e.attempts,
        created_at: e.created_at_ms / 1000,
        next_attempt_at: e.next_attempt_at_ms / 1000,
        updated_at: e.updated_at_ms / 1000,
        last_error: e.last_error.clone(),
    }
}

/// The query of a request (`state`, `client_id`, `cursor`, `page_size`), one more than a page
/// to tell whether a next one exists.
fn query(st: &AppState, q: &HashMap<String, String>) -> Result<EventQuery, String> {
    known_params(q, &["state", "client_id", "cursor", "page_size"])?;
    let state = match q.get("state").map(String::as_str) {
        None => None,
        Some(s @ ("pending" | "delivered" | "failed")) => Some(s.to_string()),
        Some(_) => return Err("state must be pending, delivered or failed".into()),
    };
    let before_id = before_id(st, q)?;
    Ok(EventQuery {
        state,
        client_id: q.get("client_id").cloned(),
        before_id,
        limit: page_size(q)? as i64 + 1,
    })
}

/// `GET /admin/oauth/events?state=&client_id=&cursor=&page_size=`.
#[utoipa::path(get, path = paths::ADMIN_EVENTS, tag = "audit", security(("admin" = ["admin:read"])),
    params(
        ("state" = Option<String>, Query, description = "pending, delivered or failed"),
        ("client_id" = Option<String>, Query),
        Cursored,
    ),
    responses((status = 200, description = "One page of events, newest first", body = ListEnvelope<OutboxEventItem>), super::openapi::AdminErrors))]
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    let query = match query(&st, &q) {
        Ok(q) => q,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let size = (query.limit - 1) as usize;
    newest_first_page(&st, st.app.store.list_events(query).await, size, |e| e.id, item)
}
