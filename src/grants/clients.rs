//! Creating clients, whoever asks (the operator's `client create` and admin API, dynamic
//! registration): after `domain::registration::apply` has filled a `Client::blank` from
//! validated metadata, its first secret (shown once, stored as SHA-256).

use crate::config::Config;
use crate::domain::error::ErrorCode;
use crate::domain::grace;
use crate::domain::model::Client;
use crate::domain::registration::{apply, Field, Invalid, Metadata, Policy, Profile};
use crate::domain::secrets;
use crate::store::{DynStore, StoreError};
use crate::util::{now_ms, random_id, random_token, sha256};

/// Gives `client` its first secret when its method uses one; returns the secret to show once.
pub fn issue_secret(client: &mut Client) -> Option<String> {
    let secret = secrets::uses_secrets(client.auth_method).then(random_token);
    client.secrets = secret
        .iter()
        .map(|s| {
            secrets::entry(
                random_id(),
                sha256(s.as_bytes()).to_vec(),
                None,
                None,
                client.created_at_ms,
            )
        })
        .collect();
    secret
}

/// A client the operator asks for (CLI `client create`, admin API `POST /admin/oauth/clients`).
pub struct OperatorRequest {
    pub meta: Metadata,
    /// The id to give it (else a random one).
    pub client_id: Option<String>,
    /// Whose rules: [`Profile::Operator`] for an ordinary client, [`Profile::Admin`] for an
    /// admin client (`--admin`, `domain::admin`), [`Profile::Account`] for an account client
    /// (`--account`, `domain::consents`).
    pub profile: Profile,
    /// This client's refresh lifetimes (seconds, > 0), overriding `refresh.*`.
    pub refresh_idle_ttl_s: Option<i64>,
    pub refresh_absolute_ttl_s: Option<i64>,
    /// This client's grace rule, overriding `refresh.reuse_grace_*` (checked by
    /// `domain::grace`, with the configured values' limits).
    pub grace: grace::Change,
}

/// Why the operator's client was not made.
#[derive(Debug)]
pub enum CreateError {
    /// The metadata is invalid (the field and why).
    Invalid(Invalid),
    /// A client with this id exists.
    Exists(String),
    Store(StoreError),
}

/// Validates, makes and stores an operator's client: the one validator of client metadata
/// (`domain::registration::apply`) with the operator's (or the admin) profile. Returns it and
/// its secret, to be shown once.
pub async fn create(
    cfg: &Config,
    store: &DynStore,
    req: OperatorRequest,
) -> Result<(Client, Option<String>), CreateError> {
    let policy = Policy {
        profile: req.profile,
        custom_scopes: &cfg.scopes.custom,
        allowed_grant_types: &[],
        allowed_scopes: &[],
        allow_http_loopback: cfg.events.allow_http_loopback,
    };
    let mut client = Client::blank(req.client_id.unwrap_or_else(random_id), now_ms());
    apply(&req.meta, &mut client, &policy).map_err(CreateError::Invalid)?;
    set_grace(req.grace, &mut client)?;
    client.refresh_idle_ttl_s = req.refresh_idle_ttl_s;
    client.refresh_absolute_ttl_s = req.refresh_absolute_ttl_s;
    let secret = issue_secret(&mut client);
    let id = client.id.clone();
    store.insert_client(client.clone()).await.map_err(|e| match e {
        StoreError::Conflict(_) => CreateError::Exists(id),
        e => CreateError::Store(e),
    })?;
    Ok((client, secret))
}

/// Applies `change` to the client's grace rule (`domain::grace`); a value out of range is
/// `invalid_client_metadata` about its field.
fn set_grace(change: grace::Change, client: &mut Client) -> Result<(), CreateError> {
    grace::apply(change, client).map_err(|(setting, description)| {
        let field = match setting {
            grace::Setting::Seconds => Field::ReuseGraceSeconds,
            grace::Setting::Count => Field::ReuseGraceCount,
        };
        CreateError::Invalid(Invalid {
            code: ErrorCode::InvalidClientMetadata,
            field,
            description,
        })
    })
}

/// Applies new metadata (and, from the operator, a change of the grace rule; RFC 7592 passes
/// none) to an existing client and stores it (RFC 7592 update, admin API update): the one
/// validator with `policy`; how the client authenticates cannot change (a secret would appear
/// or vanish under its users: make a new client instead). Returns the updated client;
/// `CreateError::Exists` is not used.
pub async fn update(
    store: &DynStore,
    mut client: Client,
    meta: &Metadata,
    grace: grace::Change,
    policy: &Policy<'_>,
) -> Result<Client, CreateError> {
    let before = client.auth_method;
    apply(meta, &mut client, policy).map_err(CreateError::Invalid)?;
    set_grace(grace, &mut client)?;
    if client.auth_method != before {
        return Err(CreateError::Invalid(Invalid {
            code: ErrorCode::InvalidClientMetadata,
            field: Field::TokenEndpointAuthMethod,
            description: "token_endpoint_auth_method cannot change (make a new client)".into(),
        }));
    }
    store.update_client(client.clone()).await.map_err(CreateError::Store)?;
    Ok(client)
}

/// The policy an operator's change to `client` is checked with: the profile its reserved scope
/// says (an admin client keeps only admin scopes, an account client may keep the consent API's
/// scope), the operator's for any other.
pub fn operator_policy<'a>(cfg: &'a Config, client: &Client) -> Policy<'a> {
    Policy {
        profile: client
            .scope
            .split(' ')
            .find_map(Profile::reserving)
            .unwrap_or(Profile::Operator),
        custom_scopes: &cfg.scopes.custom,
        allowed_grant_types: &[],
        allowed_scopes: &[],
        allow_http_loopback: cfg.events.allow_http_loopback,
    }
}
