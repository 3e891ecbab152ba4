//! The admin API (SPEC §8, docs/design/admin-api.md): `/admin/oauth/...` on a listener of its
//! own (`admin.listen`), JSON in and out, in the reference service's envelope
//! (`{code, message, data, timestamp}`; lists `{code, message, items, total, pagination,
//! timestamp}`; errors `SimpleResponse {code, message, timestamp}`). Every request carries an
//! access token of ours, issued by `client_credentials` to an admin client, with the scope the
//! operation needs (`domain::admin`). The handlers parse and serialize; clients are made by
//! `grants::clients::create`, as by the CLI, and deleted by the store's one cascade.

use super::envelope::{fail, from_oauth, list_page, ok, respond, timestamp};
use super::AppState;
use crate::domain::admin::{permits, Need};
use crate::domain::error::OAuthError;
use crate::domain::model::{Client, DeviceCode, Family, RevocationReason, User};
use crate::domain::registration::{Field, Metadata};
use crate::domain::scope::Scope;
use crate::grants::access_token;
use crate::grants::accounts::{self, AccountError, NewUser};
use crate::grants::clients::{self, CreateError, OperatorRequest};
use crate::jose::jwt::AccessClaims;
use crate::paths;
use crate::store::{AuditQuery, AuditRecord, GrantsOf};
use crate::util::{b64url, b64url_decode, ct_eq, hmac_sha256, now_ms};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The admin listener's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(paths::ADMIN_CLIENTS, get(list_clients).post(create_client))
        .route(
            paths::ADMIN_CLIENT,
            get(get_client).put(update_client).delete(delete_client),
        )
        .route(
            paths::ADMIN_CLIENT_TOKENS,
            get(grants_of::<false>).delete(revoke_grants_of::<false>),
        )
        .route(
            paths::ADMIN_USER_TOKENS,
            get(grants_of::<true>).delete(revoke_grants_of::<true>),
        )
        .route(paths::ADMIN_GRANT, delete(revoke_grant))
        .route(paths::ADMIN_AUDIT, get(audit_events))
        .route(paths::ADMIN_CLIENT_AUDIT, get(client_audit_logs))
        .route(paths::ADMIN_CLIENT_STATS, get(client_stats))
        .route(paths::ADMIN_DEVICES, get(list_devices))
        .route(paths::ADMIN_DEVICE, delete(delete_device))
        .route(paths::ADMIN_USERS, get(list_users).post(create_user))
        .route(paths::ADMIN_USER, get(get_user).delete(delete_user))
        .route(paths::ADMIN_USER_PASSWORD, put(set_password))
        .fallback(|| async { fail(StatusCode::NOT_FOUND, "no such admin endpoint") })
        .with_state(state)
}

/// Most items on one page of a list.
const MAX_PAGE_SIZE: usize = 100;
const DEFAULT_PAGE_SIZE: usize = 20;

/// What a lookup found, or a 404 naming `what` (503 for a failing database). The error is the
/// handler's finished answer, returned at once: boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn found<T>(r: Result<Option<T>, crate::store::StoreError>, what: &str) -> Result<T, Response> {
    match r {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(fail(StatusCode::NOT_FOUND, &format!("no {what}"))),
        Err(e) => Err(from_oauth(OAuthError::from(e))),
    }
}

