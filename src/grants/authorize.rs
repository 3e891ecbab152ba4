//! The authorization endpoint's request (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2):
//! validation in the order RFC 6749 §4.1.2.1 needs (errors about the client or the redirect URI
//! are shown to the user, never redirected), and the issuing of codes.

use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::{AuthCode, Client, GrantType, Session};
use crate::domain::pkce;
use crate::domain::rar::{self, Detail};
use crate::domain::scope::Scope;
use crate::params::Params;
use crate::util::{now_ms, random_token, sha256};

/// A request that passed every check.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub redirect_uri_sent: bool,
    pub scope: Scope,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    /// RAR details asked for (validated against the configured types).
    pub details: Option<Vec<Detail>>,
    /// RFC 9449 §10: the code will be bound to this key thumbprint.
    pub dpop_jkt: Option<String>,
}

impl AuthorizeRequest {
    pub fn prompt(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

#[derive(Clone, Debug)]
pub enum AuthorizeError {
    /// Shown on a page: the redirect URI cannot be trusted (or is unknown).
    Page(OAuthError),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        error: OAuthError,
        state: Option<String>,
    },
}

/// The redirect URI with `params` appended to its query.
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

impl AuthorizeError {
    /// The Location for a redirect error (RFC 6749 §4.1.2.1 with RFC 9207 `iss`).
    pub fn location(redirect_uri: &str, error: &OAuthError, state: Option<&str>, issuer: &str) -> String {
        let mut p = vec![("error", error.code.as_str())];
        if let Some(d) = &error.description {
            p.push(("error_description", d));
        }
        if let Some(s) = state {
            p.push(("state", s));
        }
        p.push(("iss", issuer));
        redirect_with(redirect_uri, &p)
    }
}

const MAX_LEN: usize = 2048;

/// Validates an authorization request. `via_par` says the parameters came from a pushed
/// request (then `request_uri` was already resolved by the caller).
pub async fn validate(app: &App, p: &Params, via_par: bool) -> Result<AuthorizeRequest, AuthorizeError> {
    let page = AuthorizeError::Page;
    let client_id = p
        .get("client_id")
        .map_err(page)?
        .ok_or_else(|| AuthorizeError::Page(OAuthError::invalid_request("missing required parameter `client_id`")))?;
    let client = app
        .store
        .get_client(client_id)
        .await
        .map_err(|e| AuthorizeError::Page(OAuthError::from(e)))?
        .ok_or_else(|| {
            AuthorizeError::Page(OAuthError::new(
                400,
                crate::domain::error::ErrorCode::InvalidClient,
                "unknown client",
            ))
        })?;
    check(
        client,
        p,
        via_par,
        &app.cfg.scopes.custom,
        &app.cfg.authorization_details.types,
    )
}

/// Every check of an authorization request once its client is known (no I/O): `custom_scopes`
/// are the configured API scopes, `detail_types` the configured `authorization_details` types.
#[allow(clippy::result_large_err)] // the error type `validate` already returns
pub fn check(
    client: Client,
    p: &Params,
    via_par: bool,
    custom_scopes: &[String],
    detail_types: &[String],
) -> Result<AuthorizeRequest, AuthorizeError> {
    let page = AuthorizeError::Page;
    let sent = p.get("redirect_uri").map_err(page)?;
    let redirect_uri = match sent {
        Some(u) => {
            if !client.redirect_uris.iter().any(|r| r == u) {
                return Err(AuthorizeError::Page(OAuthError::invalid_request(
                    "redirect_uri is not registered for this client",
                )));
            }
            u.to_string()
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(AuthorizeError::Page(OAuthError::invalid_request(
                "missing required parameter `redirect_uri`",
            )))
        }
    };
    // A URI registered before the redirect rules existed may use a scheme a browser would run
    // (`javascript:`, `data:`…): never sent there, not even with an error.
    if crate::domain::redirect_uri::never_redirected(&redirect_uri) {
        return Err(AuthorizeError::Page(OAuthError::invalid_request(
            "the client's redirect URI uses a scheme this server never redirects to",
        )));
    }
    // The client and the exact redirect URI are established: from here on errors go back to
    // the client (RFC 6749 §4.1.2.1).
    let state = p.get("state").ok().flatten().map(str::to_owned);
    let redirect = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        state: state.clone(),
    };
    if state.as_ref().is_some_and(|s| s.len() > MAX_LEN) {
        return Err(redirect(OAuthError::invalid_request("state is too long")));
    }
    if p.contains("request") {
        return Err(redirect(OAuthError::new(
            400,
            crate::domain::error::ErrorCode::RequestNotSupported,
            "request objects are not supported",
        )));
    }
    if p.contains("request_uri") {
        return Err(redirect(OAuthError::new(
            400,
            crate::domain::error::ErrorCode::InvalidRequestUri,
            "request_uri is only accepted from PAR",
        )));
    }
    if client.require_par && !via_par {
        return Err(redirect(OAuthError::invalid_request(
            "this client must push its authorization requests (PAR) and send request_uri",
        )));
    }
    match p.get("response_type").map_err(&redirect)? {
        None => {
            return Err(redirect(OAuthError::invalid_request(
                "missing required parameter `response_type`",
            )))
        }
        Some("code") => {}
        Some(_) => {
            return Err(redirect(OAuthError::new(
                400,
                crate::domain::error::ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            )))
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(redirect(OAuthError::unauthorized_client(
            "client may not use the authorization code flow",
        )));
    }
    if let Some(m) = p.get("response_mode").map_err(&redirect)? {
        if m != "query" {
            return Err(redirect(OAuthError::invalid_request(
                "only response_mode=query is supported",
            )));
        }
    }
    let scope_str = p
        .get("scope")
        .map_err(&redirect)?
        .ok_or_else(|| redirect(OAuthError::invalid_scope("missing required parameter `scope`")))?;
    let scope = Scope::parse(scope_str).map_err(|e| redirect(OAuthError::invalid_scope(e)))?;
    if scope.is_empty() {
        return Err(redirect(OAuthError::invalid_scope("scope is empty")));
    }
    let unknown = scope.unknown(custom_scopes);
    if !unknown.is_empty() {
        return Err(redirect(OAuthError::invalid_scope(format!(
            "unknown scope: {}",
            unknown.join(" ")
        ))));
    }
    let allowed = Scope::parse(&client.scope).unwrap_or_default();
    if !scope.is_subset_of(&allowed) {
        return Err(redirect(OAuthError::invalid_scope(
            "scope exceeds what the client may request",
        )));
    }
    let challenge = p.get("code_challenge").map_err(&redirect)?;
    let method = p.get("code_challenge_method").map_err(&redirect)?;
    match (challenge, method) {
        (None, Some(_)) => {
            return Err(redirect(OAuthError::invalid_request(
                "code_challenge_method without code_challenge",
            )))
        }
        (Some(_), None) | (Some(_), Some("plain")) => {
            return Err(redirect(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            )))
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(redirect(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            )))
        }
        (Some(c), Some(_)) if !pkce::valid_syntax(c) => {
            return Err(redirect(OAuthError::invalid_request(
                "code_challenge must be 43-128 unreserved characters",
            )))
        }
        (None, None) if client.is_public() => {
            return Err(redirect(OAuthError::invalid_request(
                "PKCE is required: send code_challenge with S256",
            )))
        }
        _ => {}
    }
    let details = match p.json("authorization_details").map_err(&redirect)? {
        Some(v) => {
            Some(rar::parse(&v, detail_types).map_err(|e| redirect(OAuthError::invalid_authorization_details(e)))?)
        }
        None => None,
    };
    let dpop_jkt = p.get("dpop_jkt").map_err(&redirect)?;
    if dpop_jkt.is_some_and(|j| j.len() != 43 || crate::util::b64url_decode(j).is_none()) {
        return Err(redirect(OAuthError::invalid_request(
            "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
        )));
    }
    let nonce = p.get("nonce").map_err(&redirect)?;
    if nonce.is_some_and(|n| n.len() > MAX_LEN) {
        return Err(redirect(OAuthError::invalid_request("nonce is too long")));
    }
    let prompt: Vec<String> = p
        .get("prompt")
        .map_err(&redirect)?
        .map(|s| s.split(' ').filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    for v in &prompt {
        if !matches!(v.as_str(), "none" | "login" | "consent" | "select_account") {
            return Err(redirect(OAuthError::invalid_request(format!(
                "unsupported prompt value `{v}`"
            ))));
        }
    }
    if prompt.len() > 1 && prompt.iter().any(|v| v == "none") {
        return Err(redirect(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        )));
    }
    Ok(AuthorizeRequest {
        client,
        redirect_uri,
        redirect_uri_sent: sent.is_some(),
        scope,
        state,
        nonce: nonce.map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
        prompt,
        details,
        dpop_jkt: dpop_jkt.map(str::to_owned),
    })
}

/// Stores a fresh code for `req` and `session`; returns the redirect Location.
pub async fn issue_code(app: &App, req: &AuthorizeRequest, session: &Session) -> Result<String, OAuthError> {
    let code = random_token();
    app.store
        .insert_code(AuthCode {
            hash: sha256(code.as_bytes()).to_vec(),
            client_id: req.client.id.clone(),
            user_id: session.user_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            redirect_uri_sent: req.redirect_uri_sent,
            scope: req.scope.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            dpop_jkt: req.dpop_jkt.clone(),
            authorization_details: req.details.as_ref().and_then(|d| serde_json::to_string(d).ok()),
            session_id: session.id.clone(),
            auth_time: session.auth_time,
            expires_at_ms: now_ms() + app.cfg.code.ttl.as_ms(),
            consumed_at_ms: None,
            family_id: None,
        })
        .await
        .map_err(OAuthError::from)?;
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        p.push(("state", s));
    }
    p.push(("iss", &app.cfg.issuer));
    Ok(redirect_with(&req.redirect_uri, &p))
}
