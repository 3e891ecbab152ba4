//! Typed configuration: defaults, then a TOML file, then `AUTIONAL_*` environment variables
//! (`AUTIONAL_<SECTION>__<KEY>`), then command-line flags. Validated once at start-up; a bad
//! value stops the process with one line naming the key and the problem.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A duration given as whole seconds (`90`) or with a unit suffix (`90s`, `15m`, `2h`, `14d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub fn as_secs(self) -> i64 {
        self.0.as_secs() as i64
    }
    pub fn as_ms(self) -> i64 {
        self.0.as_millis() as i64
    }
}

/// Parses `90`, `90s`, `15m`, `2h`, `14d`.
pub fn parse_duration(s: &str) -> Result<Dur, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (use whole seconds or 90s, 15m, 2h, 14d)"))?;
    n.checked_mul(mult)
        .map(Dur::secs)
        .ok_or_else(|| format!("`{s}` is too large"))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: whole seconds or a number with s, m, h or d")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur::secs(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(Dur::secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0.as_secs())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub database_url: String,
    pub issuer: String,
    pub listen: String,
    pub refresh: RefreshConfig,
    pub access_token: TtlConfig,
    pub id_token: TtlConfig,
    pub code: TtlConfig,
    pub session: TtlConfig,
    pub dpop: DpopConfig,
    pub authorization_details: AuthorizationDetailsConfig,
    pub scopes: ScopesConfig,
    pub device: DeviceConfig,
    pub par: ParConfig,
    pub rate_limit: RateLimitConfig,
    pub registration: RegistrationConfig,
    pub keys: KeysConfig,
    pub client_secret: ClientSecretConfig,
    pub store: StoreConfig,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub client_auth: ClientAuthConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub events: EventsConfig,
}

/// Events pushed to relying parties: Back-Channel Logout tokens, through the outbox and the
/// delivery worker (docs/design/events.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    /// Destinations a receiver URL may reach although they are not public addresses: CIDRs,
    /// addresses or host names, as `client_auth.jwks_fetch_allow` (a list of its own: receivers
    /// and key servers are different trust decisions).
    #[serde(deserialize_with = "string_list")]
    pub receiver_allow: Vec<String>,
    /// Whether a receiver URL may be http on a loopback host (development); https otherwise.
    pub allow_http_loopback: bool,
    /// One delivery, whole: connect, request, response.
    pub timeout: Dur,
    /// Largest response body read from a receiver (the rest is not read).
    pub max_response_bytes: usize,
    /// How long after it was written an undelivered event is marked failed.
    pub max_age: Dur,
    /// The first retry's back-off, milliseconds; doubled at each further attempt, with jitter.
    pub retry_base_ms: u64,
    /// The longest back-off between two attempts.
    pub retry_max: Dur,
    /// Deliveries in progress to one receiver (scheme, host and port) at once, per process.
    pub per_receiver: usize,
    /// Events one worker claims at once.
    pub batch: usize,
    /// How often the worker looks for due events, milliseconds.
    pub poll_ms: u64,
    /// Lifetime of a signed Logout Token (`exp` − `iat`).
    pub token_ttl: Dur,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            receiver_allow: Vec::new(),
            allow_http_loopback: false,
            timeout: Dur::secs(5),
            max_response_bytes: 16 * 1024,
            max_age: Dur::secs(86400),
            retry_base_ms: 1000,
            retry_max: Dur::secs(900),
            per_receiver: 4,
            batch: 32,
            poll_ms: 500,
            token_ttl: Dur::secs(120),
        }
    }
}

impl EventsConfig {
    /// How long a claimed event is this process's: its batch's deliveries to one receiver run
    /// `per_receiver` at a time, each bounded by `timeout`, plus a margin. Another process takes
    /// the event over only after this (a process that died mid-delivery).
    pub fn lease_ms(&self) -> i64 {
        let rounds = self.batch.div_ceil(self.per_receiver.max(1)) as i64;
        rounds.saturating_mul(self.timeout.as_ms()) + 5_000
    }

    fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, msg: &str| Err(format!("config error: events.{key}: {msg}"));
        if let Err(e) = crate::outbound::AddressPolicy::parse(&self.receiver_allow) {
            return bad("receiver_allow", &e);
        }
        if !(1..=60).contains(&self.timeout.as_secs()) {
            return bad("timeout", "must be between 1 s and 60 s");
        }
        if !(1024..=1024 * 1024).contains(&self.max_response_bytes) {
            return bad("max_response_bytes", "must be between 1024 and 1048576");
        }
        if self.max_age.as_secs() == 0 {
            return bad("max_age", "must be at least 1 s");
        }
        if !(10..=3_600_000).contains(&self.retry_base_ms) {
            return bad("retry_base_ms", "must be between 10 and 3600000");
        }
        if self.retry_max.as_ms() < self.retry_base_ms as i64 {
            return bad("retry_max", "must be at least retry_base_ms");
        }
        if !(1..=64).contains(&self.per_receiver) {
            return bad("per_receiver", "must be between 1 and 64");
        }
        if !(1..=1000).contains(&self.batch) {
            return bad("batch", "must be between 1 and 1000");
        }
        if !(50..=60_000).contains(&self.poll_ms) {
            return bad("poll_ms", "must be between 50 and 60000");
        }
        if !(10..=600).contains(&self.token_ttl.as_secs()) {
            return bad("token_ttl", "must be between 10 s and 600 s");
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdminConfig {
    /// Where the admin API (`/admin/oauth/...`, SPEC §8) is served: a listener of its own, never
    /// the public one. An empty value turns it off.
    pub listen: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some("127.0.0.1:8081".into()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HttpConfig {
    /// Trusted reverse proxies in front of the server: 0 uses the TCP peer address as the
    /// client's; N > 0 takes the N-th address from the right of `X-Forwarded-For` (the one the
    /// outermost trusted proxy saw). Used by the per-address rate limits.
    pub forwarded_hops: u32,
    /// How long a client may take to send a request's line and headers; also how long an idle
    /// keep-alive connection stays open waiting for its next request. See
    /// `docs/design/http-limits.md`.
    pub header_read_timeout: Dur,
    /// How long a client may take to send a request's whole body, counted from its headers.
    pub body_timeout: Dur,
    /// Connections served at once; at the cap the server stops accepting until one closes.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            forwarded_hops: 0,
            header_read_timeout: Dur::secs(10),
            body_timeout: Dur::secs(30),
            max_connections: 4096,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// Where Prometheus metrics (`GET /metrics`) are served: a separate listener, never the
    /// public one. Unset (the default): not served.
    pub listen: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshConfig {
    pub idle_ttl: Dur,
    pub absolute_ttl: Dur,
    pub reuse_grace_seconds: u32,
    pub reuse_grace_count: u32,
    /// The keys that authenticate refresh tokens (base64url, at least 32 bytes each): the
    /// first makes new tokens, every one verifies (docs/design/refresh-token-format.md). Empty
    /// (the default): one key generated and kept in the database, shared by every process.
    #[serde(default)]
    pub token_keys: Vec<String>,
}

impl RefreshConfig {
    /// The configured token keys' bytes (validated at load).
    pub fn token_key_bytes(&self) -> Vec<Vec<u8>> {
        self.token_keys
            .iter()
            .filter_map(|k| crate::util::b64url_decode(k))
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TtlConfig {
    pub ttl: Dur,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DpopConfig {
    pub require_nonce: bool,
    pub proof_max_age: Dur,
    /// A server nonce is valid for one to two windows of this length.
    pub nonce_window: Dur,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorizationDetailsConfig {
    /// The RAR types this server accepts (`authorization_details_types_supported`).
    pub types: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Lifetime of a device code / user code pair.
    pub ttl: Dur,
    /// The polling interval a device is told to keep.
    pub interval: Dur,
    /// User codes a remote address, and separately a signed-in user, may enter per minute on
    /// `/oauth/device` (lookups, approvals and denials all count).
    pub user_code_attempts_per_minute: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScopesConfig {
    /// API scopes besides the OpenID ones (for `client_credentials` and resource access).
    pub custom: Vec<String>,
    /// `aud` of access tokens that carry an API scope without its own entry in `audiences`
    /// (RFC 9068 §3): the identifier of the resource server(s). Unset: `<issuer>/api`.
    #[serde(default)]
    pub api_audience: Option<String>,
    /// Per API scope audiences, e.g. `"api.read" = "https://api.example"` (a TOML table).
    #[serde(default)]
    pub audiences: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParConfig {
    /// Lifetime of a pushed request's `request_uri`.
    pub ttl: Dur,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Token and refresh requests per second per client (sustained).
    pub token_per_second: u32,
    /// Token and refresh requests a client may send in a burst.
    pub token_burst: u32,
    /// Token and refresh requests per second per remote address (sustained).
    pub address_per_second: u32,
    pub address_burst: u32,
    /// Sign-in attempts per minute per remote address.
    pub login_per_minute: u32,
    /// Dynamic client registrations per hour per remote address.
    pub registration_per_hour: u32,
    /// Failed client authentications per minute per remote address (also the burst); an
    /// address over it gets 429 before its credentials are checked.
    pub failed_client_auth_per_minute: u32,
    /// Introspection and revocation requests per second per authenticated confidential client.
    pub introspection_per_second: u32,
    pub introspection_burst: u32,
    /// Most keys (addresses, clients, accounts, users) each limiter remembers; beyond it the
    /// keys closest to a full budget are forgotten first.
    pub max_keys: usize,
    /// Failed sign-ins of one account (from anywhere) before back-off starts; always on.
    pub account_free_failures: u32,
    /// Longest back-off between sign-in attempts of one account (1 s, doubling up to this).
    pub account_max_backoff: Dur,
    /// Password hashes computed at once (0 = the number of CPUs); always on.
    pub max_concurrent_hashes: usize,
    /// How long a sign-in waits for a free hash slot before a 503 (milliseconds).
    pub hash_wait_ms: u64,
}

/// Open dynamic registration (RFC 7591) and the policy for its anonymous registrants.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegistrationConfig {
    pub enabled: bool,
    /// Grant types an anonymous registrant may ask for (default: the user-facing ones;
    /// `client_credentials` would let anyone mint API tokens without a user).
    pub allowed_grant_types: Vec<String>,
    /// Scopes an anonymous registrant may ask for (default: the OpenID user scopes; API scopes
    /// from `scopes.custom` only when listed here).
    pub allowed_scopes: Vec<String>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            enabled: false,
            allowed_grant_types: vec![
                "authorization_code".into(),
                "refresh_token".into(),
                "urn:ietf:params:oauth:grant-type:device_code".into(),
            ],
            allowed_scopes: crate::domain::scope::SUPPORTED.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeysConfig {
    /// Base64 of 32 bytes: when set, private signing keys are stored AES-256-GCM encrypted.
    pub encryption_key: Option<String>,
    /// How often each process looks for keys rotated by another (`autional key rotate`).
    pub reload_interval: Dur,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            encryption_key: None,
            reload_interval: Dur::secs(10),
        }
    }
}

/// Fetching `private_key_jwt` clients' keys from their `jwks_uri` (docs/design/jwks-fetch.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientAuthConfig {
    /// Destinations a `jwks_uri` may reach although they are not public addresses: CIDRs
    /// (`10.0.0.0/8`), addresses, or host names (all of whose addresses are then allowed).
    /// A list, or one string with entries separated by commas or spaces.
    #[serde(deserialize_with = "string_list")]
    pub jwks_fetch_allow: Vec<String>,
    /// Whole fetch: connect, request, body.
    pub jwks_fetch_timeout: Dur,
    /// Largest JWK Set document; a body is not read past this.
    pub jwks_fetch_max_bytes: usize,
    /// Fetches in progress at once per process; past that a token request answers 503.
    pub jwks_fetch_concurrency: usize,
    /// How long a fetched set is used before it is fetched again.
    pub jwks_cache_ttl: Dur,
    /// Most key URLs cached per process.
    pub jwks_cache_entries: usize,
}

impl Default for ClientAuthConfig {
    fn default() -> Self {
        ClientAuthConfig {
            jwks_fetch_allow: Vec::new(),
            jwks_fetch_timeout: Dur::secs(5),
            jwks_fetch_max_bytes: 64 * 1024,
            jwks_fetch_concurrency: 8,
            jwks_cache_ttl: Dur::secs(300),
            jwks_cache_entries: 1000,
        }
    }
}

/// A list of strings, given as a list or as one string separated by commas or whitespace.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        One(String),
        Many(Vec<String>),
    }
    Ok(match L::deserialize(d)? {
        L::One(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        L::Many(v) => v,
    })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientSecretConfig {
    /// How long a rotated-out client secret keeps working.
    pub rotation_overlap: Dur,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Most jobs the SQLite writer commits in one transaction (group commit).
    pub max_batch: usize,
    /// Read-only SQLite connections (each on its own thread).
    pub readers: usize,
    /// How often expired rows are swept.
    pub sweep_interval: Dur,
    /// PostgreSQL connections per server process.
    pub pg_pool_size: usize,
    /// How many families a PostgreSQL server process remembers after rotating them, so that
    /// their next refresh is one round trip (`store::recent`); 0 turns it off.
    pub pg_recent_families: usize,
    /// How long ended sessions, revoked families and expired codes are kept before the sweeper
    /// deletes them.
    pub sweep_retention: Dur,
    /// How long audit events are kept.
    pub audit_retention: Dur,
    /// The longest a request waits for one database operation; past it the request gets 503
    /// `temporarily_unavailable` and, for a second, further operations fail at once
    /// (`store::guard`).
    pub timeout: Dur,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://./autional.db".into(),
            issuer: "http://127.0.0.1:8080".into(),
            listen: "127.0.0.1:8080".into(),
            refresh: RefreshConfig {
                idle_ttl: Dur::secs(14 * 86400),
                absolute_ttl: Dur::secs(90 * 86400),
                reuse_grace_seconds: 0,
                reuse_grace_count: 1,
                token_keys: vec![],
            },
            access_token: TtlConfig { ttl: Dur::secs(900) },
            id_token: TtlConfig { ttl: Dur::secs(3600) },
            code: TtlConfig { ttl: Dur::secs(60) },
            session: TtlConfig {
                ttl: Dur::secs(14 * 86400),
            },
            dpop: DpopConfig {
                require_nonce: false,
                proof_max_age: Dur::secs(60),
                nonce_window: Dur::secs(300),
            },
            authorization_details: AuthorizationDetailsConfig {
                types: vec!["account_information".into(), "payment_initiation".into()],
            },
            par: ParConfig { ttl: Dur::secs(90) },
            device: DeviceConfig {
                ttl: Dur::secs(600),
                interval: Dur::secs(5),
                user_code_attempts_per_minute: 10,
            },
            scopes: ScopesConfig {
                custom: vec!["api.read".into(), "api.write".into()],
                api_audience: None,
                audiences: Default::default(),
            },
            rate_limit: RateLimitConfig {
                enabled: true,
                token_per_second: 200,
                token_burst: 400,
                address_per_second: 1000,
                address_burst: 2000,
                login_per_minute: 20,
                registration_per_hour: 10,
                failed_client_auth_per_minute: 60,
                introspection_per_second: 500,
                introspection_burst: 1000,
                max_keys: 100_000,
                account_free_failures: 5,
                account_max_backoff: Dur::secs(60),
                max_concurrent_hashes: 0,
                hash_wait_ms: 1000,
            },
            registration: RegistrationConfig::default(),
            keys: KeysConfig::default(),
            client_secret: ClientSecretConfig {
                rotation_overlap: Dur::secs(4 * 3600),
            },
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            client_auth: ClientAuthConfig::default(),
            admin: AdminConfig::default(),
            events: EventsConfig::default(),
            store: StoreConfig {
                max_batch: 256,
                readers: 2,
                sweep_interval: Dur::secs(60),
                pg_pool_size: 16,
                pg_recent_families: 32_768,
                sweep_retention: Dur::secs(3600),
                audit_retention: Dur::secs(90 * 86400),
                timeout: Dur::secs(3),
            },
        }
    }
}

/// Where the data lives, parsed from `database_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Config {
    /// Loads defaults ← TOML file ← environment ← flags, then validates.
    pub fn load(file: Option<&Path>, database_url: Option<&str>) -> Result<Config, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config error: file {} does not exist", path.display()));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed("AUTIONAL_").split("__"));
        let mut cfg: Config = fig.extract().map_err(|e| {
            let first = e.into_iter().next();
            match first {
                Some(err) => {
                    let key = err.path.join(".");
                    let mut kind = err.kind.to_string();
                    if let Some(stripped) = kind.strip_prefix("invalid type: ") {
                        kind = format!("invalid value: {stripped}");
                    }
                    if key.is_empty() {
                        format!("config error: {kind}")
                    } else {
                        format!("config error: {key}: {kind}")
                    }
                }
                None => "config error: invalid configuration".to_string(),
            }
        })?;
        if let Some(url) = database_url {
            cfg.database_url = url.to_string();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&mut self) -> Result<(), String> {
        let bad = |key: &str, msg: String| Err(format!("config error: {key}: {msg}"));
        let issuer = match url::Url::parse(&self.issuer) {
            Ok(u) => u,
            Err(e) => return bad("issuer", format!("`{}` is not a URL ({e})", self.issuer)),
        };
        if !matches!(issuer.scheme(), "http" | "https") || issuer.query().is_some() || issuer.fragment().is_some() {
            return bad("issuer", "must be an http(s) URL without query or fragment".into());
        }
        self.issuer = self.issuer.trim_end_matches('/').to_string();
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad(
                "listen",
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            );
        }
        if let Some(m) = &self.metrics.listen {
            if m.parse::<SocketAddr>().is_err() {
                return bad("metrics.listen", format!("`{m}` is not an address like 127.0.0.1:9100"));
            }
            if *m == self.listen {
                return bad(
                    "metrics.listen",
                    "must differ from listen (metrics are not public)".into(),
                );
            }
        }
        if self.admin.listen.as_deref().is_some_and(|a| a.trim().is_empty()) {
            self.admin.listen = None;
        }
        if let Some(a) = &self.admin.listen {
            if a.parse::<SocketAddr>().is_err() {
                return bad("admin.listen", format!("`{a}` is not an address like 127.0.0.1:8081"));
            }
            if *a == self.listen || self.metrics.listen.as_ref() == Some(a) {
                return bad(
                    "admin.listen",
                    "must differ from listen and metrics.listen (the admin API is not public)".into(),
                );
            }
        }
        if self.http.header_read_timeout.as_secs() == 0 || self.http.body_timeout.as_secs() == 0 {
            return bad(
                "http.header_read_timeout",
                "http timeouts must be greater than zero".into(),
            );
        }
        if self.http.max_connections == 0 || self.http.max_connections > 1_000_000 {
            return bad("http.max_connections", "must be between 1 and 1000000".into());
        }
        self.database_location()?;
        use crate::domain::grace::{check, Setting};
        for (key, setting, value) in [
            (
                "refresh.reuse_grace_seconds",
                Setting::Seconds,
                self.refresh.reuse_grace_seconds,
            ),
            (
                "refresh.reuse_grace_count",
                Setting::Count,
                self.refresh.reuse_grace_count,
            ),
        ] {
            if let Err(e) = check(setting, i64::from(value)) {
                return bad(key, e);
            }
        }
        if self
            .refresh
            .token_keys
            .iter()
            .any(|k| crate::util::b64url_decode(k).is_none_or(|b| b.len() < 32))
        {
            return bad(
                "refresh.token_keys",
                "each key must be base64url (no padding) of at least 32 bytes".into(),
            );
        }
        if self.refresh.idle_ttl.as_secs() == 0 {
            return bad("refresh.idle_ttl", "must be greater than zero".into());
        }
        if self.refresh.absolute_ttl.as_secs() < self.refresh.idle_ttl.as_secs().min(1) {
            return bad("refresh.absolute_ttl", "must be greater than zero".into());
        }
        for (key, d) in [
            ("access_token.ttl", self.access_token.ttl),
            ("id_token.ttl", self.id_token.ttl),
            ("code.ttl", self.code.ttl),
            ("session.ttl", self.session.ttl),
            ("dpop.proof_max_age", self.dpop.proof_max_age),
            ("dpop.nonce_window", self.dpop.nonce_window),
            ("par.ttl", self.par.ttl),
        ] {
            if d.as_secs() == 0 {
                return bad(key, "must be greater than zero".into());
            }
        }
        if self.rate_limit.token_per_second == 0 || self.rate_limit.token_burst == 0 {
            return bad(
                "rate_limit.token_per_second",
                "limits must be greater than zero (set rate_limit.enabled = false to turn them off)".into(),
            );
        }
        if self.rate_limit.address_per_second == 0 || self.rate_limit.address_burst == 0 {
            return bad(
                "rate_limit.address_per_second",
                "limits must be greater than zero".into(),
            );
        }
        for (key, n) in [
            ("rate_limit.login_per_minute", self.rate_limit.login_per_minute),
            (
                "rate_limit.registration_per_hour",
                self.rate_limit.registration_per_hour,
            ),
            (
                "rate_limit.failed_client_auth_per_minute",
                self.rate_limit.failed_client_auth_per_minute,
            ),
            (
                "rate_limit.introspection_per_second",
                self.rate_limit.introspection_per_second,
            ),
            ("rate_limit.introspection_burst", self.rate_limit.introspection_burst),
            (
                "device.user_code_attempts_per_minute",
                self.device.user_code_attempts_per_minute,
            ),
        ] {
            if n == 0 {
                return bad(key, "must be greater than zero".into());
            }
        }
        if self.rate_limit.max_keys < 1000 {
            return bad(
                "rate_limit.max_keys",
                format!("{} is below the minimum of 1000", self.rate_limit.max_keys),
            );
        }
        let backoff = self.rate_limit.account_max_backoff.as_secs();
        if !(1..=3600).contains(&backoff) {
            return bad("rate_limit.account_max_backoff", "must be between 1s and 1h".into());
        }
        if self.rate_limit.max_concurrent_hashes > 1024 {
            return bad(
                "rate_limit.max_concurrent_hashes",
                "must be at most 1024 (0 = the number of CPUs)".into(),
            );
        }
        if self.rate_limit.hash_wait_ms > 30_000 {
            return bad("rate_limit.hash_wait_ms", "must be at most 30000".into());
        }
        if self.store.timeout.0.is_zero() {
            return bad("store.timeout", "must be at least 1s".into());
        }
        if self.store.max_batch == 0 || self.store.readers == 0 || self.store.pg_pool_size == 0 {
            return bad("store.max_batch", "store sizes must be greater than zero".into());
        }
        self.validate_scopes_and_registration()?;
        let ca = &self.client_auth;
        if let Err(e) = crate::outbound::AddressPolicy::parse(&ca.jwks_fetch_allow) {
            return bad("client_auth.jwks_fetch_allow", e);
        }
        if ca.jwks_fetch_timeout.as_secs() == 0 || ca.jwks_fetch_timeout.as_secs() > 60 {
            return bad("client_auth.jwks_fetch_timeout", "must be between 1 s and 60 s".into());
        }
        if !(1024..=1024 * 1024).contains(&ca.jwks_fetch_max_bytes) {
            return bad(
                "client_auth.jwks_fetch_max_bytes",
                "must be between 1024 and 1048576".into(),
            );
        }
        if ca.jwks_fetch_concurrency == 0 || ca.jwks_cache_entries == 0 || ca.jwks_cache_ttl.as_secs() == 0 {
            return bad(
                "client_auth.jwks_fetch_concurrency",
                "jwks_fetch_concurrency, jwks_cache_entries and jwks_cache_ttl must be greater than zero".into(),
            );
        }
        self.events.validate()?;
        if let Some(k) = &self.keys.encryption_key {
            match crate::util::b64_decode(k) {
                Some(bytes) if bytes.len() == 32 => {}
                _ => return bad("keys.encryption_key", "must be base64 of exactly 32 bytes".into()),
            }
        }
        Ok(())
    }

    /// `scopes.*` audiences and the `registration.*` policy.
    fn validate_scopes_and_registration(&mut self) -> Result<(), String> {
        let bad = |key: &str, msg: String| Err(format!("config error: {key}: {msg}"));
        let absolute = |u: &str| url::Url::parse(u).is_ok_and(|p| p.fragment().is_none());
        let api = self
            .scopes
            .api_audience
            .get_or_insert_with(|| format!("{}/api", self.issuer.trim_end_matches('/')));
        if !absolute(api) {
            return bad("scopes.api_audience", format!("`{api}` is not an absolute URI"));
        }
        if let Some((s, owner)) = self
            .scopes
            .custom
            .iter()
            .find_map(|s| crate::domain::registration::Profile::reserving(s).map(|p| (s, p)))
        {
            return bad("scopes.custom", format!("`{s}` is reserved for {}", owner.holders()));
        }
        for (scope, aud) in &self.scopes.audiences {
            if !self.scopes.custom.contains(scope) {
                return bad("scopes.audiences", format!("`{scope}` is not one of scopes.custom"));
            }
            if !absolute(aud) {
                return bad("scopes.audiences", format!("`{aud}` is not an absolute URI"));
            }
        }
        for g in &self.registration.allowed_grant_types {
            if !crate::domain::model::GRANT_TYPES.contains(&g.as_str()) {
                return bad(
                    "registration.allowed_grant_types",
                    format!("`{g}` is not a supported grant type"),
                );
            }
        }
        for s in &self.registration.allowed_scopes {
            if !crate::domain::scope::SUPPORTED.contains(&s.as_str()) && !self.scopes.custom.contains(s) {
                return bad(
                    "registration.allowed_scopes",
                    format!("`{s}` is neither an OpenID scope nor one of scopes.custom"),
                );
            }
        }
        Ok(())
    }

    /// The audiences access tokens are issued for (see `domain::audience`).
    pub fn audiences(&self) -> crate::domain::audience::Audiences {
        let api_default = self
            .scopes
            .api_audience
            .clone()
            .unwrap_or_else(|| format!("{}/api", self.issuer));
        crate::domain::audience::Audiences::new(
            &self.issuer,
            &format!("{}{}", self.issuer, crate::paths::USERINFO),
            &self.scopes.custom,
            &api_default,
            &self.scopes.audiences,
        )
    }

    pub fn database_location(&self) -> Result<DatabaseLocation, String> {
        let url = &self.database_url;
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() {
                return Err("config error: database_url: the sqlite URL has no file path".into());
            }
            return Ok(DatabaseLocation::Sqlite(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            if !rest.is_empty() {
                return Ok(DatabaseLocation::Sqlite(PathBuf::from(rest)));
            }
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if url.parse::<tokio_postgres::Config>().is_err() {
                return Err("config error: database_url: not a valid PostgreSQL URL".into());
            }
            return Ok(DatabaseLocation::Postgres(url.clone()));
        }
        Err(format!(
            "config error: database_url: `{url}` is not supported (use sqlite://PATH or postgres://…)"
        ))
    }

    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Dur::secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Dur::secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Dur::secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Dur::secs(7200));
        assert_eq!(parse_duration("14d").unwrap(), Dur::secs(14 * 86400));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("-5").is_err());
    }

    #[test]
    fn audiences_and_registration_policy_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "issuer = \"https://as.example/\"\n[scopes]\ncustom = [\"api.read\", \"api.write\"]\n\
             [scopes.audiences]\n\"api.write\" = \"https://writer.example\"\n\
             [registration]\nallowed_scopes = [\"openid\", \"api.read\"]\n",
        )
        .unwrap();
        let cfg = Config::load(Some(&file), Some("sqlite:///tmp/x.db")).unwrap();
        assert_eq!(cfg.scopes.api_audience.as_deref(), Some("https://as.example/api"));
        assert_eq!(cfg.registration.allowed_scopes, ["openid", "api.read"]);
        assert!(!cfg
            .registration
            .allowed_grant_types
            .iter()
            .any(|g| g == "client_credentials"));
        let aud = |s: &str| {
            cfg.audiences()
                .for_scope(&crate::domain::scope::Scope::parse(s).unwrap())
        };
        assert_eq!(aud("api.read"), ["https://as.example/api"]);
        assert_eq!(aud("api.write"), ["https://writer.example"]);
        assert_eq!(aud("openid"), ["https://as.example/oauth/userinfo"]);
        std::fs::write(&file, "[scopes.audiences]\n\"api.nope\" = \"https://x.example\"\n").unwrap();
        let e = Config::load(Some(&file), Some("sqlite:///tmp/x.db")).unwrap_err();
        assert!(e.contains("scopes.audiences"), "{e}");
    }

