//! JOSE: signing keys (created, encrypted at rest, parsed once), JWS signing of our tokens with
//! pre-encoded headers, verification of our own tokens through `jsonwebtoken`, and the JWKS.

pub mod dpop;
pub mod jwt;
pub mod keys;

pub use jwt::{AccessClaims, IdClaims};
pub use keys::{KeySet, Keyring};
