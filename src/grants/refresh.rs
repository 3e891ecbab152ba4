//! The refresh grant (RFC 6749 §6, SPEC §4). `/oauth/token` and `/oauth/refresh` both call
//! [`refresh`]; the endpoints differ only in the status of `invalid_grant`.
//!
//! Hot path: one hash of the presented token, one store job (load, decide, write, commit with
//! its batch), two signatures. No slow hash, no key parsing, no logging on success.

use super::tokens::{mint, new_refresh_token, TokenResponse};
use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::grant::{RefreshPolicy, Reject};
use crate::domain::model::Client;
use crate::domain::scope::Scope;
use crate::store::{RotateOutcome, RotateRequest};
use crate::util::{now_ms, sha256};

pub struct RefreshInput<'a> {
    pub refresh_token: &'a str,
    pub scope: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn policy(app: &App, client: &Client) -> RefreshPolicy {
    let r = &app.cfg.refresh;
    RefreshPolicy {
        grace_ms: i64::from(r.reuse_grace_seconds) * 1000,
        grace_count: i64::from(r.reuse_grace_count),
        idle_ttl_ms: client
            .refresh_idle_ttl_s
            .map(|s| s * 1000)
            .unwrap_or(r.idle_ttl.as_ms()),
    }
}

pub async fn refresh(app: &App, client: &Client, input: RefreshInput<'_>) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant("refresh_token") {
        return Err(OAuthError::unauthorized_client(
            "client may not use the refresh_token grant",
        ));
    }
    let requested_scope = match input.scope {
        Some(s) => Some(Scope::parse(s).map_err(OAuthError::invalid_scope)?),
        None => None,
    };
    let (token, new_hash) = new_refresh_token();
    let outcome = app
        .store
        .rotate_refresh(RotateRequest {
            presented_hash: sha256(input.refresh_token.as_bytes()),
            new_hash,
            client_id: client.id.clone(),
            requested_scope: requested_scope.clone(),
            dpop_jkt: None,
            policy: policy(app, client),
            now_ms: now_ms(),
            user_agent: input.user_agent.map(|s| s.chars().take(256).collect()),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "refresh rotation failed");
            OAuthError::server_error()
        })?;
    match outcome {
        RotateOutcome::Issued { family, grace } => {
            metrics::counter!("autional_refresh_total", "outcome" => if grace { "grace" } else { "rotated" })
                .increment(1);
            let scope = requested_scope.unwrap_or_else(|| Scope::parse(&family.scope).unwrap_or_default());
            Ok(mint(app, &family, &scope, None, Some(token)))
        }
        RotateOutcome::Reused { family_id } => {
            metrics::counter!("autional_refresh_total", "outcome" => "reuse").increment(1);
            tracing::warn!(family = %family_id, client = %client.id, "refresh token reuse: family revoked");
            Err(OAuthError::invalid_grant(
                "refresh token was already used; the grant has been revoked",
            ))
        }
        RotateOutcome::Rejected(r) => {
            metrics::counter!("autional_refresh_total", "outcome" => "rejected").increment(1);
            Err(match r {
                Reject::InvalidScope => OAuthError::invalid_scope(r.description()),
                _ => OAuthError::invalid_grant(r.description()),
            })
        }
        RotateOutcome::NotFound => {
            metrics::counter!("autional_refresh_total", "outcome" => "unknown").increment(1);
            Err(OAuthError::invalid_grant("refresh token is invalid"))
        }
    }
}
