//! Records the stores keep and the grants reason about. Plain data; the rules live in
//! `grant.rs` and the grant modules.

use serde::{Deserialize, Serialize};

/// An enum persisted (and shown) as its string name: each variant's name is written once, here.
macro_rules! named {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v,)*
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            /// Every variant's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($s),*];
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s,)*
                }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($s => Some($name::$v),)*
                    _ => None,
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// Why a family was revoked (`families.revoked_reason`).
    pub enum RevocationReason {
        /// A rotated refresh token was presented again (SPEC §4 rule 3).
        RefreshTokenReuse = "refresh_token_reuse",
        /// An authorization code was redeemed twice.
        AuthorizationCodeReplay = "authorization_code_replay",
        /// RFC 7009 revocation by the client.
        RevokedByClient = "revoked_by_client",
        /// The user ended the grant on the account page.
        RevokedByUser = "revoked_by_user",
        /// The sign-in session it depended on ended (logout).
        SessionEnded = "session_ended",
        PasswordChanged = "password_changed",
        UserDeleted = "user_deleted",
        ClientDeleted = "client_deleted",
        /// The user withdrew consent to the client.
        ConsentRevoked = "consent_revoked",
        /// An operator revoked it through the admin API.
        RevokedByAdmin = "revoked_by_admin",
    }
}

named! {
    /// What an event pushed to a relying party is (`event_outbox.kind`, docs/design/events.md).
    pub enum EventKind {
        /// OpenID Connect Back-Channel Logout 1.0: a Logout Token for a sign-in session that ended.
        BackchannelLogout = "backchannel_logout",
        /// SSF: CAEP `session-revoked`, one of the client's families was revoked
        /// (`domain::ssf::SESSION_REVOKED`).
        SsfSessionRevoked = "ssf_session_revoked",
        /// SSF: RISC `credential-compromise`, a family revoked for refresh token reuse
        /// (`domain::ssf::CREDENTIAL_COMPROMISE`).
        SsfCredentialCompromise = "ssf_credential_compromise",
        /// SSF: the verification event a receiver asked for (`domain::ssf::VERIFICATION`).
        SsfVerification = "ssf_verification",
    }
}

named! {
    /// Where an outbox event stands (`event_outbox.state`).
    pub enum EventState {
        /// Waiting for its next attempt (or being attempted, under a lease).
        Pending = "pending",
        /// A receiver answered 2xx.
        Delivered = "delivered",
        /// Not delivered within `events.max_age`: given up.
        Failed = "failed",
    }
}

named! {
    /// What an audit event records (`audit_events.kind`).
    pub enum AuditKind {
        RefreshReuseDetected = "refresh.reuse_detected",
        CodeReplayDetected = "code.replay_detected",
        LoginFailed = "login.failed",
        /// An operator revoked grants through the admin API (detail: what and how many).
        GrantsRevoked = "admin.grants_revoked",
    }
}

named! {
    /// Where a device authorization stands (`device_codes.status`).
    pub enum DeviceStatus {
        /// Waiting for the user.
        Pending = "pending",
        /// Approved; tokens are issued at the device's next poll (while the session is live).
        Approved = "approved",
        Denied = "denied",
        /// Exchanged for tokens.
        Consumed = "consumed",
        /// Approved, but its sign-in session ended before the device collected it (logout,
        /// password change, consent withdrawn): polls get `expired_token`.
        Ended = "ended",
    }
}

named! {
    /// The grants the token endpoint serves. Adding one: a variant here (the compiler then asks
    /// for its arm in `http::token`) and a module in `grants`. Declaration order is the order
    /// discovery lists them in.
    pub enum GrantType {
        AuthorizationCode = "authorization_code",
        RefreshToken = "refresh_token",
        ClientCredentials = "client_credentials",
        /// RFC 8628.
        DeviceCode = "urn:ietf:params:oauth:grant-type:device_code",
    }
}

/// The grant types a client may be registered for (the names of [`GrantType::ALL`]).
pub const GRANT_TYPES: &[&str] = GrantType::NAMES;

