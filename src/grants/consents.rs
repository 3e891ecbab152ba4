//! The end-user consent API's use cases (`GET /oauth/consents`, `DELETE /oauth/consents/{id}`):
//! whose consents a token may manage (`domain::consents`), the user's consents, and withdrawing
//! one. A consent's id is its client's id: there is one consent per user and client, and every
//! operation is confined to the token's user, so another user's consent cannot even be named
//! (docs/design/consent-api.md).

use crate::app::App;
use crate::domain::consents::{permits, Refused};
use crate::domain::model::{Consent, Family};
use crate::domain::scope::Scope;
use crate::jose::jwt::AccessClaims;
use crate::store::StoreError;
use crate::util::now_ms;

/// The user whose consents an active access token may manage: the user of its grant (`family`;
/// a client's own `client_credentials` token has none), if it carries the consent API's scope.
pub fn owner(claims: &AccessClaims, family: Option<&Family>) -> Result<String, Refused> {
    let scope = Scope::parse(&claims.scope).unwrap_or_default();
    permits(&scope, family.is_some())?;
    family.map(|f| f.user_id.clone()).ok_or(Refused::NoUser)
}

/// The user's consents, by client id.
pub async fn list(app: &App, user_id: &str) -> Result<Vec<Consent>, StoreError> {
    app.store.list_user_consents(user_id).await
}

/// Withdraws the user's consent `id` (a client id): the consent is gone, and the client's
/// grants for the user end at once (refresh tokens, access tokens at introspection and
/// userinfo, unredeemed codes, approved device codes). False, and nothing changed, when the
/// user has no such consent (whoever else may have one).
pub async fn withdraw(app: &App, user_id: &str, id: &str) -> Result<bool, StoreError> {
    // No stored id holds a NUL (PostgreSQL text cannot): such an id names nothing, and must not
    // reach the database as a failing query (a 503 instead of a 404).
    if id.contains('\0') {
        return Ok(false);
    }
    app.store.withdraw_consent(user_id, id, now_ms()).await
}
