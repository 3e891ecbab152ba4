//! Token introspection (RFC 7662): which presented token is active, and what it says. A refresh
//! token is active only in the [`TokenState::Current`] state (`domain::grant::token_state`); an
//! access token while its signature, expiry, revocation list, family and client say so
//! (`grants::access_token::active`). Only confidential clients may ask.

use super::tokens::find_refresh;
use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::grant::token_state;
use crate::domain::model::{Client, Family};
use crate::jose::jwt::AccessClaims;
use crate::params::Params;
use crate::util::now_ms;

/// What introspecting one token found.
pub enum Introspection {
    /// Unknown, expired, revoked, rotated, foreign to us: RFC 7662 says only `active: false`.
    Inactive,
    /// The current refresh token of a live family.
    Refresh(Family),
    /// An active access token.
    Access(AccessClaims),
}

/// Introspects the request's `token` for `client` (already authenticated); a public client is
/// refused before the parameters are looked at.
pub async fn introspect(app: &App, client: &Client, p: &Params) -> Result<Introspection, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::invalid_client("public clients may not introspect tokens"));
    }
    let token = p.required("token")?;
    if let Some(found) = find_refresh(app, token).await? {
        return Ok(match found {
            Some((generation, f))
                if token_state(&f, generation, now_ms(), super::refresh::configured_grace(app)).is_active() =>
            {
                Introspection::Refresh(f)
            }
            _ => Introspection::Inactive,
        });
    }
    Ok(match super::access_token::active(app, token).await? {
        Some((claims, _)) => Introspection::Access(claims),
        None => Introspection::Inactive,
    })
}
