//! The stored domain types, each declared once as a [`Record`](super::sql::Record): its table and
//! columns, from which come the column lists of statements, the row mapping and the INSERT's
//! arguments (`record!`); and the mappers of rows that are not one record.

use super::sql::{record, Record, RowRef};
use super::{AuditRecord, EventRecord, ParRequest, Result};
use crate::domain::events::OutboxEvent;
use crate::domain::model::{AuthCode, Client, Consent, DeviceCode, Family, KeyRecord, Session, User};
use crate::domain::ssf::Stream;

record!(Client, "clients" as "c" {
    id, name, auth_method, secrets: json, redirect_uris: json, grant_types: json, scope, dpop_bound, jwks,
    refresh_idle_ttl_s, refresh_absolute_ttl_s, created_at_ms, require_par, jwks_uri,
    post_logout_redirect_uris: json, registration_token_hash, display: json, reuse_grace_seconds, reuse_grace_count, backchannel_logout_uri,
    backchannel_logout_session_required
});
record!(OutboxEvent, "event_outbox" as "o" {
    id, jti, kind, client_id, endpoint, subject, sid, claims, created_at_ms, attempts
});
record!(Stream, "ssf_streams" as "st" {
    client_id, stream_id, endpoint_url, events_requested: json, session_revoked, credential_compromise,
    description, created_at_ms, updated_at_ms
});
record!(User, "users" as "u" { id, username, password_hash, email, name, created_at_ms });
record!(AuditRecord, "audit_events" as "a" { id, at_ms, kind, client_id, user_id, family_id, detail });
record!(EventRecord, "event_outbox" as "e" {
    id, jti, kind, client_id, endpoint, state, attempts, created_at_ms, next_attempt_at_ms, updated_at_ms, last_error
});
record!(Family, "families" as "f" {
    id, client_id, user_id, scope, authorization_details, dpop_jkt, session_id, sid, auth_time, created_at_ms,
    absolute_expires_at_ms, idle_expires_at_ms, generation, rotated_at_ms, grace_used, revoked_at_ms,
    revoked_reason, last_used_at_ms, last_user_agent, token_hashes
});
record!(AuthCode, "codes" as "k" {
    hash, client_id, user_id, redirect_uri, redirect_uri_sent, scope, nonce, code_challenge, session_id,
    auth_time, expires_at_ms, consumed_at_ms, family_id, dpop_jkt, authorization_details
});
record!(DeviceCode, "device_codes" as "d" {
    device_hash, user_code, client_id, scope, status, interval_s, last_poll_ms, user_id, session_id, auth_time,
    family_id, created_at_ms, expires_at_ms
});
record!(Session, "sessions" as "s" { id, token_hash, user_id, auth_time, expires_at_ms, ended_at_ms, user_agent });
record!(KeyRecord, "signing_keys" as "k" { kid, alg, private_key, public_jwk, created_at_ms, retired_at_ms });
record!(ParRequest, "par_requests" as "p" { hash: hash32, client_id, params, expires_at_ms, used_at_ms });

/// One record, from the first column.
pub fn one<R: Record>(r: &RowRef<'_>) -> Result<R> {
    R::read(r, 0)
}

/// A refresh token's generation, then its family.
pub fn token(r: &RowRef<'_>) -> Result<(i64, Family)> {
    Ok((r.get(0)?, Family::read(r, 1)?))
}

/// A code, then when its sign-in session ends (`session_end!`).
pub fn code_and_session_end(r: &RowRef<'_>) -> Result<(AuthCode, Option<i64>)> {
    Ok((AuthCode::read(r, 0)?, r.get(AuthCode::WIDTH)?))
}

/// A client, then its secrets' stored text.
pub fn client_and_secrets(r: &RowRef<'_>) -> Result<(Client, String)> {
    Ok((Client::read(r, 0)?, r.get(Client::WIDTH)?))
}

/// A consent and its client's name (`LIST_USER_CONSENTS`).
pub fn consent(r: &RowRef<'_>) -> Result<Consent> {
    Ok(Consent {
        client_id: r.get(0)?,
        client_name: r.get(1)?,
        scope: r.get(2)?,
        updated_at_ms: r.get(3)?,
    })
}

pub fn i64_col(r: &RowRef<'_>) -> Result<i64> {
    r.get(0)
}
pub fn opt_i64_col(r: &RowRef<'_>) -> Result<Option<i64>> {
    r.get(0)
}
pub fn text_col(r: &RowRef<'_>) -> Result<String> {
    r.get(0)
}
pub fn bytes_col(r: &RowRef<'_>) -> Result<Vec<u8>> {
    r.get(0)
}
pub fn exists(_: &RowRef<'_>) -> Result<()> {
    Ok(())
}
