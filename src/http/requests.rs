//! The request bodies of the OAuth endpoints, as OpenAPI schemas (`http::openapi`). The
//! handlers read parameters by name (`params::Params`, RFC 6749 §3.2 forms, or JSON objects
//! where the reference service sends them); these types name the same parameters, with the
//! same required ones, so that the document tells a caller (and a fuzzer) what is read.

#![allow(dead_code)] // Read only by the schema derive: the handlers read `Params`.

use utoipa::ToSchema;

/// The grant types of the token endpoint.
#[derive(ToSchema)]
pub enum GrantTypeName {
    #[schema(rename = "authorization_code")]
    AuthorizationCode,
    #[schema(rename = "refresh_token")]
    RefreshToken,
    #[schema(rename = "client_credentials")]
    ClientCredentials,
    #[schema(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
}

/// What kind of token is sent (RFC 7009 §2.1, RFC 7662 §2.1): a hint only.
#[derive(ToSchema)]
pub enum TokenTypeHint {
    #[schema(rename = "access_token")]
    AccessToken,
    #[schema(rename = "refresh_token")]
    RefreshToken,
}

/// `POST /oauth/token` (RFC 6749 §4.1.3, §4.4.2, §6; RFC 8628 §3.4), a form.
#[derive(ToSchema)]
#[schema(example = json!({"grant_type": "client_credentials", "scope": "profile"}))]
pub struct TokenRequest {
    grant_type: GrantTypeName,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    device_code: Option<String>,
    /// Space-separated; on refresh, a subset of the grant's.
    scope: Option<String>,
    /// RAR (RFC 9396): a JSON array of `AuthorizationDetailDTO`, as a string.
    authorization_details: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// `POST /oauth/refresh` (SPEC §4): a JSON object or a form.
#[derive(ToSchema)]
#[schema(example = json!({"refresh_token": "rt_8xLOxBtZp8", "client_id": "s6BhdRkqt3"}))]
pub struct RefreshRequest {
    refresh_token: String,
    /// Required unless the client authenticates with the Authorization header.
    client_id: Option<String>,
    /// `refresh_token` or absent.
    grant_type: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    /// A JSON array of `AuthorizationDetailDTO`, as a string (narrowing, SPEC §4 rule 7).
    authorization_details: Option<String>,
}

/// `POST /oauth/pushed-authorization` (RFC 9126 §2.1): the authorization request's
/// parameters, a form or a JSON object, with client authentication.
#[derive(ToSchema)]
#[schema(example = json!({"response_type": "code", "redirect_uri": "https://rp.example/cb", "scope": "openid", "state": "af0ifjsldkj", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}))]
pub struct PushedAuthorizationRequest {
    /// `code`.
    response_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    redirect_uri: String,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    /// `S256`.
    code_challenge_method: String,
    /// A JSON array of `AuthorizationDetailDTO`, as a string.
    authorization_details: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    /// The DPoP key's thumbprint the code is bound to (RFC 9449 §10).
    dpop_jkt: Option<String>,
}

/// `POST /oauth/device/authorize` (RFC 8628 §3.1): a form or a JSON object.
#[derive(ToSchema)]
#[schema(example = json!({"scope": "openid"}))]
pub struct DeviceAuthorizationRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

/// `POST /oauth/introspect` (RFC 7662 §2.1): a form, with client authentication.
#[derive(ToSchema)]
#[schema(example = json!({"token": "mF_9.B5f-4.1JqM", "token_type_hint": "access_token"}))]
pub struct IntrospectionRequest {
    token: String,
    token_type_hint: Option<TokenTypeHint>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// `POST /oauth/revoke` (RFC 7009 §2.1): a form or a JSON object, with client authentication
/// (a public client names itself with `client_id`).
#[derive(ToSchema)]
#[schema(example = json!({"token": "45ghiukldjahdnhzdauz", "token_type_hint": "refresh_token"}))]
pub struct RevocationRequest {
    token: String,
    token_type_hint: Option<TokenTypeHint>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}
