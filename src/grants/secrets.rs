//! A client's secrets, whoever manages them (the CLI's `client rotate-secret` and `client
//! secret …`, the admin API): list, add, rotate, deactivate, delete. The rules are
//! `domain::secrets`; this module loads the client's list, applies one rule and writes the
//! result back with a compare-and-set on the stored text (`Store::swap_client_secrets`), so two
//! concurrent changes never overwrite each other nor together exceed the limit: the one that
//! loses re-reads and decides again. New secrets are random (256 bits), shown once, stored as
//! SHA-256.

use crate::domain::model::{Client, ClientSecret};
use crate::domain::secrets::{self, Refusal};
use crate::store::{DynStore, StoreError};
use crate::util::{now_ms, random_id, random_token, sha256};

/// How many times a change is decided again after losing a compare-and-set to another one.
const ATTEMPTS: usize = 16;

/// Why a change to a client's secrets did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no client {0}")]
    UnknownClient(String),
    /// A rule refused it (`domain::secrets`).
    #[error("{0}")]
    Refused(Refusal),
    /// Other changes kept winning the compare-and-set.
    #[error("the client's secrets are being changed concurrently: retry")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new secret: its entry and the secret itself, to be shown once.
#[derive(Debug)]
pub struct NewSecret {
    pub entry: ClientSecret,
    pub secret: String,
}

/// A rotation's result.
#[derive(Debug)]
pub struct Rotation {
    pub new: NewSecret,
    /// When the previous secret stops working (None when there was none).
    pub previous_expires_at_ms: Option<i64>,
    pub rotated_at_ms: i64,
}

/// The client and its secrets (legacy entries completed), with their stored text.
async fn load(store: &DynStore, client_id: &str) -> Result<(Client, String), SecretError> {
    let (mut client, raw) = store
        .client_secrets(client_id)
        .await?
        .ok_or_else(|| SecretError::UnknownClient(client_id.to_string()))?;
    secrets::normalize(&mut client.secrets, client.created_at_ms);
    Ok((client, raw))
}

/// Applies `rule` to the client's list and stores the result if nobody changed it meanwhile;
/// otherwise decides again on the new list.
async fn change<T>(
    store: &DynStore,
    client_id: &str,
    mut rule: impl FnMut(&Client, &mut Vec<ClientSecret>, i64) -> Result<T, Refusal>,
) -> Result<T, SecretError> {
    for _ in 0..ATTEMPTS {
        let (mut client, raw) = load(store, client_id).await?;
        let mut list = std::mem::take(&mut client.secrets);
        let out = rule(&client, &mut list, now_ms()).map_err(SecretError::Refused)?;
        if store.swap_client_secrets(client_id, raw, list).await? {
            return Ok(out);
        }
    }
    Err(SecretError::Contended)
}

/// A fresh secret's entry and value.
fn fresh(description: Option<String>, expires_at_ms: Option<i64>, now_ms: i64) -> NewSecret {
    let secret = random_token();
    NewSecret {
        entry: secrets::entry(
            random_id(),
            sha256(secret.as_bytes()).to_vec(),
            description,
            expires_at_ms,
            now_ms,
        ),
        secret,
    }
}

/// Refuses clients that authenticate without a secret.
fn needs_secrets(client: &Client) -> Result<(), Refusal> {
    if secrets::uses_secrets(client.auth_method) {
        Ok(())
    } else {
        Err(Refusal::NoSecrets(client.auth_method))
    }
}

/// The client's secrets, in the order they were added.
pub async fn list(store: &DynStore, client_id: &str) -> Result<Vec<ClientSecret>, SecretError> {
    Ok(load(store, client_id).await?.0.secrets)
}

/// Adds a secret (`description`, expiry in Unix seconds), unless the client has the most live
/// secrets it may have.
pub async fn add(
    store: &DynStore,
    client_id: &str,
    description: Option<String>,
    expires_at_s: Option<i64>,
) -> Result<NewSecret, SecretError> {
    change(store, client_id, |client, list, now| {
        needs_secrets(client)?;
        let expires = secrets::check_request(description.as_deref(), expires_at_s, now)?;
        let new = fresh(description.clone(), expires, now);
        secrets::add(list, new.entry.clone(), now)?;
        Ok(new)
    })
    .await
}

/// Rotates: a new secret; the newest previous one keeps working for `overlap_ms`
/// (`client_secret.rotation_overlap`), older ones stop.
pub async fn rotate(store: &DynStore, client_id: &str, overlap_ms: i64) -> Result<Rotation, SecretError> {
    change(store, client_id, |client, list, now| {
        needs_secrets(client)?;
        let new = fresh(None, None, now);
        let previous_expires_at_ms = secrets::rotate(list, new.entry.clone(), now, overlap_ms);
        Ok(Rotation {
            new,
            previous_expires_at_ms,
            rotated_at_ms: now,
        })
    })
    .await
}

/// Deactivates a secret: it stops working at once. Returns it.
pub async fn deactivate(store: &DynStore, client_id: &str, secret_id: &str) -> Result<ClientSecret, SecretError> {
    change(store, client_id, |_, list, now| {
        secrets::deactivate(list, secret_id, now)
    })
    .await
}

/// Deletes a secret.
pub async fn delete(store: &DynStore, client_id: &str, secret_id: &str) -> Result<(), SecretError> {
    change(store, client_id, |_, list, now| secrets::delete(list, secret_id, now)).await
}
