//! The store's operations, written once for every backend against [`Conn`]: each SQL statement,
//! each cascade (what a user's deletion, a password change, a logout ends), the device poll, the
//! sweeper's round. A backend decides only where an operation runs (`store::sql_store::Backend`:
//! a transaction on the SQLite writer, a pooled PostgreSQL connection inside BEGIN/COMMIT) and
//! supplies the two operations whose concurrency truly differs (refresh rotation and code
//! redemption; see `sqlite.rs`, `postgres.rs`, docs/design/storage.md).
//!
//! Row locks (`FOR UPDATE`, `FOR SHARE`) are written for PostgreSQL, where several processes
//! write at once; SQLite's text drops them (`sql::Stmt`). PostgreSQL takes them in one order
//! everywhere: device code → session → code.

use super::rows;
use super::sql::{args, refs, Conn, Record, Stmt};
use super::*;
use crate::domain::device::{self, Poll};
use crate::domain::events::OutboxEvent;
use crate::domain::grant::{
    apply, check_code, decide, record_issued, CodeCheck, CodeRedemption, Decision, RefreshAttempt,
};
use crate::domain::model::{DeviceCode, DeviceStatus, EventKind, RevocationReason};
use crate::domain::refresh_token::Presented;
use crate::domain::ssf::Stream;

/// When the sign-in session named by `<table>.session_id` ends (`domain::grant::session_ends_at`:
/// when it was ended, else its expiry; NULL when there is no such session), as a scalar
/// subquery read next to a code.
macro_rules! session_end {
    ($table:literal) => {
        concat!(
            "(SELECT CASE WHEN s.ended_at_ms < s.expires_at_ms THEN s.ended_at_ms ELSE s.expires_at_ms END FROM sessions s WHERE s.id = ",
            $table,
            ".session_id)"
        )
    };
}

// ---- statements -------------------------------------------------------------------------------

static PING: Stmt = Stmt::new("SELECT 1");

static GET_CLIENT: Stmt = Stmt::parts(&["SELECT ", Client::COLS, " FROM clients WHERE id = $1"]);
static LIST_CLIENTS: Stmt = Stmt::parts(&["SELECT ", Client::COLS, " FROM clients ORDER BY created_at_ms, id"]);
static UPDATE_CLIENT: Stmt = Stmt::new("UPDATE clients SET name = $2, auth_method = $3, redirect_uris = $4, grant_types = $5, scope = $6, jwks = $7, jwks_uri = $8, post_logout_redirect_uris = $9, dpop_bound = $10, require_par = $11, display = $12, reuse_grace_seconds = $13, reuse_grace_count = $14, backchannel_logout_uri = $15, backchannel_logout_session_required = $16 WHERE id = $1");
/// A client and its secrets' stored text (the value a compare-and-set of them expects).
static GET_CLIENT_SECRETS: Stmt = Stmt::parts(&["SELECT ", Client::COLS, ", secrets FROM clients WHERE id = $1"]);
/// Replaces a client's secrets only if they are still what the caller read (compare-and-set):
/// of concurrent changes decided on the same list, one is written.
static SWAP_CLIENT_SECRETS: Stmt = Stmt::new("UPDATE clients SET secrets = $3 WHERE id = $1 AND secrets = $2");
static DELETE_CLIENT: Stmt = Stmt::new("DELETE FROM clients WHERE id = $1");

static GET_USER: Stmt = Stmt::parts(&["SELECT ", User::COLS, " FROM users WHERE id = $1"]);
static LIST_USERS: Stmt = Stmt::parts(&["SELECT ", User::COLS, " FROM users ORDER BY id"]);
static FIND_USER: Stmt = Stmt::parts(&["SELECT ", User::COLS, " FROM users WHERE username = $1"]);
static SET_PASSWORD: Stmt = Stmt::new("UPDATE users SET password_hash = $2 WHERE id = $1");
static DELETE_USER: Stmt = Stmt::new("DELETE FROM users WHERE id = $1");

static GET_FAMILY: Stmt = Stmt::parts(&["SELECT ", Family::COLS, " FROM families WHERE id = $1"]);
static LIST_USER_FAMILIES: Stmt = Stmt::parts(&[
    "SELECT ",
    Family::COLS,
    " FROM families WHERE user_id = $1 AND (revoked_at_ms IS NULL OR revoked_at_ms > $2) ORDER BY created_at_ms DESC",
]);
static LIST_CLIENT_FAMILIES: Stmt = Stmt::parts(&[
    "SELECT ",
    Family::COLS,
    " FROM families WHERE client_id = $1 AND (revoked_at_ms IS NULL OR revoked_at_ms > $2) ORDER BY created_at_ms DESC",
]);
/// A refresh token's generation and its family's row, by the token's hash.
static TOKEN_LOOKUP: Stmt = Stmt::parts(&[
    "SELECT t.generation, ",
    Family::ALIASED,
    " FROM refresh_tokens t JOIN families f ON f.id = t.family_id WHERE t.hash = $1",
]);
static ROTATE_FAMILY: Stmt = Stmt::new("UPDATE families SET generation = $2, rotated_at_ms = $3, grace_used = $4, idle_expires_at_ms = $5, last_used_at_ms = $6, last_user_agent = $7, token_hashes = $8 WHERE id = $1");

/// Revokes the families matching `$cond` (whose placeholders come first) at `$at`, why at `$why`:
/// those not revoked, and those an operator scheduled to be revoked later (`grace_period`, reason
/// `revoked_by_admin` = `RevocationReason::RevokedByAdmin`): the earlier time wins, so a reuse
/// detected during the grace still ends the family at once. A revocation that has another
/// reason is never rewritten: of concurrent revocations (several processes classifying one
/// replay as reuse, each with its own clock reading), exactly one changes the row.
macro_rules! revoke {
    ($cond:literal, $at:literal, $why:literal) => {
        Stmt::new(concat!(
            "UPDATE families SET revoked_at_ms = ",
            $at,
            ", revoked_reason = ",
            $why,
            " WHERE ",
            $cond,
            " AND (revoked_at_ms IS NULL OR (revoked_reason = 'revoked_by_admin' AND revoked_at_ms > ",
            $at,
            "))"
        ))
    };
}
// Revocations: one family, or every live family of a user / client / session / grant.
static REVOKE_FAMILY: Stmt = revoke!("id = $1", "$2", "$3");
static REVOKE_USER_FAMILY: Stmt = revoke!("id = $2 AND user_id = $1", "$3", "$4");
static REVOKE_USER_FAMILIES: Stmt = revoke!("user_id = $1", "$2", "$3");
static REVOKE_CLIENT_FAMILIES: Stmt = revoke!("client_id = $1", "$2", "$3");
static REVOKE_SESSION_FAMILIES: Stmt = revoke!("session_id = $1", "$2", "$3");
static REVOKE_GRANT_FAMILIES: Stmt = revoke!("user_id = $1 AND client_id = $2", "$3", "$4");

/// Audit events, newest first, each filter applying only when given.
static QUERY_AUDIT: Stmt = Stmt::parts(&[
    "SELECT ",
    AuditRecord::COLS,
    " FROM audit_events WHERE (CAST($1 AS TEXT) IS NULL OR kind = $1) AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
     AND (CAST($3 AS TEXT) IS NULL OR user_id = $3) AND (CAST($4 AS BIGINT) IS NULL OR at_ms >= $4) \
     AND (CAST($5 AS BIGINT) IS NULL OR at_ms < $5) AND (CAST($6 AS BIGINT) IS NULL OR id < $6) ORDER BY id DESC LIMIT $7",
]);
/// Outbox events, newest first, each filter applying only when given.
static LIST_EVENTS: Stmt = Stmt::parts(&[
    "SELECT ",
    EventRecord::COLS,
    " FROM event_outbox WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) AND (CAST($2 AS TEXT) IS NULL OR client_id = $2) \
     AND (CAST($3 AS BIGINT) IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
]);
static INSERT_AUDIT: Stmt = Stmt::new(
    "INSERT INTO audit_events (at_ms, kind, client_id, user_id, family_id, detail) VALUES ($1, $2, $3, $4, $5, $6)",
);

