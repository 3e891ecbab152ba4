//! Admin API: the audit log, for a SIEM (all events) and per client (the reference's shape).

use super::grants::exists;
use super::{authorize, before_id, known_params, newest_first_page, page_size};
use crate::domain::admin::Need;
use crate::http::envelope::{fail, ListEnvelope};
use crate::http::AppState;
use crate::paths;
use crate::store::{AuditQuery, AuditRecord, GrantsOf};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use utoipa::ToSchema;

/// An audit event: when (Unix seconds), what, whose.
#[derive(Serialize, ToSchema)]
pub struct AuditEventItem {
    /// Increasing with time.
    pub id: i64,
    pub timestamp: i64,
    /// What happened, e.g. `refresh.reuse_detected`, `admin.grants_revoked`.
    pub kind: String,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub grant_id: Option<String>,
    /// What else the event recorded, as a JSON object.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

fn audit_item(a: &AuditRecord) -> AuditEventItem {
    AuditEventItem {
        id: a.id,
        timestamp: a.at_ms / 1000,
        kind: a.kind.clone(),
        client_id: a.client_id.clone(),
        user_id: a.user_id.clone(),
        grant_id: a.family_id.clone(),
        detail: a.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
    }
}

/// The same event as the reference's `OAuthAuditLogItem` (a client's audit log); the
/// reference's fields this server has no value for are null.
#[derive(Serialize, ToSchema)]
pub struct OAuthAuditLogItem {
    pub id: String,
    pub timestamp: i64,
    pub action: String,
    /// `oauth`.
    pub module: &'static str,
    /// `warning` for reuse and replay detections, `info` otherwise.
    pub level: &'static str,
    /// The event's detail, a JSON object as a string.
    pub message: Option<String>,
    pub status: &'static str,
    pub ip: Option<String>,
    pub operator_id: Option<String>,
    /// `user` or `system`.
    pub operator_type: &'static str,
    pub target_id: Option<String>,
    /// `grant` or `client`.
    pub target_type: &'static str,
    pub tenant_id: Option<String>,
}

fn audit_log_item(a: &AuditRecord) -> OAuthAuditLogItem {
    let alarming = a.kind.ends_with("reuse_detected") || a.kind.ends_with("replay_detected");
    OAuthAuditLogItem {
        id: a.id.to_string(),
        timestamp: a.at_ms / 1000,
        action: a.kind.clone(),
        module: "oauth",
        level: if alarming { "warning" } else { "info" },
        message: a.detail.clone(),
        status: "success",
        ip: None,
        operator_id: a.user_id.clone(),
        operator_type: if a.user_id.is_some() { "user" } else { "system" },
        target_id: a.family_id.clone().or(a.client_id.clone()),
        target_type: if a.family_id.is_some() { "grant" } else { "client" },
        tenant_id: None,
    }
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
    let before_id = before_id(st, q)?;
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
async fn audit_page<T: Serialize>(
    st: &AppState,
    q: Result<AuditQuery, String>,
    item: fn(&AuditRecord) -> T,
) -> Response {
    let q = match q {
        Ok(q) => q,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let size = (q.limit - 1) as usize;
    newest_first_page(st, st.app.store.query_audit(q).await, size, |e| e.id, item)
}

/// `GET /admin/oauth/audit-events?kind=&client_id=&user_id=&since=&until=&cursor=&page_size=`:
/// audit events (reuse detections, code replays, failed sign-ins, admin revocations), newest
/// first, for a SIEM to page through.
#[utoipa::path(get, path = paths::ADMIN_AUDIT, tag = "audit", security(("admin" = ["admin:read"])),
    params(("client_id" = Option<String>, Query), ("kind" = Option<String>, Query, description = "e.g. refresh.reuse_detected"), ("user_id" = Option<String>, Query), ("since" = Option<i64>, Query, description = "Unix seconds"), ("until" = Option<i64>, Query, description = "Unix seconds"), super::Cursored),
    responses((status = 200, description = "One page of events, newest first", body = ListEnvelope<AuditEventItem>), super::openapi::AdminErrors))]
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
#[utoipa::path(get, path = paths::ADMIN_CLIENT_AUDIT, tag = "audit", security(("admin" = ["admin:read"])),
    params(("client_id" = String, Path), ("kind" = Option<String>, Query, description = "e.g. refresh.reuse_detected"), ("user_id" = Option<String>, Query), ("since" = Option<i64>, Query, description = "Unix seconds"), ("until" = Option<i64>, Query, description = "Unix seconds"), super::Cursored),
    responses((status = 200, description = "One page of the client's events, newest first", body = ListEnvelope<OAuthAuditLogItem>), super::openapi::AdminErrors))]
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