/// The answer to a removal: 204 when it happened, 404 naming `what` when there was nothing to
/// remove.
fn removed(r: Result<bool, crate::store::StoreError>, what: &str) -> Response {
    match r {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => fail(StatusCode::NOT_FOUND, &format!("no {what}")),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}

// ---- authentication -------------------------------------------------------------------------

/// A 401/403 with a Bearer challenge (RFC 6750 §3) and the envelope's error body.
fn challenge(status: StatusCode, error: Option<&str>, description: &str, scope: Option<&str>) -> Response {
    let mut c = "Bearer realm=\"autional-admin\"".to_string();
    if let Some(e) = error {
        c.push_str(&format!(", error=\"{e}\", error_description=\"{description}\""));
    }
    if let Some(s) = scope {
        c.push_str(&format!(", scope=\"{s}\""));
    }
    let mut resp = fail(
        status,
        if description.is_empty() {
            "an admin access token is required"
        } else {
            description
        },
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The caller's access token, if it is active, a client's own (`client_credentials`), sent as
/// a Bearer token, and carries the scope `need` asks for.
async fn authorize(st: &AppState, headers: &HeaderMap, need: Need) -> Result<AccessClaims, Response> {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(auth) = auth else {
        return Err(challenge(StatusCode::UNAUTHORIZED, None, "", None));
    };
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
        _ => {
            return Err(challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_request"),
                "use the Bearer scheme",
                None,
            ))
        }
    };
    let invalid = |d: &str| challenge(StatusCode::UNAUTHORIZED, Some("invalid_token"), d, None);
    let claims = match access_token::active(&st.app, token).await {
        Ok(Some((c, None))) => c,
        Ok(Some((_, Some(_)))) => return Err(invalid("a user's access token cannot call the admin API")),
        Ok(None) => return Err(invalid("the access token is invalid, expired or revoked")),
        Err(e) => return Err(from_oauth(e)),
    };
    if claims.cnf.is_some() {
        return Err(invalid("the admin API takes Bearer tokens; this one is DPoP-bound"));
    }
    if !permits(&Scope::parse(&claims.scope).unwrap_or_default(), need) {
        return Err(challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            &format!("this operation needs the scope {}", need.scope()),
            Some(need.scope()),
        ));
    }
    Ok(claims)
}

/// A change's preamble: the caller may write, and the body is the JSON object `T` (400 naming
/// what is wrong with it otherwise).
async fn change<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Response> {
    authorize(st, headers, Need::Write).await?;
    serde_json::from_slice(body).map_err(|e| fail(StatusCode::BAD_REQUEST, &format!("body: {e}")))
}

// ---- clients ----------------------------------------------------------------------------------

/// A client as the reference lists it (`OAuthClientItem`); fields this server does not keep are
/// null. Never a secret or its hash.
fn client_item(c: &Client) -> Value {
    let at = c.created_at_ms / 1000;
    json!({
        "id": c.id,
        "client_id": c.id,
        "name": c.name,
        "is_confidential": !c.is_public(),
        "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types,
        "scopes": c.scope.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        "client_auth_methods": [c.auth_method.as_str()],
        "jwks_uri": c.jwks_uri,
        "logo_url": null,
        "website": null,
        "privacy_policy": null,
        "terms_url": null,
        "fapi_profile": null,
        "cors_origins": [],
        "secret_last_four": null,
        "status": "active",
        "tenant_id": null,
        "created_at": at,
        "updated_at": at,
        "deleted_at": null,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "dpop_bound_access_tokens": c.dpop_bound,
        "require_pushed_authorization_requests": c.require_par,
    })
}

/// An opaque position in a list (after `last_id`), authenticated so that a changed cursor is
/// refused rather than silently listing from elsewhere.
fn cursor_for(st: &AppState, last_id: &str) -> String {
    let tag = hmac_sha256(&st.app.form_secret, format!("admin-cursor\0{last_id}").as_bytes());
    format!("{}.{}", b64url(last_id.as_bytes()), b64url(&tag[..16]))
}

fn cursor_id(st: &AppState, cursor: &str) -> Option<String> {
    let (id, tag) = cursor.split_once('.')?;
    let id = String::from_utf8(b64url_decode(id)?).ok()?;
    let want = hmac_sha256(&st.app.form_secret, format!("admin-cursor\0{id}").as_bytes());
    ct_eq(&b64url_decode(tag)?, &want[..16]).then_some(id)
}

/// `page_size` (1–100, default 20), or why not.
fn page_size(q: &HashMap<String, String>) -> Result<usize, String> {
    match q.get("page_size") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(format!("page_size must be an integer from 1 to {MAX_PAGE_SIZE}")),
        },
    }
}

/// Refuses query parameters the operation does not know (a typo must not widen a listing).
fn known_params(q: &HashMap<String, String>, known: &[&str]) -> Result<(), String> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown query parameter `{k}` (known: {})", known.join(", "))),
        None => Ok(()),
    }
}

