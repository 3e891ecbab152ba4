//! Storage: one trait whose methods are the server's atomic domain operations
//! (`rotate_refresh`, `redeem_code`, `revoke_family`, …). Each backend implements every method
//! as one transaction, calling the pure rules of `domain::grant` between its read and its
//! write, so atomicity lives in one place per backend and the grant modules never see SQL.

pub mod guard;
pub mod ops;
pub mod postgres;
pub mod recent;
pub mod rows;
pub mod sql;
pub mod sql_store;
pub mod sqlite;
mod sqlite_writer;

use crate::domain::device::Poll;
use crate::domain::grant::{RefreshPolicy, Reject};
use crate::domain::model::{
    AuditEvent, AuthCode, Client, ClientSecret, Consent, DeviceCode, Family, KeyRecord, RevocationReason, Session, User,
};
use crate::domain::refresh_token::Presented;
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
            first_token: self.refresh_hash.as_ref(),
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
    /// The presented token (never `Presented::Forged`: that is refused before the store).
    pub presented: Presented,
    /// The new token's hash and the generation it names (the presented one + 1).
    pub new_hash: [u8; 32],
    pub new_generation: i64,
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

/// Declares [`SweepReport`] from the list of swept tables (one count per table).
macro_rules! sweep_report {
    ($($table:ident),*) => {
        /// What the sweeper deleted, per table.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct SweepReport {
            $(pub $table: u64,)*
        }

        impl SweepReport {
            pub fn add(&mut self, o: SweepReport) {
                $(self.$table += o.$table;)*
            }
            /// True when some table filled its chunk (there may be more to delete).
            pub fn full(&self) -> bool {
                false $(|| self.$table >= SWEEP_CHUNK)*
            }
        }
    };
}
sweep_report!(
    codes,
    sessions,
    families,
    refresh_tokens,
    revoked_access_tokens,
    audit_events,
    dpop_jtis,
    par_requests,
    device_codes,
    events
);

/// An audit query (admin API): every filter optional; newest first; `before_id` continues after
/// the last event of the previous page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub kind: Option<String>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    /// From this time on (inclusive), ms.
    pub since_ms: Option<i64>,
    /// Before this time (exclusive), ms.
    pub until_ms: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Which outbox events the admin API lists: newest first, each filter applying only when given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// `pending`, `delivered` or `failed`.
    pub state: Option<String>,
    pub client_id: Option<String>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// An outbox event as an operator sees it (what was sent where, and how it went).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub jti: String,
    pub kind: String,
    pub client_id: String,
    pub endpoint: String,
    pub state: String,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub next_attempt_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_error: Option<String>,
}

/// A stored audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub family_id: Option<String>,
    /// JSON text, when the kind has details.
    pub detail: Option<String>,
}

/// The outcome of one delivery attempt, for the outbox row (`Store::settle_event`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub id: i64,
    /// The lease the attempt was made under: a process whose lease passed records nothing.
    pub owner: String,
    pub state: crate::domain::model::EventState,
    /// When a pending event is tried again.
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
    pub now_ms: i64,
}

/// Whose grants an operator revokes at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantsOf {
    User(String),
    Client(String),
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

