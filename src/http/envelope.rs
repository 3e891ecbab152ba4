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

pub fn timestamp() -> i64 {
    now_ms() / 1000
}

/// A result: `{code, message, data, timestamp}`.
#[derive(Serialize)]
pub struct Envelope<T> {
    pub code: u16,
    pub message: &'static str,
    pub data: T,
    pub timestamp: i64,
}

/// An error: `SimpleResponse {code, message, timestamp}`.
#[derive(Serialize)]
pub struct SimpleResponse<'a> {
    pub code: u16,
    pub message: &'a str,
    pub timestamp: i64,
}

/// Where the next page starts.
#[derive(Serialize)]
pub struct Pagination {
    pub page_size: usize,
    pub next_cursor: Option<String>,
}

/// A list: `{code, message, items, total, pagination, timestamp}`.
#[derive(Serialize)]
pub struct ListPage<T> {
    pub code: u16,
    pub message: &'static str,
    pub items: Vec<T>,
    pub total: usize,
    pub pagination: Pagination,
    pub timestamp: i64,
}

pub fn respond<T: Serialize>(status: StatusCode, body: T) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    super::error::no_store(&mut resp);
    resp
}

/// A result: `{code, message, data, timestamp}`.
pub fn ok<T: Serialize>(status: StatusCode, data: T) -> Response {
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
        SimpleResponse {
            code: status.as_u16(),
            message,
            timestamp: timestamp(),
        },
    )
}

/// An error of a grant or the store, with its status (503 for a failing database).
pub fn from_oauth(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    fail(status, e.description.as_deref().unwrap_or(e.code.as_str()))
}

/// A list: `{code, message, items, total, pagination, timestamp}`.
pub fn list_page<T: Serialize>(items: Vec<T>, total: usize, size: usize, next: Option<String>) -> Response {
    respond(
        StatusCode::OK,
        ListPage {
            code: 200,
            message: "success",
            items,
            total,
            pagination: Pagination {
                page_size: size,
                next_cursor: next,
            },
            timestamp: timestamp(),
        },
    )
}
