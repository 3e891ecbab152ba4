//! The end-user consent API (SPEC §8): `GET /oauth/consents` lists the user's consents,
//! `DELETE /oauth/consents/{id}` withdraws one (the client's grants for the user end at once).
//! The caller is the user's own access token (`Bearer`, or `DPoP` with a proof) carrying the
//! `consents` scope, which only an operator's account client can obtain
//! (`domain::consents`, docs/design/consent-api.md). Results are in the reference's envelope;
//! refusals are `SimpleResponse` with a `WWW-Authenticate` challenge (401, or 403
//! `insufficient_scope`). The rules are `grants::consents`'.

use super::envelope::{fail, from_oauth, ok};
use super::resource::{caller, Challenge};
use super::AppState;
use crate::domain::consents::{Refused, SCOPE};
use crate::domain::error::OAuthError;
use crate::domain::model::Consent;
use crate::grants::consents;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One consent, as the reference's `ConsentListResponse` lists it, plus the client's name.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsentItem {
    /// The consent's id: its client's id (one consent per user and client).
    id: String,
    client_id: String,
    /// `None` when the client no longer exists.
    client_name: Option<String>,
    scopes: Vec<String>,
    /// When it was last given (Unix seconds).
    granted_at: i64,
}

impl From<Consent> for ConsentItem {
    fn from(c: Consent) -> ConsentItem {
        ConsentItem {
            id: c.client_id.clone(),
            client_id: c.client_id,
            client_name: c.client_name,
            scopes: c.scope.iter().map(str::to_owned).collect(),
            granted_at: c.updated_at_ms / 1000,
        }
    }
}

/// The user whose consents the request's token may manage, or the refusal to send.
async fn user(st: &AppState, headers: &HeaderMap, method: &Method, uri: &Uri) -> Result<String, Response> {
    let (claims, family) = caller(st, headers, method, uri.path())
        .await
        .map_err(|r| r.envelope())?;
    consents::owner(&claims, family.as_ref()).map_err(|why| match why {
        Refused::NoUser => Challenge::bearer(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "a client's own token has no user: the consent API takes a user's access token",
        )
        .envelope(),
        Refused::Scope => {
            Challenge::insufficient_scope(SCOPE, &format!("the consent API needs the scope {SCOPE}")).envelope()
        }
    })
}

/// `GET /oauth/consents`: the user's consents, by client id.
#[utoipa::path(get, path = crate::paths::CONSENTS, tag = "oauth", security(("bearer" = [])),
    responses(
        (status = 200, description = "`ConsentListResponse`: the user's consents", body = crate::http::envelope::Envelope<Vec<ConsentItem>>),
        (status = 401, description = "No valid user access token (see WWW-Authenticate)", body = crate::http::envelope::SimpleResponse),
        (status = 403, description = "The token lacks the `consents` scope", body = crate::http::envelope::SimpleResponse),
        (status = 503, description = "The database is unavailable", body = crate::http::envelope::SimpleResponse),
    ))]
pub async fn list(State(st): State<AppState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let user_id = match user(&st, &headers, &method, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match consents::list(&st.app, &user_id).await {
        Ok(list) => ok(
            StatusCode::OK,
            list.into_iter().map(ConsentItem::from).collect::<Vec<_>>(),
        ),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}

/// `DELETE /oauth/consents/{id}`: 204 when the user's consent was withdrawn, 404 when the user
/// has none with that id (another user's consent cannot be named).
#[utoipa::path(delete, path = crate::paths::CONSENT, tag = "oauth", security(("bearer" = [])),
    params(("id" = String, Path, description = "The consent's id (its client's id)")),
    responses(
        (status = 204, description = "Withdrawn: the client's grants for the user ended"),
        (status = 401, description = "No valid user access token (see WWW-Authenticate)", body = crate::http::envelope::SimpleResponse),
        (status = 403, description = "The token lacks the `consents` scope", body = crate::http::envelope::SimpleResponse),
        (status = 404, description = "The user has no consent with this id", body = crate::http::envelope::SimpleResponse),
        (status = 503, description = "The database is unavailable", body = crate::http::envelope::SimpleResponse),
    ))]
pub async fn delete(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let user_id = match user(&st, &headers, &method, &uri).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match consents::withdraw(&st.app, &user_id, &id).await {
        Ok(true) => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            super::error::no_store(&mut resp);
            resp
        }
        Ok(false) => fail(StatusCode::NOT_FOUND, &format!("no consent {id}")),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}
