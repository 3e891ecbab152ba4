//! Client authentication at the token-ish endpoints (RFC 6749 §2.3, RFC 7523 §2.2):
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt`, and `none` for public
//! clients. A client must use the method it is registered with, and only one method per
//! request. Secrets are random (≥ 256 bits), stored as SHA-256 and compared in constant time.
//! Assertions are checked in two steps: first everything that needs no key (algorithm,
//! `iss` = `sub` = client, `aud`, `exp`, `nbf`, lifetime, `jti`), so a malformed or foreign
//! assertion never makes the server fetch anything; then the signature with the client's keys
//! (inline, or from its `jwks_uri` through `App::client_jwks`: cached by URL, refetched on an
//! unknown `kid`). Each `jti` is accepted once (shared through the database). A key URL that
//! cannot be used answers `invalid_client`; a transient failure (network, or every outbound
//! slot busy) answers 503 `temporarily_unavailable` with `Retry-After`.

use crate::app::App;
use crate::domain::error::OAuthError;
use crate::domain::model::{AuthMethod, Client};
use crate::util::{ct_eq, now_ms, sha256};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, DecodingKey, Header, Validation};
use serde::Deserialize;
use std::sync::Arc;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest an assertion may live (`exp` − now).
const MAX_ASSERTION_LIFETIME_S: i64 = 300;

/// What the request carried; filled in by the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic`, already form-decoded (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
    /// The assertion's (not yet verified) `sub`: which client it claims to be.
    pub assertion_subject: Option<String>,
    /// The path of the endpoint the request was sent to: issuer + path is an accepted
    /// assertion `aud` (built only when an assertion is checked).
    pub path: &'static str,
}

impl ClientCredentials {
    /// The client the request names, however it names it.
    pub fn claimed_id(&self) -> Option<&str> {
        self.basic
            .as_ref()
            .map(|(id, _)| id.as_str())
            .or(self.client_id.as_deref())
            .or(self.assertion_subject.as_deref())
    }
}

fn secret_matches(client: &Client, secret: &str, now: i64) -> bool {
    let h = sha256(secret.as_bytes());
    let mut ok = false;
    for s in &client.secrets {
        // Inactive or expired secrets never authenticate.
        let live = crate::domain::secrets::is_live(s, now);
        // No early exit: every stored secret is compared.
        ok |= live & ct_eq(&s.hash, &h);
    }
    ok
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    jti: Option<String>,
    exp: i64,
}

/// The unverified `sub` of an assertion, to find the client (verified below).
pub fn assertion_subject(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let v: serde_json::Value = serde_json::from_slice(&crate::util::b64url_decode(payload)?).ok()?;
    v.get("sub")?.as_str().map(str::to_owned)
}

/// The client's JWK Set: inline, or fetched from `jwks_uri` (cached; `refresh` asks for a
/// newer one, e.g. for an unknown `kid`).
async fn client_keys(app: &App, client: &Client, refresh: bool) -> Result<Arc<JwkSet>, OAuthError> {
    if let Some(inline) = &client.jwks {
        return serde_json::from_str(inline)
            .map(Arc::new)
            .map_err(|_| OAuthError::invalid_client("the client's registered JWK Set is invalid"));
    }
    let uri = client
        .jwks_uri
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_client("the client has no keys registered"))?;
    app.client_jwks.get(uri, refresh).await.map_err(|f| {
        tracing::warn!(client = %client.id, error = %f.error, "cannot use the client's jwks_uri");
        if f.error.is_transient() {
            let mut e = OAuthError::new(
                503,
                crate::domain::error::ErrorCode::TemporarilyUnavailable,
                "the client's keys cannot be fetched right now, retry later",
            );
            e.retry_after = Some(f.retry_after_s);
            e
        } else {
            OAuthError::invalid_client("the client's jwks_uri could not be used")
        }
    })
}

/// Seconds of clock skew allowed on `exp` and `nbf`.
const LEEWAY_S: i64 = 5;

/// The `aud` values an assertion may carry: the issuer, the token endpoint, or the endpoint the
/// request was sent to.
fn accepted_audiences(app: &App, creds: &ClientCredentials) -> [String; 3] {
    let issuer = &app.cfg.issuer;
    [
        issuer.clone(),
        format!("{issuer}{}", crate::paths::TOKEN),
        format!("{issuer}{}", creds.path),
    ]
}

