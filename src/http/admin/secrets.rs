//! Admin API: a client's secrets (list, add, deactivate, delete) and their rotation, in the
//! reference's shapes (`OAuthClientSecretResponse`, `CreateClientSecretResponse`,
//! `RotateSecretDetailResponse`). The rules and the concurrency control are
//! `grants::secrets`'s, shared with the CLI; responses never carry a stored secret or its hash,
//! only a new secret, once.

use super::{authorize, change, found, removed};
use crate::domain::admin::Need;
use crate::domain::model::{ClientSecret, SecretStatus};
use crate::domain::secrets::{status_at, Refusal};
use crate::grants::secrets::{self, SecretError};
use crate::http::envelope::{fail, ok, Envelope};
use crate::http::AppState;
use crate::paths;
use crate::util::now_ms;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The reference's `OAuthClientSecretResponse`. Times are Unix seconds. `status` is `inactive`
/// once the secret no longer authenticates (deactivated or expired). `last_used_at` is always
/// null: recording it would add a write to every token request.
#[derive(Serialize, ToSchema)]
#[schema(as = OAuthClientSecretResponse)]
pub struct SecretItem {
    secret_id: String,
    description: Option<String>,
    status: SecretStatus,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl SecretItem {
    fn of(s: &ClientSecret, now_ms: i64) -> SecretItem {
        SecretItem {
            secret_id: s.id.clone(),
            description: s.description.clone(),
            status: status_at(s, now_ms),
            created_at: s.created_at_ms / 1000,
            updated_at: s.updated_at_ms / 1000,
            expires_at: s.expires_at_ms.map(|t| t / 1000),
            last_used_at: None,
        }
    }
}

/// `data` of the list: `{secrets: [OAuthClientSecretResponse]}`.
#[derive(Serialize, ToSchema)]
pub struct SecretList {
    secrets: Vec<SecretItem>,
}

/// The reference's `CreateClientSecretResponse`, with the expiry: the secret is shown once.
#[derive(Serialize, ToSchema)]
pub struct CreatedSecret {
    secret_id: String,
    secret_value: String,
    status: SecretStatus,
    created_at: i64,
    expires_at: Option<i64>,
}

/// The reference's `RotateSecretDetailResponse` data, with when the previous secret stops
/// working (null when there was none).
#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    client_id: String,
    new_secret: String,
    rotated_at: i64,
    previous_secret_expires_at: Option<i64>,
}

/// `POST …/secrets`' optional body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"description": "deploy pipeline"}))]
pub struct AddSecretRequest {
    #[serde(default)]
    description: Option<String>,
    /// Unix seconds, in the future.
    #[serde(default)]
    expires_at: Option<i64>,
}

/// A body with no fields (`rotate-secret` takes none).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// An optional body: none reads as `{}`.
fn or_empty(body: &[u8]) -> &[u8] {
    if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    }
}

/// The service's answer: its value, or 404 naming the unknown client or secret, 400 for a bad
/// value, 409 for a refusal of the rules (limit, lock-out, a client without secrets, a
/// contended change), 503 for a failing database.
#[allow(clippy::result_large_err)] // The error is the handler's finished answer (see `found`).
fn answer<T>(r: Result<T, SecretError>, client_id: &str) -> Result<T, Response> {
    match r {
        Ok(v) => Ok(v),
        Err(SecretError::UnknownClient(_)) => found(Ok(None), &format!("client {client_id}")),
        Err(SecretError::Refused(Refusal::UnknownSecret(id))) => {
            found(Ok(None), &format!("secret {id} of client {client_id}"))
        }
        Err(SecretError::Store(e)) => found(Err(e), "secret"),
        Err(e @ SecretError::Refused(Refusal::Invalid(..))) => Err(fail(StatusCode::BAD_REQUEST, &e.to_string())),
        Err(e) => Err(fail(StatusCode::CONFLICT, &format!("client {client_id}: {e}"))),
    }
}

/// `GET /admin/oauth/clients/{client_id}/secrets`: every secret, in the order added.
#[utoipa::path(get, path = paths::ADMIN_CLIENT_SECRETS, tag = "clients", security(("admin" = ["admin:read"])),
    params(("client_id" = String, Path)),
    responses((status = 200, description = "The client's secrets (never their values)", body = Envelope<SecretList>), super::openapi::AdminErrors))]