/// One page of `items` as the query asks (`page_size`, and `cursor` or `page`), in the order of
/// their ids: the page, how many in all, and the cursor of the next page.
fn paginate<T>(
    st: &AppState,
    q: &HashMap<String, String>,
    mut items: Vec<T>,
    id: fn(&T) -> &str,
) -> Result<(Vec<T>, usize, usize, Option<String>), String> {
    let size = page_size(q)?;
    let after = match (q.get("cursor"), q.get("page")) {
        (Some(_), Some(_)) => return Err("give cursor or page, not both".into()),
        (Some(c), None) => Some(cursor_id(st, c).ok_or("cursor is invalid (not one this server made)")?),
        _ => None,
    };
    let page = match q.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return Err("page must be an integer from 1".into()),
    };
    items.sort_by(|a, b| id(a).cmp(id(b)));
    let total = items.len();
    let start = match &after {
        Some(last) => items.partition_point(|x| id(x) <= last.as_str()),
        None => (page - 1).saturating_mul(size).min(total),
    };
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start + page.len() < total)
        .then(|| page.last().map(|x| cursor_for(st, id(x))))
        .flatten();
    Ok((page, total, size, next))
}

/// `GET /admin/oauth/clients?name=&status=&page_size=&cursor=` (or `page=`): clients by id,
/// `name` a case-insensitive substring; `pagination.next_cursor` continues the list.
async fn list_clients(
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
async fn get_client(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
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
async fn delete_client(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    removed(st.app.store.delete_client(&id, now_ms()).await, &format!("client {id}"))
}

/// The reference's `CreateClientRequest` and `UpdateClientRequest`: the same fields; creating
/// needs `name` and `redirect_uris`, updating replaces only what is given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRequest {
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
    // Names of the reference that this server does not keep yet: refused when set.
    #[serde(default)]
    logo_url: Option<String>,
    #[serde(default)]
    website: Option<String>,
    #[serde(default)]
    privacy_policy: Option<String>,
    #[serde(default)]
    terms_url: Option<String>,
    #[serde(default)]
    fapi_profile: Option<String>,
}

/// `r` over `m` (a new client's defaults, or a client's metadata): what is given replaces.
fn overlay(mut m: Metadata, r: ClientRequest) -> Result<Metadata, String> {
    let unsupported = [
        ("logo_url", &r.logo_url),
        ("website", &r.website),
        ("privacy_policy", &r.privacy_policy),
        ("terms_url", &r.terms_url),
        ("fapi_profile", &r.fapi_profile),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, v)| v.is_some()) {
        return Err(format!("{name}: not supported by this server"));
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
async fn update_client(
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
    let meta = match update_metadata(&client, req) {
        Ok(m) => m,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let policy = clients::operator_policy(&st.app.cfg, &client);
    match clients::update(&st.app.store, client, &meta, &policy).await {
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
        f => f.name(),
    }
}

/// `POST /admin/oauth/clients`: 201 with the client and its secret (shown once).
async fn create_client(State(st): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let req: ClientRequest = match change(&st, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let meta = match create_metadata(req) {
        Ok(m) => m,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let request = OperatorRequest {
        meta,
        client_id: None,
        admin: false,
        refresh_idle_ttl_s: None,
        refresh_absolute_ttl_s: None,
    };
    match clients::create(&st.app.cfg, &st.app.store, request).await {
        Ok((client, secret)) => {
            let mut data = client_item(&client);
            data["client_secret"] = json!(secret);
            ok(StatusCode::CREATED, data)
        }
        Err(CreateError::Invalid(e)) => fail(
            StatusCode::BAD_REQUEST,
            &format!("{}: {}", field_name(e.field), e.description),
        ),
        Err(CreateError::Exists(id)) => fail(StatusCode::CONFLICT, &format!("a client with id {id} already exists")),
        Err(CreateError::Store(e)) => from_oauth(OAuthError::from(e)),
    }
}

// ---- grants (token families) ------------------------------------------------------------------

/// A grant (a token family: one sign-in's refresh chain and its access tokens), as the
/// reference lists tokens (`user_id, scope, token_type, created_at, expires_at`), with what an
/// operator needs to tell grants apart.
fn grant_item(f: &Family) -> Value {
    json!({
        "grant_id": f.id,
        "user_id": f.user_id,
        "client_id": f.client_id,
        "scope": f.scope.to_string_sorted(),
        "token_type": "refresh_token",
        "created_at": f.created_at_ms / 1000,
        "expires_at": f.absolute_expires_at_ms.min(f.idle_expires_at_ms) / 1000,
        "last_used_at": f.last_used_at_ms / 1000,
        "user_agent": f.last_user_agent,
        "dpop_bound": f.dpop_jkt.is_some(),
    })
}

/// The live grants of a client or a user, one page.
async fn list_grants(st: &AppState, headers: &HeaderMap, q: &HashMap<String, String>, of: GrantsOf) -> Response {
    if let Err(r) = authorize(st, headers, Need::Read).await {
        return r;
    }
    if let Err(e) = known_params(q, &["page", "page_size", "cursor"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    if let Err(r) = exists(st, &of).await {
        return r;
    }
    let store = &st.app.store;
    let now = now_ms();
    let families = match &of {
        GrantsOf::Client(id) => store.list_client_families(id, now).await,
        GrantsOf::User(id) => store.list_user_families(id, now).await,
    };
    let live = match families {
        Ok(f) => f.into_iter().filter(|f| f.is_active(now)).collect(),
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    match paginate(st, q, live, |f: &Family| f.id.as_str()) {
        Ok((page, total, size, next)) => list_page(page.iter().map(grant_item).collect(), total, size, next),
        Err(e) => fail(StatusCode::BAD_REQUEST, &e),
    }
}

/// 404 unless the client or user exists.
async fn exists(st: &AppState, of: &GrantsOf) -> Result<(), Response> {
    let store = &st.app.store;
    match of {
        GrantsOf::Client(id) => found(store.get_client(id).await, &format!("client {id}")).map(drop),
        GrantsOf::User(id) => found(store.get_user(id).await, &format!("user {id}")).map(drop),
    }
}

/// The longest `grace_period` (30 days): a scheduled revocation is for a migration or a notice
/// period, not a way to keep grants alive indefinitely.
const MAX_GRACE_PERIOD_S: u64 = 30 * 86_400;

/// Revokes every live grant of a client or a user: at once, or after `grace_period` seconds
/// (they keep working until then; a reuse detected meanwhile still ends its family at once).
async fn revoke_grants(st: &AppState, headers: &HeaderMap, q: &HashMap<String, String>, of: GrantsOf) -> Response {
    if let Err(r) = authorize(st, headers, Need::Write).await {
        return r;
    }
    if let Err(e) = known_params(q, &["grace_period"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    let grace_s = match q.get("grace_period").map(|g| g.parse::<u64>()) {
        None => 0,
        Some(Ok(g)) if g <= MAX_GRACE_PERIOD_S => g,
        _ => {
            return fail(
                StatusCode::BAD_REQUEST,
                &format!("grace_period must be a number of seconds from 0 to {MAX_GRACE_PERIOD_S}"),
            )
        }
    };
    if let Err(r) = exists(st, &of).await {
        return r;
    }
    match st.app.store.revoke_grants(of, now_ms(), grace_s as i64 * 1000).await {
        // Each grant's access tokens stop being active (introspection, userinfo) with it.
        Ok(n) => ok(
            StatusCode::OK,
            json!({"grace_period": grace_s, "revoked_grants": n, "revoked_refresh_tokens": n, "revoked_access_tokens": n}),
        ),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}

/// Whose grants a path names: a user's (`/admin/oauth/tokens/user/{user_id}`) or a client's
/// (`/admin/oauth/clients/{client_id}/tokens`).
fn whose<const USER: bool>(id: String) -> GrantsOf {
    if USER {
        GrantsOf::User(id)
    } else {
        GrantsOf::Client(id)
    }
}

/// `GET` on either path: the live grants.
async fn grants_of<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_grants(&st, &headers, &q, whose::<USER>(id)).await
}

/// `DELETE` on either path: revokes all of them.
async fn revoke_grants_of<const USER: bool>(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    revoke_grants(&st, &headers, &q, whose::<USER>(id)).await
}

/// `DELETE /admin/oauth/tokens/{grant_id}`: revokes one grant.
async fn revoke_grant(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    match st
        .app
        .store
        .revoke_family(&id, RevocationReason::RevokedByAdmin, now_ms())
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => fail(StatusCode::NOT_FOUND, &format!("no live grant {id}")),
        Err(e) => from_oauth(OAuthError::from(e)),
    }
}

// ---- users ------------------------------------------------------------------------------------

/// A user, without anything secret (no password hash).
fn user_item(u: &User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "email": u.email,
        "created_at": u.created_at_ms / 1000,
    })
}

/// An account rule's refusal (`grants::accounts`, the CLI's rules).
fn account_error(e: AccountError) -> Response {
    match e {
        AccountError::Invalid(why) => fail(StatusCode::BAD_REQUEST, why),
        AccountError::UsernameTaken(_) => fail(StatusCode::CONFLICT, &e.to_string()),
        AccountError::Store(e) => from_oauth(OAuthError::from(e)),
        AccountError::Hash(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "cannot hash the password now"),
    }
}

/// `GET /admin/oauth/users?username=&page_size=&cursor=`: users by id, `username` a
/// case-insensitive substring.
async fn list_users(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(e) = known_params(&q, &["username", "page", "page_size", "cursor"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    let mut all = match st.app.store.list_users().await {
        Ok(u) => u,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    if let Some(n) = q.get("username").map(|n| n.to_lowercase()) {
        all.retain(|u| u.username.to_lowercase().contains(&n));
    }
    match paginate(&st, &q, all, |u: &User| u.id.as_str()) {
        Ok((page, total, size, next)) => list_page(page.iter().map(user_item).collect(), total, size, next),
        Err(e) => fail(StatusCode::BAD_REQUEST, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserRequest {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /admin/oauth/users`: 201 with the user (the CLI's account rules).
async fn create_user(State(st): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let req: CreateUserRequest = match change(&st, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let new = NewUser {
        username: &req.username,
        password: &req.password,
        email: req.email.clone(),
        name: req.name.clone(),
    };
    match accounts::create_user(&st.app.store, new).await {
        Ok(id) => match st.app.store.get_user(&id).await {
            Ok(Some(u)) => ok(StatusCode::CREATED, user_item(&u)),
            Ok(None) => fail(StatusCode::SERVICE_UNAVAILABLE, "the new user is not readable yet"),
            Err(e) => from_oauth(OAuthError::from(e)),
        },
        Err(e) => account_error(e),
    }
}

/// The user `id`, or a 404.
async fn user_or_404(st: &AppState, id: &str) -> Result<User, Response> {
    found(st.app.store.get_user(id).await, &format!("user {id}"))
}

/// `GET /admin/oauth/users/{user_id}`.
async fn get_user(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    match user_or_404(&st, &id).await {
        Ok(u) => ok(StatusCode::OK, user_item(&u)),
        Err(r) => r,
    }
}

/// `DELETE /admin/oauth/users/{user_id}`: the user, their sessions and grants (the store's
/// cascade, as `autional user delete`).
async fn delete_user(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    removed(st.app.store.delete_user(&id, now_ms()).await, &format!("user {id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPasswordRequest {
    password: String,
}

/// `PUT /admin/oauth/users/{user_id}/password`: a new password; the user's sessions and grants
/// end (`grants::accounts::set_password`, as `autional user set-password`).
async fn set_password(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: SetPasswordRequest = match change(&st, &headers, &body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = user_or_404(&st, &id).await {
        return r;
    }
    match accounts::set_password(&st.app.store, &id, &req.password).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => account_error(e),
    }
}

// ---- audit ------------------------------------------------------------------------------------

/// An audit event: when (Unix seconds), what, whose; `detail` as JSON.
fn audit_item(a: &AuditRecord) -> Value {
    json!({
        "id": a.id,
        "timestamp": a.at_ms / 1000,
        "kind": a.kind,
        "client_id": a.client_id,
        "user_id": a.user_id,
        "grant_id": a.family_id,
        "detail": a.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
    })
}

/// The same event as the reference's `OAuthAuditLogItem` (a client's audit log).
fn audit_log_item(a: &AuditRecord) -> Value {
    let alarming = a.kind.ends_with("reuse_detected") || a.kind.ends_with("replay_detected");
    json!({
        "id": a.id.to_string(),
        "timestamp": a.at_ms / 1000,
        "action": a.kind,
        "module": "oauth",
        "level": if alarming { "warning" } else { "info" },
        "message": a.detail,
        "status": "success",
        "ip": null,
        "operator_id": a.user_id,
        "operator_type": if a.user_id.is_some() { "user" } else { "system" },
        "target_id": a.family_id.as_ref().or(a.client_id.as_ref()),
        "target_type": if a.family_id.is_some() { "grant" } else { "client" },
        "tenant_id": null,
    })
}

/// An audit query from the request's parameters (`kind`, `client_id`, `user_id`, `since` and
/// `until` in Unix seconds, `cursor`, `page_size`), one more than a page to tell whether a next
/// one exists.
fn audit_query(st: &AppState, q: &HashMap<String, String>, client_id: Option<String>) -> Result<AuditQuery, String> {
    let known: &[&str] = if client_id.is_some() {
        &["kind", "user_id", "since", "until", "cursor", "page_size"]
    } else {
        &["kind", "client_id", "user_id", "since", "until", "cursor", "page_size"]
    };
    known_params(q, known)?;
    let seconds = |k: &str| -> Result<Option<i64>, String> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|s| (0..=253_402_300_799).contains(s))
                .map(|s| Some(s * 1000))
                .ok_or(format!("{k} must be a time in Unix seconds")),
        }
    };
    let before_id = match q.get("cursor") {
        None => None,
        Some(c) => Some(
            cursor_id(st, c)
                .and_then(|id| id.parse::<i64>().ok())
                .ok_or("cursor is invalid (not one this server made)")?,
        ),
    };
    Ok(AuditQuery {
        kind: q.get("kind").cloned(),
        client_id: client_id.or_else(|| q.get("client_id").cloned()),
        user_id: q.get("user_id").cloned(),
        since_ms: seconds("since")?,
        until_ms: seconds("until")?,
        before_id,
        limit: page_size(q)? as i64 + 1,
    })
}

/// Runs an audit query and answers one page of it, newest first.
async fn audit_page(st: &AppState, q: Result<AuditQuery, String>, item: fn(&AuditRecord) -> Value) -> Response {
    let q = match q {
        Ok(q) => q,
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let size = (q.limit - 1) as usize;
    let mut events = match st.app.store.query_audit(q).await {
        Ok(e) => e,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let more = events.len() > size;
    events.truncate(size);
    let next = more
        .then(|| events.last().map(|e| cursor_for(st, &e.id.to_string())))
        .flatten();
    // The total of a query over an append-only log is not counted (it would read every match).
    respond(
        StatusCode::OK,
        json!({
            "code": 200,
            "message": "success",
            "items": events.iter().map(item).collect::<Vec<_>>(),
            "total": null,
            "pagination": {"page_size": size, "next_cursor": next},
            "timestamp": timestamp(),
        }),
    )
}

/// `GET /admin/oauth/audit-events?kind=&client_id=&user_id=&since=&until=&cursor=&page_size=`:
/// audit events (reuse detections, code replays, failed sign-ins, admin revocations), newest
/// first, for a SIEM to page through.
async fn audit_events(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    let query = audit_query(&st, &q, None);
    audit_page(&st, query, audit_item).await
}

/// `GET /admin/oauth/clients/{client_id}/audit-logs`: the client's audit events in the
/// reference's shape.
async fn client_audit_logs(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(r) = exists(&st, &GrantsOf::Client(id.clone())).await {
        return r;
    }
    let query = audit_query(&st, &q, Some(id));
    audit_page(&st, query, audit_log_item).await
}

// ---- device authorizations --------------------------------------------------------------------

/// A device authorization as the reference lists it (`DeviceAuthorizationListItem`). Only the
/// device code's hash is stored, so `device_code` is null and the user code identifies it.
fn device_item(d: &DeviceCode) -> Value {
    json!({
        "device_code": null,
        "user_code": d.user_code,
        "client_id": d.client_id,
        "user_id": d.user_id,
        "scope": d.scope.to_string_sorted(),
        "status": d.status.as_str(),
        "interval": d.interval_s,
        "poll_count": null,
        "created_at": d.created_at_ms / 1000,
        "updated_at": d.last_poll_ms.unwrap_or(d.created_at_ms) / 1000,
        "expires_at": d.expires_at_ms / 1000,
    })
}

/// `GET /admin/oauth/devices?status=&client_id=&page_size=&cursor=` (or `page=`): device
/// authorizations by user code (`status=pending` for those waiting for a user).
async fn list_devices(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(e) = known_params(&q, &["status", "client_id", "page", "page_size", "cursor"]) {
        return fail(StatusCode::BAD_REQUEST, &e);
    }
    let status = match q.get("status") {
        None => None,
        Some(s) => match crate::domain::model::DeviceStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "status must be pending, approved, denied, consumed or ended",
                )
            }
        },
    };
    let mut all = match st.app.store.list_devices().await {
        Ok(d) => d,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let now = now_ms();
    all.retain(|d| {
        d.expires_at_ms > now
            && status.is_none_or(|s| d.status == s)
            && q.get("client_id").is_none_or(|c| &d.client_id == c)
    });
    match paginate(&st, &q, all, |d: &DeviceCode| d.user_code.as_str()) {
        Ok((page, total, size, next)) => list_page(page.iter().map(device_item).collect(), total, size, next),
        Err(e) => fail(StatusCode::BAD_REQUEST, &e),
    }
}

/// `DELETE /admin/oauth/devices/{user_code}`: the authorization is gone; the device's next
/// poll gets `invalid_grant`, and the user code is no longer accepted.
async fn delete_device(State(st): State<AppState>, headers: HeaderMap, Path(code): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Write).await {
        return r;
    }
    // As users type it: case and the dash do not matter.
    let code: String = code.chars().filter(|c| *c != '-').collect::<String>().to_uppercase();
    removed(
        st.app.store.delete_device(&code).await,
        &format!("device authorization {code}"),
    )
}

// ---- stats ------------------------------------------------------------------------------------

/// The most reuse detections counted for one client's stats (a bound on the query).
const MAX_COUNTED_EVENTS: i64 = 10_000;

/// `GET /admin/oauth/clients/{client_id}/stats`: the reference's `ClientStatsResponse`
/// (`client_id`, `active_tokens`, `active_refresh_tokens`, `last_request_at`) with the last 24
/// hours: grants used and reuse detections. Refreshes themselves leave no row since issue 12, so
/// "grants used" (families refreshed at least once) stands in for a refresh count.
async fn client_stats(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Read).await {
        return r;
    }
    if let Err(r) = exists(&st, &GrantsOf::Client(id.clone())).await {
        return r;
    }
    let now = now_ms();
    let day_ago = now - 86_400_000;
    let families = match st.app.store.list_client_families(&id, now).await {
        Ok(f) => f,
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    let live: Vec<&Family> = families.iter().filter(|f| f.is_active(now)).collect();
    let reuse = AuditQuery {
        kind: Some(
            crate::domain::model::AuditKind::RefreshReuseDetected
                .as_str()
                .to_string(),
        ),
        client_id: Some(id.clone()),
        since_ms: Some(day_ago),
        limit: MAX_COUNTED_EVENTS,
        ..AuditQuery::default()
    };
    let reuses = match st.app.store.query_audit(reuse).await {
        Ok(e) => e.len(),
        Err(e) => return from_oauth(OAuthError::from(e)),
    };
    ok(
        StatusCode::OK,
        json!({
            "client_id": id,
            "active_tokens": live.len(),
            "active_refresh_tokens": live.len(),
            "last_request_at": live.iter().map(|f| f.last_used_at_ms / 1000).max(),
            "grants_used_24h": live.iter().filter(|f| f.last_used_at_ms >= day_ago).count(),
            "reuse_detections_24h": reuses,
        }),
    )
}
