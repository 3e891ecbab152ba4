//! Autional: an OAuth 2.0 / OpenID Connect authorization server whose centre is the refresh
//! token lifecycle (`POST /oauth/refresh`: rotation, reuse detection, grace window).
//!
//! Layers, one way: `http` (axum) → `grants` (one module per grant) → `store` (one trait, atomic
//! domain operations) with `domain` (pure rules) and `jose` (keys, JWTs) beside them.

pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod grants;
pub mod http;
pub mod jose;
pub mod limits;
pub mod listener;
pub mod outbound;
pub mod params;
pub mod password;
pub mod paths;
pub mod server;
pub mod store;
pub mod util;
