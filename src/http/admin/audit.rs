//! Admin API: the audit log, for a SIEM (all events) and per client (the reference's shape).

use super::grants::exists;
use super::{authorize, cursor_for, cursor_id, known_params, page_size};
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::http::envelope::{fail, from_oauth, respond, timestamp};
use crate::http::AppState;
use crate::store::{AuditQuery, AuditRecord, GrantsOf};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::HashMap;

/// An audit event: when (Unix seconds), what, whose; `detail` as JSON.
fn audit_item(a: &AuditRecord) -> Value {
    json!({
        "id": a.id,
        "timestamp": a.at_ms / 1000,
        "kind": a.kind,
        "client_id": a.client_id,
        "user_id": a.user_id,
        "grant_id": a.family_id,
        "detail": a.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
    })
}

/// The same event as the reference's `OAuthAuditLogItem` (a client's audit log).
fn audit_log_item(a: &AuditRecord) -> Value {
    let alarming = a.kind.ends_with("reuse_detected") || a.kind.ends_with("replay_detected");
    json!({
        "id": a.id.to_string(),
        "timestamp": a.at_ms / 1000,
        "action": a.kind,
        "module": "oauth",
        "level": if alarming { "warning" } else { "info" },
        "message": a.detail,
        "status": "success",
        "ip": null,
        "operator_id": a.user_id,
        "operator_type": if a.user_id.is_some() { "user" } else { "system" },
        "target_id": a.family_id.as_ref().or(a.client_id.as_ref()),
        "target_type": if a.family_id.is_some() { "grant" } else { "client" },
        "tenant_id": null,
    })
}

/// An audit query from the request's parameters (`kind`, `client_id`, `user_id`, `since` and
/// `until` in Unix seconds, `cursor`, `page_size`), one more than a page to tell whether a next
/// one exists.
fn audit_query(st: &AppState, q: &HashMap<String, String>, client_id: Option<String>) -> Result<AuditQuery, String> {
    let known: &[&str] = if client_id.is_some() {
        &["kind", "user_id", "since", "until", "cursor", "page_size"]
    } else {
        &["kind", "client_id", "user_id", "since", "until", "cursor", "page_size"]
    };
    known_params(q, known)?;
    let seconds = |k: &str| -> Result<Option<i64>, String> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|s| (0..=253_402_300_799).contains(s))
                .map(|s| Some(s * 1000))
                .ok_or(format!("{k} must be a time in Unix seconds")),
        }
    };
    let before_id = match q.get("cursor") {
        None => None,
        Some(c) => Some(
            cursor_id(st, c)
                .and_then(|id| id.parse::<i64>().ok())
                .ok_or("cursor is invalid (not one this server made)")?,
        ),
    };
    Ok(AuditQuery {
        kind: q.get("kind").cloned(),
        client_id: client_id.or_else(|| q.get("client_id").cloned()),
        user_id: q.get("user_id").cloned(),
        since_ms: seconds("since")?,
        until_ms: seconds("until")?,
        before_id,
        limit: page_size(q)? as i64 + 1,
    })
}

/// Runs an audit query and answers one page of it, newest first.
async fn audit_page(st: &AppState, q: Result<AuditQuery, String>, item: fn(&AuditRecord) -> Value) -> Response {
    let q = match q {
        Ok(q) => q,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let size = (q.limit - 1) as usize;
    let mut events = match st.app.store.query_audit(q).await {
        Ok(e) => e,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let more = events.len() > size;
    events.truncate(size);
    let next = more
        .then(|| events.last().map(|e| cursor_for(st, &e.id.to_string())))
        .flatten();
    // The total of a query over an append-only log is not counted (it would read every match).
    respond(
        StatusCode::OK,
        json!({
            "code": 200,
            "message": "success",
            "items": events.iter().map(item).collect::<Vec<_>>(),
            "total": null,
            "pagination": {"page_size": size, "next_cursor": next},
            "timestamp": timestamp(),
        }),
    )
}

/// `GET /admin/oauth/audit-events?kind=&client_id=&user_id=&since=&until=&cursor=&page_size=`:
/// audit events (reuse detections, code replays, failed sign-ins, admin revocations), newest
/// first, for a SIEM to page through.
pub(super) async fn events(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    let query = audit_query(&st, &q, None);
    audit_page(&st, query, audit_item).await
}

/// `GET /admin/oauth/clients/{client_id}/audit-logs`: the client's audit events in the
/// reference's shape.
pub(super) async fn client_logs(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(r) = exists(&st, &GrantsOf::Client(id.clone())).await {
        return r;
    }
    let query = audit_query(&st, &q, Some(id));
    audit_page(&st, query, audit_log_item).await
}
