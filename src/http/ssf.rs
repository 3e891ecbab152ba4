//! The Shared Signals Framework 1.0 transmitter over HTTP (docs/design/events.md, "Security
//! events"): its metadata at `/.well-known/ssf-configuration` (SSF §7), the stream management
//! API at the configuration endpoint (`POST`/`GET`/`PATCH`/`PUT`/`DELETE /ssf/stream`, SSF
//! §8.1.1) and the verification endpoint (`POST /ssf/verify`, §8.1.4). The caller is a client
//! with its own access token (`client_credentials`; `Bearer`, or `DPoP` with a proof, checked as
//! every protected resource checks it: `resource::caller`); refusals are OAuth error bodies with
//! a `WWW-Authenticate` challenge. The rules are `grants::ssf`'s and `domain::ssf`'s.

use super::error::{no_store, ApiError};
use super::resource::{caller, Challenge};
use super::AppState;
use crate::domain::error::{ErrorCode, OAuthError};
use crate::domain::ssf::{self, Change, Delivery, Stream, StreamRequest};
use crate::grants::ssf::{self as streams, SsfError};
use crate::paths;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The largest request body (a stream configuration is small).
const MAX_BODY: usize = 16 * 1024;

/// An authorization scheme of the stream management API (SSF §7.1.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorizationScheme {
    /// `urn:ietf:rfc:6749`: an OAuth 2.0 access token the client obtained with
    /// `client_credentials`, sent as a Bearer (or DPoP) token.
    spec_urn: String,
}

/// Transmitter Configuration Metadata (SSF §7.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TransmitterConfiguration {
    /// `1_0`: the final SSF 1.0.
    spec_version: String,
    /// The `iss` of every SET: the server's issuer.
    issuer: String,
    /// Where the keys that sign the SETs are.
    jwks_uri: String,
    /// `urn:ietf:rfc:8935` (push) only.
    delivery_methods_supported: Vec<String>,
    configuration_endpoint: String,
    verification_endpoint: String,
    authorization_schemes: Vec<AuthorizationScheme>,
    /// `ALL`: a stream gets the events of every user of its client's grants, with no subject to
    /// add (no add/remove subject endpoints).
    default_subjects: String,
}

/// A stream's configuration (SSF §8.1.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamConfiguration {
    stream_id: String,
    iss: String,
    /// The client's id: the `aud` of the stream's SETs.
    aud: String,
    delivery: Delivery,
    events_supported: Vec<String>,
    events_requested: Vec<String>,
    events_delivered: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl StreamConfiguration {
    fn of(s: Stream, issuer: &str) -> StreamConfiguration {
        StreamConfiguration {
            events_delivered: s.events_delivered().into_iter().map(str::to_owned).collect(),
            stream_id: s.stream_id,
            iss: issuer.to_string(),
            aud: s.client_id,
            delivery: Delivery {
                method: ssf::PUSH.into(),
                endpoint_url: Some(s.endpoint_url),
                authorization_header: None,
            },
            events_supported: ssf::SUPPORTED.iter().map(|e| e.to_string()).collect(),
            events_requested: s.events_requested,
            description: s.description,
        }
    }
}

/// A read's answer: the configuration of the stream `stream_id` names, or without it the list
/// of the client's (SSF §8.1.1.2).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum StreamRead {
    One(Box<StreamConfiguration>),
    List(Vec<StreamConfiguration>),
}

/// A verification request (SSF §8.1.4.2).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerificationRequest {
    stream_id: String,
    /// Echoed in the verification event.
    #[serde(default)]
    state: Option<String>,
}

/// The stream a read or a deletion names.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The stream's id (a read without it lists the client's streams).
    stream_id: Option<String>,
}

/// `GET /.well-known/ssf-configuration`: the transmitter's metadata.
#[utoipa::path(get, path = paths::SSF_CONFIGURATION, tag = "ssf",
    responses((status = 200, description = "Transmitter Configuration Metadata (SSF §7.1)", body = TransmitterConfiguration)))]
