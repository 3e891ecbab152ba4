//! HTTP layer (axum): routing, extractors, one module per endpoint group, pages. It turns
//! requests into typed inputs for `grants`, and typed outcomes into responses and headers.

mod admin;
mod authorize;
mod body;
mod client_info;
mod consents;
pub mod cookies;
mod device;
mod discovery;
mod dpop;
mod envelope;
mod error;
mod health;
mod logout;
mod openapi;
mod pages;
pub mod ratelimit;
mod register;
mod requests;
mod resource;
pub mod routes;
mod session;
mod ssf;
mod token;

// The parsers of request headers, for the fuzz targets (fuzz/).
pub use body::credentials;

use crate::app::App;
use crate::paths;
use axum::routing::get;
use axum::Router;
use routes::Routes;
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
        .route(paths::METRICS, get(health::metrics))
        .fallback(error::not_found)
        .with_state(state)
}

/// The admin listener's routes (`admin.listen`): the admin API only (`http::admin`).
pub fn admin_router(state: AppState) -> Router {
    admin::router(state)
}

/// The public routes and what they are (`http::openapi` documents each of them).
pub fn public_routes() -> Routes<AppState> {
    use routes::{delete, get, post};
    Routes::new()
        .route(paths::OPENID_CONFIGURATION, get(discovery::metadata))
        .route(paths::OAUTH_AUTHORIZATION_SERVER, get(discovery::oauth_metadata))
        .route(paths::JWKS, get(discovery::jwks))
        .route(
            paths::AUTHORIZE,
            get(authorize::get_authorize).post(authorize::post_authorize),
        )
        .route(paths::TOKEN, post(token::token))
        .route(paths::REFRESH, post(token::refresh))
        .route(paths::PUSHED_AUTHORIZATION, post(token::pushed_authorization))
        .route(paths::DPOP_NONCE, get(dpop::nonce))
        .route(paths::DEVICE_AUTHORIZATION, post(device::device_authorization))
        .route(paths::DEVICE, get(device::device_page).post(device::device_submit))
        .route(paths::USERINFO, get(resource::userinfo).post(resource::userinfo))
        .route(paths::INTROSPECT, post(resource::introspect))
        .route(paths::REVOKE, post(resource::revoke))
        .route(paths::LOGIN, get(session::login_page).post(session::login))
        .route(paths::LOGOUT, post(session::logout))
        .route(paths::END_SESSION, get(logout::logout).post(logout::logout))
        .route(paths::PUBLIC_CLIENT, get(client_info::public_client))
        .route(paths::SSF_CONFIGURATION, get(ssf::configuration))
        .route(
            paths::SSF_STREAM,
            post(ssf::create)
                .get(ssf::read)
                .patch(ssf::update)
                .put(ssf::replace)
                .delete(ssf::delete),
        )
        .route(paths::SSF_VERIFY, post(ssf::verify))
        .route(paths::CONSENTS, get(consents::list))
        .route(paths::CONSENT, delete(consents::delete))
        .route(paths::REGISTER, post(register::register))
        .route(
            paths::REGISTER_CLIENT,
            get(register::read).put(register::update).delete(register::delete),
        )
        .route(paths::ACCOUNT, get(session::account))
        .route(paths::ACCOUNT_REVOKE, post(session::account_revoke))
        .route(paths::STYLESHEET, get(pages::stylesheet))
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(health::readyz))
        .route(paths::OPENAPI, get(openapi::public_document))
}

pub fn router(state: AppState) -> Router {
    let mut r = public_routes().into_router();
    // The demo's callback page exists only with `--demo`; it is no part of the API.
    if state.demo {
        r = r.route(paths::DEMO_CALLBACK, get(pages::demo_callback));
    }
    r.fallback(error::not_found).with_state(state)
}
