//! DPoP proofs for tests (RFC 9449 §4.2), good and deliberately broken: an ES256 key from
//! aws-lc-rs, its public JWK and RFC 7638 thumbprint, and a builder with every knob a test
//! needs (typ, alg, jwk, htm, htu, iat, jti, nonce, ath, a bad signature).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};

pub struct DpopKey {
    pair: EcdsaKeyPair,
    pub jwk: Value,
}

impl Default for DpopKey {
    fn default() -> Self {
        Self::new()
    }
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What to put in (or break about) a proof.
#[derive(Clone, Debug)]
pub struct Opts {
    pub typ: &'static str,
    pub alg: &'static str,
    pub iat_offset: i64,
    pub jti: Option<String>,
    pub nonce: Option<String>,
    pub ath_for: Option<String>,
    pub ath: Option<String>,
    /// Adds the private `d` to the header's JWK.
    pub private_jwk: bool,
    /// Flips a character of the signature.
    pub bad_signature: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            typ: "dpop+jwt",
            alg: "ES256",
            iat_offset: 0,
            jti: None,
            nonce: None,
            ath_for: None,
            ath: None,
            private_jwk: false,
            bad_signature: false,
        }
    }
}

impl DpopKey {
    pub fn new() -> DpopKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])});
        DpopKey { pair, jwk }
    }

    /// RFC 7638 thumbprint.
    pub fn jkt(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        B64.encode(sha256(canonical.as_bytes()))
    }

    /// A valid proof for `htm` at `htu`.
    pub fn proof(&self, htm: &str, htu: &str) -> String {
        self.proof_with(htm, htu, Opts::default())
    }

    pub fn proof_with(&self, htm: &str, htu: &str, o: Opts) -> String {
        let mut jwk = self.jwk.clone();
        if o.private_jwk {
            jwk["d"] = json!(B64.encode([7u8; 32]));
        }
        let header = json!({"typ": o.typ, "alg": o.alg, "jwk": jwk});
        let mut claims = json!({
            "jti": o.jti.clone().unwrap_or_else(|| B64.encode(aws_lc_rs::rand::generate::<[u8; 16]>(&SystemRandom::new()).unwrap().expose())),
            "htm": htm,
            "htu": htu,
            "iat": now() + o.iat_offset,
        });
        if let Some(n) = &o.nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(at) = &o.ath_for {
            claims["ath"] = json!(B64.encode(sha256(at.as_bytes())));
        }
        if let Some(a) = &o.ath {
            claims["ath"] = json!(a);
        }
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = match o.alg {
            "none" => Vec::new(),
            "HS256" => {
                let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"shared-secret");
                aws_lc_rs::hmac::sign(&k, input.as_bytes()).as_ref().to_vec()
            }
            _ => self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        let mut sig = B64.encode(sig);
        if o.bad_signature {
            let c = if sig.starts_with('A') { "B" } else { "A" };
            sig.replace_range(0..1, c);
        }
        format!("{input}.{sig}")
    }
}