/// An assertion's header, if it is a JWT signed with an algorithm we accept.
pub fn assertion_header(assertion: &str) -> Result<Header, OAuthError> {
    let header = decode_header(assertion).map_err(|_| OAuthError::invalid_client("client_assertion is not a JWT"))?;
    if !matches!(
        header.alg,
        jsonwebtoken::Algorithm::RS256
            | jsonwebtoken::Algorithm::PS256
            | jsonwebtoken::Algorithm::ES256
            | jsonwebtoken::Algorithm::ES384
            | jsonwebtoken::Algorithm::EdDSA
    ) {
        return Err(OAuthError::invalid_client(
            "client_assertion must be signed with an asymmetric algorithm",
        ));
    }
    Ok(header)
}

/// The client's key an assertion names by `kid` (or the only key, when it names none).
pub fn assertion_key(set: &JwkSet, header: &Header) -> Option<Jwk> {
    match &header.kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// A verified assertion: its `jti` and `exp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: i64,
}

/// Every stateless check of an assertion with the client's key `jwk` (RFC 7523 §3): signature,
/// `aud` one of `audiences`, `iss` = `sub` = `client_id`, `exp` not past nor too far ahead,
/// `nbf`, a `jti`. The caller checks the `jti` for replay.
pub fn verify_assertion_with(
    assertion: &str,
    header: &Header,
    jwk: &Jwk,
    client_id: &str,
    audiences: &[String],
    now_s: i64,
) -> Result<VerifiedAssertion, OAuthError> {
    let fail = |m: &'static str| OAuthError::invalid_client(m);
    let key = DecodingKey::from_jwk(jwk).map_err(|_| fail("the client's key is unusable"))?;
    let mut v = Validation::new(header.alg);
    v.set_audience(audiences);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.validate_nbf = true;
    v.leeway = LEEWAY_S as u64;
    let claims = decode::<AssertionClaims>(assertion, &key, &v)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => fail("client_assertion is expired"),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                fail("client_assertion aud must be the issuer or the endpoint URL")
            }
            _ => fail("client_assertion is invalid"),
        })?
        .claims;
    if claims.iss != client_id || claims.sub != client_id {
        return Err(fail("client_assertion iss and sub must be the client_id"));
    }
    if claims.exp - now_s > MAX_ASSERTION_LIFETIME_S {
        return Err(fail("client_assertion lives too long (exp at most 5 minutes ahead)"));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| fail("client_assertion needs a jti"))?;
    Ok(VerifiedAssertion { jti, exp: claims.exp })
}

/// The checks that need no key, on the unverified header and claims: whatever fails here is
/// refused before any key is looked up or fetched. The signature check repeats the claim
/// checks on the verified claims.
fn precheck(
    assertion: &str,
    client: &Client,
    audiences: &[String],
    now_s: i64,
) -> Result<jsonwebtoken::Header, OAuthError> {
    let fail = |m: &'static str| OAuthError::invalid_client(m);
    let header = assertion_header(assertion)?;
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 || parts[2].is_empty() {
        return Err(fail("client_assertion is not a signed JWT"));
    }
    let claims: serde_json::Value = crate::util::b64url_decode(parts[1])
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| fail("client_assertion is not a JWT"))?;
    let str_claim = |k: &str| claims.get(k).and_then(serde_json::Value::as_str);
    if str_claim("iss") != Some(client.id.as_str()) || str_claim("sub") != Some(client.id.as_str()) {
        return Err(fail("client_assertion iss and sub must be the client_id"));
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => audiences.contains(a),
        Some(serde_json::Value::Array(v)) => v
            .iter()
            .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|x| x == a))),
        _ => false,
    };
    if !aud_ok {
        return Err(fail("client_assertion aud must be the issuer or the endpoint URL"));
    }
    let time = |k: &str| claims.get(k).and_then(serde_json::Value::as_f64).map(|t| t as i64);
    let exp = time("exp").ok_or_else(|| fail("client_assertion needs exp"))?;
    if exp + LEEWAY_S <= now_s {
        return Err(fail("client_assertion is expired"));
    }
    if exp - now_s > MAX_ASSERTION_LIFETIME_S {
        return Err(fail("client_assertion lives too long (exp at most 5 minutes ahead)"));
    }
    if claims.get("nbf").is_some_and(|v| !v.is_null()) {
        let nbf = time("nbf").ok_or_else(|| fail("client_assertion nbf must be a number"))?;
        if nbf > now_s + LEEWAY_S {
            return Err(fail("client_assertion is not valid yet (nbf)"));
        }
    }
    if !str_claim("jti").is_some_and(|j| !j.is_empty() && j.len() <= 256) {
        return Err(fail("client_assertion needs a jti"));
    }
    Ok(header)
}

