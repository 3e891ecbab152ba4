//! Client metadata for dynamic registration (RFC 7591 §2) and its validation: what a client may
//! ask to be, turned into the fields of a [`Client`]. Errors are RFC 7591 §3.2.2 codes.

use super::model::{AuthMethod, Client, GRANT_TYPES};
use super::scope::Scope;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
}

/// A validation failure: (`error`, description).
pub type Invalid = (&'static str, String);

fn uri_ok(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|p| p.fragment().is_none() && (!p.cannot_be_a_base() || p.scheme().contains('.')))
}

/// Checks `m` and applies it to `client` (a new one, or the one being updated).
pub fn apply(m: &Metadata, client: &mut Client, custom_scopes: &[String]) -> Result<(), Invalid> {
    let meta = |d: &str| ("invalid_client_metadata", d.to_string());
    let method = match m.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(s) => AuthMethod::parse(s).ok_or_else(|| meta("token_endpoint_auth_method is not supported"))?,
    };
    let grants = m
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".into(), "refresh_token".into()]);
    if grants.is_empty() || grants.iter().any(|g| !GRANT_TYPES.contains(&g.as_str())) {
        return Err(meta("grant_types has an unsupported value"));
    }
    if let Some(rt) = &m.response_types {
        let wants_code = grants.iter().any(|g| g == "authorization_code");
        if rt.iter().any(|r| r != "code") || (wants_code && rt.is_empty()) {
            return Err(meta("response_types may only contain code"));
        }
    }
    if grants.iter().any(|g| g == "authorization_code") && m.redirect_uris.is_empty() {
        return Err((
            "invalid_redirect_uri",
            "redirect_uris is required for authorization_code".into(),
        ));
    }
    for u in m.redirect_uris.iter().chain(&m.post_logout_redirect_uris) {
        if !uri_ok(u) || u.len() > 2048 {
            return Err((
                "invalid_redirect_uri",
                format!("`{u}` is not an absolute URI without fragment"),
            ));
        }
    }
    if method == AuthMethod::None && grants.iter().any(|g| g == "client_credentials") {
        return Err(meta("a public client cannot use client_credentials"));
    }
    let jwks = match &m.jwks {
        Some(v) if v.get("keys").is_some_and(|k| k.is_array()) => Some(v.to_string()),
        Some(_) => return Err(meta("jwks must be a JWK Set {\"keys\": [...]}")),
        None => None,
    };
    if jwks.is_some() && m.jwks_uri.is_some() {
        return Err(meta("use jwks or jwks_uri, not both"));
    }
    if let Some(u) = &m.jwks_uri {
        // The server fetches it: over https only, so registration cannot aim the nodes at
        // plain-http internal services (operators should still restrict outbound traffic).
        if !uri_ok(u) || !u.starts_with("https://") {
            return Err(meta("jwks_uri must be an absolute https URI"));
        }
    }
    if method == AuthMethod::PrivateKeyJwt && jwks.is_none() && m.jwks_uri.is_none() {
        return Err(meta("private_key_jwt needs jwks or jwks_uri"));
    }
    let scope = Scope::parse(m.scope.as_deref().unwrap_or("openid profile email offline_access")).map_err(meta)?;
    if !scope.unknown(custom_scopes).is_empty() {
        return Err(meta("scope has unknown values"));
    }
    client.name = m
        .client_name
        .clone()
        .unwrap_or_else(|| client.id.clone())
        .chars()
        .take(200)
        .collect();
    client.auth_method = method;
    client.redirect_uris = m.redirect_uris.clone();
    client.grant_types = grants;
    client.scope = scope.to_string();
    client.jwks = jwks;
    client.jwks_uri = m.jwks_uri.clone();
    client.post_logout_redirect_uris = m.post_logout_redirect_uris.clone();
    client.dpop_bound = m.dpop_bound_access_tokens;
    client.require_par = m.require_pushed_authorization_requests;
    Ok(())
}

/// The metadata of a registered client, as RFC 7591 §3.2.1 and RFC 7592 §3 return it.
pub fn describe(c: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id,
        "client_name": c.name,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "grant_types": c.grant_types,
        "response_types": if c.allows_grant("authorization_code") { vec!["code"] } else { vec![] },
        "scope": c.scope,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "dpop_bound_access_tokens": c.dpop_bound,
        "require_pushed_authorization_requests": c.require_par,
        "jwks_uri": c.jwks_uri,
        "jwks": c.jwks.as_deref().and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()),
        "client_id_issued_at": c.created_at_ms / 1000,
    })
}
