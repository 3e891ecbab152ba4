//! The authorization code grant's token request (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6): the code
//! is checked and consumed, and its token family created, in one store transaction; a replayed
//! code revokes what its first use issued.

use super::dpop::replay_entry;
use super::refresh::plan_family;
use super::tokens::{granted_details, mint, Issue, TokenResponse};
use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::{Client, GrantType};
use crate::jose::dpop::Proof;
use crate::store::{RedeemCode, RedeemOutcome};
use crate::util::{now_ms, sha256};

pub struct CodeInput<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub proof: Option<Proof>,
    pub user_agent: Option<&'a str>,
}

pub async fn exchange(app: &App, client: &Client, input: CodeInput<'_>) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::unauthorized_client(
            "client may not use the authorization_code grant",
        ));
    }
    if client.dpop_bound && input.proof.is_none() {
        return Err(OAuthError::invalid_dpop_proof("this client must send a DPoP proof"));
    }
    if let Some(v) = input.code_verifier {
        if !crate::domain::pkce::valid_syntax(v) {
            return Err(OAuthError::invalid_request(
                "code_verifier must be 43-128 unreserved characters",
            ));
        }
    }
    let (family, refresh) = plan_family(app, client, input.proof.as_ref(), input.user_agent);
    let now = now_ms();
    let outcome = app
        .store
        .redeem_code(RedeemCode {
            code_hash: sha256(input.code.as_bytes()),
            client_id: client.id.clone(),
            dpop_jkt: input.proof.as_ref().map(|p| p.jkt.clone()),
            dpop_jti: input.proof.as_ref().map(|p| replay_entry(app, p)),
            redirect_uri: input.redirect_uri.map(str::to_owned),
            code_verifier: input.code_verifier.map(str::to_owned),
            now_ms: now,
            family,
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "code redemption failed");
            OAuthError::from(e)
        })?;
    match outcome {
        RedeemOutcome::Issued { code, family } => {
            let scope = code.scope.clone();
            let issue = Issue {
                scope: &scope,
                nonce: code.nonce.clone(),
                refresh_token: refresh,
                proof: input.proof.as_ref(),
                details: granted_details(&family),
                issued_at_ms: now,
            };
            Ok(mint(app, &family, issue))
        }
        RedeemOutcome::Replayed => {
            tracing::warn!(client = %client.id, "authorization code replay: its grant has been revoked");
            Err(OAuthError::invalid_grant("authorization code was already used"))
        }
        RedeemOutcome::Rejected(why) => Err(OAuthError::invalid_grant(why)),
        RedeemOutcome::NotFound => Err(OAuthError::invalid_grant("authorization code is invalid")),
    }
}