async fn verify_assertion(
    app: &App,
    client: &Client,
    creds: &ClientCredentials,
    assertion: &str,
) -> Result<(), OAuthError> {
    let fail = |m: &'static str| OAuthError::invalid_client(m);
    let audiences = accepted_audiences(app, creds);
    let now = now_ms() / 1000;
    // Nothing is fetched for an assertion that fails the checks that need no key.
    let header = precheck(assertion, client, &audiences, now)?;
    let mut keys = client_keys(app, client, false).await?;
    let jwk = match assertion_key(&keys, &header) {
        Some(k) => k,
        None if client.jwks_uri.is_some() => {
            keys = client_keys(app, client, true).await?;
            assertion_key(&keys, &header).ok_or_else(|| fail("no key of the client matches the assertion's kid"))?
        }
        None => return Err(fail("no key of the client matches the assertion's kid")),
    };
    let VerifiedAssertion { jti, exp } = verify_assertion_with(assertion, &header, &jwk, &client.id, &audiences, now)?;
    let replay_key = sha256(format!("client_assertion:{}:{jti}", client.id).as_bytes());
    let fresh = app
        .store
        .use_dpop_jti(replay_key, (exp + 5) * 1000)
        .await
        .map_err(OAuthError::from)?;
    if !fresh {
        return Err(fail("client_assertion has been used before (jti replay)"));
    }
    Ok(())
}

pub async fn authenticate(app: &App, creds: &ClientCredentials) -> Result<Arc<Client>, OAuthError> {
    let basic = creds.basic.is_some();
    let fail = |msg: &'static str| {
        let e = OAuthError::invalid_client(msg);
        if basic {
            e.with_basic_challenge()
        } else {
            e
        }
    };
    let methods =
        usize::from(basic) + usize::from(creds.client_secret.is_some()) + usize::from(creds.client_assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method used",
        ));
    }
    if creds.client_assertion.is_some() && creds.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
        return Err(OAuthError::invalid_request(format!(
            "client_assertion_type must be {ASSERTION_TYPE}"
        )));
    }
    if let (Some((bid, _)), Some(fid)) = (&creds.basic, &creds.client_id) {
        if bid != fid {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
    }
    let Some(id) = creds.claimed_id() else {
        return Err(fail("client authentication is required"));
    };
    if let (Some(fid), Some(sub)) = (&creds.client_id, &creds.assertion_subject) {
        if fid != sub {
            return Err(OAuthError::invalid_client(
                "client_id does not match the client_assertion",
            ));
        }
    }
    let client = app
        .client_for_auth(id)
        .await
        .map_err(OAuthError::from)?
        .ok_or_else(|| fail("unknown client"))?;
    let used = match (&creds.basic, &creds.client_secret, &creds.client_assertion) {
        (Some(_), _, _) => AuthMethod::ClientSecretBasic,
        (None, Some(_), _) => AuthMethod::ClientSecretPost,
        (None, None, Some(_)) => AuthMethod::PrivateKeyJwt,
        (None, None, None) => AuthMethod::None,
    };
    if used != client.auth_method {
        return Err(fail(match client.auth_method {
            AuthMethod::None => "public client: send client_id only, without a secret",
            AuthMethod::ClientSecretBasic => "client must authenticate with client_secret_basic",
            AuthMethod::ClientSecretPost => "client must authenticate with client_secret_post",
            AuthMethod::PrivateKeyJwt => "client must authenticate with private_key_jwt",
        }));
    }
    match (&creds.basic, &creds.client_secret, &creds.client_assertion) {
        (Some((_, s)), _, _) | (None, Some(s), _) => {
            if !secret_matches(&client, s, now_ms()) {
                return Err(fail("client authentication failed"));
            }
        }
        (None, None, Some(a)) => verify_assertion(app, &client, creds, a).await?,
        (None, None, None) => {}
    }
    Ok(client)
}
