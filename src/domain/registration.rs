//! Client metadata (RFC 7591 §2) and its validation: what a client may be, turned into the
//! fields of a [`Client`]. The one validator of client metadata: dynamic registration and its
//! RFC 7592 updates (`http::register`) and the operator's `client create` (`cli`) both call
//! [`apply`]. Errors are RFC 7591 §3.2.2 codes, with the [`Field`] they are about.
//!
//! Who asks is explicit, a [`Profile`]:
//! - [`Profile::Registrant`]: anonymous registration, so the [`Policy`] bounds what anybody may
//!   register (RFC 7591 §5, RFC 9700 §2.3): the grant types and scopes in
//!   `registration.allowed_*`, by default the user-facing grants and the OpenID scopes only,
//!   never `client_credentials` or API scopes unless the operator opens them; a `jwks_uri` is
//!   https only (the server fetches it: registration must not aim it at plain-http internal
//!   services).
//! - [`Profile::Operator`]: the operator configures its own clients: any supported grant type,
//!   any known scope, and a `jwks_uri` over http too (a key server on the operator's network).
//! - [`Profile::Admin`] and [`Profile::Account`]: the operator's admin and account clients, the
//!   only ones that may hold the reserved scopes (`Profile::reserving`: the admin scopes,
//!   `consents`).
//!
//! Display metadata (`client_uri`, `logo_uri`, … ) is checked by [`super::display::check`].
//!
//! Everything else holds for both, in particular what RFC 7591 forbids: `jwks` together with
//! `jwks_uri` (§2), a public client (`none`) with `client_credentials` (RFC 6749 §4.4: only a
//! confidential client). Redirect URIs follow [`super::redirect_uri::check`].

use super::error::ErrorCode;
use super::model::{AuthMethod, Client, GrantType, GRANT_TYPES};
use super::redirect_uri;
use super::scope::Scope;
use serde::{Deserialize, Serialize};

/// Client metadata (RFC 7591 §2) as registration, RFC 7592 and the CLI give it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = ClientMetadata, example = json!({"client_name": "Example app", "redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_basic", "grant_types": ["authorization_code", "refresh_token"], "scope": "openid profile offline_access"}))]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A JWK Set (`{"keys": [...]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    // Display metadata (`domain::display`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// `web` (the default) or `native` (OIDC Registration §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// The operator's settings of a client (`grants::clients::OperatorRequest`), read only to
    /// be refused by name: a client does not set its own grace rule (see [`apply`]).
    #[serde(default, skip_serializing)]
    pub reuse_grace_seconds: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub reuse_grace_count: Option<serde_json::Value>,
    /// Where Logout Tokens are POSTed (OpenID Connect Back-Channel Logout 1.0 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
}

/// The metadata field a validation failure is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    TokenEndpointAuthMethod,
    GrantTypes,
    ResponseTypes,
    RedirectUris,
    PostLogoutRedirectUris,
    Jwks,
    JwksUri,
    Scope,
    ClientUri,
    LogoUri,
    PolicyUri,
    TosUri,
    Contacts,
    SoftwareId,
    SoftwareVersion,
    ApplicationType,
    /// The operator's per-client grace window (`domain::grace`), not client metadata.
    ReuseGraceSeconds,
    /// The operator's per-client grace count (`domain::grace`), not client metadata.
    ReuseGraceCount,
    BackchannelLogoutUri,
}

impl Field {
    /// Its RFC 7591 name.
    pub fn name(self) -> &'static str {
        match self {
            Field::TokenEndpointAuthMethod => "token_endpoint_auth_method",
            Field::GrantTypes => "grant_types",
            Field::ResponseTypes => "response_types",
            Field::RedirectUris => "redirect_uris",
            Field::PostLogoutRedirectUris => "post_logout_redirect_uris",
            Field::Jwks => "jwks",
            Field::JwksUri => "jwks_uri",
            Field::Scope => "scope",
            Field::ClientUri => "client_uri",
            Field::LogoUri => "logo_uri",
            Field::PolicyUri => "policy_uri",
            Field::TosUri => "tos_uri",
            Field::Contacts => "contacts",
            Field::SoftwareId => "software_id",
            Field::SoftwareVersion => "software_version",
            Field::ApplicationType => "application_type",
            Field::ReuseGraceSeconds => "reuse_grace_seconds",
            Field::ReuseGraceCount => "reuse_grace_count",
            Field::BackchannelLogoutUri => "backchannel_logout_uri",
        }
    }
}