pub(super) async fn list(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    let now = now_ms();
    match answer(secrets::list(&st.app.store, &id).await, &id) {
        Ok(l) => ok(
            StatusCode::OK,
            SecretList {
                secrets: l.iter().map(|s| SecretItem::of(s, now)).collect(),
            },
        ),
        Err(r) => r,
    }
}

/// `POST /admin/oauth/clients/{client_id}/secrets` (optional body `{description, expires_at}`):
/// 201 with the new secret, shown once; 409 when the client has 2 active secrets.
#[utoipa::path(post, path = paths::ADMIN_CLIENT_SECRETS, tag = "clients", security(("admin" = ["admin:write"])),
    params(("client_id" = String, Path)),
    request_body(content = Option<AddSecretRequest>, description = "Optional"),
    responses((status = 201, description = "Added; `secret_value` is shown once", body = Envelope<CreatedSecret>), super::openapi::AdminErrors))]
pub(super) async fn add(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: AddSecretRequest = match change(&st, &headers, or_empty(&body)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match answer(
        secrets::add(&st.app.store, &id, req.description, req.expires_at).await,
        &id,
    ) {
        Ok(new) => ok(
            StatusCode::CREATED,
            CreatedSecret {
                secret_id: new.entry.id,
                secret_value: new.secret,
                status: new.entry.status,
                created_at: new.entry.created_at_ms / 1000,
                expires_at: new.entry.expires_at_ms.map(|t| t / 1000),
            },
        ),
        Err(r) => r,
    }
}

/// `POST /admin/oauth/clients/{client_id}/rotate-secret` (no body): a new secret; the newest
/// previous one keeps working for `client_secret.rotation_overlap`, older ones stop.
#[utoipa::path(post, path = paths::ADMIN_CLIENT_ROTATE_SECRET, tag = "clients", security(("admin" = ["admin:write"])),
    params(("client_id" = String, Path)),
    responses((status = 200, description = "Rotated; `new_secret` is shown once", body = Envelope<RotatedSecret>), super::openapi::AdminErrors))]
pub(super) async fn rotate(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = change::<NoFields>(&st, &headers, or_empty(&body)).await {
        return r;
    }
    let overlap = st.app.cfg.client_secret.rotation_overlap.as_ms();
    match answer(secrets::rotate(&st.app.store, &id, overlap).await, &id) {
        Ok(r) => ok(
            StatusCode::OK,
            RotatedSecret {
                client_id: id,
                new_secret: r.new.secret,
                rotated_at: r.rotated_at_ms / 1000,
                previous_secret_expires_at: r.previous_expires_at_ms.map(|t| t / 1000),
            },
        ),
        Err(r) => r,
    }
}

/// `PUT /admin/oauth/clients/{client_id}/secrets/{secret_id}/deactivate` (200 with the secret, now
/// inactive) and `DELETE /admin/oauth/clients/{client_id}/secrets/{secret_id}`
/// (204). Either way it stops working at once; 409 for the client's last active
/// secret.
async fn retire(st: AppState, headers: HeaderMap, id: String, secret_id: String, delete: bool) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    let store = &st.app.store;
    let r = if delete {
        secrets::delete(store, &id, &secret_id).await.map(|()| None)
    } else {
        secrets::deactivate(store, &id, &secret_id).await.map(Some)
    };
    match answer(r, &id) {
        Ok(Some(s)) => ok(StatusCode::OK, SecretItem::of(&s, now_ms())),
        Ok(None) => removed(Ok(true), "secret"),
        Err(r) => r,
    }
}

#[utoipa::path(put, path = paths::ADMIN_CLIENT_SECRET_DEACTIVATE, tag = "clients", security(("admin" = ["admin:write"])),
    params(("client_id" = String, Path), ("secret_id" = String, Path)),
    responses((status = 200, description = "Deactivated: it no longer authenticates", body = Envelope<SecretItem>), super::openapi::AdminErrors))]
pub(super) async fn deactivate(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, secret_id)): Path<(String, String)>,
) -> Response {
    retire(st, headers, id, secret_id, false).await
}

#[utoipa::path(delete, path = paths::ADMIN_CLIENT_SECRET, tag = "clients", security(("admin" = ["admin:write"])),
    params(("client_id" = String, Path), ("secret_id" = String, Path)),
    responses((status = 204, description = "Deleted: it no longer authenticates"), super::openapi::AdminErrors))]
pub(super) async fn delete(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, secret_id)): Path<(String, String)>,
) -> Response {
    retire(st, headers, id, secret_id, true).await
}