static GET_SESSION_BY_TOKEN: Stmt = Stmt::parts(&["SELECT ", Session::COLS, " FROM sessions WHERE token_hash = $1"]);
static LIST_USER_SESSIONS: Stmt = Stmt::parts(&[
    "SELECT ",
    Session::COLS,
    " FROM sessions WHERE user_id = $1 AND ended_at_ms IS NULL ORDER BY auth_time DESC",
]);
static END_SESSION: Stmt = Stmt::new("UPDATE sessions SET ended_at_ms = $2 WHERE id = $1 AND ended_at_ms IS NULL");
static END_USER_SESSIONS: Stmt =
    Stmt::new("UPDATE sessions SET ended_at_ms = $2 WHERE user_id = $1 AND ended_at_ms IS NULL");
/// When a session ends (see `session_end!`), under a share lock: a concurrent ending waits for
/// the grant being made from it, then revokes it.
static SESSION_END_LOCKED: Stmt = Stmt::new(
    "SELECT CASE WHEN s.ended_at_ms < s.expires_at_ms THEN s.ended_at_ms ELSE s.expires_at_ms END FROM sessions s WHERE s.id = $1 FOR SHARE",
);

static GET_CONSENT: Stmt = Stmt::new("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2");
static SAVE_CONSENT: Stmt = Stmt::new("INSERT INTO consents (user_id, client_id, scope, updated_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at_ms = excluded.updated_at_ms");
static DELETE_CONSENT: Stmt = Stmt::new("DELETE FROM consents WHERE user_id = $1 AND client_id = $2");
/// A user's consents, by client, with the client's name (NULL once the client is gone).
static LIST_USER_CONSENTS: Stmt = Stmt::new(
    "SELECT c.client_id, cl.name, c.scope, c.updated_at_ms FROM consents c LEFT JOIN clients cl ON cl.id = c.client_id WHERE c.user_id = $1 ORDER BY c.client_id",
);
static DELETE_USER_CONSENTS: Stmt = Stmt::new("DELETE FROM consents WHERE user_id = $1");
static DELETE_CLIENT_CONSENTS: Stmt = Stmt::new("DELETE FROM consents WHERE client_id = $1");

/// A code and when its session ends.
pub static GET_CODE: Stmt = Stmt::parts(&[
    "SELECT ",
    AuthCode::COLS,
    ", ",
    session_end!("codes"),
    " FROM codes WHERE hash = $1",
]);
static CONSUME_CODE: Stmt = Stmt::new("UPDATE codes SET consumed_at_ms = $2, family_id = $3 WHERE hash = $1");
static DELETE_USER_CODES: Stmt = Stmt::new("DELETE FROM codes WHERE user_id = $1");
static DELETE_CLIENT_CODES: Stmt = Stmt::new("DELETE FROM codes WHERE client_id = $1");

// What ends with a sign-in session besides its families (SPEC §4 rule 10): its unredeemed codes
// are deleted and its approved, uncollected device codes are marked `ended` (polls then get
// `expired_token`). Families with `offline_access` outlive the session; an unredeemed code never.
static END_SESSION_DEVICES: Stmt =
    Stmt::new("UPDATE device_codes SET status = $2 WHERE status = $3 AND session_id = $1");
static END_SESSION_CODES: Stmt = Stmt::new("DELETE FROM codes WHERE consumed_at_ms IS NULL AND session_id = $1");
static END_USER_DEVICES: Stmt = Stmt::new("UPDATE device_codes SET status = $2 WHERE status = $3 AND user_id = $1");
static END_USER_CODES: Stmt = Stmt::new("DELETE FROM codes WHERE consumed_at_ms IS NULL AND user_id = $1");
static END_GRANT_DEVICES: Stmt =
    Stmt::new("UPDATE device_codes SET status = $3 WHERE status = $4 AND user_id = $1 AND client_id = $2");
static END_GRANT_CODES: Stmt =
    Stmt::new("DELETE FROM codes WHERE consumed_at_ms IS NULL AND user_id = $1 AND client_id = $2");

static FIND_DEVICE: Stmt = Stmt::parts(&["SELECT ", DeviceCode::COLS, " FROM device_codes WHERE user_code = $1"]);
static LIST_DEVICES: Stmt = Stmt::parts(&["SELECT ", DeviceCode::COLS, " FROM device_codes ORDER BY user_code"]);
static DELETE_DEVICE: Stmt = Stmt::new("DELETE FROM device_codes WHERE user_code = $1");
/// The row lock serialises polls of one code across processes.
static GET_DEVICE_LOCKED: Stmt = Stmt::parts(&[
    "SELECT ",
    DeviceCode::COLS,
    " FROM device_codes WHERE device_hash = $1 FOR UPDATE",
]);
static APPROVE_DEVICE: Stmt = Stmt::new("UPDATE device_codes SET status = $6, user_id = $2, session_id = $3, auth_time = $4 WHERE user_code = $1 AND status = $7 AND expires_at_ms > $5");
static DENY_DEVICE: Stmt =
    Stmt::new("UPDATE device_codes SET status = $3 WHERE user_code = $1 AND status = $4 AND expires_at_ms > $2");
static DEVICE_POLLED: Stmt = Stmt::new("UPDATE device_codes SET last_poll_ms = $2 WHERE device_hash = $1");
static DEVICE_SLOWED: Stmt =
    Stmt::new("UPDATE device_codes SET last_poll_ms = $2, interval_s = interval_s + 5 WHERE device_hash = $1");
static DEVICE_CONSUMED: Stmt = Stmt::new("UPDATE device_codes SET status = $3, family_id = $2 WHERE device_hash = $1");
static DELETE_USER_DEVICES: Stmt = Stmt::new("DELETE FROM device_codes WHERE user_id = $1");
static DELETE_CLIENT_DEVICES: Stmt = Stmt::new("DELETE FROM device_codes WHERE client_id = $1");
static END_CLIENT_DEVICES: Stmt = Stmt::new("UPDATE device_codes SET status = $2 WHERE status = $3 AND client_id = $1");
static END_CLIENT_CODES: Stmt = Stmt::new("DELETE FROM codes WHERE consumed_at_ms IS NULL AND client_id = $1");

/// Serialises key changes across processes (PostgreSQL); SQLite has one writer.
static LOCK_KEYS: Stmt = Stmt::dialects("SELECT pg_advisory_xact_lock(7210432)", "SELECT 1");
static LIST_KEYS: Stmt = Stmt::parts(&["SELECT ", KeyRecord::COLS, " FROM signing_keys ORDER BY created_at_ms"]);
static RETIRE_KEYS: Stmt = Stmt::new("UPDATE signing_keys SET retired_at_ms = $1 WHERE retired_at_ms IS NULL");
static COUNT_ACTIVE_KEYS: Stmt = Stmt::new("SELECT COUNT(*) FROM signing_keys WHERE retired_at_ms IS NULL");
static INSERT_SECRET: Stmt =
    Stmt::new("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING");
static GET_SECRET: Stmt = Stmt::new("SELECT value FROM server_secrets WHERE name = $1");

static REVOKE_ACCESS_TOKEN: Stmt =
    Stmt::new("INSERT INTO revoked_access_tokens (jti, expires_at_ms) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING");
static ACCESS_TOKEN_REVOKED: Stmt = Stmt::new("SELECT 1 FROM revoked_access_tokens WHERE jti = $1");

