//! The device authorization grant (RFC 8628): the device asks for a code pair, the user approves
//! on `/oauth/device` (see `http::device`), and the device polls the token endpoint, told to wait
//! (`authorization_pending`), slow down, or that it was denied or expired, until tokens come.

use super::refresh::plan_family;
use super::tokens::{mint, Issue, TokenResponse};
use crate::app::App;
use crate::domain::device::{self, Poll};
use crate::domain::error::{ErrorCode, OAuthError};
use crate::domain::model::{Client, DeviceCode, GrantType};
use crate::domain::scope::Scope;
use crate::jose::dpop::Proof;
use crate::store::{DeviceOutcome, PollDevice, StoreError};
use crate::util::{now_ms, random_token, sha256};
use serde::Serialize;

/// The device authorization response (RFC 8628 §3.2), flat JSON.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DeviceAuthorizationResponse)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

pub async fn authorize(app: &App, client: &Client, scope: Option<&str>) -> Result<DeviceAuthorization, OAuthError> {
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "client may not use the device authorization grant",
        ));
    }
    let allowed = Scope::parse(&client.scope).unwrap_or_default();
    let scope = match scope {
        Some(s) => Scope::parse(s).map_err(OAuthError::invalid_scope)?,
        None => allowed.clone(),
    };
    let unknown = scope.unknown(&app.cfg.scopes.custom);
    if !unknown.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "unknown scope: {}",
            unknown.join(" ")
        )));
    }
    if scope.is_empty() || !scope.is_subset_of(&allowed) {
        return Err(OAuthError::invalid_scope("scope exceeds what the client may request"));
    }
    let ttl = app.cfg.device.ttl;
    let interval = app.cfg.device.interval.as_secs();
    let device_code = random_token();
    let now = now_ms();
    // A user code collision is astronomically rare but possible: draw again.
    for _ in 0..5 {
        let user_code = device::new_user_code();
        let row = DeviceCode {
            device_hash: sha256(device_code.as_bytes()).to_vec(),
            user_code: user_code.clone(),
            client_id: client.id.clone(),
            scope: scope.clone(),
            status: crate::domain::model::DeviceStatus::Pending,
            interval_s: interval,
            last_poll_ms: None,
            user_id: None,
            session_id: None,
            auth_time: None,
            family_id: None,
            created_at_ms: now,
            expires_at_ms: now + ttl.as_ms(),
        };
        match app.store.insert_device(row).await {
            Ok(()) => {
                let display = device::display(&user_code);
                let uri = format!("{}{}", app.cfg.issuer, crate::paths::DEVICE);
                return Ok(DeviceAuthorization {
                    verification_uri_complete: format!("{uri}?user_code={display}"),
                    verification_uri: uri,
                    device_code,
                    user_code: display,
                    expires_in: ttl.as_secs(),
                    interval,
                });
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(OAuthError::from(e)),
        }
    }
    Err(OAuthError::server_error())
}

pub async fn poll(
    app: &App,
    client: &Client,
    device_code: &str,
    proof: Option<Proof>,
    user_agent: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "client may not use the device authorization grant",
        ));
    }
    if client.dpop_bound && proof.is_none() {
        return Err(OAuthError::invalid_dpop_proof("this client must send a DPoP proof"));
    }
    super::dpop::use_proof(app, proof.as_ref()).await?;
    let (family, refresh) = plan_family(app, client, proof.as_ref(), user_agent);
    let now = now_ms();
    let outcome = app
        .store
        .poll_device(PollDevice {
            device_hash: sha256(device_code.as_bytes()),
            client_id: client.id.clone(),
            now_ms: now,
            family,
        })
        .await
        .map_err(OAuthError::from)?;
    let e = |code: ErrorCode, d: &'static str| OAuthError::new(400, code, d);
    match outcome {
        DeviceOutcome::Issued { family, .. } => {
            let scope = family.scope.clone();
            let issue = Issue {
                scope: &scope,
                nonce: None,
                refresh_token: refresh,
                proof: proof.as_ref(),
                details: None,
                issued_at_ms: now,
            };
            Ok(mint(app, &family, issue))
        }
        DeviceOutcome::Poll(Poll::Pending) => Err(e(ErrorCode::AuthorizationPending, "the user has not decided yet")),
        DeviceOutcome::Poll(Poll::SlowDown) => Err(e(
            ErrorCode::SlowDown,
            "polling too fast: wait 5 seconds more between polls",
        )),
        DeviceOutcome::Poll(Poll::Denied) => Err(e(ErrorCode::AccessDenied, "the user denied the request")),
        DeviceOutcome::Poll(Poll::Expired) => Err(e(ErrorCode::ExpiredToken, "the device code has expired")),
        DeviceOutcome::Poll(_) | DeviceOutcome::NotFound => Err(OAuthError::invalid_grant("device_code is invalid")),
    }
}
