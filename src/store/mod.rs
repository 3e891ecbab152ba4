//! Storage: one trait whose methods are the server's atomic domain operations
//! (`rotate_refresh`, `redeem_code`, `revoke_family`, …). Each backend implements every method
//! as one transaction, calling the pure rules of `domain::grant` between its read and its
//! write, so atomicity lives in one place per backend and the grant modules never see SQL.

pub mod guard;
pub mod ops;
pub mod postgres;
pub mod rows;
pub mod sql;
pub mod sql_store;
pub mod sqlite;
mod sqlite_writer;

use crate::domain::device::Poll;
use crate::domain::grant::{RefreshPolicy, Reject};
use crate::domain::model::{AuditEvent, AuthCode, Client, DeviceCode, Family, KeyRecord, SecretHash, Session, User};
use crate::domain::scope::Scope;
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database answered with an error: down, unreachable, disk full, read-only, I/O.
    #[error("storage failure: {0}")]
    Backend(String),
    /// The database did not answer in time, or recently did not (see `store::guard`).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the error says the database is failing, not that the request conflicted.
    pub fn is_outage(&self) -> bool {
        !matches!(self, StoreError::Conflict(_))
    }
}

/// Every failure of the database is a dependency failure for the client: 503
/// `temporarily_unavailable` with `Retry-After`, never a 500 (a conflict that reaches a caller is
/// a bug of ours: 500). Logged here, once, without request data.
impl From<StoreError> for crate::domain::error::OAuthError {
    fn from(e: StoreError) -> Self {
        if e.is_outage() {
            tracing::warn!(error = %e, "store unavailable");
            metrics::counter!("autional_store_unavailable_total").increment(1);
            crate::domain::error::OAuthError::temporarily_unavailable()
        } else {
            tracing::error!(error = %e, "unexpected store conflict");
            crate::domain::error::OAuthError::server_error()
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
            if f.code == rusqlite::ErrorCode::ConstraintViolation {
                return StoreError::Conflict(msg.clone().unwrap_or_default());
            }
        }
        StoreError::Backend(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A new family to create when a code is redeemed.
#[derive(Clone, Debug)]
pub struct NewFamily {
    pub id: String,
    /// SHA-256 of the first refresh token, when the client may refresh.
    pub refresh_hash: Option<[u8; 32]>,
    pub idle_ttl_ms: i64,
    pub absolute_ttl_ms: i64,
    pub dpop_jkt: Option<String>,
    pub user_agent: Option<String>,
}

impl NewFamily {
    /// The family row for a grant of `user_id` to `client_id` (see `domain::grant::new_family`).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &self,
        client_id: &str,
        user_id: &str,
        scope: &Scope,
        details: Option<&str>,
        session_id: &str,
        auth_time: i64,
        now_ms: i64,
    ) -> Family {
        crate::domain::grant::new_family(crate::domain::grant::FamilySeed {
            id: &self.id,
            client_id,
            user_id,
            scope,
            authorization_details: details,
            dpop_jkt: self.dpop_jkt.as_deref(),
            session_id,
            auth_time,
            idle_ttl_ms: self.idle_ttl_ms,
            absolute_ttl_ms: self.absolute_ttl_ms,
            user_agent: self.user_agent.as_deref(),
            now_ms,
        })
    }
}

#[derive(Clone, Debug)]
pub struct RedeemCode {
    pub code_hash: [u8; 32],
    pub client_id: String,
    /// Thumbprint of the DPoP proof's key, when the request carried one.
    pub dpop_jkt: Option<String>,
    /// The proof's replay key and when it can be forgotten (recorded in the same transaction).
    pub dpop_jti: Option<([u8; 32], i64)>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub now_ms: i64,
    pub family: NewFamily,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedeemOutcome {
    Issued {
        code: Box<AuthCode>,
        family: Box<Family>,
    },
    /// A second use: the family it issued (if any) has been revoked.
    Replayed,
    Rejected(&'static str),
    NotFound,
}

#[derive(Clone, Debug)]
pub struct RotateRequest {
    pub presented_hash: [u8; 32],
    pub new_hash: [u8; 32],
    pub client_id: String,
    pub requested_scope: Option<Scope>,
    pub requested_details: Option<Vec<crate::domain::rar::Detail>>,
    pub dpop_jkt: Option<String>,
    pub dpop_jti: Option<([u8; 32], i64)>,
    pub policy: RefreshPolicy,
    pub now_ms: i64,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// A new refresh token (`new_hash`) was committed; `family` is the row after the change.
    Issued {
        family: Box<Family>,
        grace: bool,
    },
    /// The token had been rotated: the family is now revoked and the event audited.
    Reused {
        family_id: String,
    },
    Rejected(Reject),
    NotFound,
}

/// A pushed authorization request (RFC 9126), stored under the SHA-256 of its `request_uri`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParRequest {
    pub hash: [u8; 32],
    pub client_id: String,
    /// The authorization request's parameters, form-encoded.
    pub params: String,
    pub expires_at_ms: i64,
    /// Set when an authorization response was sent for it: then it cannot be used again.
    pub used_at_ms: Option<i64>,
}

/// A device-code poll at the token endpoint.
#[derive(Clone, Debug)]
pub struct PollDevice {
    pub device_hash: [u8; 32],
    pub client_id: String,
    pub now_ms: i64,
    /// The family to create when the user has approved.
    pub family: NewFamily,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// Not (yet) issuable; pending polls were recorded (and `SlowDown` widened the interval).
    Poll(Poll),
    /// Approved: the code is consumed and the family created.
    Issued {
        device: Box<DeviceCode>,
        family: Box<Family>,
    },
    NotFound,
}

/// What the sweeper deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub codes: u64,
    pub sessions: u64,
    pub families: u64,
    pub refresh_tokens: u64,
    pub revoked_access_tokens: u64,
    pub audit_events: u64,
    pub dpop_jtis: u64,
    pub par_requests: u64,
    pub device_codes: u64,
}

/// How long the sweeper keeps what has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepPolicy {
    /// Ended sessions, revoked families and expired codes.
    pub retention_ms: i64,
    /// Audit events.
    pub audit_retention_ms: i64,
}

/// Which cut-off a sweep rule compares with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cutoff {
    /// Expired now.
    Now,
    /// Ended longer ago than `SweepPolicy::retention_ms`.
    Retention,
    /// Older than `SweepPolicy::audit_retention_ms`.
    Audit,
}

