//! Creating clients, whoever asks (the operator's `client create`, dynamic registration): after
//! `domain::registration::apply` has filled a `Client::blank` from validated metadata, its first
//! secret (shown once, stored as SHA-256).

use crate::domain::model::{AuthMethod, Client, SecretHash};
use crate::util::{random_token, sha256};

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
