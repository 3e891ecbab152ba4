//! Client metadata for dynamic registration (RFC 7591 §2) and its validation: what a client may
//! ask to be, turned into the fields of a [`Client`]. Errors are RFC 7591 §3.2.2 codes.
//!
//! Registration is anonymous, so a [`Policy`] bounds what anybody may register (RFC 7591 §5,
//! RFC 9700 §2.3): the grant types and scopes in `registration.allowed_*`, by default the
//! user-facing grants and the OpenID scopes only, never `client_credentials` or API scopes
//! unless the operator opens them. Redirect URIs follow [`super::redirect_uri::check`]. The
//! same rules hold for a registration and for every RFC 7592 update.

use super::model::{AuthMethod, Client, GRANT_TYPES};
use super::redirect_uri;
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

/// What an anonymous registrant may ask for (from `registration.*` and `scopes.custom`).
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// The configured API scopes (known, besides the OpenID ones).
    pub custom_scopes: &'a [String],
    pub allowed_grant_types: &'a [String],
    pub allowed_scopes: &'a [String],
}

impl Policy<'_> {
    fn grant_allowed(&self, g: &str) -> bool {
        self.allowed_grant_types.iter().any(|a| a == g)
    }
    fn scope_allowed(&self, s: &str) -> bool {
        self.allowed_scopes.iter().any(|a| a == s)
    }
}

fn uri_ok(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|p| p.fragment().is_none() && (!p.cannot_be_a_base() || p.scheme().contains('.')))
}

/// Checks `m` against `policy` and applies it to `client` (a new one, or the one being updated).
pub fn apply(m: &Metadata, client: &mut Client, policy: &Policy<'_>) -> Result<(), Invalid> {
    let meta = |d: &str| ("invalid_client_metadata", d.to_string());
    let method = match m.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(s) => AuthMethod::parse(s).ok_or_else(|| meta("token_endpoint_auth_method is not supported"))?,
    };
    // Without grant_types: the RFC 7591 default, less what the policy does not open.
    let grants: Vec<String> = match &m.grant_types {
        Some(g) => g.clone(),
        None => ["authorization_code", "refresh_token"]
            .into_iter()
            .filter(|g| policy.grant_allowed(g))
            .map(str::to_owned)
            .collect(),
    };
    if grants.is_empty() {
        return Err(meta("grant_types must name at least one grant type"));
    }
    if grants.iter().any(|g| !GRANT_TYPES.contains(&g.as_str())) {
        return Err(meta("grant_types has an unsupported value"));
    }
    if let Some(g) = grants.iter().find(|g| !policy.grant_allowed(g)) {
        return Err((
            "invalid_client_metadata",
            format!(
                "grant type `{g}` is not open to dynamic registration (allowed: {})",
                policy.allowed_grant_types.join(" ")
            ),
        ));
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
    for u in &m.redirect_uris {
        redirect_uri::check(u).map_err(|e| ("invalid_redirect_uri", format!("redirect_uris: {e}")))?;
    }
    for u in &m.post_logout_redirect_uris {
        redirect_uri::check(u).map_err(|e| ("invalid_client_metadata", format!("post_logout_redirect_uris: {e}")))?;
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
    let scope = match m.scope.as_deref() {
        Some(s) => Scope::parse(s).map_err(meta)?,
        // Without scope: the OpenID user scopes the policy opens.
        None => Scope::parse(
            &super::scope::SUPPORTED
                .iter()
                .filter(|s| policy.scope_allowed(s))
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        )
        .map_err(meta)?,
    };
    let unknown = scope.unknown(policy.custom_scopes);
    if !unknown.is_empty() {
        return Err((
            "invalid_client_metadata",
            format!("scope has unknown values: {}", unknown.join(" ")),
        ));
    }
    let refused: Vec<&str> = scope.iter().filter(|s| !policy.scope_allowed(s)).collect();
    if !refused.is_empty() {
        return Err((
            "invalid_client_metadata",
            format!(
                "scope `{}` is not open to dynamic registration (allowed: {})",
                refused.join(" "),
                policy.allowed_scopes.join(" ")
            ),
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            id: "c1".into(),
            name: String::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            secrets: vec![],
            redirect_uris: vec![],
            grant_types: vec![],
            scope: String::new(),
            dpop_bound: false,
            require_par: false,
            jwks: None,
            jwks_uri: None,
            post_logout_redirect_uris: vec![],
            registration_token_hash: None,
            refresh_idle_ttl_s: None,
            refresh_absolute_ttl_s: None,
            created_at_ms: 0,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn run(meta: serde_json::Value, grants: &[&str], scopes: &[&str]) -> Result<Client, Invalid> {
        let custom = strings(&["api.read", "api.admin"]);
        let (grants, scopes) = (strings(grants), strings(scopes));
        let policy = Policy {
            custom_scopes: &custom,
            allowed_grant_types: &grants,
            allowed_scopes: &scopes,
        };
        let mut c = client();
        apply(&serde_json::from_value(meta).unwrap(), &mut c, &policy).map(|_| c)
    }

    const USER_GRANTS: &[&str] = &["authorization_code", "refresh_token"];
    const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];

    #[test]
    fn the_default_policy_refuses_client_credentials_and_api_scopes() {
        let e = run(
            serde_json::json!({"grant_types": ["client_credentials"], "scope": "api.admin"}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert_eq!(e.0, "invalid_client_metadata");
        assert!(e.1.contains("`client_credentials` is not open"), "{}", e.1);
        let e = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid api.admin"}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert_eq!(e.0, "invalid_client_metadata");
        assert!(e.1.contains("scope `api.admin` is not open"), "{}", e.1);
        let e = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid nope"}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert!(e.1.contains("unknown values: nope"), "{}", e.1);
    }

    #[test]
    fn defaults_are_cut_to_the_policy_and_an_opened_policy_allows_more() {
        let c = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
            USER_GRANTS,
            &["openid"],
        )
        .unwrap();
        assert_eq!(c.scope, "openid");
        assert_eq!(c.grant_types, USER_GRANTS);
        let c = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
            &["authorization_code"],
            OIDC,
        )
        .unwrap();
        assert_eq!(c.grant_types, ["authorization_code"]);
        let c = run(
            serde_json::json!({"grant_types": ["client_credentials"], "scope": "api.read"}),
            &["client_credentials"],
            &["api.read"],
        )
        .unwrap();
        assert_eq!(
            (c.grant_types.as_slice(), c.scope.as_str()),
            (&["client_credentials".to_string()][..], "api.read")
        );
    }

    #[test]
    fn redirect_uris_follow_the_redirect_rules() {
        for (uri, error) in [
            ("http://evil.example/cb", "invalid_redirect_uri"),
            ("javascript://x/%0aalert(1)", "invalid_redirect_uri"),
        ] {
            let e = run(serde_json::json!({"redirect_uris": [uri]}), USER_GRANTS, OIDC).unwrap_err();
            assert_eq!(e.0, error, "{uri}");
            assert!(e.1.starts_with("redirect_uris: "), "{}", e.1);
        }
        let e = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["data:text/html,x"]}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert_eq!(e.0, "invalid_client_metadata");
        assert!(e.1.starts_with("post_logout_redirect_uris: "), "{}", e.1);
        run(
            serde_json::json!({"redirect_uris": ["http://127.0.0.1:9/cb", "com.example.app:/cb"]}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap();
    }
}