impl Cutoff {
    pub fn at(self, now_ms: i64, p: SweepPolicy) -> i64 {
        match self {
            Cutoff::Now => now_ms,
            Cutoff::Retention => now_ms - p.retention_ms,
            Cutoff::Audit => now_ms - p.audit_retention_ms,
        }
    }
}

/// Rows the sweeper deletes per table in one transaction, so that a large backlog never holds
/// the writer (or row locks) for long.
pub const SWEEP_CHUNK: u64 = 500;

impl SweepReport {
    pub fn add(&mut self, o: SweepReport) {
        self.codes += o.codes;
        self.sessions += o.sessions;
        self.families += o.families;
        self.refresh_tokens += o.refresh_tokens;
        self.revoked_access_tokens += o.revoked_access_tokens;
        self.audit_events += o.audit_events;
        self.dpop_jtis += o.dpop_jtis;
        self.par_requests += o.par_requests;
        self.device_codes += o.device_codes;
    }
    /// True when some table filled its chunk (there may be more to delete).
    pub fn full(&self) -> bool {
        self.codes >= SWEEP_CHUNK
            || self.sessions >= SWEEP_CHUNK
            || self.families >= SWEEP_CHUNK
            || self.revoked_access_tokens >= SWEEP_CHUNK
            || self.audit_events >= SWEEP_CHUNK
            || self.dpop_jtis >= SWEEP_CHUNK
            || self.par_requests >= SWEEP_CHUNK
            || self.device_codes >= SWEEP_CHUNK
            || self.refresh_tokens >= SWEEP_CHUNK
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ping(&self) -> Result<()>;

    async fn insert_client(&self, client: Client) -> Result<()>;
    async fn get_client(&self, id: &str) -> Result<Option<Client>>;
    async fn list_clients(&self) -> Result<Vec<Client>>;
    /// Deletes the client and revokes every family it holds.
    async fn delete_client(&self, id: &str, now_ms: i64) -> Result<bool>;
    async fn set_client_secrets(&self, id: &str, secrets: Vec<SecretHash>) -> Result<bool>;
    /// Replaces a client's metadata (RFC 7592 update); false when unknown.
    async fn update_client(&self, client: Client) -> Result<bool>;

    async fn insert_user(&self, user: User) -> Result<()>;
    async fn get_user(&self, id: &str) -> Result<Option<User>>;
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// Replaces a user's password hash, ends their sessions and revokes their families.
    async fn set_password(&self, user_id: &str, password_hash: &str, now_ms: i64) -> Result<bool>;
    /// Deletes a user: their families are revoked, sessions ended, consents and the user deleted.
    async fn delete_user(&self, user_id: &str, now_ms: i64) -> Result<bool>;
    /// Withdraws the user's consent to a client and revokes every family between them.
    async fn revoke_consent(&self, user_id: &str, client_id: &str, now_ms: i64) -> Result<u64>;
    /// The user's families that are not revoked (newest first).
    async fn list_user_families(&self, user_id: &str) -> Result<Vec<Family>>;
    /// Revokes one of the user's families; false when it is not theirs or already revoked.
    async fn revoke_user_family(
        &self,
        user_id: &str,
        family_id: &str,
        reason: crate::domain::model::RevocationReason,
        now_ms: i64,
    ) -> Result<bool>;

    async fn insert_device(&self, device: DeviceCode) -> Result<()>;
    async fn find_device(&self, user_code: &str) -> Result<Option<DeviceCode>>;
    /// Records the user's decision on a pending, unexpired code: `Some((user, session,
    /// auth_time))` approves, `None` denies. False when the code was not pending.
    async fn decide_device(
        &self,
        user_code: &str,
        approval: Option<(String, String, i64)>,
        now_ms: i64,
    ) -> Result<bool>;
    /// One poll, atomically: records it, or consumes the approved code and creates its family.
    async fn poll_device(&self, req: PollDevice) -> Result<DeviceOutcome>;

    async fn list_keys(&self) -> Result<Vec<KeyRecord>>;
    /// Adds a key and retires every other active key (rotation).
    async fn add_key(&self, key: KeyRecord) -> Result<()>;
    /// Adds `key` only when no active key exists (first start, race-free).
    async fn ensure_key(&self, key: KeyRecord) -> Result<()>;
    /// Returns the secret stored under `name`, storing `candidate` first if there is none.
    async fn server_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>>;

    async fn insert_session(&self, session: Session) -> Result<()>;
    async fn get_session_by_token(&self, token_hash: [u8; 32]) -> Result<Option<Session>>;
    /// Ends the session and revokes its session-bound families; returns how many.
    async fn end_session(&self, id: &str, now_ms: i64) -> Result<u64>;
    /// The user's sessions that have not ended (expired ones included; callers filter).
    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<Session>>;

    async fn get_consent(&self, user_id: &str, client_id: &str) -> Result<Option<String>>;
    async fn save_consent(&self, user_id: &str, client_id: &str, scope: &str, now_ms: i64) -> Result<()>;

    async fn insert_code(&self, code: AuthCode) -> Result<()>;
    /// Checks and consumes a code and creates its family in one transaction; a replay
    /// revokes the family the first redemption created.
    async fn redeem_code(&self, req: RedeemCode) -> Result<RedeemOutcome>;

    /// The refresh grant's atomic step: load, decide (`domain::grant::decide`), write.
    async fn rotate_refresh(&self, req: RotateRequest) -> Result<RotateOutcome>;
    /// A refresh token's generation and family, for introspection and revocation.
    async fn find_refresh(&self, hash: [u8; 32]) -> Result<Option<(i64, Family)>>;
    async fn get_family(&self, id: &str) -> Result<Option<Family>>;
    /// Revokes a family; false when it was unknown or already revoked.
    async fn revoke_family(
        &self,
        id: &str,
        reason: crate::domain::model::RevocationReason,
        now_ms: i64,
    ) -> Result<bool>;

    async fn revoke_access_token(&self, jti: &str, expires_at_ms: i64) -> Result<()>;
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool>;

    async fn audit(&self, event: AuditEvent, now_ms: i64) -> Result<()>;

    /// Records a DPoP proof's replay key until `expires_at_ms`; false when already seen.
    async fn use_dpop_jti(&self, key: [u8; 32], expires_at_ms: i64) -> Result<bool>;

    async fn insert_par(&self, request: ParRequest) -> Result<()>;
    async fn get_par(&self, hash: [u8; 32]) -> Result<Option<ParRequest>>;
    /// Marks a pushed request used (an authorization response went out); false when it already
    /// was, or has expired.
    async fn mark_par_used(&self, hash: [u8; 32], now_ms: i64) -> Result<bool>;

    /// Deletes what has expired (codes, sessions, families and their tokens, revocation
    /// entries, old audit events) so tables stay bounded: absolute-expired families at once;
    /// revoked families, ended sessions and expired codes after `policy.retention_ms`. Refresh
    /// token rows go with their family (PostgreSQL) or once their family's absolute lifetime
    /// has passed since they were written, never before the family's absolute expiry (SQLite).
    /// Works in chunks of [`SWEEP_CHUNK`] rows per transaction.
    async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport>;
}

pub type DynStore = Arc<dyn Store>;
