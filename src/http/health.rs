//! Liveness (`/healthz`), readiness (`/readyz`: the database answers) and Prometheus metrics.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = crate::paths::HEALTHZ, tag = "operations",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the process can serve (its database answers).
#[utoipa::path(get, path = crate::paths::READYZ, tag = "operations",
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "The database is unavailable", content_type = "text/plain", body = String),
    ))]
pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => (
            [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}