named! {
    /// How a client proves its identity at the token endpoint (`clients.auth_method`).
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum AuthMethod {
        None = "none",
        ClientSecretBasic = "client_secret_basic",
        ClientSecretPost = "client_secret_post",
        PrivateKeyJwt = "private_key_jwt",
    }
}

named! {
    /// Whether an operator left a client secret in use (`domain::secrets`; an expired secret
    /// stays `active` in storage but never authenticates).
    #[derive(Serialize, Deserialize, Default, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum SecretStatus {
        #[default]
        Active = "active",
        Inactive = "inactive",
    }
}

named! {
    /// What kind of application a client is (OpenID Connect Registration §2): a web server
    /// application (the default) or one running on the user's device.
    #[derive(Default, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ApplicationType {
        #[default]
        Web = "web",
        Native = "native",
    }
}

/// A client's display metadata (RFC 7591 §2, OIDC Registration §2), validated by
/// `domain::display`: shown on the consent page and by `GET /oauth/client/{id}`, returned by
/// registration and the admin API. Stored as one JSON column (`clients.display`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientDisplay {
    /// The client's home page (absolute https).
    pub client_uri: Option<String>,
    /// Its logo, shown on the consent page (absolute https, no fragment).
    pub logo_uri: Option<String>,
    /// Its privacy policy (absolute https).
    pub policy_uri: Option<String>,
    /// Its terms of service (absolute https).
    pub tos_uri: Option<String>,
    /// E-mail addresses of the people responsible for it.
    pub contacts: Vec<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub application_type: ApplicationType,
}

/// A client secret as stored (JSON in `clients.secrets`): its SHA-256, never the secret, and
/// what the admin API shows of it. Entries written before secrets had ids carry only `hash` and
/// `expires_at_ms`: the defaults below, completed by `domain::secrets::normalize`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecret {
    /// Opaque and random (not derived from the secret); empty in a legacy entry.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub hash: Vec<u8>,
    /// When it stops working (set by rotation, or when added), else never.
    pub expires_at_ms: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: SecretStatus,
    /// 0 in a legacy entry.
    #[serde(default)]
    pub created_at_ms: i64,
    #[serde(default)]
    pub updated_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub auth_method: AuthMethod,
    pub secrets: Vec<ClientSecret>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// Scopes the client may request (space-separated).
    pub scope: String,
    pub dpop_bound: bool,
    /// Authorization requests must come through PAR (RFC 9126 §6).
    pub require_par: bool,
    pub jwks: Option<String>,
    /// Where the client publishes its JWK Set (`private_key_jwt`), fetched and cached.
    pub jwks_uri: Option<String>,
    /// Exact `post_logout_redirect_uri` values accepted at RP-initiated logout.
    pub post_logout_redirect_uris: Vec<String>,
    /// SHA-256 of the RFC 7592 registration access token (dynamically registered clients).
    pub registration_token_hash: Option<Vec<u8>>,
    /// Per-client refresh lifetime overrides, seconds.
    pub refresh_idle_ttl_s: Option<i64>,
    pub refresh_absolute_ttl_s: Option<i64>,
    /// Per-client grace rule (`domain::grace`), overriding `refresh.reuse_grace_*`.
    pub reuse_grace_seconds: Option<i64>,
    pub reuse_grace_count: Option<i64>,
    pub created_at_ms: i64,
    /// What the consent page and the client information show about it.
    pub display: ClientDisplay,
    /// Where Logout Tokens are POSTed (OpenID Connect Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
    /// Whether its Logout Tokens must carry `sid` (they always do here).
    pub backchannel_logout_session_required: bool,
}