pub async fn configuration(State(st): State<AppState>) -> Response {
    let iss = &st.app.cfg.issuer;
    axum::Json(TransmitterConfiguration {
        spec_version: ssf::SPEC_VERSION.into(),
        issuer: iss.clone(),
        jwks_uri: format!("{iss}{}", paths::JWKS),
        delivery_methods_supported: vec![ssf::PUSH.into()],
        configuration_endpoint: format!("{iss}{}", paths::SSF_STREAM),
        verification_endpoint: format!("{iss}{}", paths::SSF_VERIFY),
        authorization_schemes: vec![AuthorizationScheme {
            spec_urn: ssf::OAUTH.into(),
        }],
        default_subjects: "ALL".into(),
    })
    .into_response()
}

/// The client whose stream the request's token manages, or the refusal.
async fn client(st: &AppState, headers: &HeaderMap, method: &Method, uri: &Uri) -> Result<String, Response> {
    let (claims, family) = caller(st, headers, method, uri.path()).await.map_err(|r| r.oauth())?;
    streams::owner(&claims, family.as_ref())
        .map(str::to_owned)
        .map_err(refused)
}

/// The answer to a failed stream request.
fn refused(e: SsfError) -> Response {
    let e = match e {
        SsfError::UserToken => {
            return Challenge::bearer(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "a user's access token cannot manage a stream: use the client's own (client_credentials)",
            )
            .oauth()
        }
        SsfError::Invalid(d) => OAuthError::invalid_request(d),
        SsfError::NotFound => OAuthError::new(404, ErrorCode::NotFound, "the client has no stream with this stream_id"),
        SsfError::Exists => OAuthError::new(
            409,
            ErrorCode::InvalidRequest,
            "the client has a stream already (one per client): read, update or replace it",
        ),
        SsfError::Store(e) => OAuthError::from(e),
    };
    ApiError(e).into_response()
}

/// The JSON body of a request, or a 400 (413 when too large) naming what is wrong.
async fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(refused(SsfError::Invalid(
            "Content-Type must be application/json".into(),
        )));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError(OAuthError::new(
            413,
            ErrorCode::InvalidRequest,
            "request body is too large",
        ))
        .into_response()
    })?;
    serde_json::from_slice(&bytes).map_err(|e| refused(SsfError::Invalid(format!("body: {e}"))))
}

/// The caller's client and the request's JSON body, or the refusal.
async fn client_and_body<T: serde::de::DeserializeOwned>(
    st: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, T), Response> {
    let client_id = client(st, headers, method, uri).await?;
    Ok((client_id, json_body(headers, body).await?))
}

/// A JSON answer that is not cached.
fn answer<T: Serialize>(status: StatusCode, v: T) -> Response {
    let mut resp = (status, axum::Json(v)).into_response();
    no_store(&mut resp);
    resp
}

fn no_content() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    no_store(&mut resp);
    resp
}

/// The errors of the stream management and verification endpoints (OAuth error bodies): an
/// invalid request (400), no valid client token (401: the challenge says why, the body is empty
/// when no token was sent, RFC 6750 §3.1), no such stream (404), a second stream (409), a body
/// too large (413), the database unavailable (503).
pub struct StreamErrors;

impl utoipa::IntoResponses for StreamErrors {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>> {
        use crate::http::error::OAuthErrorBody;
        use crate::http::openapi::{json_response, set};
        let e = |d: &str| json_response::<OAuthErrorBody<'static>>(d);
        let challenge = utoipa::openapi::response::ResponseBuilder::new()
            .description("No valid client access token: the WWW-Authenticate challenge says why; the body is empty when the request carried no token (RFC 6750 §3.1), an `OAuthErrorResponse` otherwise")
            .header("WWW-Authenticate", utoipa::openapi::header::Header::new(utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String)))
            .build();
        set(&[
            (
                "400",
                e("Invalid request (delivery method, endpoint_url, events_requested, stream_id, …)"),
            ),
            ("401", challenge),
            ("404", e("The client has no stream with this id")),
            ("409", e("The client has a stream already")),
            ("413", e("The request body is too large")),
            ("503", e("The database is unavailable")),
        ])
    }
}

/// `POST /ssf/stream`: creates the client's push stream (201); 409 when it has one.
#[utoipa::path(post, path = paths::SSF_STREAM, tag = "ssf", security(("bearer" = [])),
    request_body(content = StreamRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: the stream's configuration", body = StreamConfiguration),
        StreamErrors,
    ))]
