//! The reference service's envelope for its non-OAuth endpoints (SPEC §8; the admin API, the
//! public client information, the consent API): results `{code, message, data, timestamp}`,
//! lists `{code, message, items, total, pagination, timestamp}`, errors `SimpleResponse {code,
//! message, timestamp}`. `code` is the HTTP status, `timestamp` Unix seconds. OAuth endpoints
//! never use it.

use crate::domain::error::OAuthError;
use crate::util::now_ms;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A result: `{code, message, data, timestamp}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// The HTTP status.
    pub code: u16,
    /// `success`.
    pub message: &'static str,
    pub data: T,
    /// When it was answered, Unix seconds.
    pub timestamp: i64,
}

/// A page of a list: `{code, message, items, total, pagination, timestamp}`.
#[derive(Serialize, ToSchema)]
pub struct ListEnvelope<T> {
    pub code: u16,
    pub message: &'static str,
    pub items: Vec<T>,
    /// How many in all (null where counting would read every match: the audit log).
    pub total: Option<usize>,
    pub pagination: Pagination,
    pub timestamp: i64,
}

/// Where a list goes on.
#[derive(Serialize, ToSchema)]
pub struct Pagination {
    pub page_size: usize,
    /// Give it as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// An error (or a bare acknowledgement): `{code, message, timestamp}`.
#[derive(Serialize, ToSchema)]
pub struct SimpleResponse {
    pub code: u16,
    /// What went wrong, precisely (a field named where one is wrong).
    pub message: String,
    pub timestamp: i64,
}

pub fn timestamp() -> i64 {
    now_ms() / 1000
}

pub fn respond<B: Serialize>(status: StatusCode, body: B) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    super::error::no_store(&mut resp);
    resp
}

/// A result: `{code, message, data, timestamp}`.
pub fn ok<T: Serialize>(status: StatusCode, data: T) -> Response {
    let body = Envelope {
        code: status.as_u16(),
        message: "success",
        data,
        timestamp: timestamp(),
    };
    respond(status, body)
}

/// An error: `SimpleResponse {code, message, timestamp}`.
pub fn fail(status: StatusCode, message: &str) -> Response {
    let body = SimpleResponse {
        code: status.as_u16(),
        message: message.to_string(),
        timestamp: timestamp(),
    };
    respond(status, body)
}

/// An error of a grant or the store, with its status (503 for a failing database).
pub fn from_oauth(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    fail(status, e.description.as_deref().unwrap_or(e.code.as_str()))
}

/// A list page: `{code, message, items, total, pagination, timestamp}`.
pub fn list_page<T: Serialize>(items: Vec<T>, total: usize, size: usize, next: Option<String>) -> Response {
    list_page_of(items, Some(total), size, next)
}

/// A list page whose `total` may be unknown (null).
pub fn list_page_of<T: Serialize>(items: Vec<T>, total: Option<usize>, size: usize, next: Option<String>) -> Response {
    let body = ListEnvelope {
        code: 200,
        message: "success",
        items,
        total,
        pagination: Pagination {
            page_size: size,
            next_cursor: next,
        },
        timestamp: timestamp(),
    };
    respond(StatusCode::OK, body)
}
