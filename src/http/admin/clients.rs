//! Admin API: clients (list, get, create, partial update, delete) and their stats. Clients are
//! made and changed by `grants::clients`, as by the CLI and RFC 7592; deleted by the store's one
//! cascade.

use super::{authorize, change, found, known_params, paginate, removed};
use crate::domain::admin::Need;
use crate::domain::error::OAuthError;
use crate::domain::grace::Change as GraceChange;
use crate::domain::model::Client;
use crate::domain::registration::{Field, Metadata, Profile};
use crate::grants::clients::{self, CreateError, OperatorRequest};
use crate::http::envelope::{fail, from_oauth, list_page, ok, Envelope, ListEnvelope};
use crate::http::AppState;
use crate::paths;
use crate::util::now_ms;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// A client as the reference lists it (`OAuthClientItem`), plus this server's own settings;
/// fields this server does not keep are null. Never a secret or its hash. The reference's display
/// names map to RFC 7591's: `logo_url` = `logo_uri`, `website` = `client_uri`, `privacy_policy`
/// = `policy_uri`, `terms_url` = `tos_uri`.
#[derive(Serialize, ToSchema)]
#[schema(as = OAuthClientItem)]
pub struct ClientItem {
    id: String,
    client_id: String,
    name: String,
    is_confidential: bool,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    #[schema(value_type = Vec<String>)]
    client_auth_methods: [&'static str; 1],
    jwks_uri: Option<String>,
    logo_url: Option<String>,
    website: Option<String>,
    privacy_policy: Option<String>,
    terms_url: Option<String>,
    fapi_profile: Option<String>,
    cors_origins: Vec<String>,
    secret_last_four: Option<String>,
    status: &'static str,
    tenant_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
    post_logout_redirect_uris: Vec<String>,
    dpop_bound_access_tokens: bool,
    require_pushed_authorization_requests: bool,
    /// This client's grace window, seconds (SPEC §4 rule 3); null: `refresh.reuse_grace_seconds`.
    reuse_grace_seconds: Option<i64>,
    /// This client's grace count; null: `refresh.reuse_grace_count`.
    reuse_grace_count: Option<i64>,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
}

/// A new client: the item and its secret, shown this once (null for a client without one).
#[derive(Serialize, ToSchema)]
#[schema(as = CreateClientResponse)]
pub struct CreatedClient {
    #[serde(flatten)]
    client: ClientItem,
    client_secret: Option<String>,
}

fn client_item(c: &Client) -> ClientItem {
    let at = c.created_at_ms / 1000;
    ClientItem {
        id: c.id.clone(),
        client_id: c.id.clone(),
        name: c.name.clone(),
        is_confidential: !c.is_public(),
        redirect_uris: c.redirect_uris.clone(),
        grant_types: c.grant_types.clone(),
        scopes: c.scopes(),
        client_auth_methods: [c.auth_method.as_str()],
        jwks_uri: c.jwks_uri.clone(),
        logo_url: c.display.logo_uri.clone(),
        website: c.display.client_uri.clone(),
        privacy_policy: c.display.policy_uri.clone(),
        terms_url: c.display.tos_uri.clone(),
        fapi_profile: None,
        cors_origins: vec![],
        secret_last_four: None,
        status: "active",
        tenant_id: None,
        created_at: at,
        updated_at: at,
        deleted_at: None,
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        dpop_bound_access_tokens: c.dpop_bound,
        require_pushed_authorization_requests: c.require_par,
        reuse_grace_seconds: c.reuse_grace_seconds,
        reuse_grace_count: c.reuse_grace_count,
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: c.backchannel_logout_session_required,
    }
}

/// `GET /admin/oauth/clients?name=&status=&page_size=&cursor=` (or `page=`): clients by id,
/// `name` a case-insensitive substring; `pagination.next_cursor` continues the list.
#[utoipa::path(get, path = paths::ADMIN_CLIENTS, tag = "clients", security(("admin" = ["admin:read"])),
    params(("name" = Option<String>, Query, description = "A case-insensitive part of the name"),
        ("status" = Option<String>, Query, description = "active or inactive"), super::Paged),
    responses((status = 200, description = "One page of clients", body = ListEnvelope<ClientItem>), super::openapi::AdminErrors))]
