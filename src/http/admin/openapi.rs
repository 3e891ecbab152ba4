//! The admin listener's OpenAPI 3.1 document (SPEC §8), generated from the handlers'
//! `#[utoipa::path]` and the types they serialize, served at `GET /openapi.json` on the admin
//! listener only. Every operation needs an access token of an admin client
//! (`client_credentials`, scope `admin:read` or `admin:write`), described as an OAuth 2.0
//! client-credentials security scheme.

use super::{audit, clients, devices, events, grants, secrets, stats, users};
use crate::http::envelope::SimpleResponse;
use crate::http::openapi::{document_response, json_response, OperationIds};
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::response::Response as ApiResponse;
use utoipa::openapi::security::{ClientCredentials, Flow, OAuth2, Scopes, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Autional OAuth service: admin API",
        description = "Operators' API on the admin listener (`admin.listen`): clients, grants, users, audit events, device authorizations. Results are `{code, message, data, timestamp}`, lists `{code, message, items, total, pagination, timestamp}`, errors `SimpleResponse {code, message, timestamp}`.",
        license(name = "Proprietary")
    ),
    paths(
        clients::list,
        clients::create,
        clients::get,
        clients::update,
        clients::delete,
        stats::stats,
        secrets::list,
        secrets::add,
        secrets::rotate,
        secrets::deactivate,
        secrets::delete,
        grants::client_grants,
        grants::revoke_client_grants,
        grants::user_grants,
        grants::revoke_user_grants,
        grants::revoke_one,
        audit::events,
        audit::client_logs,
        events::list,
        devices::list,
        devices::delete,
        users::list,
        users::create,
        users::get,
        users::delete,
        users::set_password,
        admin_document,
    ),
    components(schemas(SimpleResponse)),
    modifiers(&AdminSecurity, &OperationIds),
    tags(
        (name = "clients", description = "OAuth clients"),
        (name = "tokens", description = "Grants: one sign-in's refresh chain and its access tokens"),
        (name = "users", description = "End users"),
        (name = "audit", description = "The audit log"),
        (name = "devices", description = "Device authorizations in progress (RFC 8628)"),
        (name = "operations", description = "This document"),
    )
)]
pub struct AdminApi;

/// `admin`: an access token from `POST /oauth/token` with `client_credentials`, for a client
/// made with `autional client create --admin`.
struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let scopes = Scopes::from_iter([
            ("admin:read", "Read clients, grants, users, audit events, devices"),
            ("admin:write", "Change them (implies admin:read)"),
        ]);
        let flow = Flow::ClientCredentials(ClientCredentials::new(crate::paths::TOKEN, scopes));
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("admin", SecurityScheme::OAuth2(OAuth2::new([flow])));
    }
}

/// `GET /openapi.json` on the admin listener: this document.
#[utoipa::path(get, path = crate::paths::OPENAPI, tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of the admin API", content_type = "application/json", body = Object)))]
pub async fn admin_document() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    document_response(DOC.get_or_init(|| AdminApi::openapi().to_json().expect("the OpenAPI document serializes")))
}

/// The errors of an admin operation, in the envelope (`SimpleResponse`).
pub struct AdminErrors;

impl utoipa::IntoResponses for AdminErrors {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        let e = |d: &str| RefOr::T(json_response::<SimpleResponse>(d));
        [
            ("400", "The request is invalid; the message names what is wrong"),
            ("401", "No valid admin access token (see WWW-Authenticate)"),
            (
                "403",
                "The token lacks the scope the operation needs (see WWW-Authenticate)",
            ),
            ("404", "No such object; the message names it"),
            ("409", "The change conflicts with the current state"),
            ("503", "A dependency (the database) is unavailable; retry later"),
        ]
        .into_iter()
        .map(|(s, d)| (s.to_string(), e(d)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::http::openapi::tests::{documented, routed};

    /// Every route of the admin router is documented and every documented operation is routed.
    #[test]
    fn the_admin_document_and_router_agree() {
        let routed = routed(super::super::routes().table());
        let documented = documented(&<super::AdminApi as utoipa::OpenApi>::openapi());
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(undocumented.is_empty(), "routed but not documented: {undocumented:?}");
        assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    }
}
