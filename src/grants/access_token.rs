//! Whether an access token we issued still grants access, for introspection and userinfo
//! (RFC 7662 §2.2 `active`): it verifies (signature, `iss`, `exp`), it was not revoked, its
//! family (a user's grant) is still active, and a client's own token (`client_credentials`,
//! no family) still has its client: deleting a client ends every token it holds. User tokens of
//! a deleted client end through their families, which the deletion revokes. The client check
//! is one primary-key read, made only for tokens without a family.

use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::Family;
use crate::jose::jwt::{verify_access, AccessClaims, InvalidToken};
use crate::util::now_ms;

/// Verifies an access token of ours; a `kid` this process has not loaded yet (rotated by another
/// process) triggers one key reload first.
pub async fn verify(app: &App, token: &str) -> Result<AccessClaims, InvalidToken> {
    let verified = verify_access(&app.keys.get(), token, &app.cfg.issuer);
    if verified == Err(InvalidToken("unknown signing key")) && app.reload_keys_for_unknown_kid().await {
        return verify_access(&app.keys.get(), token, &app.cfg.issuer);
    }
    verified
}

/// An access token that verifies and is still active, with its family (if any); `None` when
/// it is not (invalid, expired, revoked, its grant ended, or its client is gone).
pub async fn active(app: &App, token: &str) -> Result<Option<(AccessClaims, Option<Family>)>, OAuthError> {
    let Ok(claims) = verify(app, token).await else {
        return Ok(None);
    };
    let store = &app.store;
    if store
        .is_access_token_revoked(&claims.jti)
        .await
        .map_err(OAuthError::from)?
    {
        return Ok(None);
    }
    let family = match &claims.grant_id {
        Some(g) => match store.get_family(g).await.map_err(OAuthError::from)? {
            Some(f) if f.is_active(now_ms()) => Some(f),
            _ => return Ok(None),
        },
        None => {
            // A client's own token lives as long as its client; a client created again under the
            // same id after the token was issued is another client.
            match store.get_client(&claims.client_id).await.map_err(OAuthError::from)? {
                Some(c) if c.created_at_ms / 1000 <= claims.iat => None,
                _ => return Ok(None),
            }
        }
    };
    Ok(Some((claims, family)))
}
