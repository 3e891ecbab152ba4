//! Minting the tokens of a grant: the RFC 9068 access token, the OIDC ID token, and the flat
//! `OAuthTokenResponse` they travel in; the opaque `rt_` refresh token's format, made and
//! recognised here only.

use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::Family;
use crate::domain::rar::Detail;
use crate::domain::refresh_token::{self, Presented};
use crate::domain::scope::Scope;
use crate::jose::dpop::Proof;
use crate::jose::jwt::{sign_access, sign_id, AccessClaims, Audience, Confirmation, IdClaims};
use crate::util::random_id;
use serde::Serialize;

/// `OAuthTokenResponse`: flat JSON, no envelope.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OAuthTokenResponse)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer` or `DPoP`.
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until `refresh_token` expires (its idle or absolute lifetime, whichever ends
    /// first, counted from the access token's `iat`); only with a `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_in: Option<i64>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The granted RAR details (RFC 9396), when the grant has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::domain::rar::Detail>>)]
    pub authorization_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_access_token_bound: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg: Option<String>,
}

/// What one issuance needs besides the family.
pub struct Issue<'a> {
    /// The access token's scope (possibly narrower than the grant's).
    pub scope: &'a Scope,
    /// Only on the code exchange (OIDC Core §12.2: no new nonce on refresh).
    pub nonce: Option<String>,
    pub refresh_token: Option<String>,
    /// The DPoP proof the access token is bound to (`cnf.jkt`).
    pub proof: Option<&'a Proof>,
    /// RAR details for the access token and the response.
    pub details: Option<Vec<Detail>>,
    /// When the store issued it (the `now_ms` of the redemption, poll or rotation that wrote
    /// the family): the tokens' `iat`, from which `refresh_token_expires_in` counts.
    pub issued_at_ms: i64,
}

/// Issues the access token and, when the grant has `openid`, an ID token.
pub fn mint(app: &App, family: &Family, issue: Issue<'_>) -> TokenResponse {
    let keys = app.keys.get();
    let now = issue.issued_at_ms.div_euclid(1000);
    let ttl = app.cfg.access_token.ttl.as_secs();
    let scope_str = issue.scope.to_string();
    let details = issue.details.map(|d| serde_json::to_value(d).unwrap_or_default());
    let access = AccessClaims {
        iss: app.cfg.issuer.clone(),
        sub: family.user_id.clone(),
        aud: Audience(app.audiences.for_scope(issue.scope)),
        client_id: family.client_id.clone(),
        exp: now + ttl,
        iat: now,
        jti: random_id(),
        scope: scope_str.clone(),
        auth_time: Some(family.auth_time),
        sid: family.sid.clone(),
        grant_id: Some(family.id.clone()),
        cnf: issue.proof.map(|p| Confirmation { jkt: p.jkt.clone() }),
        authorization_details: details.clone(),
    };
    let grant_scope = &family.scope;
    let id_token = grant_scope.contains("openid").then(|| {
        sign_id(
            &keys,
            &IdClaims {
                iss: app.cfg.issuer.clone(),
                sub: family.user_id.clone(),
                aud: family.client_id.clone(),
                azp: family.client_id.clone(),
                exp: now + app.cfg.id_token.ttl.as_secs(),
                iat: now,
                auth_time: family.auth_time,
                nonce: issue.nonce,
                sid: family.sid.clone(),
                name: None,
                preferred_username: None,
                email: None,
            },
        )
    });
    TokenResponse {
        access_token: sign_access(&keys, &access),
        token_type: if issue.proof.is_some() { "DPoP" } else { "Bearer" },
        expires_in: ttl,
        refresh_token_expires_in: issue.refresh_token.as_ref().map(|_| family.refresh_expires_in(now)),
        refresh_token: issue.refresh_token,
        scope: scope_str,
        id_token,
        authorization_details: details,
        dpop_access_token_bound: issue.proof.map(|_| true),
        dpop_signing_alg: issue.proof.map(|p| p.alg.clone()),
    }
}

/// A client's own access token (`client_credentials`): no user, no family, no refresh token.
pub fn mint_for_client(app: &App, client_id: &str, scope: &Scope, proof: Option<&Proof>) -> TokenResponse {
    let keys = app.keys.get();
    let now = crate::util::now_ms() / 1000;
    let ttl = app.cfg.access_token.ttl.as_secs();
    let access = AccessClaims {
        iss: app.cfg.issuer.clone(),
        sub: client_id.to_string(),
        aud: Audience(app.audiences.for_scope(scope)),
        client_id: client_id.to_string(),
        exp: now + ttl,
        iat: now,
        jti: random_id(),
        scope: scope.to_string(),
        auth_time: None,
        sid: None,
        grant_id: None,
        cnf: proof.map(|p| Confirmation { jkt: p.jkt.clone() }),
        authorization_details: None,
    };
    TokenResponse {
        access_token: sign_access(&keys, &access),
        token_type: if proof.is_some() { "DPoP" } else { "Bearer" },
        expires_in: ttl,
        refresh_token: None,
        refresh_token_expires_in: None,
        scope: scope.to_string(),
        id_token: None,
        authorization_details: None,
        dpop_access_token_bound: proof.map(|_| true),
        dpop_signing_alg: proof.map(|p| p.alg.clone()),
    }
}

/// The grant's RAR details as stored.
pub fn granted_details(family: &Family) -> Option<Vec<Detail>> {
    family
        .authorization_details
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
}

/// A new refresh token of `generation` of `family_id` (`domain::refresh_token`: it names its
/// family and generation under the server's key, around 256 random bits) and its hash.
pub fn new_refresh_token(app: &App, family_id: &str, generation: i64) -> (String, [u8; 32]) {
    refresh_token::mint(
        &app.refresh_keys,
        family_id,
        generation,
        crate::util::random_bytes::<32>(),
    )
}

/// A presented refresh token read with the server's keys; `None` for anything that is not a
/// refresh token (an access token, or garbage).
pub fn as_refresh_token(app: &App, token: &str) -> Option<Presented> {
    refresh_token::read(&app.refresh_keys, token)
}

/// For introspection and revocation: `None` when `token` is not a refresh token (they then try
/// it as an access token), else its generation and family if the store knows it. A forged
/// token is known to nobody, without a store call.
pub async fn find_refresh(app: &App, token: &str) -> Result<Option<Option<(i64, Family)>>, OAuthError> {
    Ok(match as_refresh_token(app, token) {
        None => None,
        Some(Presented::Forged) => Some(None),
        Some(p) => Some(app.store.find_refresh(p).await.map_err(OAuthError::from)?),
    })
}
