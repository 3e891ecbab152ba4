//! DPoP proofs (RFC 9449): parsing and every check of §4.3 except the `jti` replay check, which
//! needs the shared store and is made by the caller in the same transaction as the operation the
//! proof authorises. Also RFC 7638 thumbprints and the stateless server nonces of §8.

use crate::util::{b64url, b64url_decode, ct_eq, hmac_sha256, sha256};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// The proof algorithms we accept (and advertise in `dpop_signing_alg_values_supported`).
pub const ALGS: &[&str] = &["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"];

/// Longest `DPoP` header we read.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// A proof that passed every stateless check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's public key.
    pub jkt: String,
    /// The `alg` the proof was signed with.
    pub alg: String,
    pub jti: String,
    pub iat: i64,
}

impl Proof {
    /// The key under which the `jti` is remembered: per key, so that two clients cannot collide.
    pub fn replay_key(&self) -> [u8; 32] {
        sha256(format!("{}:{}", self.jkt, self.jti).as_bytes())
    }
}

/// Why a proof is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofError {
    /// `invalid_dpop_proof` with this description.
    Invalid(&'static str),
    /// `use_dpop_nonce`: the nonce is missing, unknown or expired.
    UseNonce(&'static str),
}

/// What the endpoint expects of a proof.
pub struct Expect<'a> {
    /// The HTTP method.
    pub htm: &'a str,
    /// The endpoint URL (issuer + path).
    pub htu: &'a str,
    pub now_s: i64,
    /// How far `iat` may be from now, either way.
    pub max_age_s: i64,
    /// `Some` at protected resources: the access token the proof must hash (`ath`).
    pub access_token: Option<&'a str>,
    /// Nonce checking: the key, the window length, and whether a nonce is required.
    pub nonce: NonceCheck<'a>,
}

pub struct NonceCheck<'a> {
    pub key: &'a [u8],
    pub window_s: i64,
    pub required: bool,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    nonce: Option<String>,
    ath: Option<String>,
}

/// `alg: "Ed25519"` (RFC 9864's fully specified name for EdDSA over Ed25519, which current
/// clients emit): verified with aws-lc-rs, since `jsonwebtoken` knows only `EdDSA`.
fn verify_ed25519(proof: &str, jwk: &Value) -> Result<Claims, ProofError> {
    use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
    let invalid = ProofError::Invalid;
    if jwk.get("kty").and_then(Value::as_str) != Some("OKP")
        || jwk.get("crv").and_then(Value::as_str) != Some("Ed25519")
    {
        return Err(invalid("DPoP proof alg Ed25519 needs an OKP Ed25519 jwk"));
    }
    let x = jwk
        .get("x")
        .and_then(Value::as_str)
        .and_then(b64url_decode)
        .filter(|k| k.len() == 32);
    let x = x.ok_or(invalid("DPoP proof jwk is malformed"))?;
    let (signed, sig) = proof
        .rsplit_once('.')
        .ok_or(invalid("DPoP proof is not a compact JWS"))?;
    let sig = b64url_decode(sig).ok_or(invalid("DPoP proof signature is invalid"))?;
    UnparsedPublicKey::new(&ED25519, &x)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| invalid("DPoP proof signature is invalid"))?;
    let payload = signed
        .split('.')
        .nth(1)
        .and_then(b64url_decode)
        .ok_or(invalid("DPoP proof payload is malformed"))?;
    serde_json::from_slice(&payload).map_err(|_| invalid("DPoP proof payload is malformed"))
}

/// Members that only a private (or symmetric) JWK has.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// RFC 7638 thumbprint of a public JWK (EC, RSA, OKP).
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .map(|v| serde_json::to_string(v).unwrap_or_default())
    };
    let canonical = match jwk.get("kty")?.as_str()? {
        "EC" => format!(r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#, s("crv")?, s("x")?, s("y")?),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s("e")?, s("n")?),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s("crv")?, s("x")?),
        _ => return None,
    };
    Some(b64url(&sha256(canonical.as_bytes())))
}

fn same_url(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        url::Url::parse(s).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    matches!((strip(a), strip(b)), (Some(x), Some(y)) if x == y)
}

