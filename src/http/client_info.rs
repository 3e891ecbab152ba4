//! `GET /oauth/client/{client_id}` (SPEC §8): what a consent screen may show about a client,
//! the reference's `PublicClientInfo {client_name, logo_uri, scopes, tenant_id}` (plus
//! `client_id` and the RFC 7591 `client_uri`, `policy_uri`, `tos_uri`) in its envelope. Public (no authentication), so it is charged to the caller's address like the
//! token endpoint, and it says nothing secret: no redirect URIs, keys or secrets.

use super::envelope::{fail, from_oauth, ok};
use super::AppState;
use crate::domain::error::OAuthError;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;

/// `PublicClientInfo`: what a consent screen may show about a client.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct PublicClientInfo {
    pub client_id: String,
    pub client_name: String,
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    /// The scopes the client may ask for.
    pub scopes: Vec<String>,
    /// Always null (one tenant).
    pub tenant_id: Option<String>,
}

/// `GET /oauth/client/{client_id}`.
#[utoipa::path(get, path = crate::paths::PUBLIC_CLIENT, tag = "oauth",
    params(("client_id" = String, Path)),
    responses(
        (status = 200, description = "The client's public information", body = crate::http::envelope::Envelope<PublicClientInfo>),
        (status = 404, description = "No such client", body = crate::http::envelope::SimpleResponse),
        (status = 429, description = "Too many requests from this address", body = crate::http::envelope::SimpleResponse),
        (status = 503, description = "The database is unavailable", body = crate::http::envelope::SimpleResponse),
    ))]
pub async fn public_client(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = st.limits.before_client_auth(addr.ip()) {
        let retry = e.retry_after;
        let mut resp = from_oauth(e);
        if let Some(v) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    match st.app.store.get_client(&id).await {
        Ok(Some(c)) => ok(
            StatusCode::OK,
            PublicClientInfo {
                scopes: c.scopes(),
                client_id: c.id,
                client_name: c.name,
                logo_uri: c.display.logo_uri,
                client_uri: c.display.client_uri,
                policy_uri: c.display.policy_uri,
                tos_uri: c.display.tos_uri,
                tenant_id: None,
            },
        ),
        Ok(None) => fail(StatusCode::NOT_FOUND, &format!("no client {id}")),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}
