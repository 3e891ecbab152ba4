//! JOSE: signing keys (created, encrypted at rest, parsed once), JWS signing of our tokens with
//! pre-encoded headers, verification of our own tokens through `jsonwebtoken`, the JWKS, and
//! clients' JWK Sets fetched from their `jwks_uri`.

pub mod dpop;
pub mod jwks_fetch;
pub mod jwt;
pub mod keys;

pub use jwt::{AccessClaims, IdClaims};
pub use keys::{KeySet, Keyring};