/// Checks a proof (the value of the `DPoP` header) against `expect`.
pub fn check(proof: &str, expect: &Expect<'_>) -> Result<Proof, ProofError> {
    use ProofError::Invalid;
    if proof.len() > MAX_PROOF_LEN {
        return Err(Invalid("DPoP proof is too large"));
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Invalid("DPoP proof is not a compact JWS"));
    };
    let header: Value = b64url_decode(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(Invalid("DPoP proof header is not JSON"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(Invalid("DPoP proof typ must be dpop+jwt"));
    }
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !ALGS.contains(&alg_name) {
        return Err(Invalid(
            "DPoP proof alg is not supported: use ES256, ES384, EdDSA (or Ed25519), RS256 or PS256",
        ));
    }
    let jwk_value = header
        .get("jwk")
        .filter(|v| v.is_object())
        .ok_or(Invalid("DPoP proof has no jwk"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_value.get(m).is_some()) {
        return Err(Invalid("DPoP proof jwk must be a public key"));
    }
    let jkt = thumbprint(jwk_value).ok_or(Invalid("DPoP proof jwk is not a supported public key"))?;
    let claims = if alg_name == "Ed25519" {
        verify_ed25519(proof, jwk_value)?
    } else {
        let jwk: Jwk = serde_json::from_value(jwk_value.clone()).map_err(|_| Invalid("DPoP proof jwk is malformed"))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| Invalid("DPoP proof jwk is malformed"))?;
        let alg: Algorithm = alg_name
            .parse()
            .map_err(|_| Invalid("DPoP proof alg is not supported"))?;
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Claims>(proof, &key, &v)
            .map_err(|_| Invalid("DPoP proof signature is invalid"))?
            .claims
    };
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(Invalid("DPoP proof needs a jti"))?;
    if claims.htm.as_deref() != Some(expect.htm) {
        return Err(Invalid("DPoP proof htm does not match the request method"));
    }
    if !claims.htu.as_deref().is_some_and(|u| same_url(u, expect.htu)) {
        return Err(Invalid("DPoP proof htu does not match the request URL"));
    }
    let iat = claims.iat.ok_or(Invalid("DPoP proof needs an iat"))?;
    if iat < expect.now_s - expect.max_age_s {
        return Err(Invalid("DPoP proof is too old"));
    }
    if iat > expect.now_s + expect.max_age_s {
        return Err(Invalid("DPoP proof iat is in the future"));
    }
    match (&claims.nonce, expect.nonce.required) {
        (None, true) => return Err(ProofError::UseNonce("a DPoP nonce is required")),
        (Some(n), _) if !nonce_valid(expect.nonce.key, expect.nonce.window_s, expect.now_s, n) => {
            return Err(ProofError::UseNonce("the DPoP nonce is unknown or expired"))
        }
        _ => {}
    }
    if let Some(at) = expect.access_token {
        let want = b64url(&sha256(at.as_bytes()));
        if !claims
            .ath
            .as_deref()
            .is_some_and(|a| ct_eq(a.as_bytes(), want.as_bytes()))
        {
            return Err(Invalid("DPoP proof ath does not match the access token"));
        }
    }
    Ok(Proof {
        jkt,
        alg: alg_name.to_string(),
        jti,
        iat,
    })
}

fn nonce_for(key: &[u8], window: i64) -> String {
    let mut out = window.to_be_bytes().to_vec();
    out.extend_from_slice(&hmac_sha256(key, format!("dpop-nonce:{window}").as_bytes())[..16]);
    b64url(&out)
}

/// A nonce valid on every server process (they share `key`) for one to two windows; no storage.
pub fn nonce(key: &[u8], window_s: i64, now_s: i64) -> String {
    nonce_for(key, now_s / window_s.max(1))
}

pub fn nonce_valid(key: &[u8], window_s: i64, now_s: i64, nonce: &str) -> bool {
    let Some(bytes) = b64url_decode(nonce).filter(|b| b.len() == 24) else {
        return false;
    };
    let window = i64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
    let current = now_s / window_s.max(1);
    (window == current || window == current - 1) && ct_eq(nonce_for(key, window).as_bytes(), nonce.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk: Value = serde_json::from_str(r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
        assert_eq!(thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn nonces_live_one_to_two_windows_and_need_the_key() {
        let k = [1u8; 32];
        let n = nonce(&k, 300, 1_000_000);
        assert!(nonce_valid(&k, 300, 1_000_000, &n));
        assert!(nonce_valid(&k, 300, 1_000_000 + 300, &n));
        assert!(!nonce_valid(&k, 300, 1_000_000 + 600, &n));
        assert!(!nonce_valid(&[2u8; 32], 300, 1_000_000, &n));
        assert!(!nonce_valid(&k, 300, 1_000_000, "garbage"));
    }
}
