//! Pure rules of the authorization server: no IO, no async, no HTTP, no SQL.
//! Everything here is exhaustively unit-tested and called by the grant modules and the stores.

pub mod admin;
pub mod audience;
pub mod consents;
pub mod device;
pub mod display;
pub mod error;
pub mod events;
pub mod grace;
pub mod grant;
pub mod model;
pub mod pkce;
pub mod rar;
pub mod redirect_uri;
pub mod refresh_token;
pub mod registration;
pub mod scope;
pub mod secrets;
pub mod ssf;
