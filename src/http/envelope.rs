//! The reference service's envelope for its non-OAuth endpoints (SPEC §8; the admin API, the
//! public client information): results `{code, message, data, timestamp}`, lists `{code,
//! message, items, total, pagination, timestamp}`, errors `SimpleResponse {code, message,
//! timestamp}`. `code` is the HTTP status, `timestamp` Unix seconds. OAuth endpoints never use it.

use crate::domain::error::OAuthError;
use crate::util::now_ms;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

pub fn timestamp() -> i64 {
    now_ms() / 1000
}

pub fn respond(status: StatusCode, body: impl Serialize) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    super::error::no_store(&mut resp);
    resp
}

/// A result: `{code, message, data, timestamp}`.
pub fn ok(status: StatusCode, data: Value) -> Response {
    data_of(status, &data)
}

/// The envelope of a result whose `data` is a typed body.
#[derive(Serialize)]
pub struct Envelope<'a, T> {
    pub code: u16,
    pub message: &'static str,
    pub data: &'a T,
    pub timestamp: i64,
}

/// A result with a typed `data`: `{code, message: "success", data, timestamp}`.
pub fn data_of<T: Serialize>(status: StatusCode, data: &T) -> Response {
    respond(
        status,
        Envelope {
            code: status.as_u16(),
            message: "success",
            data,
            timestamp: timestamp(),
        },
    )
}

/// An error: `SimpleResponse {code, message, timestamp}`.
pub fn fail(status: StatusCode, message: &str) -> Response {
    respond(
        status,
        json!({"code": status.as_u16(), "message": message, "timestamp": timestamp()}),
    )
}

/// An error of a grant or the store, with its status (503 for a failing database).
pub fn from_oauth(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    fail(status, e.description.as_deref().unwrap_or(e.code.as_str()))
}

/// A list: `{code, message, items, total, pagination, timestamp}`.
pub fn list_page(items: Vec<Value>, total: usize, size: usize, next: Option<String>) -> Response {
    respond(
        StatusCode::OK,
        json!({
            "code": 200,
            "message": "success",
            "items": items,
            "total": total,
            "pagination": {"page_size": size, "next_cursor": next},
            "timestamp": timestamp(),
        }),
    )
}
