//! The refresh grant (RFC 6749 §6, SPEC §4). `/oauth/token` and `/oauth/refresh` both call
//! [`refresh`]; the endpoints differ only in the status of `invalid_grant`.
//!
//! Hot path: one hash of the presented token, one store job (replay check of the DPoP `jti`,
//! load, decide, write, commit with its batch), two signatures. No slow hash, no key parsing, no
//! logging on success.

use super::dpop::replay_entry;
use super::tokens::{as_refresh_token, granted_details, mint, new_refresh_token, Issue, TokenResponse};
use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::grant::{Grace, RefreshPolicy, Reject};
use crate::domain::model::{Client, GrantType};
use crate::domain::rar;
use crate::domain::refresh_token::Presented;
use crate::domain::scope::Scope;
use crate::jose::dpop::Proof;
use crate::store::{NewFamily, RotateOutcome, RotateRequest};
use crate::util::now_ms;

pub struct RefreshInput<'a> {
    pub refresh_token: &'a str,
    pub scope: Option<&'a str>,
    /// `authorization_details` as sent (JSON), not yet validated.
    pub authorization_details: Option<serde_json::Value>,
    pub proof: Option<Proof>,
    pub user_agent: Option<&'a str>,
}

/// The refresh rule for `client`: its grace rule and idle lifetime (its own where it has them,
/// else the configured ones). Read from the client already loaded: no store call.
pub fn policy(app: &App, client: &Client) -> RefreshPolicy {
    let g = grace(app, client);
    RefreshPolicy {
        grace_ms: g.ms,
        grace_count: g.count,
        idle_ttl_ms: ttls(app, client).0,
    }
}

/// The grace rule for `client` (`domain::grace::for_client`): its own seconds and count where
/// it has them, else `refresh.reuse_grace_*`.
pub fn grace(app: &App, client: &Client) -> Grace {
    crate::domain::grace::for_client(configured_grace(app), client)
}

/// The configured grace rule (`refresh.reuse_grace_*`), for a question whose answer does not
/// depend on the grace rule (introspection: a predecessor in grace is not active either way).
pub fn configured_grace(app: &App) -> Grace {
    let r = &app.cfg.refresh;
    Grace {
        ms: i64::from(r.reuse_grace_seconds) * 1000,
        count: i64::from(r.reuse_grace_count),
    }
}

/// The refresh lifetimes for `client` (per-client overrides, else config), milliseconds.
fn ttls(app: &App, client: &Client) -> (i64, i64) {
    let r = &app.cfg.refresh;
    let idle = client
        .refresh_idle_ttl_s
        .map(|s| s * 1000)
        .unwrap_or(r.idle_ttl.as_ms());
    let absolute = client
        .refresh_absolute_ttl_s
        .map(|s| s * 1000)
        .unwrap_or(r.absolute_ttl.as_ms());
    (idle, absolute)
}

/// The plan of the family a grant of `client` starts (code exchange, device poll): its id,
/// lifetimes, first refresh token (generation 0, when the client may refresh) and — for a
/// public client — the key of its first DPoP proof (RFC 9449 §5). Returns the plan and the
/// refresh token to send.
pub fn plan_family(
    app: &App,
    client: &Client,
    proof: Option<&Proof>,
    user_agent: Option<&str>,
) -> (NewFamily, Option<String>) {
    let (idle_ttl_ms, absolute_ttl_ms) = ttls(app, client);
    let id = crate::util::random_id();
    let refresh = client
        .allows_grant(GrantType::RefreshToken)
        .then(|| new_refresh_token(app, &id, 0));
    let plan = NewFamily {
        id,
        refresh_hash: refresh.as_ref().map(|(_, h)| *h),
        idle_ttl_ms,
        absolute_ttl_ms,
        dpop_jkt: proof.filter(|_| client.is_public()).map(|p| p.jkt.clone()),
        user_agent: user_agent.map(|s| s.chars().take(256).collect()),
    };
    (plan, refresh.map(|(t, _)| t))
}

/// The presented refresh token and the generation its successor names (the presented one + 1;
/// a token of the earlier format is looked up first to learn its generation). `None`: not a
/// token of ours.
async fn presented(app: &App, token: &str) -> Result<Option<(Presented, String, i64)>, OAuthError> {
    let p = match as_refresh_token(app, token) {
        None | Some(Presented::Forged) => return Ok(None),
        Some(p) => p,
    };
    let (family_id, generation) = match &p {
        Presented::Bound {
            family_id, generation, ..
        } => (family_id.clone(), *generation),
        _ => match app.store.find_refresh(p.clone()).await.map_err(OAuthError::from)? {
            Some((generation, f)) => (f.id, generation),
            None => return Ok(None),
        },
    };
    Ok(Some((p, family_id, generation + 1)))
}

