//! The DPoP proof replay record (RFC 9449 §11.1): every accepted proof's `jti` is remembered
//! until its `iat` is too old to be accepted anyway. The proof itself is checked by
//! `jose::dpop` (and, at our endpoints, `http::dpop`); the grants whose store operation records
//! the `jti` in the same write (code exchange, refresh) pass [`replay_entry`] to it, the others
//! call [`use_proof`].

use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::grant::Reject;
use crate::jose::dpop::Proof;
use crate::store::StoreError;

/// The replay-store entry for a proof: its key, and when it may be forgotten (after that the
/// proof's `iat` is too old to be accepted anyway).
pub fn replay_entry(app: &App, proof: &Proof) -> ([u8; 32], i64) {
    (
        proof.replay_key(),
        (proof.iat + app.cfg.dpop.proof_max_age.as_secs() + 5) * 1000,
    )
}

/// Records `proof`'s `jti`: `Ok(false)` when it was seen before (a replay).
pub async fn record(app: &App, proof: &Proof) -> Result<bool, StoreError> {
    let (key, exp) = replay_entry(app, proof);
    app.store.use_dpop_jti(key, exp).await
}

/// Records a proof's `jti` for the grants whose store operation does not take it (client
/// credentials, device polls, PAR); a replay is refused.
pub async fn use_proof(app: &App, proof: Option<&Proof>) -> Result<(), OAuthError> {
    let Some(p) = proof else {
        return Ok(());
    };
    match record(app, p).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(OAuthError::invalid_dpop_proof(Reject::DpopReplay.description())),
        Err(e) => Err(OAuthError::from(e)),
    }
}