/// A validation failure: the RFC 7591 §3.2.2 `error`, the field, and a description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub code: ErrorCode,
    pub field: Field,
    pub description: String,
}

/// Who asks for the metadata (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The operator (`client create`): not bound by `registration.allowed_*`; `jwks_uri` may be
    /// http.
    Operator,
    /// An anonymous registrant (RFC 7591): bounded by `registration.allowed_*`; `jwks_uri` is
    /// https only.
    Registrant,
    /// The operator's admin client (`client create --admin`): the `client_credentials` grant
    /// only, a confidential client, and scopes among the admin scopes only (`domain::admin`),
    /// which no other profile may ask for.
    Admin,
    /// The operator's account client (`client create --account`, `domain::consents`): as
    /// [`Profile::Operator`], but with user-facing grants only (`authorization_code`,
    /// `refresh_token`) and the consent API's scope, which no other profile may ask for.
    Account,
}

impl Profile {
    /// The profile a reserved scope belongs to (`None`: not reserved).
    pub fn reserving(scope: &str) -> Option<Profile> {
        if super::admin::is_admin_scope(scope) {
            Some(Profile::Admin)
        } else if super::consents::is_consents_scope(scope) {
            Some(Profile::Account)
        } else {
            None
        }
    }

    /// Who may hold a scope this profile reserves, in words for an error message.
    pub fn holders(self) -> &'static str {
        match self {
            Profile::Admin => "admin clients (`autional client create --admin`)",
            Profile::Account => "account clients (`autional client create --account`)",
            Profile::Operator | Profile::Registrant => "any client",
        }
    }
}

/// What may be asked for: the profile, and the configuration it reads (`registration.*` and
/// `scopes.custom`).
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    pub profile: Profile,
    /// The configured API scopes (known, besides the OpenID ones).
    pub custom_scopes: &'a [String],
    /// Only for [`Profile::Registrant`].
    pub allowed_grant_types: &'a [String],
    /// Only for [`Profile::Registrant`].
    pub allowed_scopes: &'a [String],
    /// Whether a receiver URL (`backchannel_logout_uri`) may be http on a loopback host
    /// (`events.allow_http_loopback`; see `domain::events::check_receiver_uri`).
    pub allow_http_loopback: bool,
}

impl Policy<'_> {
    fn grant_allowed(&self, g: &str) -> bool {
        match self.profile {
            Profile::Operator => true,
            Profile::Admin => g == "client_credentials",
            Profile::Account => g == "authorization_code" || g == "refresh_token",
            Profile::Registrant => self.allowed_grant_types.iter().any(|a| a == g),
        }
    }
    fn scope_allowed(&self, s: &str) -> bool {
        match self.profile {
            Profile::Operator => Profile::reserving(s).is_none(),
            Profile::Admin => super::admin::is_admin_scope(s),
            Profile::Account => !super::admin::is_admin_scope(s),
            Profile::Registrant => Profile::reserving(s).is_none() && self.allowed_scopes.iter().any(|a| a == s),
        }
    }
    /// The schemes a `jwks_uri` may use.
    fn jwks_uri_schemes(&self) -> &'static [&'static str] {
        match self.profile {
            Profile::Operator | Profile::Admin | Profile::Account => &["https", "http"],
            Profile::Registrant => &["https"],
        }
    }
}

fn uri_ok(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|p| p.fragment().is_none() && (!p.cannot_be_a_base() || p.scheme().contains('.')))
}