impl Client {
    /// A client with `id` and nothing else yet (to be filled by `registration::apply`).
    pub fn blank(id: String, created_at_ms: i64) -> Client {
        Client {
            id,
            name: String::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            secrets: vec![],
            redirect_uris: vec![],
            grant_types: vec![],
            scope: String::new(),
            dpop_bound: false,
            require_par: false,
            jwks: None,
            jwks_uri: None,
            post_logout_redirect_uris: vec![],
            registration_token_hash: None,
            refresh_idle_ttl_s: None,
            refresh_absolute_ttl_s: None,
            reuse_grace_seconds: None,
            reuse_grace_count: None,
            created_at_ms,
            display: ClientDisplay::default(),
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
        }
    }

    /// The scopes it may request, one by one.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn is_public(&self) -> bool {
        self.auth_method == AuthMethod::None
    }
    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.grant_types.iter().any(|x| x == g.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at_ms: i64,
}

/// A user's remembered consent to a client (`consents`, one per user and client): the scopes
/// granted so far, and when it was last given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    /// The client's name (`None` when the client no longer exists).
    pub client_name: Option<String>,
    pub scope: crate::domain::scope::Scope,
    pub updated_at_ms: i64,
}

/// A sign-in session. The cookie holds a secret whose SHA-256 is `token_hash`; `id` is the
/// public handle (the `sid` claim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub user_id: String,
    /// Seconds since the epoch of the sign-in (`auth_time`).
    pub auth_time: i64,
    pub expires_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub user_agent: Option<String>,
}

/// An authorization code as stored (the code itself only as its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthCode {
    pub hash: Vec<u8>,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent on the authorization request (then it is required,
    /// identical, at the token endpoint: RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    pub scope: crate::domain::scope::Scope,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// RFC 9449 §10: the code may only be redeemed with a proof of this key.
    pub dpop_jkt: Option<String>,
    /// RAR details granted (JSON array).
    pub authorization_details: Option<String>,
    pub session_id: String,
    pub auth_time: i64,
    pub expires_at_ms: i64,
    pub consumed_at_ms: Option<i64>,
    /// The family the code's first redemption created (to revoke on replay).
    pub family_id: Option<String>,
}

/// A token family: one authorization grant and every refresh token rotated from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    /// The scope granted (the refresh token always keeps it).
    pub scope: crate::domain::scope::Scope,
    pub authorization_details: Option<String>,
    pub dpop_jkt: Option<String>,
    /// The sign-in session the family ends with; `None` with `offline_access`.
    pub session_id: Option<String>,
    /// The `sid` for ID tokens (kept even for offline families).
    pub sid: Option<String>,
    pub auth_time: i64,
    pub created_at_ms: i64,
    pub absolute_expires_at_ms: i64,
    pub idle_expires_at_ms: i64,
    pub generation: i64,
    pub rotated_at_ms: i64,
    pub grace_used: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoked_reason: Option<RevocationReason>,
    pub last_used_at_ms: i64,
    pub last_user_agent: Option<String>,
    /// The SHA-256 of each live refresh token (the current generation's, grace siblings
    /// included), concatenated: at most `1 + reuse_grace_count` (docs/design/refresh-token-format.md).
    pub token_hashes: Vec<u8>,
}

impl Family {
    /// When its live refresh tokens stop working: the idle or the absolute expiry, whichever
    /// comes first (SPEC §4 rule 4).
    pub fn refresh_expires_at_ms(&self) -> i64 {
        self.idle_expires_at_ms.min(self.absolute_expires_at_ms)
    }

    /// `refresh_token_expires_in` for a refresh token issued at `issued_at_s` (the response's
    /// `iat`, Unix seconds): whole seconds to [`Family::refresh_expires_at_ms`], rounded down,
    /// so the token works at least until `issued_at_s` + the answer (as `expires_in` counts
    /// from `iat`).
    pub fn refresh_expires_in(&self, issued_at_s: i64) -> i64 {
        (self.refresh_expires_at_ms().div_euclid(1000) - issued_at_s).max(0)
    }

    /// Whether the token stored under `hash` is one of the family's live tokens.
    pub fn holds(&self, hash: &[u8; 32]) -> bool {
        self.token_hashes
            .chunks_exact(32)
            .fold(false, |found, h| found | crate::util::ct_eq(h, hash))
    }

