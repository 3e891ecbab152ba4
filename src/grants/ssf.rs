//! The Shared Signals Framework transmitter's use cases (SSF 1.0 §8.1; docs/design/events.md,
//! "Security events"): who may manage a stream, and creating, reading, changing and deleting a
//! client's stream, and requesting a verification event. The rules are `domain::ssf`'s; every
//! operation is confined to the caller's own stream (one per client), so another client's
//! stream cannot even be named: its id answers 404 as an unknown one does.

use crate::app::App;
use crate::domain::events::RowClaims;
use crate::domain::model::Family;
use crate::domain::ssf::{self, Change, Stream, StreamRequest, Transmitter};
use crate::jose::jwt::AccessClaims;
use crate::store::StoreError;
use crate::util::{now_ms, random_id};

/// Why a stream request fails.
#[derive(Debug)]
pub enum SsfError {
    /// A user's access token: streams are a client's own (401 `invalid_token`).
    UserToken,
    /// The request is invalid (400), saying why.
    Invalid(String),
    /// The client has no stream with that id (404).
    NotFound,
    /// The client already has a stream (409: one per client).
    Exists,
    /// The database failed (503).
    Store(StoreError),
}

impl From<StoreError> for SsfError {
    fn from(e: StoreError) -> SsfError {
        SsfError::Store(e)
    }
}

/// The client whose stream an active access token may manage: the client of its own token
/// (`client_credentials`: no grant, no user); a user's token is refused, whatever its scope.
pub fn owner<'a>(claims: &'a AccessClaims, family: Option<&Family>) -> Result<&'a str, SsfError> {
    match family {
        None if claims.grant_id.is_none() => Ok(&claims.client_id),
        _ => Err(SsfError::UserToken),
    }
}

fn transmitter(app: &App) -> Transmitter<'_> {
    Transmitter {
        issuer: &app.cfg.issuer,
        allow_http_loopback: app.cfg.events.allow_http_loopback,
    }
}

/// Creates the client's stream (SSF §8.1.1.1).
pub async fn create(app: &App, client_id: &str, req: StreamRequest) -> Result<Stream, SsfError> {
    let stream = ssf::create(client_id, random_id(), req, transmitter(app), now_ms()).map_err(SsfError::Invalid)?;
    match app.store.insert_stream(stream.clone()).await {
        Ok(()) => Ok(stream),
        Err(StoreError::Conflict(_)) => Err(SsfError::Exists),
        Err(e) => Err(e.into()),
    }
}

/// The client's stream named `stream_id`: 404 for any other id (another client's included).
async fn own(app: &App, client_id: &str, stream_id: &str) -> Result<Stream, SsfError> {
    match app.store.get_stream(client_id).await? {
        Some(s) if s.stream_id == stream_id => Ok(s),
        _ => Err(SsfError::NotFound),
    }
}

/// The client's streams (SSF §8.1.1.2): the one `stream_id` names, or, without it, all of them
/// (none or one).
pub async fn read(app: &App, client_id: &str, stream_id: Option<&str>) -> Result<Vec<Stream>, SsfError> {
    match stream_id {
        Some(id) => Ok(vec![own(app, client_id, id).await?]),
        None => Ok(app.store.get_stream(client_id).await?.into_iter().collect()),
    }
}

/// Updates (PATCH, SSF §8.1.1.3) or replaces (PUT, §8.1.1.4) the client's stream that the
/// request's `stream_id` names.
pub async fn change(app: &App, client_id: &str, req: StreamRequest, how: Change) -> Result<Stream, SsfError> {
    let Some(id) = req.stream_id.clone() else {
        return Err(SsfError::Invalid("stream_id is required".into()));
    };
    let current = own(app, client_id, &id).await?;
    let changed = ssf::change(&current, req, how, transmitter(app), now_ms()).map_err(SsfError::Invalid)?;
    if !app.store.update_stream(changed.clone()).await? {
        // Deleted meanwhile.
        return Err(SsfError::NotFound);
    }
    Ok(changed)
}

/// Deletes the client's stream `stream_id` and what it has not sent yet (SSF §8.1.1.5).
pub async fn delete(app: &App, client_id: &str, stream_id: &str) -> Result<(), SsfError> {
    if stream_id.contains('\0') || !app.store.delete_stream(client_id, stream_id).await? {
        return Err(SsfError::NotFound);
    }
    Ok(())
}

/// Queues a verification event carrying `state` on the client's stream `stream_id` (SSF
/// §8.1.4.2), through the outbox like every event.
pub async fn verify(app: &App, client_id: &str, stream_id: &str, state: Option<String>) -> Result<(), SsfError> {
    ssf::check_state(state.as_deref()).map_err(SsfError::Invalid)?;
    if stream_id.contains('\0') {
        return Err(SsfError::NotFound);
    }
    let claims = serde_json::to_string(&RowClaims {
        state,
        ..RowClaims::default()
    })
    .expect("row claims serialize");
    if !app
        .store
        .enqueue_verification(client_id, stream_id, &claims, now_ms())
        .await?
    {
        return Err(SsfError::NotFound);
    }
    Ok(())
}
