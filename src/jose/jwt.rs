//! Our JWTs: RFC 9068 access tokens, OIDC ID tokens, and the tokens of events (`sign_typed`). Signing concatenates the pre-encoded
//! header with the payload and signs with the key parsed at start-up; verification of tokens we
//! issued goes through `jsonwebtoken` with the key named by `kid`.

use super::keys::KeySet;
use crate::util::b64url;
use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    pub jkt: String,
}

/// `aud` (RFC 7519 §4.1.3): one audience travels as a string, several as an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    pub fn contains(&self, a: &str) -> bool {
        self.0.iter().any(|x| x == a)
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Audience(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(v) => v,
        }))
    }
}

/// RFC 9068 access token claims.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    /// The token family (grant) this token was issued from; a revoked family's access tokens
    /// are inactive.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<Confirmation>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authorization_details: Option<serde_json::Value>,
}

/// OIDC Core §2 ID token claims.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
}

fn sign_with(header_b64: &str, keys: &KeySet, payload: &impl Serialize) -> String {
    let body = serde_json::to_vec(payload).expect("claims serialize");
    let mut out = String::with_capacity(header_b64.len() + body.len() * 4 / 3 + 90);
    out.push_str(header_b64);
    out.push('.');
    out.push_str(&b64url(&body));
    let sig = keys.signer.sign(out.as_bytes());
    out.push('.');
    out.push_str(&b64url(&sig));
    out
}

pub fn sign_access(keys: &KeySet, claims: &AccessClaims) -> String {
    sign_with(&keys.signer.header_at, keys, claims)
}

pub fn sign_id(keys: &KeySet, claims: &IdClaims) -> String {
    sign_with(&keys.signer.header_jwt, keys, claims)
}

/// Signs `claims` as a JWT of type `typ` (an event's: `logout+jwt`) with the current key; the
/// header is encoded per call (events are rare, unlike access tokens).
pub fn sign_typed(keys: &KeySet, typ: &str, claims: &impl Serialize) -> String {
    sign_with(&super::keys::header(&keys.signer.kid, typ), keys, claims)
}

/// Why a token we are asked to accept is not valid.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidToken(pub &'static str);

/// Verifies an access token we issued: `typ`, `kid`, signature, `iss`, `exp`.
pub fn verify_access(keys: &KeySet, token: &str, issuer: &str) -> Result<AccessClaims, InvalidToken> {
    let header = decode_header(token).map_err(|_| InvalidToken("malformed token"))?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(InvalidToken("not an access token"));
    }
    let kid = header.kid.ok_or(InvalidToken("token has no kid"))?;
    let key = keys.verifiers.get(&kid).ok_or(InvalidToken("unknown signing key"))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[issuer]);
    v.validate_aud = false;
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    decode::<AccessClaims>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => InvalidToken("token is expired"),
            _ => InvalidToken("token is invalid"),
        })
}

/// Verifies an ID token we issued, as an `id_token_hint` (OIDC RP-Initiated Logout §2): the
/// signature and `iss` must hold; an expired token is still a valid hint.
pub fn verify_id_token_hint(keys: &KeySet, token: &str, issuer: &str) -> Result<IdClaims, InvalidToken> {
    let header = decode_header(token).map_err(|_| InvalidToken("malformed token"))?;
    if header.typ.as_deref() != Some("JWT") {
        return Err(InvalidToken("not an ID token"));
    }
    let kid = header.kid.ok_or(InvalidToken("token has no kid"))?;
    let key = keys.verifiers.get(&kid).ok_or(InvalidToken("unknown signing key"))?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[issuer]);
    v.validate_aud = false;
    v.validate_exp = false;
    v.set_required_spec_claims(&["iss", "sub", "aud"]);
    decode::<IdClaims>(token, key, &v)
        .map(|d| d.claims)
        .map_err(|_| InvalidToken("token is invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::keys::{generate, KeySet};

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://as".into(),
            sub: "u".into(),
            aud: Audience(vec!["https://as/oauth/userinfo".into()]),
            client_id: "c".into(),
            exp,
            iat: 1,
            jti: "j".into(),
            scope: "openid".into(),
            auth_time: None,
            sid: None,
            grant_id: Some("g".into()),
            cnf: None,
            authorization_details: None,
        }
    }

    #[test]
    fn signs_and_verifies_with_jsonwebtoken() {
        let rec = generate(None, 1).unwrap();
        let keys = KeySet::from_records(&[rec], None, 1, 1).unwrap();
        let now = crate::util::now_ms() / 1000;
        let t = sign_access(&keys, &claims(now + 60));
        assert_eq!(verify_access(&keys, &t, "https://as").unwrap(), claims(now + 60));
        assert!(verify_access(&keys, &t, "https://other").is_err());
        let expired = sign_access(&keys, &claims(now - 1));
        assert_eq!(
            verify_access(&keys, &expired, "https://as"),
            Err(InvalidToken("token is expired"))
        );
        let mut tampered = t.clone();
        tampered.insert(t.len() - 5, 'A');
        assert!(verify_access(&keys, &tampered, "https://as").is_err());
        let id = sign_id(
            &keys,
            &IdClaims {
                iss: "https://as".into(),
                sub: "u".into(),
                aud: "c".into(),
                azp: "c".into(),
                exp: now + 60,
                iat: now,
                auth_time: now,
                nonce: None,
                sid: None,
                name: None,
                preferred_username: None,
                email: None,
            },
        );
        assert!(
            verify_access(&keys, &id, "https://as").is_err(),
            "an ID token is not an access token"
        );
    }

    #[test]
    fn one_audience_is_a_string_several_an_array() {
        let one = Audience(vec!["a".into()]);
        let two = Audience(vec!["a".into(), "b".into()]);
        assert_eq!(serde_json::to_value(&one).unwrap(), serde_json::json!("a"));
        assert_eq!(serde_json::to_value(&two).unwrap(), serde_json::json!(["a", "b"]));
        assert_eq!(serde_json::from_value::<Audience>(serde_json::json!("a")).unwrap(), one);
        assert_eq!(
            serde_json::from_value::<Audience>(serde_json::json!(["a", "b"])).unwrap(),
            two
        );
    }
}
