//! Admin API: device authorizations (RFC 8628) in progress: list, delete.

use super::{authorize, known_params, paginate, removed};
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::domain::model::DeviceCode;
use crate::http::envelope::{fail, from_oauth, list_page, ListEnvelope};
use crate::http::AppState;
use crate::paths;
use crate::util::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// A device authorization as the reference lists it (`DeviceAuthorizationListItem`). Only the
/// device code's hash is stored, so `device_code` is null and the user code identifies it.
#[derive(Serialize, ToSchema)]
pub struct DeviceAuthorizationListItem {
    /// Always null: only the device code's hash is stored.
    pub device_code: Option<String>,
    pub user_code: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub scope: String,
    /// `pending`, `approved`, `denied`, `consumed` or `ended`.
    pub status: &'static str,
    pub interval: i64,
    /// Always null (polls are not counted).
    pub poll_count: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
}

fn device_item(d: &DeviceCode) -> DeviceAuthorizationListItem {
    DeviceAuthorizationListItem {
        device_code: None,
        user_code: d.user_code.clone(),
        client_id: d.client_id.clone(),
        user_id: d.user_id.clone(),
        scope: d.scope.to_string_sorted(),
        status: d.status.as_str(),
        interval: d.interval_s,
        poll_count: None,
        created_at: d.created_at_ms / 1000,
        updated_at: d.last_poll_ms.unwrap_or(d.created_at_ms) / 1000,
        expires_at: d.expires_at_ms / 1000,
    }
}

/// `GET /admin/oauth/devices?status=&client_id=&page_size=&cursor=` (or `page=`): device
/// authorizations by user code (`status=pending` for those waiting for a user).
#[utoipa::path(get, path = paths::ADMIN_DEVICES, tag = "devices", security(("admin" = ["admin:read"])),
    params(("status" = Option<String>, Query, description = "pending, approved, denied, consumed or ended"),
        ("client_id" = Option<String>, Query), super::Paged),
    responses((status = 200, description = "One page of device authorizations", body = ListEnvelope<DeviceAuthorizationListItem>), super::openapi::AdminErrors))]
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(e) = known_params(&q, &["status", "client_id", "page", "page_size", "cursor"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    let status = match q.get("status") {
        None => None,
        Some(s) => match crate::domain::model::DeviceStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "status must be pending, approved, denied, consumed or ended",
                )
            }
        },
    };
    let mut all = match st.app.store.list_devices().await {
        Ok(d) => d,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let now = now_ms();
    all.retain(|d| {
        d.expires_at_ms > now
            && status.is_none_or(|s| d.status == s)
            && q.get("client_id").is_none_or(|c| &d.client_id == c)
    });
    match paginate(&st, &q, all, |d: &DeviceCode| d.user_code.as_str()) {
        Ok((page, total, size, next)) => list_page(page.iter().map(device_item).collect(), total, size, next),
        Err(e) => fail(StatusCode::BAD_REQUEST, &e),
    }
}

/// `DELETE /admin/oauth/devices/{user_code}`: the authorization is gone; the device's next
/// poll gets `invalid_grant`, and the user code is no longer accepted.
#[utoipa::path(delete, path = paths::ADMIN_DEVICE, tag = "devices", security(("admin" = ["admin:write"])),
    params(("user_code" = String, Path, description = "As shown to the user; case and dash do not matter")),
    responses((status = 204, description = "Deleted; the device's next poll fails"), super::openapi::AdminErrors))]
pub(super) async fn delete(State(st): State<AppState>, headers: HeaderMap, Path(code): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    // As users type it: case and the dash do not matter.
    let code: String = code.chars().filter(|c| *c != '-').collect::<String>().to_uppercase();
    removed(
        st.app.store.delete_device(&code).await,
        &format!("device authorization {code}"),
    )
}
