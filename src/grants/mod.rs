//! Grant logic: one module per grant or concern. Each takes typed input (parameters already
//! parsed, the client already authenticated), decides through `domain` and `store`, and returns a
//! typed result; none of them builds an HTTP response.

pub mod access_token;
pub mod accounts;
pub mod authorization_code;
pub mod authorize;
pub mod client_auth;
pub mod client_credentials;
pub mod clients;
pub mod consents;
pub mod device;
pub mod dpop;
pub mod introspection;
pub mod par;
pub mod refresh;
pub mod refresh_counts;
pub mod revocation;
pub mod secrets;
pub mod ssf;
pub mod tokens;

pub use tokens::TokenResponse;