static JTI_SEEN: Stmt = Stmt::new("SELECT 1 FROM dpop_jtis WHERE key = $1");
static USE_JTI: Stmt =
    Stmt::new("INSERT INTO dpop_jtis (key, expires_at_ms) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING");

static GET_PAR: Stmt = Stmt::parts(&["SELECT ", ParRequest::COLS, " FROM par_requests WHERE hash = $1"]);
static MARK_PAR_USED: Stmt =
    Stmt::new("UPDATE par_requests SET used_at_ms = $2 WHERE hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2");
static DELETE_CLIENT_PARS: Stmt = Stmt::new("DELETE FROM par_requests WHERE client_id = $1");

/// The sweeper's simple deletions: rows that ended before the cut-off `$1`, at most `$2`.
macro_rules! sweep {
    ($table:literal, $key:literal, $cond:literal) => {
        Stmt::new(concat!(
            "DELETE FROM ",
            $table,
            " WHERE ",
            $key,
            " IN (SELECT ",
            $key,
            " FROM ",
            $table,
            " WHERE ",
            $cond,
            " LIMIT $2)"
        ))
    };
}
static SWEEP_CODES: Stmt = sweep!("codes", "hash", "expires_at_ms < $1");
static SWEEP_SESSIONS: Stmt = sweep!("sessions", "id", "expires_at_ms < $1 OR ended_at_ms < $1");
static SWEEP_REVOKED_ACCESS: Stmt = sweep!("revoked_access_tokens", "jti", "expires_at_ms < $1");
static SWEEP_AUDIT: Stmt = sweep!("audit_events", "id", "at_ms < $1");
static SWEEP_JTIS: Stmt = sweep!("dpop_jtis", "key", "expires_at_ms < $1");
static SWEEP_PARS: Stmt = sweep!("par_requests", "hash", "expires_at_ms < $1");
static SWEEP_DEVICES: Stmt = sweep!("device_codes", "device_hash", "expires_at_ms < $1");
static SWEEP_EVENTS: Stmt = sweep!("event_outbox", "id", "state <> 'pending' AND updated_at_ms < $1");
static DEAD_FAMILIES: Stmt = Stmt::new("SELECT id FROM families WHERE absolute_expires_at_ms < $1 UNION SELECT id FROM families WHERE revoked_at_ms < $2 LIMIT $3");
static DELETE_FAMILY: Stmt = Stmt::new("DELETE FROM families WHERE id = $1");
/// A process's refresh count of a client, added to a bucket (`grants::refresh_counts`).
static ADD_REFRESHES: Stmt = Stmt::new("INSERT INTO refresh_counts (client_id, bucket_ms, count) VALUES ($1, $2, $3) ON CONFLICT (client_id, bucket_ms) DO UPDATE SET count = refresh_counts.count + excluded.count");
static PRUNE_REFRESHES: Stmt = Stmt::new("DELETE FROM refresh_counts WHERE bucket_ms < $1");
static COUNT_REFRESHES: Stmt = Stmt::new(
    "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM refresh_counts WHERE client_id = $1 AND bucket_ms >= $2",
);
/// The refresh tokens' lifetime classes, each found by seeking the index from the previous one.
static TOKEN_CLASSES: Stmt = Stmt::new(
    "WITH RECURSIVE k(t) AS (SELECT min(ttl_ms) FROM refresh_tokens \
     UNION ALL SELECT (SELECT min(ttl_ms) FROM refresh_tokens WHERE ttl_ms > k.t) FROM k WHERE k.t IS NOT NULL) \
     SELECT t FROM k WHERE t IS NOT NULL",
);
/// One lifetime class's forgettable tokens, from its front.
static SWEEP_TOKENS: Stmt = Stmt::new(
    "DELETE FROM refresh_tokens WHERE hash IN \
     (SELECT hash FROM refresh_tokens WHERE ttl_ms = $1 AND forget_at_ms < $2 LIMIT $3)",
);

// ---- the event outbox (docs/design/events.md) ---------------------------------------------------

/// Queues one Back-Channel Logout event (kind `$3`) per client and sign-in session, for every
/// session that `$cond` names and that was ended at `$2` (by this transaction: the statement runs
/// after the ending, and a session already ended, or expired, is not ended again), to every
/// client with a `backchannel_logout_uri` that got a grant in it (`families.sid`: with
/// `offline_access` or not, revoked or not: the client signed the user in with that session).
/// The `jti` is drawn here, once per event, by the database (a UUID's 122 random bits,
/// 128 on SQLite): every attempt then sends the same one.
/// The head of every statement that queues events: the outbox's columns, then the SELECT that
/// produces the rows (its first column the `jti`).
macro_rules! insert_events {
    () => {
        "INSERT INTO event_outbox (jti, kind, client_id, endpoint, subject, sid, claims, created_at_ms, next_attempt_at_ms, updated_at_ms) SELECT "
    };
}
pub(crate) use insert_events;

macro_rules! enqueue_logouts {
    ($cond:literal) => {
        Stmt::dialects(
            enqueue_logouts!(@ "replace(CAST(gen_random_uuid() AS TEXT), '-', '')", $cond),
            enqueue_logouts!(@ "lower(hex(randomblob(16)))", $cond),
        )
    };
    (@ $jti:literal, $cond:literal) => {
        concat!(
            $crate::store::ops::insert_events!(), $jti, ", $3, f.client_id, c.backchannel_logout_uri, f.user_id, f.sid, '{}', $2, $2, $2 \
             FROM sessions s JOIN families f ON f.user_id = s.user_id AND f.sid = s.id JOIN clients c ON c.id = f.client_id \
             WHERE ", $cond, " AND s.ended_at_ms = $2 AND s.expires_at_ms > $2 AND c.backchannel_logout_uri IS NOT NULL \
             GROUP BY f.client_id, c.backchannel_logout_uri, f.user_id, f.sid"
        )
    };
}
static ENQUEUE_SESSION_LOGOUTS: Stmt = enqueue_logouts!("s.id = $1");
static ENQUEUE_USER_LOGOUTS: Stmt = enqueue_logouts!("s.user_id = $1");
/// Whether an event is due (a read: an idle worker writes nothing).
static EVENTS_DUE: Stmt = Stmt::new(
    "SELECT 1 FROM event_outbox WHERE state = 'pending' AND next_attempt_at_ms <= $1 AND lease_until_ms <= $1 LIMIT 1",
);
/// Claims up to `$4` due events for `$3` until `$2` (the lease) and counts the attempt. On
/// PostgreSQL the rows are locked while the claim runs and a concurrent claim skips them (`SKIP
/// LOCKED`: it takes other events instead of waiting); once committed, the lease keeps every
/// other process off them until it passes (a process that died mid-delivery). The outer
/// condition repeats the lease's: it is checked again on the row as it is when locked.
static CLAIM_EVENTS: Stmt = Stmt::parts(&[
    "UPDATE event_outbox SET lease_until_ms = $2, lease_owner = $3, attempts = attempts + 1, updated_at_ms = $1 \
     WHERE id IN (SELECT id FROM event_outbox WHERE state = 'pending' AND next_attempt_at_ms <= $1 AND lease_until_ms <= $1 \
     ORDER BY next_attempt_at_ms LIMIT $4 FOR UPDATE SKIP LOCKED) AND state = 'pending' AND lease_until_ms <= $1 RETURNING ",
    OutboxEvent::COLS,
]);
/// Records an attempt's outcome, only while `$2` still holds the lease.
static SETTLE_EVENT: Stmt = Stmt::new(
    "UPDATE event_outbox SET state = $3, next_attempt_at_ms = $4, last_error = $5, lease_until_ms = 0, lease_owner = NULL, updated_at_ms = $6 \
     WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
);
static DELETE_CLIENT_EVENTS: Stmt = Stmt::new("DELETE FROM event_outbox WHERE client_id = $1");

