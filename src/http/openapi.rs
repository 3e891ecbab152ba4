//! The OpenAPI 3.1 document of the public endpoints (SPEC §8), generated from the code with
//! utoipa: each handler carries its `#[utoipa::path]`, each JSON body is the type the handler
//! serializes (`OAuthTokenResponse` is `grants::TokenResponse`, and so on), with the reference
//! service's schema names. The admin listener serves its own document (`admin::openapi`).
//! Served at `GET /openapi.json`, built once per process. The tests below hold the routers and
//! the documents to each other: every route documented, every documented operation routed.

use super::error::OAuthErrorBody;
use super::{authorize as authz, envelope};
use super::{
    client_info, consents, device, discovery, dpop, health, logout, pages, register, resource, session, ssf, token,
};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Autional OAuth service",
        description = "OAuth 2.0 / OpenID Connect authorization server: the token lifecycle (issue, refresh with rotation, bind with DPoP, narrow, introspect, revoke). OAuth endpoints answer flat JSON (`OAuthTokenResponse`, `OAuthErrorResponse`); the other JSON endpoints use the envelope `{code, message, data, timestamp}`.",
        license(name = "Proprietary")
    ),
    paths(
        discovery::metadata,
        discovery::oauth_metadata,
        discovery::jwks,
        authz::get_authorize,
        authz::post_authorize,
        token::token,
        token::refresh,
        token::pushed_authorization,
        dpop::nonce,
        device::device_authorization,
        device::device_page,
        device::device_submit,
        resource::userinfo,
        resource::introspect,
        resource::revoke,
        session::login_page,
        session::login,
        session::logout,
        logout::logout,
        client_info::public_client,
        ssf::configuration,
        ssf::create,
        ssf::read,
        ssf::update,
        ssf::replace,
        ssf::delete,
        ssf::verify,
        consents::list,
        consents::delete,
        register::register,
        register::read,
        register::update,
        register::delete,
        session::account,
        session::account_revoke,
        pages::stylesheet,
        health::healthz,
        health::readyz,
        public_document,
    ),
    components(schemas(
        envelope::SimpleResponse,
        OAuthErrorBody,
        crate::domain::rar::Detail,
    )),
    modifiers(&PublicSecurity, &OperationIds),
    tags(
        (name = "oauth", description = "OAuth 2.0 and OpenID Connect endpoints (RFC 6749, 7009, 7591, 7592, 7662, 8414, 8628, 9126, 9449)"),
        (name = "ssf", description = "OpenID Shared Signals Framework 1.0 transmitter: metadata, stream management, verification (push delivery, RFC 8935)"),
        (name = "pages", description = "HTML pages: sign-in, consent, device entry, account"),
        (name = "operations", description = "Health and readiness probes, this document"),
    )
)]
pub struct PublicApi;

/// The security schemes the public operations name.
struct PublicSecurity;

impl Modify for PublicSecurity {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token of this server (RFC 6750); DPoP-bound tokens use the DPoP scheme with a proof (RFC 9449)"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "registration_access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The registration access token returned at registration (RFC 7592)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Operation ids from method and path (`post_oauth_token`,
/// `delete_admin_oauth_clients_client_id`): unique by construction, where the handlers' names
/// (`list`, `delete`, one handler for two methods) are not.
pub struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            let slug: String = path
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let slug = slug.split('_').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("_");
            let ops = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    op.operation_id = Some(format!("{method}_{slug}"));
                }
            }
        }
    }
}

/// A document as a response: JSON, cacheable for a few minutes (it changes only with a
/// deployment).
pub fn document_response(json: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = crate::paths::OPENAPI, tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of the public endpoints", content_type = "application/json", body = Object)))]
pub async fn public_document() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    document_response(DOC.get_or_init(|| PublicApi::openapi().to_json().expect("the OpenAPI document serializes")))
}

// ---- shared response sets -------------------------------------------------------------------

/// A response with a JSON body of schema `T`.
pub fn json_response<T: ToSchema>(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema_ref::<T>())).build(),
        )
        .build()
}

fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

fn html_response(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "text/html",
            ContentBuilder::new().schema(Some(String::schema())).build(),
        )
        .build()
}

pub fn set(entries: &[(&str, ApiResponse)]) -> BTreeMap<String, RefOr<ApiResponse>> {
    entries
        .iter()
        .map(|(s, r)| (s.to_string(), RefOr::T(r.clone())))
        .collect()
}

/// The errors of an OAuth endpoint (RFC 6749 §5.2 bodies): malformed request or wrong content
/// type (400), client authentication failed (401), body too slow (408) or too large (413), over
/// a rate limit (429, with `Retry-After`), the database unavailable (503).
pub struct OAuthErrors;

impl utoipa::IntoResponses for OAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        let e = |d: &str| json_response::<OAuthErrorBody<'static>>(d);
        set(&[
            (
                "400",
                e("The request is malformed, or a grant, scope or parameter is invalid"),
            ),
            (
                "401",
                e("Client authentication failed (`invalid_client`), or, at `/oauth/refresh`, `invalid_grant`"),
            ),
            ("408", e("The request body did not arrive in time")),
            ("413", e("The request body is too large")),
            (
                "429",
                e("Too many requests from this address or client; see Retry-After"),
            ),
            ("503", e("A dependency (the database) is unavailable; retry later")),
        ])
    }
}

/// The answers of an HTML page besides its own: redirects, and error pages.
pub struct PageResponses;

impl utoipa::IntoResponses for PageResponses {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        let redirect = |d: &str| ResponseBuilder::new().description(d).build();
        set(&[
            ("200", html_response("The page")),
            (
                "302",
                redirect("To the client's redirect URI (an authorization response) or to sign in"),
            ),
            ("303", redirect("After a form: to the next page")),
            ("400", html_response("An error page: the request is invalid")),
            (
                "403",
                html_response("An error page: the form's CSRF token is missing or stale"),
            ),
            ("413", html_response("An error page: the form is too large")),
            ("429", html_response("An error page: too many attempts")),
            ("503", html_response("An error page: the database is unavailable")),
        ])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    /// The operations a document describes, as (path, method).
    pub fn documented(doc: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
        let v = serde_json::to_value(doc).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in v["paths"].as_object().unwrap() {
            for (m, _) in item.as_object().unwrap() {
                if ["get", "post", "put", "delete", "patch", "head", "options"].contains(&m.as_str()) {
                    out.insert((path.clone(), m.clone()));
                }
            }
        }
        out
    }

    /// The operations a router routes, as (path, method).
    pub fn routed(table: &[(&'static str, Vec<&'static str>)]) -> BTreeSet<(String, String)> {
        table
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| (p.to_string(), m.to_string())))
            .collect()
    }

    /// Every route of the public router is documented and every documented operation is routed:
    /// a route added without its `#[utoipa::path]` (or a documented one removed) fails here.
    #[test]
    fn the_public_document_and_router_agree() {
        let routed = routed(crate::http::public_routes().table());
        let documented = documented(&<super::PublicApi as utoipa::OpenApi>::openapi());
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(undocumented.is_empty(), "routed but not documented: {undocumented:?}");
        assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    }
}
