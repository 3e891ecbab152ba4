//! Admin API: device authorizations (RFC 8628) in progress: list, delete.

use super::{authorize, known_params, paginate, removed};
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::domain::model::DeviceCode;
use crate::http::envelope::{fail, from_oauth, list_page};
use crate::http::AppState;
use crate::util::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::HashMap;

/// A device authorization as the reference lists it (`DeviceAuthorizationListItem`). Only the
/// device code's hash is stored, so `device_code` is null and the user code identifies it.
fn device_item(d: &DeviceCode) -> Value {
    json!({
        "device_code": null,
        "user_code": d.user_code,
        "client_id": d.client_id,
        "user_id": d.user_id,
        "scope": d.scope.to_string_sorted(),
        "status": d.status.as_str(),
        "interval": d.interval_s,
        "poll_count": null,
        "created_at": d.created_at_ms / 1000,
        "updated_at": d.last_poll_ms.unwrap_or(d.created_at_ms) / 1000,
        "expires_at": d.expires_at_ms / 1000,
    })
}

/// `GET /admin/oauth/devices?status=&client_id=&page_size=&cursor=` (or `page=`): device
/// authorizations by user code (`status=pending` for those waiting for a user).
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