// ---- Shared Signals streams and their events (docs/design/events.md, "Security events") ----------

/// Queues the Security Events of the families of `$src` (aliased `f`) that `$where` names (it
/// names what this transaction revoked: the revocation's time and reason, or the rows the
/// revocation itself returned) for the clients whose stream asked for them: CAEP
/// `session-revoked` for each, and RISC `credential-compromise` too when the reason is reuse.
/// A family revoked for later (an operator's `grace_period`) gets its events at that time
/// (`next_attempt_at_ms`): they leave when the revocation takes effect. The `jti` is drawn by the
/// database (as `enqueue_logouts!`); the row's claims carry the reason, the time and the family
/// (ids, reasons and numbers: no character that JSON would need escaped).
macro_rules! enqueue_revoked {
    ($src:literal, $where:literal) => {
        Stmt::dialects(
            enqueue_revoked!(@ "replace(CAST(gen_random_uuid() AS TEXT), '-', '')", $src, $where),
            enqueue_revoked!(@ "lower(hex(randomblob(16)))", $src, $where),
        )
    };
    (@ $jti:literal, $src:literal, $where:literal) => {
        concat!(
            $crate::store::ops::insert_events!(), $jti, ", k.kind, f.client_id, st.endpoint_url, f.user_id, f.sid, \
             '{\"reason\":\"' || f.revoked_reason || '\",\"at_ms\":' || CAST(f.revoked_at_ms AS TEXT) || ',\"family\":\"' || f.id || '\"}', \
             f.revoked_at_ms, f.revoked_at_ms, f.revoked_at_ms \
             FROM ", $src, " f JOIN ssf_streams st ON st.client_id = f.client_id \
             JOIN (SELECT 'ssf_session_revoked' AS kind UNION ALL SELECT 'ssf_credential_compromise') k \
             ON (k.kind = 'ssf_session_revoked' AND st.session_revoked) \
             OR (k.kind = 'ssf_credential_compromise' AND st.credential_compromise AND f.revoked_reason = 'refresh_token_reuse') \
             WHERE ", $where
        )
    };
}
pub(crate) use enqueue_revoked;
// Each follows the revocation of the same name (same arguments), in its transaction.
static ENQUEUE_REVOKED_FAMILY: Stmt = enqueue_revoked!(
    "families",
    "f.id = $1 AND f.revoked_at_ms = $2 AND f.revoked_reason = $3"
);
static ENQUEUE_REVOKED_USER_FAMILY: Stmt = enqueue_revoked!(
    "families",
    "f.id = $2 AND f.user_id = $1 AND f.revoked_at_ms = $3 AND f.revoked_reason = $4"
);
static ENQUEUE_REVOKED_USER_FAMILIES: Stmt = enqueue_revoked!(
    "families",
    "f.user_id = $1 AND f.revoked_at_ms = $2 AND f.revoked_reason = $3"
);
static ENQUEUE_REVOKED_CLIENT_FAMILIES: Stmt = enqueue_revoked!(
    "families",
    "f.client_id = $1 AND f.revoked_at_ms = $2 AND f.revoked_reason = $3"
);
static ENQUEUE_REVOKED_SESSION_FAMILIES: Stmt = enqueue_revoked!(
    "families",
    "f.session_id = $1 AND f.revoked_at_ms = $2 AND f.revoked_reason = $3"
);
static ENQUEUE_REVOKED_GRANT_FAMILIES: Stmt = enqueue_revoked!(
    "families",
    "f.user_id = $1 AND f.client_id = $2 AND f.revoked_at_ms = $3 AND f.revoked_reason = $4"
);
static GET_STREAM: Stmt = Stmt::parts(&["SELECT ", Stream::COLS, " FROM ssf_streams WHERE client_id = $1"]);
/// Changes the stream `$2` of client `$1` (none when another stream id is named).
static UPDATE_STREAM: Stmt = Stmt::new(
    "UPDATE ssf_streams SET endpoint_url = $3, events_requested = $4, session_revoked = $5, credential_compromise = $6, \
     description = $7, updated_at_ms = $8 WHERE client_id = $1 AND stream_id = $2",
);
static DELETE_STREAM: Stmt = Stmt::new("DELETE FROM ssf_streams WHERE client_id = $1 AND stream_id = $2");
static DELETE_CLIENT_STREAM: Stmt = Stmt::new("DELETE FROM ssf_streams WHERE client_id = $1");
/// The stream's events not sent yet: a deleted stream gets nothing more.
static DELETE_STREAM_EVENTS: Stmt = Stmt::new(
    "DELETE FROM event_outbox WHERE client_id = $1 AND state = 'pending' AND kind IN ('ssf_session_revoked', 'ssf_credential_compromise', 'ssf_verification')",
);
/// Queues a verification event (kind `$3`, row claims `$4`, at `$5`) on the stream `$2` of client
/// `$1`, to its URL; nothing when the client has no such stream.
macro_rules! enqueue_verification {
    () => {
        Stmt::dialects(
            enqueue_verification!(@ "replace(CAST(gen_random_uuid() AS TEXT), '-', '')"),
            enqueue_verification!(@ "lower(hex(randomblob(16)))"),
        )
    };
    (@ $jti:literal) => {
        concat!(
            insert_events!(),
            $jti,
            ", $3, client_id, endpoint_url, stream_id, NULL, $4, $5, $5, $5 FROM ssf_streams WHERE client_id = $1 AND stream_id = $2"
        )
    };
}
static ENQUEUE_VERIFICATION: Stmt = enqueue_verification!();

/// Device statuses bound into statements.
const PENDING: DeviceStatus = DeviceStatus::Pending;
const APPROVED: DeviceStatus = DeviceStatus::Approved;
const ENDED: DeviceStatus = DeviceStatus::Ended;

pub async fn ping<C: Conn>(c: &mut C) -> Result<()> {
    c.one(&PING, args![], rows::exists).await.map(|_| ())
}

/// Inserts one record.
pub async fn insert<C: Conn, R: Record + Sync>(c: &mut C, r: &R) -> Result<()> {
    let bound = r.bind();
    c.exec(R::insert(), &refs(&bound)).await?;
    Ok(())
}

// ---- clients ----------------------------------------------------------------------------------

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub async fn get_client<C: Conn>(c: &mut C, id: &str) -> Result<Option<Client>> {
    c.one(&GET_CLIENT, args![id], rows::one).await
}

pub async fn list_clients<C: Conn>(c: &mut C) -> Result<Vec<Client>> {
    c.all(&LIST_CLIENTS, args![], rows::one).await
}

/// Deletes a client: its families are revoked, and nothing outstanding (consent, code, device
/// code, pushed request) may still turn into a grant of it.
pub async fn delete_client<C: Conn>(c: &mut C, id: &str, now_ms: i64) -> Result<bool> {
    c.exec(
        &REVOKE_CLIENT_FAMILIES,
        args![id, now_ms, RevocationReason::ClientDeleted],
    )
    .await?;
    for st in [
        &DELETE_CLIENT_CONSENTS,
        &DELETE_CLIENT_CODES,
        &DELETE_CLIENT_DEVICES,
        &DELETE_CLIENT_PARS,
        &DELETE_CLIENT_EVENTS,
        &DELETE_CLIENT_STREAM,
    ] {
        c.exec(st, args![id]).await?;
    }
    Ok(c.exec(&DELETE_CLIENT, args![id]).await? > 0)
}

