//! Metadata (OIDC Discovery 1.0 and RFC 8414, one document at both well-known paths) and the
//! JWKS. Advertises only what is implemented.

use super::AppState;
use crate::paths;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET /.well-known/openid-configuration` (OIDC Discovery 1.0 §4).
#[utoipa::path(get, path = paths::OPENID_CONFIGURATION, tag = "oauth",
    responses((status = 200, description = "The provider's metadata", body = Object)))]
pub async fn metadata(State(st): State<AppState>) -> Response {
    document(&st)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3): the same document.
#[utoipa::path(get, path = paths::OAUTH_AUTHORIZATION_SERVER, tag = "oauth",
    responses((status = 200, description = "The authorization server's metadata", body = Object)))]
pub async fn oauth_metadata(State(st): State<AppState>) -> Response {
    document(&st)
}

fn document(st: &AppState) -> Response {
    let iss = &st.app.cfg.issuer;
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}{}", paths::AUTHORIZE),
        "token_endpoint": format!("{iss}{}", paths::TOKEN),
        "jwks_uri": format!("{iss}{}", paths::JWKS),
        "userinfo_endpoint": format!("{iss}{}", paths::USERINFO),
        "revocation_endpoint": format!("{iss}{}", paths::REVOKE),
        "pushed_authorization_request_endpoint": format!("{iss}{}", paths::PUSHED_AUTHORIZATION),
        "require_pushed_authorization_requests": false,
        "dpop_signing_alg_values_supported": crate::jose::dpop::ALGS,
        "authorization_details_types_supported": st.app.cfg.authorization_details.types,
        "introspection_endpoint": format!("{iss}{}", paths::INTROSPECT),
        "end_session_endpoint": format!("{iss}{}", paths::END_SESSION),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "registration_endpoint": st.app.cfg.registration.enabled.then(|| format!("{iss}{}", paths::REGISTER)),
        "scopes_supported": crate::domain::scope::SUPPORTED.iter().map(|s| s.to_string()).chain(st.app.cfg.scopes.custom.iter().cloned()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": crate::domain::model::GRANT_TYPES,
        "device_authorization_endpoint": format!("{iss}{}", paths::DEVICE_AUTHORIZATION),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "name", "preferred_username", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    });
    let mut doc = doc;
    if let Some(m) = doc.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    let mut resp = axum::Json(doc).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// `GET /oauth/jwks`: the public keys that verify our ID and access tokens.
#[utoipa::path(get, path = paths::JWKS, tag = "oauth",
    responses((status = 200, description = "A JWK Set (RFC 7517 §5)", content_type = "application/jwk-set+json", body = Object)))]
pub async fn jwks(State(st): State<AppState>) -> Response {
    let body = st.app.keys.get().jwks.clone();
    let mut resp = ([(header::CONTENT_TYPE, "application/jwk-set+json")], body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    resp
}
