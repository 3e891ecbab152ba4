//! Creating clients, whoever asks (the operator's `client create`, dynamic registration): a
//! blank client that `domain::registration::apply` fills from validated metadata, and its first
//! secret (shown once, stored as SHA-256).

use crate::domain::model::{AuthMethod, Client, SecretHash};
use crate::util::{random_token, sha256};

/// A client with `id` and nothing else yet (to be filled by `domain::registration::apply`).
pub fn blank(id: String, now_ms: i64) -> Client {
    Client {
        id,
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
        created_at_ms: now_ms,
    }
}

/// Gives `client` its first secret when its method uses one; returns the secret to show once.
pub fn issue_secret(client: &mut Client) -> Option<String> {
    let secret = matches!(
        client.auth_method,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
    )
    .then(random_token);
    client.secrets = secret
        .iter()
        .map(|s| SecretHash {
            hash: sha256(s.as_bytes()).to_vec(),
            expires_at_ms: None,
        })
        .collect();
    secret
}