pub async fn update_client<C: Conn>(c: &mut C, cl: &Client) -> Result<bool> {
    let n = c
        .exec(
            &UPDATE_CLIENT,
            args![
                cl.id,
                cl.name,
                cl.auth_method,
                json(&cl.redirect_uris),
                json(&cl.grant_types),
                cl.scope,
                cl.jwks,
                cl.jwks_uri,
                json(&cl.post_logout_redirect_uris),
                cl.dpop_bound,
                cl.require_par,
                json(&cl.display),
                cl.reuse_grace_seconds,
                cl.reuse_grace_count,
                cl.backchannel_logout_uri,
                cl.backchannel_logout_session_required
            ],
        )
        .await?;
    Ok(n == 1)
}

pub async fn client_secrets<C: Conn>(c: &mut C, id: &str) -> Result<Option<(Client, String)>> {
    c.one(&GET_CLIENT_SECRETS, args![id], rows::client_and_secrets).await
}

pub async fn swap_client_secrets<C: Conn>(c: &mut C, id: &str, old: &str, new: &[ClientSecret]) -> Result<bool> {
    Ok(c.exec(&SWAP_CLIENT_SECRETS, args![id, old, json(&new)]).await? > 0)
}

// ---- users ------------------------------------------------------------------------------------

pub async fn get_user<C: Conn>(c: &mut C, id: &str) -> Result<Option<User>> {
    c.one(&GET_USER, args![id], rows::one).await
}

pub async fn find_user_by_username<C: Conn>(c: &mut C, username: &str) -> Result<Option<User>> {
    c.one(&FIND_USER, args![username], rows::one).await
}

/// A new password ends every session of the user and what hangs on them (lock order: device
/// codes, sessions, codes).
pub async fn set_password<C: Conn>(c: &mut C, user_id: &str, hash: &str, now_ms: i64) -> Result<bool> {
    let n = c.exec(&SET_PASSWORD, args![user_id, hash]).await?;
    c.exec(&END_USER_DEVICES, args![user_id, ENDED, APPROVED]).await?;
    c.exec(&END_USER_SESSIONS, args![user_id, now_ms]).await?;
    revoke_notify(
        c,
        (&REVOKE_USER_FAMILIES, &ENQUEUE_REVOKED_USER_FAMILIES),
        args![user_id, now_ms, RevocationReason::PasswordChanged],
    )
    .await?;
    c.exec(&END_USER_CODES, args![user_id]).await?;
    enqueue_logouts(c, &ENQUEUE_USER_LOGOUTS, user_id, now_ms).await?;
    Ok(n > 0)
}

pub async fn delete_user<C: Conn>(c: &mut C, user_id: &str, now_ms: i64) -> Result<bool> {
    revoke_notify(
        c,
        (&REVOKE_USER_FAMILIES, &ENQUEUE_REVOKED_USER_FAMILIES),
        args![user_id, now_ms, RevocationReason::UserDeleted],
    )
    .await?;
    c.exec(&END_USER_SESSIONS, args![user_id, now_ms]).await?;
    enqueue_logouts(c, &ENQUEUE_USER_LOGOUTS, user_id, now_ms).await?;
    for st in [&DELETE_USER_CONSENTS, &DELETE_USER_CODES, &DELETE_USER_DEVICES] {
        c.exec(st, args![user_id]).await?;
    }
    Ok(c.exec(&DELETE_USER, args![user_id]).await? > 0)
}

pub async fn revoke_consent<C: Conn>(c: &mut C, user_id: &str, client_id: &str, now_ms: i64) -> Result<u64> {
    c.exec(&DELETE_CONSENT, args![user_id, client_id]).await?;
    end_grant(c, user_id, client_id, now_ms).await
}

/// Withdraws the user's consent to a client, as `revoke_consent`, only when there is one
/// (consent API): false, and nothing changed, when the user has no consent to that client.
pub async fn withdraw_consent<C: Conn>(c: &mut C, user_id: &str, client_id: &str, now_ms: i64) -> Result<bool> {
    if c.exec(&DELETE_CONSENT, args![user_id, client_id]).await? == 0 {
        return Ok(false);
    }
    end_grant(c, user_id, client_id, now_ms).await?;
    Ok(true)
}

/// Ends everything between a user and a client whose consent is withdrawn: approved device
/// codes, unredeemed codes, and the families (revoked as `consent_revoked`).
async fn end_grant<C: Conn>(c: &mut C, user_id: &str, client_id: &str, now_ms: i64) -> Result<u64> {
    c.exec(&END_GRANT_DEVICES, args![user_id, client_id, ENDED, APPROVED])
        .await?;
    c.exec(&END_GRANT_CODES, args![user_id, client_id]).await?;
    revoke_notify(
        c,
        (&REVOKE_GRANT_FAMILIES, &ENQUEUE_REVOKED_GRANT_FAMILIES),
        args![user_id, client_id, now_ms, RevocationReason::ConsentRevoked],
    )
    .await
}

pub async fn list_user_families<C: Conn>(c: &mut C, user_id: &str, now_ms: i64) -> Result<Vec<Family>> {
    c.all(&LIST_USER_FAMILIES, args![user_id, now_ms], rows::one).await
}

pub async fn list_users<C: Conn>(c: &mut C) -> Result<Vec<User>> {
    c.all(&LIST_USERS, args![], rows::one).await
}

pub async fn list_devices<C: Conn>(c: &mut C) -> Result<Vec<DeviceCode>> {
    c.all(&LIST_DEVICES, args![], rows::one).await
}

pub async fn delete_device<C: Conn>(c: &mut C, user_code: &str) -> Result<bool> {
    Ok(c.exec(&DELETE_DEVICE, args![user_code]).await? > 0)
}

pub async fn list_client_families<C: Conn>(c: &mut C, client_id: &str, now_ms: i64) -> Result<Vec<Family>> {
    c.all(&LIST_CLIENT_FAMILIES, args![client_id, now_ms], rows::one).await
}

/// Revokes every live grant of a user or a client (admin API): its families, at once or after
/// `grace_ms` (a scheduled revocation: the families live until then), and what would still
/// become one (unredeemed codes, approved device codes not yet collected: at once), with one
/// audit event. Returns how many families it revoked.
pub async fn revoke_grants<C: Conn>(c: &mut C, of: &GrantsOf, now_ms: i64, grace_ms: i64) -> Result<u64> {
    let why = RevocationReason::RevokedByAdmin;
    let at = now_ms.saturating_add(grace_ms.max(0));
    let (n, event) = match of {
        GrantsOf::User(id) => {
            let n = revoke_notify(
                c,
                (&REVOKE_USER_FAMILIES, &ENQUEUE_REVOKED_USER_FAMILIES),
                args![id, at, why],
            )
            .await?;
            c.exec(&END_USER_DEVICES, args![id, ENDED, APPROVED]).await?;
            c.exec(&END_USER_CODES, args![id]).await?;
            (n, AuditEvent::grants_revoked(None, Some(id), n, grace_ms))
        }
        GrantsOf::Client(id) => {
            let n = revoke_notify(
                c,
                (&REVOKE_CLIENT_FAMILIES, &ENQUEUE_REVOKED_CLIENT_FAMILIES),
                args![id, at, why],
            )
            .await?;
            c.exec(&END_CLIENT_DEVICES, args![id, ENDED, APPROVED]).await?;
            c.exec(&END_CLIENT_CODES, args![id]).await?;
            (n, AuditEvent::grants_revoked(Some(id), None, n, grace_ms))
        }
    };
    audit(c, &event, now_ms).await?;
    Ok(n)
}

pub async fn revoke_user_family<C: Conn>(
    c: &mut C,
    user_id: &str,
    family_id: &str,
    reason: RevocationReason,
    now_ms: i64,
) -> Result<bool> {
    let n = revoke_notify(
        c,
        (&REVOKE_USER_FAMILY, &ENQUEUE_REVOKED_USER_FAMILY),
        args![user_id, family_id, now_ms, reason],
    )
    .await?;
    Ok(n == 1)
}