    #[test]
    fn refresh_token_keys_must_be_base64url_of_at_least_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let load = |keys: &str| {
            std::fs::write(&file, format!("[refresh]\ntoken_keys = {keys}\n")).unwrap();
            Config::load(Some(&file), Some("sqlite:///tmp/x.db"))
        };
        let good = crate::util::b64url(&[7u8; 32]);
        let short = crate::util::b64url(&[7u8; 31]);
        let cfg = load(&format!("[\"{good}\"]")).unwrap();
        assert_eq!(cfg.refresh.token_key_bytes(), [vec![7u8; 32]]);
        for bad in [format!("[\"{good}\", \"{short}\"]"), "[\"not base64!\"]".into()] {
            let e = load(&bad).unwrap_err();
            assert!(e.contains("refresh.token_keys"), "{bad}: {e}");
        }
        assert!(load("[]").unwrap().refresh.token_key_bytes().is_empty());
    }

    #[test]
    fn sqlite_urls_map_to_paths() {
        let mut c = Config {
            database_url: "sqlite:///tmp/x.db".into(),
            ..Config::default()
        };
        assert_eq!(
            c.database_location().unwrap(),
            DatabaseLocation::Sqlite("/tmp/x.db".into())
        );
        c.database_url = "mysql://x".into();
        assert!(c.database_location().is_err());
    }

    #[test]
    fn jwks_fetch_allow_takes_a_list_or_a_string_and_is_validated() {
        let load = |v: &str| {
            let fig = Figment::from(Serialized::defaults(Config::default()))
                .merge(Serialized::default("client_auth.jwks_fetch_allow", v));
            let mut c: Config = fig.extract().map_err(|e| e.to_string())?;
            c.validate().map(|_| c.client_auth.jwks_fetch_allow)
        };
        assert_eq!(
            load("127.0.0.0/8, keys.internal").unwrap(),
            vec!["127.0.0.0/8".to_string(), "keys.internal".to_string()]
        );
        assert!(load("10.0.0.0/99").is_err());
        assert!(Config::default().client_auth.jwks_fetch_allow.is_empty());
    }

    #[test]
    fn events_settings_are_validated() {
        let load = |k: &str, v: serde_json::Value| {
            let fig = Figment::from(Serialized::defaults(Config::default())).merge(Serialized::default(k, v));
            let mut c: Config = fig.extract().map_err(|e| e.to_string())?;
            c.validate().map(|_| c.events)
        };
        assert_eq!(
            load("events.receiver_allow", "127.0.0.1, ::1".into())
                .unwrap()
                .receiver_allow,
            ["127.0.0.1", "::1"]
        );
        for (k, v) in [
            ("events.receiver_allow", serde_json::json!("10.0.0.0/99")),
            ("events.timeout", serde_json::json!(0)),
            ("events.max_age", serde_json::json!(0)),
            ("events.per_receiver", serde_json::json!(0)),
            ("events.token_ttl", serde_json::json!("1h")),
            ("events.retry_max", serde_json::json!(0)),
        ] {
            let e = load(k, v).unwrap_err();
            assert!(e.contains(k), "{k}: {e}");
        }
        assert_eq!(EventsConfig::default().lease_ms(), 8 * 5000 + 5000);
    }
}