pub(super) async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(e) = known_params(&q, &["name", "status", "page", "page_size", "cursor"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    let mut all = match q.get("status").map(String::as_str) {
        None | Some("active") => match st.app.store.list_clients().await {
            Ok(c) => c,
            Err(e) => return from_oauth(OAuthError::from(e)),
        },
        Some("inactive") => Vec::new(),
        Some(_) => return fail(StatusCode::BAD_REQUEST, "status must be active or inactive"),
    };
    if let Some(n) = q.get("name").map(|n| n.to_lowercase()) {
        all.retain(|c| c.name.to_lowercase().contains(&n));
    }
    match paginate(&st, &q, all, |c: &Client| c.id.as_str()) {
        Ok((page, total, size, next)) => list_page(page.iter().map(client_item).collect(), total, size, next),
        Err(e) => fail(StatusCode::BAD_REQUEST, &e),
    }
}

/// `GET /admin/oauth/clients/{client_id}`.
#[utoipa::path(get, path = paths::ADMIN_CLIENT, tag = "clients", security(("admin" = ["admin:read"])),
    params(("client_id" = String, Path)),
    responses((status = 200, description = "The client", body = Envelope<ClientItem>), super::openapi::AdminErrors))]
pub(super) async fn get(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    match found(st.app.store.get_client(&id).await, &format!("client {id}")) {
        Ok(c) => ok(StatusCode::OK, client_item(&c)),
        Err(r) => r,
    }
}

/// `DELETE /admin/oauth/clients/{client_id}`: the client, its grants revoked, its codes gone
/// (the store's cascade, as `autional client delete`).
#[utoipa::path(delete, path = paths::ADMIN_CLIENT, tag = "clients", security(("admin" = ["admin:write"])),
    params(("client_id" = String, Path)),
    responses((status = 204, description = "Deleted; its grants revoked"), super::openapi::AdminErrors))]
pub(super) async fn delete(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let caller = match authorize(&st, &headers, Need::Write).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if crate::domain::admin::deletes_itself(&caller.client_id, &id) {
        return fail(
            StatusCode::CONFLICT,
            &format!("client {id} is the client making this request; delete it with another admin client or the CLI"),
        );
    }
    removed(st.app.store.delete_client(&id, now_ms()).await, &format!("client {id}"))
}

/// The reference's `CreateClientRequest` and `UpdateClientRequest`: the same fields; creating
/// needs `name` and `redirect_uris`, updating replaces only what is given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Example shop", "redirect_uris": ["https://shop.example/cb"], "scopes": ["openid", "profile"], "website": "https://shop.example/"}))]
pub struct ClientRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    is_confidential: Option<bool>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    client_auth_methods: Option<Vec<String>>,
    /// A JWK Set, as a JSON string.
    #[serde(default)]
    jwks: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    dpop_bound_access_tokens: Option<bool>,
    #[serde(default)]
    require_pushed_authorization_requests: Option<bool>,
    /// Updates only: `active` (a client ends by being deleted).
    #[serde(default)]
    status: Option<String>,
    /// RFC 7591 `logo_uri`.
    #[serde(default)]
    logo_url: Option<String>,
    /// RFC 7591 `client_uri`.
    #[serde(default)]
    website: Option<String>,
    /// RFC 7591 `policy_uri`.
    #[serde(default)]
    privacy_policy: Option<String>,
    /// RFC 7591 `tos_uri`.
    #[serde(default)]
    terms_url: Option<String>,
    /// Not supported by this server: refused when set.
    #[serde(default)]
    fapi_profile: Option<String>,
    /// This client's grace window, 0 to 60 seconds (SPEC §4 rule 3); null or absent on create:
    /// `refresh.reuse_grace_seconds`; null on update: back to it.
    #[serde(default, deserialize_with = "given_seconds")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 60)]
    reuse_grace_seconds: Option<Option<i64>>,
    /// This client's grace count, 0 to 10; null as for `reuse_grace_seconds`.
    #[serde(default, deserialize_with = "given_count")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 10)]
    reuse_grace_count: Option<Option<i64>>,
    /// OpenID Connect Back-Channel Logout: where Logout Tokens are POSTed (`""` removes it).
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    /// Its Logout Tokens must carry `sid`.
    #[serde(default)]
    backchannel_logout_session_required: Option<bool>,
}