// ---- device codes -----------------------------------------------------------------------------

pub async fn find_device<C: Conn>(c: &mut C, user_code: &str) -> Result<Option<DeviceCode>> {
    c.one(&FIND_DEVICE, args![user_code], rows::one).await
}

pub async fn decide_device<C: Conn>(
    c: &mut C,
    user_code: &str,
    approval: Option<(String, String, i64)>,
    now_ms: i64,
) -> Result<bool> {
    let n = match approval {
        Some((user, session, auth_time)) => {
            c.exec(
                &APPROVE_DEVICE,
                args![user_code, user, session, auth_time, now_ms, APPROVED, PENDING],
            )
            .await?
        }
        None => {
            c.exec(&DENY_DEVICE, args![user_code, now_ms, DeviceStatus::Denied, PENDING])
                .await?
        }
    };
    Ok(n == 1)
}

/// One poll: records it, or consumes the approved code and creates its family. An approval
/// turns into tokens only while its session is live; on PostgreSQL the share lock on the
/// session makes a concurrent `end_session` wait for this poll's family (and then revoke it)
/// or this poll see the session ended.
pub async fn poll_device<C: Conn>(c: &mut C, req: &PollDevice) -> Result<DeviceOutcome> {
    let hash = &req.device_hash[..];
    let Some(mut d) = c.one(&GET_DEVICE_LOCKED, args![hash], rows::one::<DeviceCode>).await? else {
        return Ok(DeviceOutcome::NotFound);
    };
    let session_end = match (d.status, &d.session_id) {
        (DeviceStatus::Approved, Some(sid)) => c
            .one(&SESSION_END_LOCKED, args![sid], rows::opt_i64_col)
            .await?
            .flatten(),
        _ => None,
    };
    let p = device::poll(&d, &req.client_id, req.now_ms, session_end);
    match p {
        Poll::Pending => {
            c.exec(&DEVICE_POLLED, args![hash, req.now_ms]).await?;
        }
        Poll::SlowDown => {
            c.exec(&DEVICE_SLOWED, args![hash, req.now_ms]).await?;
        }
        Poll::Issue => {
            let (Some(user), Some(session), Some(auth_time)) = (&d.user_id, &d.session_id, d.auth_time) else {
                return Ok(DeviceOutcome::Poll(Poll::Invalid));
            };
            let family = req
                .family
                .build(&d.client_id, user, &d.scope, None, session, auth_time, req.now_ms);
            insert(c, &family).await?;
            c.exec(&DEVICE_CONSUMED, args![hash, family.id, DeviceStatus::Consumed])
                .await?;
            d.status = DeviceStatus::Consumed;
            d.family_id = Some(family.id.clone());
            return Ok(DeviceOutcome::Issued {
                device: Box::new(d),
                family: Box::new(family),
            });
        }
        Poll::Denied | Poll::Expired | Poll::Invalid => {}
    }
    Ok(DeviceOutcome::Poll(p))
}

// ---- keys and secrets -------------------------------------------------------------------------

pub async fn list_keys<C: Conn>(c: &mut C) -> Result<Vec<KeyRecord>> {
    c.all(&LIST_KEYS, args![], rows::one).await
}

pub async fn add_key<C: Conn>(c: &mut C, k: &KeyRecord) -> Result<()> {
    c.one(&LOCK_KEYS, args![], rows::exists).await?;
    c.exec(&RETIRE_KEYS, args![k.created_at_ms]).await?;
    insert(c, k).await
}

pub async fn ensure_key<C: Conn>(c: &mut C, k: &KeyRecord) -> Result<()> {
    c.one(&LOCK_KEYS, args![], rows::exists).await?;
    let active = c.one(&COUNT_ACTIVE_KEYS, args![], rows::i64_col).await?;
    if active.unwrap_or(0) == 0 {
        insert(c, k).await?;
    }
    Ok(())
}

pub async fn server_secret<C: Conn>(c: &mut C, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
    c.exec(&INSERT_SECRET, args![name, candidate]).await?;
    c.one(&GET_SECRET, args![name], rows::bytes_col)
        .await?
        .ok_or_else(|| StoreError::Backend("server secret vanished".into()))
}

// ---- sessions and consents --------------------------------------------------------------------

pub async fn get_session_by_token<C: Conn>(c: &mut C, token_hash: &[u8; 32]) -> Result<Option<Session>> {
    c.one(&GET_SESSION_BY_TOKEN, args![&token_hash[..]], rows::one).await
}

/// Ends a session, what hangs on it, and its session-bound families (lock order: device codes,
/// session, codes, as in `poll_device` and code redemption).
pub async fn end_session<C: Conn>(c: &mut C, id: &str, now_ms: i64) -> Result<u64> {
    c.exec(&END_SESSION_DEVICES, args![id, ENDED, APPROVED]).await?;
    c.exec(&END_SESSION, args![id, now_ms]).await?;
    c.exec(&END_SESSION_CODES, args![id]).await?;
    let n = revoke_notify(
        c,
        (&REVOKE_SESSION_FAMILIES, &ENQUEUE_REVOKED_SESSION_FAMILIES),
        args![id, now_ms, RevocationReason::SessionEnded],
    )
    .await?;
    enqueue_logouts(c, &ENQUEUE_SESSION_LOGOUTS, id, now_ms).await?;
    Ok(n)
}

// ---- Shared Signals streams ------------------------------------------------------------------

pub async fn get_stream<C: Conn>(c: &mut C, client_id: &str) -> Result<Option<Stream>> {
    c.one(&GET_STREAM, args![client_id], rows::one).await
}

