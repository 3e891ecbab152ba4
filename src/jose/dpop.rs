//! DPoP proofs (RFC 9449): parsing and every check of §4.3 except the `jti` replay check, which
//! needs the shared store and is made by the caller in the same transaction as the operation the
//! proof authorises. Also RFC 7638 thumbprints and the stateless server nonces of §8.

use crate::util::{b64url, b64url_decode, ct_eq, hmac_sha256, sha256};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;

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
    /// The key under which the `jti` is remembered: the proof's `iat` (8 bytes, big-endian),
    /// then 24 bytes of the SHA-256 of its key's thumbprint and `jti` (per key, so that two
    /// clients cannot collide). Keys grow with time, so recording a proof appends to the right
    /// edge of the index instead of writing a random page (docs/design/dpop.md §4). A replay
    /// is the same signed proof, hence the same `iat` and the same key.
    pub fn replay_key(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(self.iat.max(0) as u64).to_be_bytes());
        key[8..].copy_from_slice(&sha256(format!("{}:{}", self.jkt, self.jti).as_bytes())[..24]);
        key
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

/// A proof's protected header, read once and typed (no `serde_json::Value`, no second parse).
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    jwk: Option<PublicJwk<'a>>,
}

/// The members of a JWK that a public key of the supported types has, and the presence of the
/// members only a private (or symmetric) key has.
#[derive(Deserialize)]
pub struct PublicJwk<'a> {
    #[serde(borrow)]
    kty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow)]
    y: Option<Cow<'a, str>>,
    #[serde(borrow)]
    n: Option<Cow<'a, str>>,
    #[serde(borrow)]
    e: Option<Cow<'a, str>>,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

impl PublicJwk<'_> {
    fn is_private(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.k,
        ]
        .iter()
        .any(|m| m.is_some())
    }

    fn member(&self, m: &Option<Cow<'_, str>>) -> Option<Vec<u8>> {
        m.as_deref().and_then(b64url_decode)
    }

    /// Verifies `sig` over `signed` with this key under `alg`.
    fn verify(&self, alg: &str, signed: &[u8], sig: &[u8]) -> Result<(), ProofError> {
        use aws_lc_rs::signature::{self as s, RsaPublicKeyComponents, UnparsedPublicKey};
        let malformed = ProofError::Invalid("DPoP proof jwk does not fit its alg or is malformed");
        let (kty, crv) = (self.kty.as_deref(), self.crv.as_deref());
        let ec = |curve: &str, len: usize| -> Result<Vec<u8>, ProofError> {
            let (x, y) = (self.member(&self.x), self.member(&self.y));
            match (kty, crv, x, y) {
                (Some("EC"), Some(c), Some(x), Some(y)) if c == curve && x.len() == len && y.len() == len => {
                    Ok([&[4u8][..], &x, &y].concat())
                }
                _ => Err(malformed.clone()),
            }
        };
        let ok = match alg {
            "ES256" => UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, ec("P-256", 32)?).verify(signed, sig),
            "ES384" => UnparsedPublicKey::new(&s::ECDSA_P384_SHA384_FIXED, ec("P-384", 48)?).verify(signed, sig),
            "EdDSA" | "Ed25519" => match (kty, crv, self.member(&self.x)) {
                (Some("OKP"), Some("Ed25519"), Some(x)) if x.len() == 32 => {
                    UnparsedPublicKey::new(&s::ED25519, x).verify(signed, sig)
                }
                _ => return Err(malformed),
            },
            "RS256" | "PS256" => {
                let (Some("RSA"), Some(n), Some(e)) = (kty, self.member(&self.n), self.member(&self.e)) else {
                    return Err(malformed);
                };
                let params: &s::RsaParameters = if alg == "RS256" {
                    &s::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &s::RSA_PSS_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n: &n, e: &e }.verify(params, signed, sig)
            }
            _ => return Err(ProofError::Invalid("DPoP proof alg is not supported")),
        };
        ok.map_err(|_| ProofError::Invalid("DPoP proof signature is invalid"))
    }

    /// RFC 7638 thumbprint (EC, RSA, OKP).
    fn thumbprint(&self) -> Option<String> {
        let s = |m: &Option<Cow<'_, str>>| m.as_deref().map(|v| serde_json::to_string(v).unwrap_or_default());
        let canonical = match self.kty.as_deref()? {
            "EC" => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                s(&self.crv)?,
                s(&self.x)?,
                s(&self.y)?
            ),
            "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s(&self.e)?, s(&self.n)?),
            "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s(&self.crv)?, s(&self.x)?),
            _ => return None,
        };
        Some(b64url(&sha256(canonical.as_bytes())))
    }
}

