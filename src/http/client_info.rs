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
use serde::Serialize;
use std::net::SocketAddr;

/// The reference's `PublicClientInfo`, with the client's display links.
#[derive(Serialize)]
struct PublicClientInfo {
    client_id: String,
    client_name: String,
    logo_uri: Option<String>,
    client_uri: Option<String>,
    policy_uri: Option<String>,
    tos_uri: Option<String>,
    scopes: Vec<String>,
    /// Always null: this server has no tenants.
    tenant_id: Option<String>,
}

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