    /// Whether the family is revoked at `now_ms`. Only an operator's revocation
    /// (`RevokedByAdmin`, with a `grace_period`) can be scheduled for later; any other takes
    /// effect when it is written, whatever time it carries (concurrent requests read the clock
    /// at slightly different moments).
    pub fn is_revoked(&self, now_ms: i64) -> bool {
        match self.revoked_at_ms {
            None => false,
            Some(at) => at <= now_ms || self.revoked_reason != Some(RevocationReason::RevokedByAdmin),
        }
    }

    /// When an operator's scheduled revocation (a `grace_period`) ends this live family, if one
    /// does.
    pub fn scheduled_end(&self, now_ms: i64) -> Option<i64> {
        self.revoked_at_ms.filter(|at| *at > now_ms && !self.is_revoked(now_ms))
    }

    pub fn is_active(&self, now_ms: i64) -> bool {
        !self.is_revoked(now_ms) && now_ms < self.absolute_expires_at_ms
    }
}

/// A signing key as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 DER, or `enc:` + AES-256-GCM ciphertext when an encryption key is configured.
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at_ms: i64,
    /// When it stopped signing (a newer key became active); `None` while active.
    pub retired_at_ms: Option<i64>,
}

/// A device authorization (RFC 8628): the device code only as its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCode {
    pub device_hash: Vec<u8>,
    /// Eight characters of the unambiguous alphabet, stored without the dash.
    pub user_code: String,
    pub client_id: String,
    pub scope: crate::domain::scope::Scope,
    /// `pending`, `approved`, `denied` or `consumed`.
    pub status: DeviceStatus,
    pub interval_s: i64,
    pub last_poll_ms: Option<i64>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub auth_time: Option<i64>,
    pub family_id: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A security-relevant event, written in the same transaction as what it records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub family_id: Option<String>,
    pub detail: Option<String>,
}

impl AuditEvent {
    /// A detected refresh-token reuse: generation `presented` of `family` came back when the
    /// family was at `current`.
    pub fn refresh_reuse(family: &Family, presented: i64, current: i64) -> AuditEvent {
        AuditEvent {
            kind: AuditKind::RefreshReuseDetected,
            client_id: Some(family.client_id.clone()),
            user_id: Some(family.user_id.clone()),
            family_id: Some(family.id.clone()),
            detail: Some(format!(
                "{{\"presented_generation\":{presented},\"current_generation\":{current}}}"
            )),
        }
    }

    /// An operator revoked `count` grants of a client or of a user through the admin API, taking
    /// effect after `grace_ms`.
    pub fn grants_revoked(client_id: Option<&str>, user_id: Option<&str>, count: u64, grace_ms: i64) -> AuditEvent {
        AuditEvent {
            kind: AuditKind::GrantsRevoked,
            client_id: client_id.map(str::to_owned),
            user_id: user_id.map(str::to_owned),
            family_id: None,
            detail: Some(format!(
                "{{\"revoked_grants\":{count},\"grace_period\":{}}}",
                grace_ms / 1000
            )),
        }
    }

    /// A second redemption of `code`, whose first created `family_id`.
    pub fn code_replay(code: &AuthCode, family_id: &str) -> AuditEvent {
        AuditEvent {
            kind: AuditKind::CodeReplayDetected,
            client_id: Some(code.client_id.clone()),
            user_id: Some(code.user_id.clone()),
            family_id: Some(family_id.to_string()),
            detail: None,
        }
    }
}

#[cfg(test)]
mod grant_type_tests {
    use super::*;

    #[test]
    fn grant_types_round_trip_and_unknown_ones_are_none() {
        for &g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(g));
        }
        assert_eq!(GRANT_TYPES.len(), GrantType::ALL.len());
        assert!(GRANT_TYPES.iter().all(|g| GrantType::parse(g).is_some()));
        for unknown in [
            "password",
            "implicit",
            "",
            "Refresh_Token",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ] {
            assert_eq!(GrantType::parse(unknown), None, "{unknown}");
        }
    }
}
