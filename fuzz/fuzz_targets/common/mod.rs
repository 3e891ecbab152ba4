//! Shared helpers of the fuzz targets: fixed keys (so that inputs signed by the harness reach
//! the checks after the signature), a client, and string conversion.
#![allow(dead_code)]

use autional::domain::model::{AuthMethod, Client};
use autional::util::b64url;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::sync::OnceLock;

pub const ISSUER: &str = "https://as.example";
pub const NOW_S: i64 = 1_700_000_000;

/// The input as text (lossy: the parsers take `&str`).
pub fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A fixed Ed25519 key.
pub fn ed25519() -> &'static Ed25519KeyPair {
    static K: OnceLock<Ed25519KeyPair> = OnceLock::new();
    K.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("seed"))
}

pub fn ed25519_jwk() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(ed25519().public_key().as_ref())})
}

/// `b64url(header).b64url(payload).signature` with the Ed25519 key.
pub fn sign_ed25519(header: &Value, payload: &[u8]) -> String {
    let mut s = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(payload));
    let sig = ed25519().sign(s.as_bytes());
    s.push('.');
    s.push_str(&b64url(sig.as_ref()));
    s
}

/// A fixed-for-the-run P-256 key (generated once per process).
pub fn p256() -> &'static EcdsaKeyPair {
    static K: OnceLock<EcdsaKeyPair> = OnceLock::new();
    K.get_or_init(|| {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).expect("key");
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key")
    })
}

pub fn p256_jwk(kid: &str) -> Value {
    let point = p256().public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
           "x": b64url(&point[1..33]), "y": b64url(&point[33..65])})
}

/// `b64url(header).b64url(payload).signature` with the P-256 key (ES256).
pub fn sign_es256(header: &Value, payload: &[u8]) -> String {
    let mut s = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(payload));
    let sig = p256().sign(&SystemRandom::new(), s.as_bytes()).expect("sign");
    s.push('.');
    s.push_str(&b64url(sig.as_ref()));
    s
}

/// A registered client.
pub fn client(id: &str, method: AuthMethod) -> Client {
    Client {
        name: id.into(),
        auth_method: method,
        redirect_uris: vec!["https://app.example/cb".into(), "http://127.0.0.1:8080/cb?x=1".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scope: "openid profile email offline_access api:read".into(),
        ..Client::blank(id.into(), 0)
    }
}
