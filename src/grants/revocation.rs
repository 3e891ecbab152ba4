//! Token revocation (RFC 7009): a refresh token revokes its whole family, an access token only
//! itself. A token of another client is refused; an unknown, invalid or already revoked token
//! is answered as revoked (nothing to do).

use super::tokens::find_refresh;
use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::grant::{token_state, TokenState};
use crate::domain::model::{Client, RevocationReason};
use crate::util::now_ms;

fn foreign() -> OAuthError {
    OAuthError::invalid_grant("the token was issued to another client")
}

/// Revokes `token` on behalf of `client` (already authenticated).
pub async fn revoke(app: &App, client: &Client, token: &str) -> Result<(), OAuthError> {
    let store = &app.store;
    match find_refresh(app, token).await? {
        Some(Some((_, f))) if f.client_id != client.id => return Err(foreign()),
        Some(Some((generation, f))) => {
            let now = now_ms();
            // Whatever the token's own state (current, rotated, expired), its family ends;
            // a revoked family has nothing left to end.
            if token_state(&f, generation, now, super::refresh::grace(app, client)) != TokenState::Revoked {
                store
                    .revoke_family(&f.id, RevocationReason::RevokedByClient, now)
                    .await
                    .map_err(OAuthError::from)?;
            }
            return Ok(());
        }
        // A refresh token nobody knows (unknown, forged): nothing to revoke.
        Some(None) => return Ok(()),
        None => {}
    }
    // Access tokens: only a valid one of ours can be revoked; anything else is already useless.
    if let Ok(c) = super::access_token::verify(app, token).await {
        if c.client_id != client.id {
            return Err(foreign());
        }
        store
            .revoke_access_token(&c.jti, c.exp * 1000)
            .await
            .map_err(OAuthError::from)?;
    }
    Ok(())
}
