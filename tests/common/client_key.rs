//! A `private_key_jwt` client's ES256 key for tests (aws-lc-rs): its public JWK, JWK Sets, and
//! signed assertions.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};

/// A client's ES256 signing key (aws-lc-rs), with its public JWK.
pub struct ClientKey {
    pair: EcdsaKeyPair,
    pub kid: String,
}

impl ClientKey {
    pub fn new(kid: &str) -> ClientKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        ClientKey {
            pair,
            kid: kid.to_string(),
        }
    }

    /// The public JWK (from the 65-byte uncompressed point 0x04‖x‖y).
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        })
    }

    /// A JWK Set of this key alone, as a document.
    pub fn jwks_json(&self) -> String {
        jwks(&[self]).to_string()
    }

    /// Signs `claims` as an ES256 JWT with this key's `kid` (signature r‖s, RFC 7518 §3.4).
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }
}

pub fn jwks(keys: &[&ClientKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}
