//! Admin API: a client's figures (`ClientStatsResponse`): live grants, last use, and the last
//! 24 hours' refreshes, grants used and reuse detections.

use super::authorize;
use super::grants::exists;
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::domain::model::Family;
use crate::grants::refresh_counts;
use crate::http::envelope::{from_oauth, ok, Envelope};
use crate::http::AppState;
use crate::paths;
use crate::store::{AuditQuery, GrantsOf};
use crate::util::now_ms;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

/// The reference's `ClientStatsResponse` and the last 24 hours.
#[derive(Serialize, ToSchema)]
pub struct ClientStatsResponse {
    pub client_id: String,
    /// Live grants (each with its access tokens).
    pub active_tokens: usize,
    pub active_refresh_tokens: usize,
    /// The last use of any live grant, Unix seconds.
    pub last_request_at: Option<i64>,
    /// Live grants used in the last 24 hours.
    pub grants_used_24h: usize,
    /// Refresh-token reuse detections in the last 24 hours.
    pub reuse_detections_24h: usize,
    /// Refreshes (rotations issued) in the last 24 hours, to within ten minutes; other
    /// processes' last few seconds may not be in it yet.
    pub refreshes_24h: i64,
}

/// The most reuse detections counted for one client's stats (a bound on the query).
const MAX_COUNTED_EVENTS: i64 = 10_000;

/// `GET /admin/oauth/clients/{client_id}/stats`: the reference's `ClientStatsResponse`
/// (`client_id`, `active_tokens`, `active_refresh_tokens`, `last_request_at`) with the last 24
/// hours: refreshes (`grants::refresh_counts`), grants used and reuse detections.
#[utoipa::path(get, path = paths::ADMIN_CLIENT_STATS, tag = "clients", security(("admin" = ["admin:read"])),
    params(("client_id" = String, Path)),
    responses((status = 200, description = "The client's figures", body = Envelope<ClientStatsResponse>), super::openapi::AdminErrors))]
pub(super) async fn stats(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(r) = exists(&st, &GrantsOf::Client(id.clone())).await {
        return r;
    }
    let now = now_ms();
    let day_ago = now - 86_400_000;
    let families = match st.app.store.list_client_families(&id, now).await {
        Ok(f) => f,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let live: Vec<&Family> = families.iter().filter(|f| f.is_active(now)).collect();
    let reuse = AuditQuery {
        kind: Some(
            crate::domain::model::AuditKind::RefreshReuseDetected
                .as_str()
                .to_string(),
        ),
        client_id: Some(id.clone()),
        since_ms: Some(day_ago),
        limit: MAX_COUNTED_EVENTS,
        ..AuditQuery::default()
    };
    let reuses = match st.app.store.query_audit(reuse).await {
        Ok(e) => e.len(),
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let refreshes = match refresh_counts::last_day(&st.app.refresh_counts, &st.app.store, &id, now).await {
        Ok(n) => n,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let body = ClientStatsResponse {
        refreshes_24h: refreshes,
        active_tokens: live.len(),
        active_refresh_tokens: live.len(),
        last_request_at: live.iter().map(|f| f.last_used_at_ms / 1000).max(),
        grants_used_24h: live.iter().filter(|f| f.last_used_at_ms >= day_ago).count(),
        reuse_detections_24h: reuses,
        client_id: id,
    };
    ok(StatusCode::OK, body)
}