/// Checks `m` against `policy` and applies it to `client` (a new one, or the one being updated).
pub fn apply(m: &Metadata, client: &mut Client, policy: &Policy<'_>) -> Result<(), Invalid> {
    let invalid = |code: ErrorCode, field: Field, d: String| Invalid {
        code,
        field,
        description: d,
    };
    let meta = |field: Field, d: &str| invalid(ErrorCode::InvalidClientMetadata, field, d.to_string());
    // The grace rule protects the grant against a stolen refresh token: it is the operator's
    // to loosen (`grants::clients::OperatorRequest`), never the client's own metadata.
    for (given, field) in [
        (&m.reuse_grace_seconds, Field::ReuseGraceSeconds),
        (&m.reuse_grace_count, Field::ReuseGraceCount),
    ] {
        if given.is_some() {
            return Err(invalid(
                ErrorCode::InvalidClientMetadata,
                field,
                format!(
                    "{} is set by the operator only, not by client registration",
                    field.name()
                ),
            ));
        }
    }
    let method = match m.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(s) => AuthMethod::parse(s).ok_or_else(|| {
            meta(
                Field::TokenEndpointAuthMethod,
                "token_endpoint_auth_method is not supported",
            )
        })?,
    };
    // Without grant_types: the RFC 7591 default, less what the policy does not open.
    let grants: Vec<String> = match &m.grant_types {
        Some(g) => g.clone(),
        None if policy.profile == Profile::Admin => vec!["client_credentials".to_string()],
        None => ["authorization_code", "refresh_token"]
            .into_iter()
            .filter(|g| policy.grant_allowed(g))
            .map(str::to_owned)
            .collect(),
    };
    if grants.is_empty() {
        return Err(meta(Field::GrantTypes, "grant_types must name at least one grant type"));
    }
    if let Some(g) = grants.iter().find(|g| !GRANT_TYPES.contains(&g.as_str())) {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            Field::GrantTypes,
            format!(
                "grant_types has an unsupported value `{g}` (supported: {})",
                GRANT_TYPES.join(" ")
            ),
        ));
    }
    if let Some(g) = grants.iter().find(|g| !policy.grant_allowed(g)) {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            Field::GrantTypes,
            match policy.profile {
                Profile::Account => {
                    format!("grant type `{g}`: an account client has authorization_code and refresh_token only")
                }
                _ => format!(
                    "grant type `{g}` is not open to dynamic registration (allowed: {})",
                    policy.allowed_grant_types.join(" ")
                ),
            },
        ));
    }
    if let Some(rt) = &m.response_types {
        let wants_code = grants.iter().any(|g| g == "authorization_code");
        if rt.iter().any(|r| r != "code") || (wants_code && rt.is_empty()) {
            return Err(meta(Field::ResponseTypes, "response_types may only contain code"));
        }
    }
    if grants.iter().any(|g| g == "authorization_code") && m.redirect_uris.is_empty() {
        return Err(invalid(
            ErrorCode::InvalidRedirectUri,
            Field::RedirectUris,
            "redirect_uris is required for authorization_code".into(),
        ));
    }
    for u in &m.redirect_uris {
        redirect_uri::check(u).map_err(|e| {
            invalid(
                ErrorCode::InvalidRedirectUri,
                Field::RedirectUris,
                format!("redirect_uris: {e}"),
            )
        })?;
    }
    for u in &m.post_logout_redirect_uris {
        redirect_uri::check(u).map_err(|e| {
            invalid(
                ErrorCode::InvalidClientMetadata,
                Field::PostLogoutRedirectUris,
                format!("post_logout_redirect_uris: {e}"),
            )
        })?;
    }
    if method == AuthMethod::None && grants.iter().any(|g| g == "client_credentials") {
        return Err(meta(Field::GrantTypes, "a public client cannot use client_credentials"));
    }
    let jwks = match &m.jwks {
        Some(v) if v.get("keys").is_some_and(|k| k.is_array()) => Some(v.to_string()),
        Some(_) => return Err(meta(Field::Jwks, "jwks must be a JWK Set {\"keys\": [...]}")),
        None => None,
    };
    if jwks.is_some() && m.jwks_uri.is_some() {
        return Err(meta(Field::JwksUri, "use jwks or jwks_uri, not both"));
    }
    if let Some(u) = &m.jwks_uri {
        // The server fetches it (see the module documentation for who may use http).
        let schemes = policy.jwks_uri_schemes();
        let scheme_ok = url::Url::parse(u).is_ok_and(|p| schemes.contains(&p.scheme()));
        if !uri_ok(u) || !scheme_ok {
            return Err(meta(
                Field::JwksUri,
                match policy.profile {
                    Profile::Registrant => "jwks_uri must be an absolute https URI",
                    _ => "jwks_uri must be an absolute https (or http) URI",
                },
            ));
        }
    }
    if method == AuthMethod::PrivateKeyJwt && jwks.is_none() && m.jwks_uri.is_none() {
        return Err(meta(Field::Jwks, "private_key_jwt needs jwks or jwks_uri"));
    }
    let scope = match m.scope.as_deref() {
        Some(s) => Scope::parse(s).map_err(|e| meta(Field::Scope, e))?,
        None if policy.profile == Profile::Admin => {
            Scope::parse(&super::admin::SCOPES.join(" ")).map_err(|e| meta(Field::Scope, e))?
        }
        // Without scope: the OpenID user scopes the policy opens (and an account client's own).
        None => Scope::parse(
            &super::scope::SUPPORTED
                .iter()
                .chain((policy.profile == Profile::Account).then_some(&super::consents::SCOPE))
                .filter(|s| policy.scope_allowed(s))
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        )
        .map_err(|e| meta(Field::Scope, e))?,
    };
    // Reserved scopes: only their own profile may ask for them, whatever else is open.
    if let Some((s, owner)) = scope
        .iter()
        .find_map(|s| Profile::reserving(s).filter(|p| *p != policy.profile).map(|p| (s, p)))
    {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            Field::Scope,
            format!("scope `{s}` is reserved for {}", owner.holders()),
        ));
    }
    let unknown: Vec<&str> = scope
        .unknown(policy.custom_scopes)
        .into_iter()
        .filter(|s| !(policy.profile == Profile::Admin && super::admin::is_admin_scope(s)))
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            Field::Scope,
            format!("scope has unknown values: {}", unknown.join(" ")),
        ));
    }
    let refused: Vec<&str> = scope.iter().filter(|s| !policy.scope_allowed(s)).collect();
    if policy.profile == Profile::Admin && (!refused.is_empty() || scope.is_empty()) {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            Field::Scope,
            format!(
                "an admin client's scope is one or both of {}",
                super::admin::SCOPES.join(" ")
            ),
        ));
    }
    if !refused.is_empty() {
        return Err(invalid(
            ErrorCode::InvalidClientMetadata,
            Field::Scope,
            format!(
                "scope `{}` is not open to dynamic registration (allowed: {})",
                refused.join(" "),
                policy.allowed_scopes.join(" ")
            ),
        ));
    }
    let display = super::display::check(m)?;
    if let Some(u) = &m.backchannel_logout_uri {
        super::events::check_receiver_uri(u, policy.allow_http_loopback)
            .map_err(|e| meta(Field::BackchannelLogoutUri, &format!("backchannel_logout_uri {e}")))?;
    }
    client.name = m
        .client_name
        .clone()
        .unwrap_or_else(|| client.id.clone())
        .chars()
        .take(200)
        .collect();
    client.auth_method = method;
    client.redirect_uris = m.redirect_uris.clone();
    client.grant_types = grants;
    client.scope = scope.to_string();
    client.jwks = jwks;
    client.jwks_uri = m.jwks_uri.clone();
    client.post_logout_redirect_uris = m.post_logout_redirect_uris.clone();
    client.dpop_bound = m.dpop_bound_access_tokens;
    client.require_par = m.require_pushed_authorization_requests;
    client.display = display;
    client.backchannel_logout_uri = m.backchannel_logout_uri.clone();
    client.backchannel_logout_session_required = m.backchannel_logout_session_required;
    Ok(())
}

