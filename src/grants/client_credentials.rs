//! The client credentials grant (RFC 6749 §4.4): a confidential client's own access token,
//! scopes limited to the client's, no refresh token, no ID token.

use super::tokens::{mint_for_client, TokenResponse};
use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::{Client, GrantType};
use crate::domain::scope::Scope;
use crate::jose::dpop::Proof;

pub async fn issue(
    app: &App,
    client: &Client,
    scope: Option<&str>,
    proof: Option<Proof>,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use client_credentials",
        ));
    }
    if !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client(
            "client may not use the client_credentials grant",
        ));
    }
    if client.dpop_bound && proof.is_none() {
        return Err(OAuthError::invalid_dpop_proof("this client must send a DPoP proof"));
    }
    let allowed = Scope::parse(&client.scope).unwrap_or_default();
    let scope = match scope {
        Some(s) => Scope::parse(s).map_err(OAuthError::invalid_scope)?,
        // Without a scope: the client's, less what only makes sense with a user.
        None => Scope::parse(
            &allowed
                .iter()
                .filter(|s| !matches!(*s, "openid" | "offline_access"))
                .collect::<Vec<_>>()
                .join(" "),
        )
        .unwrap_or_default(),
    };
    if scope.contains("openid") || scope.contains("offline_access") {
        return Err(OAuthError::invalid_scope(
            "openid and offline_access need a user: not for client_credentials",
        ));
    }
    if !scope.is_subset_of(&allowed) {
        return Err(OAuthError::invalid_scope("scope exceeds what the client may request"));
    }
    super::dpop::use_proof(app, proof.as_ref()).await?;
    Ok(mint_for_client(app, &client.id, &scope, proof.as_ref()))
}
