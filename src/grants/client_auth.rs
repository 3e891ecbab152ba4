//! Client authentication at the token-ish endpoints (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, and `none` for public clients. A client must use the method it is
//! registered with, and only one method per request. Secrets are random (≥ 256 bits), stored as
//! SHA-256 and compared in constant time.

use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::{AuthMethod, Client};
use crate::util::{ct_eq, now_ms, sha256};

/// What the request carried; filled in by the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic`, already form-decoded (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl ClientCredentials {
    /// The client the request names, however it names it.
    pub fn claimed_id(&self) -> Option<&str> {
        self.basic
            .as_ref()
            .map(|(id, _)| id.as_str())
            .or(self.client_id.as_deref())
    }
}

fn secret_matches(client: &Client, secret: &str, now: i64) -> bool {
    let h = sha256(secret.as_bytes());
    let mut ok = false;
    for s in &client.secrets {
        let live = s.expires_at_ms.is_none_or(|e| now < e);
        // No early exit: every stored secret is compared.
        ok |= live & ct_eq(&s.hash, &h);
    }
    ok
}

pub async fn authenticate(app: &App, creds: &ClientCredentials) -> Result<Client, OAuthError> {
    let basic = creds.basic.is_some();
    let fail = |msg: &'static str| {
        let e = OAuthError::invalid_client(msg);
        if basic {
            e.with_basic_challenge()
        } else {
            e
        }
    };
    if basic && creds.client_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method used",
        ));
    }
    if let (Some((bid, _)), Some(fid)) = (&creds.basic, &creds.client_id) {
        if bid != fid {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
    }
    let Some(id) = creds.claimed_id() else {
        return Err(fail("client authentication is required"));
    };
    let client = app
        .store
        .get_client(id)
        .await
        .map_err(|_| OAuthError::server_error())?
        .ok_or_else(|| fail("unknown client"))?;
    let used = match (&creds.basic, &creds.client_secret) {
        (Some(_), _) => AuthMethod::ClientSecretBasic,
        (None, Some(_)) => AuthMethod::ClientSecretPost,
        (None, None) => AuthMethod::None,
    };
    if used != client.auth_method {
        return Err(fail(match client.auth_method {
            AuthMethod::None => "public client: send client_id only, without a secret",
            AuthMethod::ClientSecretBasic => "client must authenticate with client_secret_basic",
            AuthMethod::ClientSecretPost => "client must authenticate with client_secret_post",
        }));
    }
    let secret = match (&creds.basic, &creds.client_secret) {
        (Some((_, s)), _) => Some(s.as_str()),
        (None, Some(s)) => Some(s.as_str()),
        _ => None,
    };
    if let Some(secret) = secret {
        if !secret_matches(&client, secret, now_ms()) {
            return Err(fail("client authentication failed"));
        }
    }
    Ok(client)
}
