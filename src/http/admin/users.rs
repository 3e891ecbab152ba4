//! Admin API: users (list, create, get, delete, set password), by the CLI's account rules
//! (`grants::accounts`).

use super::{authorize, change, found, known_params, paginate, removed};
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::domain::model::User;
use crate::grants::accounts::{self, AccountError, NewUser};
use crate::http::envelope::{fail, from_oauth, list_page, ok, Envelope, ListEnvelope};
use crate::http::AppState;
use crate::paths;
use crate::util::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// A user, without anything secret (no password hash).
#[derive(Serialize, ToSchema)]
pub struct UserItem {
    pub id: String,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: i64,
}

fn user_item(u: &User) -> UserItem {
    UserItem {
        id: u.id.clone(),
        username: u.username.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        created_at: u.created_at_ms / 1000,
    }
}

/// An account rule's refusal (`grants::accounts`, the CLI's rules).
fn account_error(e: AccountError) -> Response {
    match e {
        AccountError::Invalid(why) => fail(StatusCode::BAD_REQUEST, why),
        AccountError::UsernameTaken(_) => fail(StatusCode::CONFLICT, &e.to_string()),
        AccountError::Store(e) => from_oauth(OAuthError::from(e)),
        AccountError::Hash(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "cannot hash the password now"),
    }
}

/// `GET /admin/oauth/users?username=&page_size=&cursor=`: users by id, `username` a
/// case-insensitive substring.
#[utoipa::path(get, path = paths::ADMIN_USERS, tag = "users", security(("admin" = ["admin:read"])),
    params(("username" = Option<String>, Query, description = "A case-insensitive part of the username"), super::Paged),
    responses((status = 200, description = "One page of users", body = ListEnvelope<UserItem>), super::openapi::AdminErrors))]
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(e) = known_params(&q, &["username", "page", "page_size", "cursor"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    let mut all = match st.app.store.list_users().await {
        Ok(u) => u,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    if let Some(n) = q.get("username").map(|n| n.to_lowercase()) {
        all.retain(|u| u.username.to_lowercase().contains(&n));
    }
    match paginate(&st, &q, all, |u: &User| u.id.as_str()) {
        Ok((page, total, size, next)) => list_page(page.iter().map(user_item).collect(), total, size, next),
        Err(e) => fail(StatusCode::BAD_REQUEST, &e),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "bob", "password": "correct horse battery staple", "email": "bob@example.com"}))]
pub struct CreateUserRequest {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /admin/oauth/users`: 201 with the user (the CLI's account rules).
#[utoipa::path(post, path = paths::ADMIN_USERS, tag = "users", security(("admin" = ["admin:write"])),
    request_body = CreateUserRequest,
    responses((status = 201, description = "Created", body = Envelope<UserItem>), super::openapi::AdminErrors))]
pub(super) async fn create(State(st): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let req: CreateUserRequest = match change(&st, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let new = NewUser {
        username: &req.username,
        password: &req.password,
        email: req.email.clone(),
        name: req.name.clone(),
    };
    match accounts::create_user(&st.app.store, new).await {
        Ok(id) => match st.app.store.get_user(&id).await {
            Ok(Some(u)) => ok(StatusCode::CREATED, user_item(&u)),
            Ok(None) => fail(StatusCode::SERVICE_UNAVAILABLE, "the new user is not readable yet"),
            Err(e) => from_oauth(OAuthError::from(e)),
        },
        Err(e) => account_error(e),
    }
}

/// The user `id`, or a 404.
async fn user_or_404(st: &AppState, id: &str) -> Result<User, Response> {
    found(st.app.store.get_user(id).await, &format!("user {id}"))
}

/// `GET /admin/oauth/users/{user_id}`.
#[utoipa::path(get, path = paths::ADMIN_USER, tag = "users", security(("admin" = ["admin:read"])),
    params(("user_id" = String, Path)),
    responses((status = 200, description = "The user", body = Envelope<UserItem>), super::openapi::AdminErrors))]
pub(super) async fn get(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    match user_or_404(&st, &id).await {
        Ok(u) => ok(StatusCode::OK, user_item(&u)),
        Err(r) => r,
    }
}

/// `DELETE /admin/oauth/users/{user_id}`: the user, their sessions and grants (the store's
/// cascade, as `autional user delete`).
#[utoipa::path(delete, path = paths::ADMIN_USER, tag = "users", security(("admin" = ["admin:write"])),
    params(("user_id" = String, Path)),
    responses((status = 204, description = "Deleted; their sessions and grants ended"), super::openapi::AdminErrors))]
pub(super) async fn delete(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    removed(st.app.store.delete_user(&id, now_ms()).await, &format!("user {id}"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "a new long passphrase"}))]
pub struct SetPasswordRequest {
    password: String,
}

/// `PUT /admin/oauth/users/{user_id}/password`: a new password; the user's sessions and grants
/// end (`grants::accounts::set_password`, as `autional user set-password`).
#[utoipa::path(put, path = paths::ADMIN_USER_PASSWORD, tag = "users", security(("admin" = ["admin:write"])),
    params(("user_id" = String, Path)),
    request_body = SetPasswordRequest,
    responses((status = 204, description = "Changed; their sessions and grants ended"), super::openapi::AdminErrors))]
pub(super) async fn set_password(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: SetPasswordRequest = match change(&st, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = user_or_404(&st, &id).await {
        return r;
    }
    match accounts::set_password(&st.app.store, &id, &req.password).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => account_error(e),
    }
}