/// The outcomes `autional_refresh_total` counts.
#[derive(Clone, Copy)]
enum Outcome {
    Rotated,
    Grace,
    Reuse,
    Rejected,
    Unknown,
}

/// Counts a refresh by outcome. The counters are registered once, at the first refresh (after
/// the recorder is installed at start-up), so the hot path does no registry lookup, label
/// allocation or key hashing.
fn counted(o: Outcome) {
    static COUNTERS: std::sync::OnceLock<[metrics::Counter; 5]> = std::sync::OnceLock::new();
    let c = COUNTERS.get_or_init(|| {
        ["rotated", "grace", "reuse", "rejected", "unknown"]
            .map(|o| metrics::counter!("autional_refresh_total", "outcome" => o))
    });
    c[o as usize].increment(1);
}

pub async fn refresh(app: &App, client: &Client, input: RefreshInput<'_>) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::unauthorized_client(
            "client may not use the refresh_token grant",
        ));
    }
    if client.dpop_bound && input.proof.is_none() {
        return Err(OAuthError::invalid_dpop_proof("this client must send a DPoP proof"));
    }
    let requested_scope = match input.scope {
        Some(s) => Some(Scope::parse(s).map_err(OAuthError::invalid_scope)?),
        None => None,
    };
    let requested_details = match &input.authorization_details {
        Some(v) => Some(
            rar::parse(v, &app.cfg.authorization_details.types).map_err(OAuthError::invalid_authorization_details)?,
        ),
        None => None,
    };
    let Some((presented, family_id, new_generation)) = presented(app, input.refresh_token).await? else {
        counted(Outcome::Unknown);
        return Err(OAuthError::invalid_grant("refresh token is invalid"));
    };
    let (token, new_hash) = new_refresh_token(app, &family_id, new_generation);
    let now = now_ms();
    let outcome = app
        .store
        .rotate_refresh(RotateRequest {
            presented,
            new_hash,
            new_generation,
            client_id: client.id.clone(),
            requested_scope: requested_scope.clone(),
            requested_details: requested_details.clone(),
            dpop_jkt: input.proof.as_ref().map(|p| p.jkt.clone()),
            dpop_jti: input.proof.as_ref().map(|p| replay_entry(app, p)),
            policy: policy(app, client),
            now_ms: now,
            user_agent: input.user_agent.map(|s| s.chars().take(256).collect()),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "refresh rotation failed");
            OAuthError::from(e)
        })?;
    match outcome {
        RotateOutcome::Issued { family, grace } => {
            counted(if grace { Outcome::Grace } else { Outcome::Rotated });
            app.refresh_counts.record(&client.id);
            let scope = requested_scope.unwrap_or_else(|| family.scope.clone());
            let granted = granted_details(&family);
            let details = match (&granted, requested_details) {
                (Some(g), Some(r)) => rar::narrow(g, &r),
                (g, _) => g.clone(),
            };
            let issue = Issue {
                scope: &scope,
                nonce: None,
                refresh_token: Some(token),
                proof: input.proof.as_ref(),
                details,
                issued_at_ms: now,
            };
            Ok(mint(app, &family, issue))
        }
        RotateOutcome::Reused { family_id } => {
            counted(Outcome::Reuse);
            tracing::warn!(family = %family_id, client = %client.id, "refresh token reuse: family revoked");
            Err(OAuthError::invalid_grant(
                "refresh token was already used; the grant has been revoked",
            ))
        }
        RotateOutcome::Rejected(r) => {
            counted(Outcome::Rejected);
            Err(match r {
                Reject::InvalidScope => OAuthError::invalid_scope(r.description()),
                Reject::InvalidAuthorizationDetails => OAuthError::invalid_authorization_details(r.description()),
                Reject::DpopProofRequired | Reject::DpopReplay => OAuthError::invalid_dpop_proof(r.description()),
                _ => OAuthError::invalid_grant(r.description()),
            })
        }
        RotateOutcome::NotFound => {
            counted(Outcome::Unknown);
            Err(OAuthError::invalid_grant("refresh token is invalid"))
        }
    }
}