// The store's API: the `Store` trait and its one implementation (`sql_store::SqlStore`), from
// one table. `read` runs on a read connection, `write` in one transaction, `write_one` as one
// statement; the call after `=` is the `store::ops` function, given the connection first.
sql_store::store_api! {
    fn insert_client(client: Client) -> () = write_one insert(&client);
    fn get_client(id: &str) -> Option<Client> = read get_client(&id);
    fn list_clients() -> Vec<Client> = read list_clients();
    /// Deletes the client and revokes every family it holds.
    fn delete_client(id: &str, now_ms: i64) -> bool = write delete_client(&id, now_ms);
    /// A client and the stored text of its secrets, for [`Store::swap_client_secrets`].
    fn client_secrets(id: &str) -> Option<(Client, String)> = read client_secrets(&id);
    /// Replaces a client's secrets if their stored text is still `old` (compare-and-set); false
    /// when it changed meanwhile, or the client is gone.
    fn swap_client_secrets(id: &str, old: String, new: Vec<ClientSecret>) -> bool =
        write_one swap_client_secrets(&id, &old, &new);
    /// Replaces a client's metadata (RFC 7592 update); false when unknown.
    fn update_client(client: Client) -> bool = write_one update_client(&client);

    /// Adds refresh counts to a bucket and drops buckets before `before_ms`
    /// (`grants::refresh_counts`).
    fn add_refresh_counts(counts: Vec<(String, i64)>, bucket_ms: i64, before_ms: i64) -> () =
        write add_refresh_counts(&counts, bucket_ms, before_ms);
    /// A client's refreshes counted in buckets from `since_ms` on.
    fn count_refreshes(client_id: &str, since_ms: i64) -> i64 = read count_refreshes(&client_id, since_ms);

    fn insert_user(user: User) -> () = write_one insert(&user);
    fn get_user(id: &str) -> Option<User> = read get_user(&id);
    /// Every user, by id (the admin API pages through them).
    fn list_users() -> Vec<User> = read list_users();
    fn find_user_by_username(username: &str) -> Option<User> = read find_user_by_username(&username);
    /// Replaces a user's password hash, ends their sessions and revokes their families.
    fn set_password(user_id: &str, password_hash: &str, now_ms: i64) -> bool =
        write set_password(&user_id, &password_hash, now_ms);
    /// Deletes a user: their families are revoked, sessions ended, consents and the user deleted.
    fn delete_user(user_id: &str, now_ms: i64) -> bool = write delete_user(&user_id, now_ms);
    /// Withdraws the user's consent to a client and revokes every family between them.
    fn revoke_consent(user_id: &str, client_id: &str, now_ms: i64) -> u64 =
        write revoke_consent(&user_id, &client_id, now_ms);
    /// The user's families that are not revoked at `now_ms` (newest first).
    fn list_user_families(user_id: &str, now_ms: i64) -> Vec<Family> = read list_user_families(&user_id, now_ms);
    /// The client's families that are not revoked at `now_ms` (newest first).
    fn list_client_families(client_id: &str, now_ms: i64) -> Vec<Family> = read list_client_families(&client_id, now_ms);
    /// Revokes every live grant of a user or a client (admin API), at once or after `grace_ms`;
    /// how many families.
    fn revoke_grants(of: GrantsOf, now_ms: i64, grace_ms: i64) -> u64 = write revoke_grants(&of, now_ms, grace_ms);
    /// Revokes one of the user's families; false when it is not theirs or already revoked.
    fn revoke_user_family(user_id: &str, family_id: &str, reason: RevocationReason, now_ms: i64) -> bool =
        write revoke_user_family(&user_id, &family_id, reason, now_ms);

    fn insert_device(device: DeviceCode) -> () = write_one insert(&device);
    fn find_device(user_code: &str) -> Option<DeviceCode> = read find_device(&user_code);
    /// Every stored device authorization (the sweeper removes expired ones).
    fn list_devices() -> Vec<DeviceCode> = read list_devices();
    /// Deletes a device authorization; a device polling for it gets `invalid_grant`.
    fn delete_device(user_code: &str) -> bool = write_one delete_device(&user_code);
    /// Records the user's decision on a pending, unexpired code: `Some((user, session,
    /// auth_time))` approves, `None` denies. False when the code was not pending.
    fn decide_device(user_code: &str, approval: Option<(String, String, i64)>, now_ms: i64) -> bool =
        write_one decide_device(&user_code, approval, now_ms);
    /// One poll, atomically: records it, or consumes the approved code and creates its family.
    fn poll_device(req: PollDevice) -> DeviceOutcome = write poll_device(&req);

    fn list_keys() -> Vec<KeyRecord> = read list_keys();
    /// Adds a key and retires every other active key (rotation).
    fn add_key(key: KeyRecord) -> () = write add_key(&key);
    /// Adds `key` only when no active key exists (first start, race-free).
    fn ensure_key(key: KeyRecord) -> () = write ensure_key(&key);
    /// Returns the secret stored under `name`, storing `candidate` first if there is none.
    fn server_secret(name: &str, candidate: Vec<u8>) -> Vec<u8> = write server_secret(&name, &candidate);

    fn insert_session(session: Session) -> () = write_one insert(&session);
    fn get_session_by_token(token_hash: [u8; 32]) -> Option<Session> = read get_session_by_token(&token_hash);
    /// Ends the session and revokes its session-bound families; returns how many.
    fn end_session(id: &str, now_ms: i64) -> u64 = write end_session(&id, now_ms);
    /// The user's sessions that have not ended (expired ones included; callers filter).
    fn list_user_sessions(user_id: &str) -> Vec<Session> = read list_user_sessions(&user_id);

    fn get_consent(user_id: &str, client_id: &str) -> Option<String> = read get_consent(&user_id, &client_id);
    fn save_consent(user_id: &str, client_id: &str, scope: &str, now_ms: i64) -> () =
        write_one save_consent(&user_id, &client_id, &scope, now_ms);
    /// The user's consents, by client id.
    fn list_user_consents(user_id: &str) -> Vec<Consent> = read list_user_consents(&user_id);
    /// Withdraws the user's consent to a client and ends every grant between them, as
    /// `revoke_consent`; false, and nothing changed, when there is no such consent.
    fn withdraw_consent(user_id: &str, client_id: &str, now_ms: i64) -> bool =
        write withdraw_consent(&user_id, &client_id, now_ms);

    fn insert_code(code: AuthCode) -> () = write_one insert(&code);
    /// A refresh token's generation and family, for introspection and revocation.
    fn find_refresh(token: Presented) -> Option<(i64, Family)> = read presented(&token);
    fn get_family(id: &str) -> Option<Family> = read get_family(&id);
    /// Revokes a family (with its Security Events); false when it was unknown or already revoked.
    fn revoke_family(id: &str, reason: RevocationReason, now_ms: i64) -> bool =
        write revoke_family(&id, reason, now_ms);

    fn revoke_access_token(jti: &str, expires_at_ms: i64) -> () = write_one revoke_access_token(&jti, expires_at_ms);
    fn is_access_token_revoked(jti: &str) -> bool = read is_access_token_revoked(&jti);
    fn audit(event: AuditEvent, now_ms: i64) -> () = write_one audit(&event, now_ms);
    /// Audit events matching `q`, newest first, at most `q.limit`.
    fn query_audit(q: AuditQuery) -> Vec<AuditRecord> = read query_audit(&q);
    /// Records a DPoP proof's replay key until `expires_at_ms`; false when already seen.
    fn use_dpop_jti(key: [u8; 32], expires_at_ms: i64) -> bool = write_one use_jti(&key, expires_at_ms);

    fn insert_par(request: ParRequest) -> () = write_one insert(&request);
    fn get_par(hash: [u8; 32]) -> Option<ParRequest> = read get_par(&hash);
    /// Marks a pushed request used (an authorization response went out); false when it already
    /// was, or has expired.
    fn mark_par_used(hash: [u8; 32], now_ms: i64) -> bool = write_one mark_par_used(&hash, now_ms);

    /// Whether an outbox event is due at `now_ms` (a read: an idle delivery worker writes nothing).
    fn events_due(now_ms: i64) -> bool = read events_due(now_ms);
    /// Claims at most `limit` due events for `owner` until `lease_until_ms`, counting the attempt:
    /// no other process takes them meanwhile (docs/design/events.md).
    fn claim_events(now_ms: i64, lease_until_ms: i64, owner: &str, limit: i64) -> Vec<crate::domain::events::OutboxEvent> =
        write_one claim_events(now_ms, lease_until_ms, &owner, limit);
    /// Records an attempt's outcome; false when the lease was lost (another process has the event).
    fn settle_event(settlement: Settlement) -> bool = write_one settle_event(&settlement);
    /// Outbox events for the admin API (`GET /admin/oauth/events`).
    fn list_events(query: EventQuery) -> Vec<EventRecord> = read list_events(&query);

    /// The client's Shared Signals stream, if it has one.
    fn get_stream(client_id: &str) -> Option<crate::domain::ssf::Stream> = read get_stream(&client_id);
    /// Stores a new stream; `Conflict` when the client already has one.
    fn insert_stream(stream: crate::domain::ssf::Stream) -> () = write_one insert(&stream);
    /// Writes a changed stream; false when the client has no stream of that id.
    fn update_stream(stream: crate::domain::ssf::Stream) -> bool = write_one update_stream(&stream);
    /// Deletes the client's stream and its unsent events; false when it has no such stream.
    fn delete_stream(client_id: &str, stream_id: &str) -> bool = write delete_stream(&client_id, &stream_id);
    /// Queues a verification event on the client's stream; false when it has no such stream.
    fn enqueue_verification(client_id: &str, stream_id: &str, claims: &str, now_ms: i64) -> bool =
        write_one enqueue_verification(&client_id, &stream_id, &claims, now_ms);
}

pub type DynStore = Arc<dyn Store>;