/// Writes a changed stream; false when the client has no stream of that id.
pub async fn update_stream<C: Conn>(c: &mut C, s: &Stream) -> Result<bool> {
    let n = c
        .exec(
            &UPDATE_STREAM,
            args![
                s.client_id,
                s.stream_id,
                s.endpoint_url,
                json(&s.events_requested),
                s.session_revoked,
                s.credential_compromise,
                s.description,
                s.updated_at_ms
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Deletes the client's stream `stream_id` and the events it has not sent yet; false when the
/// client has no such stream.
pub async fn delete_stream<C: Conn>(c: &mut C, client_id: &str, stream_id: &str) -> Result<bool> {
    if c.exec(&DELETE_STREAM, args![client_id, stream_id]).await? == 0 {
        return Ok(false);
    }
    c.exec(&DELETE_STREAM_EVENTS, args![client_id]).await?;
    Ok(true)
}

/// Queues a verification event with the row claims `claims` on the client's stream
/// `stream_id`; false when the client has no such stream.
pub async fn enqueue_verification<C: Conn>(
    c: &mut C,
    client_id: &str,
    stream_id: &str,
    claims: &str,
    now_ms: i64,
) -> Result<bool> {
    let n = c
        .exec(
            &ENQUEUE_VERIFICATION,
            args![client_id, stream_id, EventKind::SsfVerification, claims, now_ms],
        )
        .await?;
    Ok(n == 1)
}

// ---- the event outbox -------------------------------------------------------------------------

/// Queues the Logout Tokens of the sessions `st` names (`key`) that this transaction ended at
/// `now_ms` (`ENQUEUE_*_LOGOUTS`): they commit with the ending, or not at all.
async fn enqueue_logouts<C: Conn>(c: &mut C, st: &'static Stmt, key: &str, now_ms: i64) -> Result<u64> {
    c.exec(st, args![key, now_ms, EventKind::BackchannelLogout]).await
}

pub async fn events_due<C: Conn>(c: &mut C, now_ms: i64) -> Result<bool> {
    Ok(c.one(&EVENTS_DUE, args![now_ms], rows::exists).await?.is_some())
}

pub async fn claim_events<C: Conn>(
    c: &mut C,
    now_ms: i64,
    lease_until_ms: i64,
    owner: &str,
    limit: i64,
) -> Result<Vec<OutboxEvent>> {
    c.all(&CLAIM_EVENTS, args![now_ms, lease_until_ms, owner, limit], rows::one)
        .await
}

pub async fn settle_event<C: Conn>(c: &mut C, s: &Settlement) -> Result<bool> {
    let n = c
        .exec(
            &SETTLE_EVENT,
            args![s.id, s.owner, s.state, s.next_attempt_at_ms, s.last_error, s.now_ms],
        )
        .await?;
    Ok(n == 1)
}

pub async fn list_user_sessions<C: Conn>(c: &mut C, user_id: &str) -> Result<Vec<Session>> {
    c.all(&LIST_USER_SESSIONS, args![user_id], rows::one).await
}

pub async fn get_consent<C: Conn>(c: &mut C, user_id: &str, client_id: &str) -> Result<Option<String>> {
    c.one(&GET_CONSENT, args![user_id, client_id], rows::text_col).await
}

pub async fn list_user_consents<C: Conn>(c: &mut C, user_id: &str) -> Result<Vec<Consent>> {
    c.all(&LIST_USER_CONSENTS, args![user_id], rows::consent).await
}

pub async fn save_consent<C: Conn>(c: &mut C, user_id: &str, client_id: &str, scope: &str, now_ms: i64) -> Result<()> {
    c.exec(&SAVE_CONSENT, args![user_id, client_id, scope, now_ms]).await?;
    Ok(())
}

// ---- codes, families, refresh tokens ----------------------------------------------------------

/// The family and generation of a presented refresh token: a token of the earlier format by
/// its row; a token that names its family by the family row, where a token of the current
/// generation is live only if its hash is there (docs/design/refresh-token-format.md).
pub async fn presented<C: Conn>(c: &mut C, p: &Presented) -> Result<Option<(i64, Family)>> {
    match p {
        Presented::Legacy(hash) => c.one(&TOKEN_LOOKUP, args![&hash[..]], rows::token).await,
        Presented::Bound { family_id, .. } => {
            let Some(f) = get_family(c, family_id).await? else {
                return Ok(None);
            };
            Ok(known(p, &f).map(|g| (g, f)))
        }
        Presented::Forged => Ok(None),
    }
}

/// The generation of a token that names its family, if `f` is that family and knows the token:
/// an earlier generation, or the current one with its hash among the live ones.
pub fn known(p: &Presented, f: &Family) -> Option<i64> {
    match p {
        Presented::Bound {
            family_id,
            generation,
            hash,
        } if *family_id == f.id => {
            let known = *generation < f.generation || (*generation == f.generation && f.holds(hash));
            known.then_some(*generation)
        }
        _ => None,
    }
}

pub async fn get_family<C: Conn>(c: &mut C, id: &str) -> Result<Option<Family>> {
    c.one(&GET_FAMILY, args![id], rows::one).await
}

/// Revokes a family, with its Security Events (`revoke_notify`).
pub async fn revoke_family<C: Conn>(c: &mut C, id: &str, reason: RevocationReason, now_ms: i64) -> Result<bool> {
    let n = revoke_notify(c, (&REVOKE_FAMILY, &ENQUEUE_REVOKED_FAMILY), args![id, now_ms, reason]).await?;
    Ok(n > 0)
}

/// Runs a revocation and, only when it revoked something, the statement that queues the
/// Security Events of what it revoked (`enqueue_revoked!`, the same arguments), in the caller's
/// transaction: the events commit with the revocation or not at all. How many it revoked.
async fn revoke_notify<C: Conn>(
    c: &mut C,
    (revoke, notify): (&'static Stmt, &'static Stmt),
    a: &[&dyn super::sql::Arg],
) -> Result<u64> {
    let n = c.exec(revoke, a).await?;
    if n > 0 {
        c.exec(notify, a).await?;
    }
    Ok(n)
}

pub async fn query_audit<C: Conn>(c: &mut C, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    c.all(
        &QUERY_AUDIT,
        args![
            q.kind,
            q.client_id,
            q.user_id,
            q.since_ms,
            q.until_ms,
            q.before_id,
            q.limit
        ],
        rows::one,
    )
    .await
}

pub async fn list_events<C: Conn>(c: &mut C, q: &EventQuery) -> Result<Vec<EventRecord>> {
    c.all(
        &LIST_EVENTS,
        args![q.state, q.client_id, q.before_id, q.limit],
        rows::one,
    )
    .await
}

pub async fn audit<C: Conn>(c: &mut C, e: &AuditEvent, now_ms: i64) -> Result<()> {
    c.exec(
        &INSERT_AUDIT,
        args![now_ms, e.kind, e.client_id, e.user_id, e.family_id, e.detail],
    )
    .await?;
    Ok(())
}

/// Revokes a family for reuse or replay and audits it (no event when it was already revoked).
async fn revoke_and_audit<C: Conn>(
    c: &mut C,
    family_id: &str,
    reason: RevocationReason,
    event: AuditEvent,
    now_ms: i64,
) -> Result<bool> {
    let revoked = revoke_family(c, family_id, reason, now_ms).await?;
    if revoked {
        audit(c, &event, now_ms).await?;
    }
    Ok(revoked)
}

// ---- access tokens, DPoP, PAR -----------------------------------------------------------------

pub async fn revoke_access_token<C: Conn>(c: &mut C, jti: &str, expires_at_ms: i64) -> Result<()> {
    c.exec(&REVOKE_ACCESS_TOKEN, args![jti, expires_at_ms]).await?;
    Ok(())
}

pub async fn is_access_token_revoked<C: Conn>(c: &mut C, jti: &str) -> Result<bool> {
    Ok(c.one(&ACCESS_TOKEN_REVOKED, args![jti], rows::exists).await?.is_some())
}

/// Whether a DPoP proof's `jti` has been recorded (a replay).
pub async fn jti_seen<C: Conn>(c: &mut C, key: &[u8; 32]) -> Result<bool> {
    Ok(c.one(&JTI_SEEN, args![&key[..]], rows::exists).await?.is_some())
}

/// Records a DPoP proof's `jti`; false when it was seen before (a replay).
pub async fn use_jti<C: Conn>(c: &mut C, key: &[u8; 32], expires_at_ms: i64) -> Result<bool> {
    Ok(c.exec(&USE_JTI, args![&key[..], expires_at_ms]).await? == 1)
}

pub async fn get_par<C: Conn>(c: &mut C, hash: &[u8; 32]) -> Result<Option<ParRequest>> {
    c.one(&GET_PAR, args![&hash[..]], rows::one).await
}

pub async fn mark_par_used<C: Conn>(c: &mut C, hash: &[u8; 32], now_ms: i64) -> Result<bool> {
    Ok(c.exec(&MARK_PAR_USED, args![&hash[..], now_ms]).await? == 1)
}

// ---- the sweeper ------------------------------------------------------------------------------

/// One bounded round of the sweeper: at most [`SWEEP_CHUNK`] rows per table.
pub async fn sweep_chunk<C: Conn>(c: &mut C, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
    let n = SWEEP_CHUNK as i64;
    let retention = Cutoff::Retention.at(now_ms, policy);
    let mut r = SweepReport {
        codes: c.exec(&SWEEP_CODES, args![retention, n]).await?,
        sessions: c.exec(&SWEEP_SESSIONS, args![retention, n]).await?,
        revoked_access_tokens: c.exec(&SWEEP_REVOKED_ACCESS, args![now_ms, n]).await?,
        audit_events: c.exec(&SWEEP_AUDIT, args![Cutoff::Audit.at(now_ms, policy), n]).await?,
        dpop_jtis: c.exec(&SWEEP_JTIS, args![now_ms, n]).await?,
        par_requests: c.exec(&SWEEP_PARS, args![retention, n]).await?,
        device_codes: c.exec(&SWEEP_DEVICES, args![retention, n]).await?,
        events: c.exec(&SWEEP_EVENTS, args![retention, n]).await?,
        ..SweepReport::default()
    };
    let dead = c
        .all(&DEAD_FAMILIES, args![now_ms, retention, n], rows::text_col)
        .await?;
    for id in &dead {
        c.exec(&DELETE_FAMILY, args![id]).await?;
    }
    r.families = dead.len() as u64;
    for ttl in c.all(&TOKEN_CLASSES, args![], rows::i64_col).await? {
        r.refresh_tokens += c.exec(&SWEEP_TOKENS, args![ttl, now_ms, n]).await?;
    }
    Ok(r)
}

/// Adds refresh counts (`(client, n)`) to the bucket `bucket_ms` and drops buckets before
/// `before_ms`, in one transaction.
pub async fn add_refresh_counts<C: Conn>(
    c: &mut C,
    counts: &[(String, i64)],
    bucket_ms: i64,
    before_ms: i64,
) -> Result<()> {
    for (client_id, n) in counts {
        c.exec(&ADD_REFRESHES, args![client_id, bucket_ms, n]).await?;
    }
    c.exec(&PRUNE_REFRESHES, args![before_ms]).await?;
    Ok(())
}

/// The refreshes of a client counted in buckets from `since_ms` on.
pub async fn count_refreshes<C: Conn>(c: &mut C, client_id: &str, since_ms: i64) -> Result<i64> {
    Ok(c.one(&COUNT_REFRESHES, args![client_id, since_ms], rows::i64_col)
        .await?
        .unwrap_or(0))
}

// ---- rotation and redemption for a serialised writer ------------------------------------------

/// The refresh grant's atomic step where writes are serialised (the SQLite writer): read,
/// decide (`domain::grant::decide`), write. A used DPoP proof is refused first; the proof's
/// `jti` is recorded only with a rotation, in the same transaction: a refused refresh writes
/// nothing (docs/design/dpop.md).
pub async fn rotate_serial<C: Conn>(c: &mut C, req: &RotateRequest) -> Result<RotateOutcome> {
    if let Some((key, _)) = &req.dpop_jti {
        if jti_seen(c, key).await? {
            return Ok(RotateOutcome::Rejected(crate::domain::grant::Reject::DpopReplay));
        }
    }
    let Some((generation, mut family)) = presented(c, &req.presented).await? else {
        return Ok(RotateOutcome::NotFound);
    };
    let current = family.generation;
    let decision = decide_rotation(&mut family, generation, req)?;
    match decision {
        Decision::Reject(r) => Ok(RotateOutcome::Rejected(r)),
        Decision::Reuse => {
            let event = AuditEvent::refresh_reuse(&family, generation, current);
            revoke_and_audit(c, &family.id, RevocationReason::RefreshTokenReuse, event, req.now_ms).await?;
            Ok(RotateOutcome::Reused { family_id: family.id })
        }
        Decision::Rotate | Decision::GraceReissue => {
            let f = &family;
            c.exec(
                &ROTATE_FAMILY,
                args![
                    f.id,
                    f.generation,
                    f.rotated_at_ms,
                    f.grace_used,
                    f.idle_expires_at_ms,
                    f.last_used_at_ms,
                    f.last_user_agent,
                    f.token_hashes
                ],
            )
            .await?;
            if let Some((key, exp)) = &req.dpop_jti {
                use_jti(c, key, *exp).await?;
            }
            Ok(RotateOutcome::Issued {
                family: Box::new(family),
                grace: decision == Decision::GraceReissue,
            })
        }
    }
}

/// Decides the presentation of generation `generation` of `family` (`domain::grant::decide`),
/// applies the decision to the row (`domain::grant::apply`) and records the new token among the
/// family's live ones (`domain::grant::record_issued`). The new token was made for
/// `req.new_generation` before the decision (a rotation or a grace re-issue always issues the
/// presented generation + 1); a decision that issues another generation is an error, never a
/// token that names the wrong generation.
pub fn decide_rotation(family: &mut Family, generation: i64, req: &RotateRequest) -> Result<Decision> {
    let attempt = RefreshAttempt {
        client_id: &req.client_id,
        requested_scope: req.requested_scope.as_ref(),
        requested_details: req.requested_details.as_deref(),
        dpop_jkt: req.dpop_jkt.as_deref(),
        now_ms: req.now_ms,
    };
    let decision = decide(family, generation, &attempt, &req.policy);
    let issued = apply(family, decision, &req.policy, req.now_ms, req.user_agent.as_deref());
    if issued.is_some_and(|g| g != req.new_generation) {
        return Err(StoreError::Backend(format!(
            "the new refresh token names generation {} but generation {issued:?} is issued",
            req.new_generation
        )));
    }
    record_issued(family, decision, &req.new_hash);
    Ok(decision)
}

/// The code's side of `domain::grant::check_code`.
pub fn redemption(req: &RedeemCode, session_ends_at_ms: Option<i64>) -> CodeRedemption<'_> {
    CodeRedemption {
        client_id: &req.client_id,
        dpop_jkt: req.dpop_jkt.as_deref(),
        redirect_uri: req.redirect_uri.as_deref(),
        code_verifier: req.code_verifier.as_deref(),
        now_ms: req.now_ms,
        session_ends_at_ms,
    }
}

/// The family a code's redemption creates.
pub fn code_family(req: &RedeemCode, code: &AuthCode) -> Family {
    req.family.build(
        &code.client_id,
        &code.user_id,
        &code.scope,
        code.authorization_details.as_deref(),
        &code.session_id,
        code.auth_time,
        req.now_ms,
    )
}

/// Checks and consumes a code and creates its family, where writes are serialised (the SQLite
/// writer); a replay revokes the family the first redemption created.
pub async fn redeem_serial<C: Conn>(c: &mut C, req: &RedeemCode) -> Result<RedeemOutcome> {
    if let Some((key, exp)) = &req.dpop_jti {
        if !use_jti(c, key, *exp).await? {
            return Ok(RedeemOutcome::Rejected("DPoP proof jti has been used before"));
        }
    }
    let hash = &req.code_hash[..];
    let Some((mut code, session_end)) = c.one(&GET_CODE, args![hash], rows::code_and_session_end).await? else {
        return Ok(RedeemOutcome::NotFound);
    };
    match check_code(&code, &redemption(req, session_end)) {
        CodeCheck::Reject(why) => Ok(RedeemOutcome::Rejected(why)),
        CodeCheck::Replayed => {
            if let Some(fid) = code.family_id.clone() {
                revoke_replayed(c, &code, &fid, req.now_ms).await?;
            }
            Ok(RedeemOutcome::Replayed)
        }
        CodeCheck::Ok => {
            let family = code_family(req, &code);
            insert(c, &family).await?;
            c.exec(&CONSUME_CODE, args![hash, req.now_ms, family.id]).await?;
            code.consumed_at_ms = Some(req.now_ms);
            code.family_id = Some(family.id.clone());
            Ok(RedeemOutcome::Issued {
                code: Box::new(code),
                family: Box::new(family),
            })
        }
    }
}

/// A second redemption of a code: revoke the family its first redemption created.
pub async fn revoke_replayed<C: Conn>(c: &mut C, code: &AuthCode, family_id: &str, now_ms: i64) -> Result<()> {
    let event = AuditEvent::code_replay(code, family_id);
    revoke_and_audit(c, family_id, RevocationReason::AuthorizationCodeReplay, event, now_ms).await?;
    Ok(())
}
