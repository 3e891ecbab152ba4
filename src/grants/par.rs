//! Pushed Authorization Requests (RFC 9126): the client posts its authorization request
//! (authenticated) and gets a one-time `request_uri` valid for `par.ttl` (90 s). The request is
//! validated at push time exactly as the authorization endpoint would, so errors reach the
//! client directly; a DPoP proof on the push binds the future code to its key (RFC 9449 §10.1).

use super::authorize::{validate, AuthorizeError};
use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::Client;
use crate::jose::dpop::Proof;
use crate::params::Params;
use crate::store::ParRequest;
use crate::util::{now_ms, random_token, sha256};

pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

pub struct Pushed {
    pub request_uri: String,
    pub expires_in: i64,
}

pub async fn push(app: &App, client: &Client, p: Params, proof: Option<&Proof>) -> Result<Pushed, OAuthError> {
    if p.contains("request_uri") {
        return Err(OAuthError::invalid_request("request_uri must not be pushed"));
    }
    if let Some(id) = p.get("client_id")? {
        if id != client.id {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
    }
    let mut p = p
        .without(&["client_secret", "client_assertion", "client_assertion_type"])
        .with("client_id", &client.id);
    match (p.get("dpop_jkt")?, proof) {
        (Some(j), Some(pr)) if j != pr.jkt => {
            return Err(OAuthError::invalid_dpop_proof(
                "dpop_jkt does not match the DPoP proof's key",
            ));
        }
        (None, Some(pr)) => p = p.with("dpop_jkt", &pr.jkt),
        _ => {}
    }
    if let Err(e) = validate(app, &p, true).await {
        return Err(match e {
            AuthorizeError::Page(e) => e,
            AuthorizeError::Redirect { error, .. } => error,
        });
    }
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token());
    let ttl = app.cfg.par.ttl;
    app.store
        .insert_par(ParRequest {
            hash: sha256(request_uri.as_bytes()),
            client_id: client.id.clone(),
            params: p.encode(),
            expires_at_ms: now_ms() + ttl.as_ms(),
            used_at_ms: None,
        })
        .await
        .map_err(OAuthError::from)?;
    Ok(Pushed {
        request_uri,
        expires_in: ttl.as_secs(),
    })
}

/// Why a `request_uri` cannot be used.
pub fn invalid_request_uri() -> OAuthError {
    OAuthError::new(
        400,
        crate::domain::error::ErrorCode::InvalidRequestUri,
        "request_uri is unknown, expired, already used, or not this client's",
    )
}

/// The pushed parameters behind `request_uri` for `client_id`, and the key to mark it used.
pub async fn resolve(app: &App, client_id: &str, request_uri: &str) -> Result<(Params, [u8; 32]), OAuthError> {
    let hash = sha256(request_uri.as_bytes());
    let par = app
        .store
        .get_par(hash)
        .await
        .map_err(OAuthError::from)?
        .filter(|r| r.client_id == client_id && r.used_at_ms.is_none() && now_ms() < r.expires_at_ms)
        .ok_or_else(invalid_request_uri)?;
    Ok((Params::from_form(par.params.as_bytes())?, hash))
}