/// RFC 7638 thumbprint of a public JWK (EC, RSA, OKP).
pub fn thumbprint(jwk: &serde_json::Value) -> Option<String> {
    PublicJwk::deserialize(jwk).ok()?.thumbprint()
}

/// Whether a proof's `htu` names the endpoint: the same URL once query and fragment are left
/// out (RFC 9449 §4.3). Byte-equal strings need no parse (the common case).
fn same_url(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let strip = |s: &str| {
        url::Url::parse(s).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    matches!((strip(a), strip(b)), (Some(x), Some(y)) if x == y)
}

/// Checks a proof (the value of the `DPoP` header) against `expect`. The header and the
/// payload are each decoded and parsed once; the signature is verified with aws-lc-rs against
/// the key in the header.
pub fn check(proof: &str, expect: &Expect<'_>) -> Result<Proof, ProofError> {
    use ProofError::Invalid;
    if proof.len() > MAX_PROOF_LEN {
        return Err(Invalid("DPoP proof is too large"));
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Invalid("DPoP proof is not a compact JWS"));
    };
    let header_json = b64url_decode(h).ok_or(Invalid("DPoP proof header is not JSON"))?;
    let header: Header<'_> = serde_json::from_slice(&header_json)
        .map_err(|_| Invalid("DPoP proof header is not JSON, or its jwk is not an object"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(Invalid("DPoP proof typ must be dpop+jwt"));
    }
    let alg_name = header.alg.as_deref().unwrap_or("");
    if !ALGS.contains(&alg_name) {
        return Err(Invalid(
            "DPoP proof alg is not supported: use ES256, ES384, EdDSA (or Ed25519), RS256 or PS256",
        ));
    }
    let jwk = header.jwk.as_ref().ok_or(Invalid("DPoP proof has no jwk"))?;
    if jwk.is_private() {
        return Err(Invalid("DPoP proof jwk must be a public key"));
    }
    let jkt = jwk
        .thumbprint()
        .ok_or(Invalid("DPoP proof jwk is not a supported public key"))?;
    let sig = b64url_decode(sig).ok_or(Invalid("DPoP proof signature is invalid"))?;
    jwk.verify(alg_name, &proof.as_bytes()[..h.len() + 1 + payload.len()], &sig)?;
    let claims: Claims = b64url_decode(payload)
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(Invalid("DPoP proof payload is malformed"))?;
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
    fn replay_keys_grow_with_iat_and_name_the_key_and_jti() {
        let p = |jkt: &str, jti: &str, iat: i64| Proof {
            jkt: jkt.into(),
            alg: "ES256".into(),
            jti: jti.into(),
            iat,
        };
        let a = p("k1", "j", 1_700_000_000);
        assert_eq!(a.replay_key(), a.clone().replay_key(), "a replay has the same key");
        assert_ne!(a.replay_key(), p("k2", "j", a.iat).replay_key(), "per key");
        assert_ne!(a.replay_key(), p("k1", "j2", a.iat).replay_key(), "per jti");
        // Later proofs sort after earlier ones, whatever their jti: appended, not scattered.
        let mut keys: Vec<[u8; 32]> = (0..100)
            .map(|i| p("k1", &format!("z{}", 100 - i), a.iat + i).replay_key())
            .collect();
        let in_order = keys.clone();
        keys.sort();
        assert_eq!(keys, in_order);
    }

    #[test]
    fn a_key_that_does_not_fit_the_alg_is_refused_before_any_signature_check() {
        use crate::util::b64url;
        let proof = |header: &str| format!("{}.{}.{}", b64url(header.as_bytes()), b64url(b"{}"), b64url(&[0u8; 64]));
        let expect = Expect {
            htm: "POST",
            htu: "https://as.example/oauth/token",
            now_s: 0,
            max_age_s: 60,
            access_token: None,
            nonce: NonceCheck {
                key: b"k",
                window_s: 300,
                required: false,
            },
        };
        let x = b64url(&[9u8; 32]);
        let okp = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}}}"#);
        let short_ec =
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"{x}","y":"AA"}}}}"#);
        let p384 =
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-384","x":"{x}","y":"{x}"}}}}"#);
        for h in [okp, short_ec, p384] {
            assert_eq!(
                check(&proof(&h), &expect),
                Err(ProofError::Invalid(
                    "DPoP proof jwk does not fit its alg or is malformed"
                )),
                "{h}"
            );
        }
        let private =
            format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"{x}"}}}}"#);
        assert_eq!(
            check(&proof(&private), &expect),
            Err(ProofError::Invalid("DPoP proof jwk must be a public key"))
        );
        let ed = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}}}"#);
        assert_eq!(
            check(&proof(&ed), &expect),
            Err(ProofError::Invalid("DPoP proof signature is invalid"))
        );
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk: serde_json::Value = serde_json::from_str(r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
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
