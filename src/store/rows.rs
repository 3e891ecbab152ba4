//! Column lists and row mappings, written once for both backends: each `*_cols!` macro names the
//! columns a mapper below reads, in its order (macros, so that statements built from them are
//! `concat!` literals: no SQL is formatted at run time).

use super::sql::RowRef;
use super::{ParRequest, Result};
use crate::domain::model::{
    AuthCode, AuthMethod, Client, DeviceCode, DeviceStatus, Family, KeyRecord, RevocationReason, Session, User,
};

macro_rules! client_cols {
    () => {
        "id, name, auth_method, secrets, redirect_uris, grant_types, scope, dpop_bound, jwks, refresh_idle_ttl_s, refresh_absolute_ttl_s, created_at_ms, require_par, jwks_uri, post_logout_redirect_uris, registration_token_hash"
    };
}
macro_rules! user_cols {
    () => {
        "id, username, password_hash, email, name, created_at_ms"
    };
}
/// The `families` columns (alias `f`).
macro_rules! family_cols {
    () => {
        "f.id, f.client_id, f.user_id, f.scope, f.authorization_details, f.dpop_jkt, f.session_id, f.sid, f.auth_time, f.created_at_ms, f.absolute_expires_at_ms, f.idle_expires_at_ms, f.generation, f.rotated_at_ms, f.grace_used, f.revoked_at_ms, f.revoked_reason, f.last_used_at_ms, f.last_user_agent"
    };
}
macro_rules! code_cols {
    () => {
        "hash, client_id, user_id, redirect_uri, redirect_uri_sent, scope, nonce, code_challenge, session_id, auth_time, expires_at_ms, consumed_at_ms, family_id, dpop_jkt, authorization_details"
    };
}
macro_rules! device_cols {
    () => {
        "device_hash, user_code, client_id, scope, status, interval_s, last_poll_ms, user_id, session_id, auth_time, family_id, created_at_ms, expires_at_ms"
    };
}
macro_rules! session_cols {
    () => {
        "id, token_hash, user_id, auth_time, expires_at_ms, ended_at_ms, user_agent"
    };
}
macro_rules! key_cols {
    () => {
        "kid, alg, private_key, public_jwk, created_at_ms, retired_at_ms"
    };
}
pub(crate) use {client_cols, code_cols, device_cols, family_cols, key_cols, session_cols, user_cols};

pub fn client(r: &RowRef<'_>) -> Result<Client> {
    let method: String = r.get(2)?;
    Ok(Client {
        id: r.get(0)?,
        name: r.get(1)?,
        auth_method: AuthMethod::parse(&method).unwrap_or(AuthMethod::ClientSecretBasic),
        secrets: r.json(3)?,
        redirect_uris: r.json(4)?,
        grant_types: r.json(5)?,
        scope: r.get(6)?,
        dpop_bound: r.get(7)?,
        jwks: r.get(8)?,
        refresh_idle_ttl_s: r.get(9)?,
        refresh_absolute_ttl_s: r.get(10)?,
        created_at_ms: r.get(11)?,
        require_par: r.get(12)?,
        jwks_uri: r.get(13)?,
        post_logout_redirect_uris: r.json(14)?,
        registration_token_hash: r.get(15)?,
    })
}

pub fn user(r: &RowRef<'_>) -> Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        email: r.get(3)?,
        name: r.get(4)?,
        created_at_ms: r.get(5)?,
    })
}