pub async fn create(State(st): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let (client_id, req): (String, StreamRequest) = match client_and_body(&st, &method, &uri, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match streams::create(&st.app, &client_id, req).await {
        Ok(s) => answer(StatusCode::CREATED, StreamConfiguration::of(s, &st.app.cfg.issuer)),
        Err(e) => refused(e),
    }
}

/// `GET /ssf/stream[?stream_id=…]`: the stream's configuration, or without `stream_id` the list
/// of the client's streams (none or one).
#[utoipa::path(get, path = paths::SSF_STREAM, tag = "ssf", security(("bearer" = [])), params(StreamQuery),
    responses(
        (status = 200, description = "The stream's configuration (a list of them without stream_id)", body = StreamRead),
        StreamErrors,
    ))]
pub async fn read(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let client_id = match client(&st, &headers, &method, &uri).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let issuer = &st.app.cfg.issuer;
    match streams::read(&st.app, &client_id, q.stream_id.as_deref()).await {
        Ok(mut list) if q.stream_id.is_some() => answer(
            StatusCode::OK,
            StreamRead::One(Box::new(StreamConfiguration::of(list.remove(0), issuer))),
        ),
        Ok(list) => answer(
            StatusCode::OK,
            StreamRead::List(list.into_iter().map(|s| StreamConfiguration::of(s, issuer)).collect()),
        ),
        Err(e) => refused(e),
    }
}

/// PATCH or PUT: the change, answered with the whole configuration.
async fn changed(st: AppState, method: Method, uri: Uri, headers: HeaderMap, body: Body, how: Change) -> Response {
    let (client_id, req): (String, StreamRequest) = match client_and_body(&st, &method, &uri, &headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match streams::change(&st.app, &client_id, req, how).await {
        Ok(s) => answer(StatusCode::OK, StreamConfiguration::of(s, &st.app.cfg.issuer)),
        Err(e) => refused(e),
    }
}

/// `PATCH /ssf/stream`: updates what the body names (SSF §8.1.1.3).
#[utoipa::path(patch, path = paths::SSF_STREAM, tag = "ssf", security(("bearer" = [])),
    request_body(content = StreamRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated: the stream's configuration", body = StreamConfiguration),
        StreamErrors,
    ))]
pub async fn update(State(st): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    changed(st, method, uri, headers, body, Change::Update).await
}

/// `PUT /ssf/stream`: replaces the receiver-supplied properties (SSF §8.1.1.4).
#[utoipa::path(put, path = paths::SSF_STREAM, tag = "ssf", security(("bearer" = [])),
    request_body(content = StreamRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced: the stream's configuration", body = StreamConfiguration),
        StreamErrors,
    ))]
pub async fn replace(State(st): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    changed(st, method, uri, headers, body, Change::Replace).await
}

/// `DELETE /ssf/stream?stream_id=…`: deletes the stream and its unsent events (204).
#[utoipa::path(delete, path = paths::SSF_STREAM, tag = "ssf", security(("bearer" = [])), params(StreamQuery),
    responses(
        (status = 204, description = "Deleted"),
        StreamErrors,
    ))]
pub async fn delete(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Response {
    let client_id = match client(&st, &headers, &method, &uri).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(id) = q.stream_id else {
        return refused(SsfError::Invalid("stream_id is required".into()));
    };
    match streams::delete(&st.app, &client_id, &id).await {
        Ok(()) => no_content(),
        Err(e) => refused(e),
    }
}

/// `POST /ssf/verify`: queues a verification event on the stream (204; sent by the delivery
/// worker, as every event).
#[utoipa::path(post, path = paths::SSF_VERIFY, tag = "ssf", security(("bearer" = [])),
    request_body(content = VerificationRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "The verification event is queued"),
        StreamErrors,
    ))]
pub async fn verify(State(st): State<AppState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let (client_id, req): (String, VerificationRequest) =
        match client_and_body(&st, &method, &uri, &headers, body).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    match streams::verify(&st.app, &client_id, &req.stream_id, req.state).await {
        Ok(()) => no_content(),
        Err(e) => refused(e),
    }
}
