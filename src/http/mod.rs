//! HTTP layer (axum): routing, extractors, one module per endpoint group, pages. It turns
//! requests into typed inputs for `grants`, and typed outcomes into responses and headers.

mod authorize;
mod body;
pub mod cookies;
mod device;
mod discovery;
mod dpop;
mod error;
mod health;
mod logout;
mod pages;
pub mod ratelimit;
mod register;
mod resource;
mod session;
mod token;

// The parsers of request headers, for the fuzz targets (fuzz/).
pub use body::credentials;

use crate::app::App;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

pub use error::ApiError;

/// The rate limiters for a config (built once per process).
pub fn ratelimit_limits(cfg: &crate::config::Config) -> ratelimit::Limits {
    ratelimit::Limits::new(cfg)
}

/// Per-process HTTP state: the app plus in-memory rate limiters.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    pub limits: Arc<ratelimit::Limits>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub demo: bool,
}

/// The metrics listener's routes (`metrics.listen`): `GET /metrics` only. Metrics are not on
/// the public router: they tell anyone how busy the server is and how often tokens are reused.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .fallback(error::not_found)
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let demo = state.demo;
    let mut r = Router::new()
        .route("/.well-known/openid-configuration", get(discovery::metadata))
        .route("/.well-known/oauth-authorization-server", get(discovery::metadata))
        .route("/oauth/jwks", get(discovery::jwks))
        .route(
            "/oauth/authorize",
            get(authorize::get_authorize).post(authorize::post_authorize),
        )
        .route("/oauth/token", post(token::token))
        .route("/oauth/refresh", post(token::refresh))
        .route("/oauth/pushed-authorization", post(token::pushed_authorization))
        .route("/oauth/dpop/nonce", get(dpop::nonce))
        .route("/oauth/device/authorize", post(device::device_authorization))
        .route("/oauth/device", get(device::device_page).post(device::device_submit))
        .route("/oauth/userinfo", get(resource::userinfo).post(resource::userinfo))
        .route("/oauth/introspect", post(resource::introspect))
        .route("/oauth/revoke", post(resource::revoke))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/oauth/logout", get(logout::logout).post(logout::logout))
        .route("/oauth/register", post(register::register))
        .route(
            "/oauth/register/{client_id}",
            get(register::read).put(register::update).delete(register::delete),
        )
        .route("/account", get(session::account))
        .route("/account/revoke", post(session::account_revoke))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if demo {
        r = r.route("/demo/callback", get(pages::demo_callback));
    }
    r.fallback(error::not_found).with_state(state)
}