/// A field that is present, null or not: absent stays `None` (`serde(default)`), null is
/// `Some(None)`; a value of the wrong type is refused with the field named.
fn given<'de, D: serde::Deserializer<'de>>(d: D, field: &str) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{field}: {e}")))
}

fn given_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    given(d, "reuse_grace_seconds")
}

fn given_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    given(d, "reuse_grace_count")
}

impl ClientRequest {
    /// The change it asks for to the client's grace rule.
    fn grace(&self) -> GraceChange {
        GraceChange {
            seconds: self.reuse_grace_seconds,
            count: self.reuse_grace_count,
        }
    }
}

/// `r` over `m` (a new client's defaults, or a client's metadata): what is given replaces.
fn overlay(mut m: Metadata, r: ClientRequest) -> Result<Metadata, String> {
    if r.fapi_profile.is_some() {
        return Err("fapi_profile: not supported by this server".into());
    }
    if r.status.as_deref().is_some_and(|s| s != "active") {
        return Err("status: only active is supported (delete a client to end it)".into());
    }
    if let Some(n) = r.name {
        m.client_name = Some(n);
    }
    if let Some(u) = r.redirect_uris {
        m.redirect_uris = u;
    }
    if let Some(g) = r.grant_types {
        m.grant_types = Some(g);
        m.response_types = None;
    }
    if let Some(s) = r.scopes {
        m.scope = Some(s.join(" "));
    }
    match r.client_auth_methods.as_deref() {
        None | Some([]) => {}
        Some([one]) => m.token_endpoint_auth_method = Some(one.clone()),
        Some(_) => return Err("client_auth_methods: a client authenticates with exactly one method".into()),
    }
    if let Some(j) = r.jwks {
        m.jwks = Some(serde_json::from_str(&j).map_err(|e| format!("jwks: not a JWK Set in JSON ({e})"))?);
    }
    if let Some(u) = r.jwks_uri {
        m.jwks_uri = Some(u);
    }
    if let Some(p) = r.post_logout_redirect_uris {
        m.post_logout_redirect_uris = p;
    }
    if let Some(d) = r.dpop_bound_access_tokens {
        m.dpop_bound_access_tokens = d;
    }
    if let Some(p) = r.require_pushed_authorization_requests {
        m.require_pushed_authorization_requests = p;
    }
    if let Some(u) = r.backchannel_logout_uri {
        m.backchannel_logout_uri = (!u.is_empty()).then_some(u);
    }
    if let Some(b) = r.backchannel_logout_session_required {
        m.backchannel_logout_session_required = b;
    }
    for (given, field) in [
        (r.logo_url, &mut m.logo_uri),
        (r.website, &mut m.client_uri),
        (r.privacy_policy, &mut m.policy_uri),
        (r.terms_url, &mut m.tos_uri),
    ] {
        if given.is_some() {
            *field = given;
        }
    }
    Ok(m)
}

/// A create request as metadata: `name` and `redirect_uris` required; without
/// `client_auth_methods` a confidential client (the default) uses `client_secret_basic`, a
/// public one `none`, and the two must agree.
fn create_metadata(r: ClientRequest) -> Result<Metadata, String> {
    if r.name.is_none() {
        return Err("body: missing field `name`".into());
    }
    if r.redirect_uris.is_none() {
        return Err("body: missing field `redirect_uris`".into());
    }
    let confidential = r.is_confidential.unwrap_or(true);
    let m = overlay(Metadata::default(), r)?;
    let method = m
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| if confidential { "client_secret_basic" } else { "none" }.to_string());
    if confidential == (method == "none") {
        return Err(format!(
            "client_auth_methods: `{method}` contradicts is_confidential = {confidential}"
        ));
    }
    Ok(Metadata {
        token_endpoint_auth_method: Some(method),
        ..m
    })
}