/// The metadata of a registered client, as RFC 7591 §3.2.1 and RFC 7592 §3 return it.
pub fn describe(c: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": c.id,
        "client_name": c.name,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "grant_types": c.grant_types,
        "response_types": if c.allows_grant(GrantType::AuthorizationCode) { vec!["code"] } else { vec![] },
        "scope": c.scope,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "dpop_bound_access_tokens": c.dpop_bound,
        "require_pushed_authorization_requests": c.require_par,
        "jwks_uri": c.jwks_uri,
        "jwks": c.jwks.as_deref().and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()),
        "client_id_issued_at": c.created_at_ms / 1000,
        "client_uri": c.display.client_uri,
        "logo_uri": c.display.logo_uri,
        "policy_uri": c.display.policy_uri,
        "tos_uri": c.display.tos_uri,
        "contacts": c.display.contacts,
        "software_id": c.display.software_id,
        "software_version": c.display.software_version,
        "application_type": c.display.application_type.as_str(),
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "backchannel_logout_session_required": c.backchannel_logout_session_required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::blank("c1".into(), 0)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn run(meta: serde_json::Value, grants: &[&str], scopes: &[&str]) -> Result<Client, Invalid> {
        run_as(Profile::Registrant, meta, grants, scopes)
    }

    fn run_as(profile: Profile, meta: serde_json::Value, grants: &[&str], scopes: &[&str]) -> Result<Client, Invalid> {
        let custom = strings(&["api.read", "api.admin"]);
        let (grants, scopes) = (strings(grants), strings(scopes));
        let policy = Policy {
            profile,
            custom_scopes: &custom,
            allowed_grant_types: &grants,
            allowed_scopes: &scopes,
            allow_http_loopback: false,
        };
        let mut c = client();
        apply(&serde_json::from_value(meta).unwrap(), &mut c, &policy).map(|_| c)
    }

    const USER_GRANTS: &[&str] = &["authorization_code", "refresh_token"];
    const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];

    #[test]
    fn the_grace_rule_is_never_metadata() {
        for (name, field) in [
            ("reuse_grace_seconds", Field::ReuseGraceSeconds),
            ("reuse_grace_count", Field::ReuseGraceCount),
        ] {
            let ask = serde_json::json!({"redirect_uris": ["https://rp.example/cb"], name: 0});
            for profile in [Profile::Registrant, Profile::Operator] {
                let e = run_as(profile, ask.clone(), USER_GRANTS, OIDC).unwrap_err();
                assert_eq!((e.code, e.field), (ErrorCode::InvalidClientMetadata, field));
                assert!(e.description.starts_with(name), "{}", e.description);
            }
        }
    }

    #[test]
    fn admin_scopes_only_for_the_admin_profile_and_only_them_there() {
        // Nobody else can ask for them, even where every scope is open.
        let ask = serde_json::json!({"grant_types": ["client_credentials"], "scope": "api.read admin:write"});
        let open = &["api.read", "admin:write", "admin:read"];
        for profile in [Profile::Registrant, Profile::Operator] {
            let e = run_as(profile, ask.clone(), &["client_credentials"], open).unwrap_err();
            assert_eq!(e.field, Field::Scope, "{profile:?}");
            assert!(
                e.description.contains("reserved for admin clients"),
                "{}",
                e.description
            );
        }
        // The admin profile: both by default, client_credentials only, confidential, admin only.
        let c = run_as(Profile::Admin, serde_json::json!({}), &[], &[]).unwrap();
        assert_eq!(c.grant_types, ["client_credentials"]);
        assert_eq!(c.scope, "admin:read admin:write");
        let narrow = serde_json::json!({"grant_types": ["client_credentials"], "scope": "admin:read"});
        assert_eq!(run_as(Profile::Admin, narrow, &[], &[]).unwrap().scope, "admin:read");
        let e = run_as(Profile::Admin, ask, &[], &[]).unwrap_err();
        assert!(
            e.description.contains("one or both of admin:read admin:write"),
            "{}",
            e.description
        );
        let code =
            serde_json::json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://a.example/cb"]});
        let e = run_as(Profile::Admin, code, &[], &[]).unwrap_err();
        assert_eq!(e.field, Field::GrantTypes);
        // Confidential: a public client cannot use client_credentials, an admin's only grant.
        let public = serde_json::json!({"token_endpoint_auth_method": "none"});
        assert_eq!(
            run_as(Profile::Admin, public, &[], &[]).unwrap_err().field,
            Field::GrantTypes
        );
    }

    #[test]
    fn the_consents_scope_only_for_the_account_profile() {
        let ask = serde_json::json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid consents"});
        let open = &["openid", "consents"];
        for profile in [Profile::Registrant, Profile::Operator] {
            let e = run_as(profile, ask.clone(), USER_GRANTS, open).unwrap_err();
            assert_eq!(e.field, Field::Scope, "{profile:?}");
            assert!(
                e.description.contains("reserved for account clients"),
                "{}",
                e.description
            );
        }
        let c = run_as(Profile::Account, ask, &[], &[]).unwrap();
        assert_eq!(c.scope, "consents openid");
        let c = run_as(
            Profile::Account,
            serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(c.scope, "consents email offline_access openid profile");
        // User-facing grants only, and never the admin scopes.
        let cc = serde_json::json!({"grant_types": ["client_credentials"], "scope": "consents"});
        assert_eq!(
            run_as(Profile::Account, cc, &[], &[]).unwrap_err().field,
            Field::GrantTypes
        );
        let admin = serde_json::json!({"redirect_uris": ["https://a.example/cb"], "scope": "consents admin:read"});
        let e = run_as(Profile::Account, admin, &[], &[]).unwrap_err();
        assert!(
            e.description.contains("reserved for admin clients"),
            "{}",
            e.description
        );
    }

    #[test]
    fn the_default_policy_refuses_client_credentials_and_api_scopes() {
        let e = run(
            serde_json::json!({"grant_types": ["client_credentials"], "scope": "api.admin"}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
        assert!(
            e.description.contains("`client_credentials` is not open"),
            "{}",
            e.description
        );
        let e = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid api.admin"}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
        assert!(
            e.description.contains("scope `api.admin` is not open"),
            "{}",
            e.description
        );
        let e = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid nope"}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert!(e.description.contains("unknown values: nope"), "{}", e.description);
    }

    #[test]
    fn defaults_are_cut_to_the_policy_and_an_opened_policy_allows_more() {
        let c = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
            USER_GRANTS,
            &["openid"],
        )
        .unwrap();
        assert_eq!(c.scope, "openid");
        assert_eq!(c.grant_types, USER_GRANTS);
        let c = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
            &["authorization_code"],
            OIDC,
        )
        .unwrap();
        assert_eq!(c.grant_types, ["authorization_code"]);
        let c = run(
            serde_json::json!({"grant_types": ["client_credentials"], "scope": "api.read"}),
            &["client_credentials"],
            &["api.read"],
        )
        .unwrap();
        assert_eq!(
            (c.grant_types.as_slice(), c.scope.as_str()),
            (&["client_credentials".to_string()][..], "api.read")
        );
    }

    #[test]
    fn redirect_uris_follow_the_redirect_rules() {
        for (uri, error) in [
            ("http://evil.example/cb", "invalid_redirect_uri"),
            ("javascript://x/%0aalert(1)", "invalid_redirect_uri"),
        ] {
            let e = run(serde_json::json!({"redirect_uris": [uri]}), USER_GRANTS, OIDC).unwrap_err();
            assert_eq!(e.code.as_str(), error, "{uri}");
            assert!(e.description.starts_with("redirect_uris: "), "{}", e.description);
        }
        let e = run(
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["data:text/html,x"]}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
        assert!(
            e.description.starts_with("post_logout_redirect_uris: "),
            "{}",
            e.description
        );
        run(
            serde_json::json!({"redirect_uris": ["http://127.0.0.1:9/cb", "com.example.app:/cb"]}),
            USER_GRANTS,
            OIDC,
        )
        .unwrap();
    }

    /// What the operator may do that an anonymous registrant may not: grant types and scopes
    /// outside `registration.allowed_*`, an http `jwks_uri`. Nothing else.
    #[test]
    fn the_operator_is_not_bound_by_the_registration_policy() {
        let cc = serde_json::json!({"grant_types": ["client_credentials"], "scope": "api.admin"});
        let c = run_as(Profile::Operator, cc.clone(), USER_GRANTS, OIDC).unwrap();
        assert_eq!(
            (c.grant_types[0].as_str(), c.scope.as_str()),
            ("client_credentials", "api.admin")
        );
        assert_eq!(run(cc, USER_GRANTS, OIDC).unwrap_err().field, Field::GrantTypes);
        let defaults = serde_json::json!({"redirect_uris": ["https://a.example/cb"]});
        let c = run_as(Profile::Operator, defaults, &[], &[]).unwrap();
        assert_eq!(c.grant_types, USER_GRANTS);
        assert_eq!(c.scope, "email offline_access openid profile");
        let http = serde_json::json!({
            "grant_types": ["client_credentials"], "scope": "api.read",
            "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://keys.internal/jwks"
        });
        let open = (&["client_credentials"][..], &["api.read"][..]);
        let c = run_as(Profile::Operator, http.clone(), open.0, open.1).unwrap();
        assert_eq!(c.jwks_uri.as_deref(), Some("http://keys.internal/jwks"));
        let e = run(http, open.0, open.1).unwrap_err();
        assert_eq!((e.code, e.field), (ErrorCode::InvalidClientMetadata, Field::JwksUri));
        // Unknown scopes and unsupported grant types stay unknown for the operator.
        let e = run_as(
            Profile::Operator,
            serde_json::json!({"grant_types": ["password"]}),
            &[],
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, Field::GrantTypes);
        let e = run_as(
            Profile::Operator,
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "scope": "openid nope"}),
            &[],
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, Field::Scope);
    }

    /// Back-Channel Logout receivers: https for everybody; http only on loopback when allowed.
    #[test]
    fn backchannel_logout_uri_is_checked_for_every_profile() {
        let meta = |u: &str| {
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "backchannel_logout_uri": u,
                "backchannel_logout_session_required": true})
        };
        for profile in [Profile::Operator, Profile::Registrant] {
            let c = run_as(profile, meta("https://rp.example/bcl"), USER_GRANTS, OIDC).unwrap();
            assert_eq!(c.backchannel_logout_uri.as_deref(), Some("https://rp.example/bcl"));
            assert!(c.backchannel_logout_session_required);
            let e = run_as(profile, meta("http://rp.example/bcl"), USER_GRANTS, OIDC).unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::InvalidClientMetadata, Field::BackchannelLogoutUri)
            );
            assert_eq!(
                e.description,
                "backchannel_logout_uri must use https (http only on a loopback host, in development)"
            );
            let e = run_as(profile, meta("http://127.0.0.1:9/bcl"), USER_GRANTS, OIDC).unwrap_err();
            assert!(
                e.description.contains("events.allow_http_loopback"),
                "{}",
                e.description
            );
        }
    }

    /// RFC 7591 §2 and RFC 6749 §4.4 hold for everybody.
    #[test]
    fn what_rfc_7591_forbids_is_refused_for_both_profiles() {
        let all = &["authorization_code", "refresh_token", "client_credentials"][..];
        let scopes = &["openid", "api.read"][..];
        for profile in [Profile::Operator, Profile::Registrant] {
            let e = run_as(
                profile,
                serde_json::json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none", "scope": "api.read"}),
                all,
                scopes,
            )
            .unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::InvalidClientMetadata, Field::GrantTypes),
                "{profile:?}"
            );
            let e = run_as(
                profile,
                serde_json::json!({
                    "grant_types": ["client_credentials"], "scope": "api.read",
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": []}, "jwks_uri": "https://keys.example/jwks"
                }),
                all,
                scopes,
            )
            .unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::InvalidClientMetadata, Field::JwksUri),
                "{profile:?}"
            );
            assert!(e.description.contains("not both"), "{}", e.description);
        }
    }
}