/// A family whose columns start at `o`.
pub fn family_at(r: &RowRef<'_>, o: usize) -> Result<Family> {
    Ok(Family {
        id: r.get(o)?,
        client_id: r.get(o + 1)?,
        user_id: r.get(o + 2)?,
        scope: r.scope(o + 3)?,
        authorization_details: r.get(o + 4)?,
        dpop_jkt: r.get(o + 5)?,
        session_id: r.get(o + 6)?,
        sid: r.get(o + 7)?,
        auth_time: r.get(o + 8)?,
        created_at_ms: r.get(o + 9)?,
        absolute_expires_at_ms: r.get(o + 10)?,
        idle_expires_at_ms: r.get(o + 11)?,
        generation: r.get(o + 12)?,
        rotated_at_ms: r.get(o + 13)?,
        grace_used: r.get(o + 14)?,
        revoked_at_ms: r.get(o + 15)?,
        revoked_reason: r
            .get::<Option<String>>(o + 16)?
            .map(|s| named(&s, RevocationReason::parse))
            .transpose()?,
        last_used_at_ms: r.get(o + 17)?,
        last_user_agent: r.get(o + 18)?,
    })
}

pub fn family(r: &RowRef<'_>) -> Result<Family> {
    family_at(r, 0)
}

/// A refresh token's generation, then its family.
pub fn token(r: &RowRef<'_>) -> Result<(i64, Family)> {
    Ok((r.get(0)?, family_at(r, 1)?))
}

pub fn code(r: &RowRef<'_>) -> Result<AuthCode> {
    Ok(AuthCode {
        hash: r.get(0)?,
        client_id: r.get(1)?,
        user_id: r.get(2)?,
        redirect_uri: r.get(3)?,
        redirect_uri_sent: r.get(4)?,
        scope: r.scope(5)?,
        nonce: r.get(6)?,
        code_challenge: r.get(7)?,
        session_id: r.get(8)?,
        auth_time: r.get(9)?,
        expires_at_ms: r.get(10)?,
        consumed_at_ms: r.get(11)?,
        family_id: r.get(12)?,
        dpop_jkt: r.get(13)?,
        authorization_details: r.get(14)?,
    })
}

/// A code, then when its sign-in session ends (`session_end!`).
pub fn code_and_session_end(r: &RowRef<'_>) -> Result<(AuthCode, Option<i64>)> {
    Ok((code(r)?, r.get(15)?))
}

pub fn device(r: &RowRef<'_>) -> Result<DeviceCode> {
    Ok(DeviceCode {
        device_hash: r.get(0)?,
        user_code: r.get(1)?,
        client_id: r.get(2)?,
        scope: r.scope(3)?,
        status: named(&r.get::<String>(4)?, DeviceStatus::parse)?,
        interval_s: r.get(5)?,
        last_poll_ms: r.get(6)?,
        user_id: r.get(7)?,
        session_id: r.get(8)?,
        auth_time: r.get(9)?,
        family_id: r.get(10)?,
        created_at_ms: r.get(11)?,
        expires_at_ms: r.get(12)?,
    })
}

pub fn session(r: &RowRef<'_>) -> Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        token_hash: r.get(1)?,
        user_id: r.get(2)?,
        auth_time: r.get(3)?,
        expires_at_ms: r.get(4)?,
        ended_at_ms: r.get(5)?,
        user_agent: r.get(6)?,
    })
}

pub fn key(r: &RowRef<'_>) -> Result<KeyRecord> {
    Ok(KeyRecord {
        kid: r.get(0)?,
        alg: r.get(1)?,
        private_key: r.get(2)?,
        public_jwk: r.get(3)?,
        created_at_ms: r.get(4)?,
        retired_at_ms: r.get(5)?,
    })
}

/// `hash, client_id, params, expires_at_ms, used_at_ms`.
pub fn par(r: &RowRef<'_>) -> Result<ParRequest> {
    let hash: Vec<u8> = r.get(0)?;
    Ok(ParRequest {
        hash: hash
            .try_into()
            .map_err(|_| super::StoreError::Backend("stored request_uri hash is not 32 bytes".into()))?,
        client_id: r.get(1)?,
        params: r.get(2)?,
        expires_at_ms: r.get(3)?,
        used_at_ms: r.get(4)?,
    })
}

/// A stored name of a domain enum.
fn named<T>(s: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(s).ok_or_else(|| super::StoreError::Backend(format!("unknown stored name {s:?}")))
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