/// An update request over the client's metadata; confidentiality cannot change.
fn update_metadata(c: &Client, r: ClientRequest) -> Result<Metadata, String> {
    if r.is_confidential.is_some_and(|want| want == c.is_public()) {
        return Err("is_confidential cannot change (make a new client)".into());
    }
    let m: Metadata = serde_json::from_value(crate::domain::registration::describe(c))
        .map_err(|e| format!("the stored client does not read back as metadata: {e}"))?;
    overlay(m, r)
}

/// `PUT /admin/oauth/clients/{client_id}`: a partial update, validated as a whole by the one
/// validator (an admin client keeps the admin profile); nothing changes when it is refused.
#[utoipa::path(put, path = paths::ADMIN_CLIENT, tag = "clients", security(("admin" = ["admin:write"])),
    params(("client_id" = String, Path)),
    request_body(content = ClientRequest, description = "UpdateClientRequest: only the fields to change"),
    responses((status = 200, description = "The updated client", body = Envelope<ClientItem>), super::openapi::AdminErrors))]
pub(super) async fn update(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: ClientRequest = match change(&st, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let client = match found(st.app.store.get_client(&id).await, &format!("client {id}")) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let grace = req.grace();
    let meta = match update_metadata(&client, req) {
        Ok(m) => m,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let policy = clients::operator_policy(&st.app.cfg, &client);
    match clients::update(&st.app.store, client, &meta, grace, &policy).await {
        Ok(c) => ok(StatusCode::OK, client_item(&c)),
        Err(CreateError::Invalid(e)) => fail(
            StatusCode::BAD_REQUEST,
            &format!("{}: {}", field_name(e.field), e.description),
        ),
        Err(CreateError::Exists(id)) => fail(StatusCode::CONFLICT, &format!("client {id} exists")),
        Err(CreateError::Store(e)) => from_oauth(OAuthError::from(e)),
    }
}

/// The request's name of a metadata field (the reference's where it differs from RFC 7591's).
fn field_name(f: Field) -> &'static str {
    match f {
        Field::Scope => "scopes",
        Field::TokenEndpointAuthMethod => "client_auth_methods",
        Field::LogoUri => "logo_url",
        Field::ClientUri => "website",
        Field::PolicyUri => "privacy_policy",
        Field::TosUri => "terms_url",
        f => f.name(),
    }
}

/// `POST /admin/oauth/clients`: 201 with the client and its secret (shown once).
#[utoipa::path(post, path = paths::ADMIN_CLIENTS, tag = "clients", security(("admin" = ["admin:write"])),
    request_body(content = ClientRequest, description = "CreateClientRequest: `name` and `redirect_uris` required"),
    responses((status = 201, description = "Created; `client_secret` is shown once", body = Envelope<CreatedClient>), super::openapi::AdminErrors))]
pub(super) async fn create(State(st): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let req: ClientRequest = match change(&st, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let grace = req.grace();
    let meta = match create_metadata(req) {
        Ok(m) => m,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let request = OperatorRequest {
        meta,
        client_id: None,
        profile: Profile::Operator,
        refresh_idle_ttl_s: None,
        refresh_absolute_ttl_s: None,
        grace,
    };
    match clients::create(&st.app.cfg, &st.app.store, request).await {
        Ok((client, secret)) => ok(
            StatusCode::CREATED,
            CreatedClient {
                client: client_item(&client),
                client_secret: secret,
            },
        ),
        Err(CreateError::Invalid(e)) => fail(
            StatusCode::BAD_REQUEST,
            &format!("{}: {}", field_name(e.field), e.description),
        ),
        Err(CreateError::Exists(id)) => fail(StatusCode::CONFLICT, &format!("a client with id {id} already exists")),
        Err(CreateError::Store(e)) => from_oauth(OAuthError::from(e)),
    }
}
