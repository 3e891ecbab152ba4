//! The server's endpoint paths, written once: the router mounts them, discovery advertises
//! them (issuer + path), DPoP proofs are checked against them (`htu`), client assertions may
//! name them (`aud`), and pages link and redirect to them.

pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub const OAUTH_AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/oauth/jwks";
pub const AUTHORIZE: &str = "/oauth/authorize";
pub const TOKEN: &str = "/oauth/token";
pub const REFRESH: &str = "/oauth/refresh";
pub const PUSHED_AUTHORIZATION: &str = "/oauth/pushed-authorization";
pub const DPOP_NONCE: &str = "/oauth/dpop/nonce";
pub const DEVICE_AUTHORIZATION: &str = "/oauth/device/authorize";
pub const DEVICE: &str = "/oauth/device";
pub const USERINFO: &str = "/oauth/userinfo";
pub const INTROSPECT: &str = "/oauth/introspect";
pub const REVOKE: &str = "/oauth/revoke";
pub const LOGIN: &str = "/login";
pub const LOGOUT: &str = "/logout";
pub const END_SESSION: &str = "/oauth/logout";
pub const REGISTER: &str = "/oauth/register";
/// Public client information for consent screens (SPEC §8).
pub const PUBLIC_CLIENT: &str = "/oauth/client/{client_id}";
/// The end-user consent API (SPEC §8): the user's consents, and one of them.
pub const SSF_CONFIGURATION: &str = "/.well-known/ssf-configuration";
/// The SSF configuration endpoint (stream management).
pub const SSF_STREAM: &str = "/ssf/stream";
pub const SSF_VERIFY: &str = "/ssf/verify";
pub const CONSENTS: &str = "/oauth/consents";
pub const CONSENT: &str = "/oauth/consents/{id}";
/// RFC 7592 client configuration endpoint (axum path syntax).
pub const REGISTER_CLIENT: &str = "/oauth/register/{client_id}";
pub const ACCOUNT: &str = "/account";
pub const ACCOUNT_REVOKE: &str = "/account/revoke";
pub const STYLESHEET: &str = "/static/style.css";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const DEMO_CALLBACK: &str = "/demo/callback";
pub const METRICS: &str = "/metrics";
/// The OpenAPI document of the listener's API (public, and the admin listener's own).
pub const OPENAPI: &str = "/openapi.json";
/// The admin API (on `admin.listen` only).
pub const ADMIN_CLIENTS: &str = "/admin/oauth/clients";
pub const ADMIN_CLIENT: &str = "/admin/oauth/clients/{client_id}";
pub const ADMIN_CLIENT_TOKENS: &str = "/admin/oauth/clients/{client_id}/tokens";
pub const ADMIN_USER_TOKENS: &str = "/admin/oauth/tokens/user/{user_id}";
pub const ADMIN_GRANT: &str = "/admin/oauth/tokens/{grant_id}";
pub const ADMIN_AUDIT: &str = "/admin/oauth/audit-events";
/// The outbox's events (Back-Channel Logout, security events) and how their delivery went.
pub const ADMIN_EVENTS: &str = "/admin/oauth/events";
pub const ADMIN_CLIENT_AUDIT: &str = "/admin/oauth/clients/{client_id}/audit-logs";
pub const ADMIN_CLIENT_STATS: &str = "/admin/oauth/clients/{client_id}/stats";
pub const ADMIN_CLIENT_ROTATE_SECRET: &str = "/admin/oauth/clients/{client_id}/rotate-secret";
pub const ADMIN_CLIENT_SECRETS: &str = "/admin/oauth/clients/{client_id}/secrets";
pub const ADMIN_CLIENT_SECRET: &str = "/admin/oauth/clients/{client_id}/secrets/{secret_id}";
pub const ADMIN_CLIENT_SECRET_DEACTIVATE: &str = "/admin/oauth/clients/{client_id}/secrets/{secret_id}/deactivate";
pub const ADMIN_DEVICES: &str = "/admin/oauth/devices";
pub const ADMIN_DEVICE: &str = "/admin/oauth/devices/{user_code}";
pub const ADMIN_USERS: &str = "/admin/oauth/users";
pub const ADMIN_USER: &str = "/admin/oauth/users/{user_id}";
pub const ADMIN_USER_PASSWORD: &str = "/admin/oauth/users/{user_id}/password";
