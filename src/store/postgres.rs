//! PostgreSQL backend, for several `autional serve` processes on one database. Every atomic
//! operation is either one statement or a short transaction; the refresh rotation is a read
//! followed by one guarded write (`UPDATE families … WHERE generation = $seen AND grace_used =
//! $seen AND revoked_at_ms IS NULL` chained to the INSERT of the new token in one statement).
//! Under READ COMMITTED a racing loser's guard matches no row, so it re-reads and is classified
//! again (grace or reuse): no serialization failure can surface as a 500, and of N racing
//! processes exactly one wins.

use super::*;
use crate::domain::device::{self, Poll};
use crate::domain::grant::Reject;
use crate::domain::grant::{apply, check_code, decide, CodeCheck, CodeRedemption, Decision, RefreshAttempt};
use crate::domain::model::AuthMethod;
use crate::domain::model::DeviceCode;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_dpop_rar_par.sql"),
    include_str!("../../migrations/postgres/0003_lifecycle.sql"),
    include_str!("../../migrations/postgres/0004_pending_grants.sql"),
];

/// How often a rotation re-reads after losing a race before giving up. Each loss means another
/// request wrote the family; per generation at most 1 + `reuse_grace_count` (≤ 10) writes can
/// succeed, so a loser settles long before this.
const MAX_RACE_RETRIES: usize = 32;

pub struct PgStore {
    pool: Pool,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return StoreError::Conflict(e.to_string());
        }
        StoreError::Backend(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl PgStore {
    /// Connects (`pool_size` connections at most) and applies pending migrations under an
    /// advisory lock, so that several processes starting at once migrate once.
    pub async fn open(url: &str, pool_size: usize) -> anyhow::Result<PgStore> {
        let pg: tokio_postgres::Config = url.parse().map_err(|e| anyhow::anyhow!("database_url: {e}"))?;
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(5)))
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .build()?;
        let mut c = pool
            .get()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        let tx = c.transaction().await?;
        tx.batch_execute("SELECT pg_advisory_xact_lock(7210431); CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .await?;
        let done: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
            .await?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&(i as i64 + 1)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(PgStore { pool })
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }
}

const CLIENT_COLS: &str = "id, name, auth_method, secrets, redirect_uris, grant_types, scope, dpop_bound, jwks, refresh_idle_ttl_s, refresh_absolute_ttl_s, created_at_ms, require_par, jwks_uri, post_logout_redirect_uris, registration_token_hash";

fn json<T: serde::de::DeserializeOwned>(s: String) -> Result<T> {
    serde_json::from_str(&s).map_err(|e| StoreError::Backend(format!("stored JSON is invalid: {e}")))
}

fn client_row(r: &Row) -> Result<Client> {
    let method: String = r.get(2);
    Ok(Client {
        id: r.get(0),
        name: r.get(1),
        auth_method: AuthMethod::parse(&method).unwrap_or(AuthMethod::ClientSecretBasic),
        secrets: json(r.get(3))?,
        redirect_uris: json(r.get(4))?,
        grant_types: json(r.get(5))?,
        scope: r.get(6),
        dpop_bound: r.get(7),
        jwks: r.get(8),
        refresh_idle_ttl_s: r.get(9),
        refresh_absolute_ttl_s: r.get(10),
        created_at_ms: r.get(11),
        require_par: r.get(12),
        jwks_uri: r.get(13),
        post_logout_redirect_uris: json(r.get(14))?,
        registration_token_hash: r.get(15),
    })
}

const USER_COLS: &str = "id, username, password_hash, email, name, created_at_ms";

fn user_row(r: &Row) -> User {
    User {
        id: r.get(0),
        username: r.get(1),
        password_hash: r.get(2),
        email: r.get(3),
        name: r.get(4),
        created_at_ms: r.get(5),
    }
}

const FAMILY_COLS: &str = family_cols!();

fn family_row(r: &Row, o: usize) -> Family {
    Family {
        id: r.get(o),
        client_id: r.get(o + 1),
        user_id: r.get(o + 2),
        scope: r.get(o + 3),
        authorization_details: r.get(o + 4),
        dpop_jkt: r.get(o + 5),
        session_id: r.get(o + 6),
        sid: r.get(o + 7),
        auth_time: r.get(o + 8),
        created_at_ms: r.get(o + 9),
        absolute_expires_at_ms: r.get(o + 10),
        idle_expires_at_ms: r.get(o + 11),
        generation: r.get(o + 12),
        rotated_at_ms: r.get(o + 13),
        grace_used: r.get(o + 14),
        revoked_at_ms: r.get(o + 15),
        revoked_reason: r.get(o + 16),
        last_used_at_ms: r.get(o + 17),
        last_user_agent: r.get(o + 18),
    }
}

const CODE_COLS: &str = "hash, client_id, user_id, redirect_uri, redirect_uri_sent, scope, nonce, code_challenge, session_id, auth_time, expires_at_ms, consumed_at_ms, family_id, dpop_jkt, authorization_details";

const DEVICE_COLS: &str = "device_hash, user_code, client_id, scope, status, interval_s, last_poll_ms, user_id, session_id, auth_time, family_id, created_at_ms, expires_at_ms";

fn device_row(r: &Row) -> DeviceCode {
    DeviceCode {
        device_hash: r.get(0),
        user_code: r.get(1),
        client_id: r.get(2),
        scope: r.get(3),
        status: r.get(4),
        interval_s: r.get(5),
        last_poll_ms: r.get(6),
        user_id: r.get(7),
        session_id: r.get(8),
        auth_time: r.get(9),
        family_id: r.get(10),
        created_at_ms: r.get(11),
        expires_at_ms: r.get(12),
    }
}

const SESSION_COLS: &str = "id, token_hash, user_id, auth_time, expires_at_ms, ended_at_ms, user_agent";

fn session_row(r: &Row) -> Session {
    Session {
        id: r.get(0),
        token_hash: r.get(1),
        user_id: r.get(2),
        auth_time: r.get(3),
        expires_at_ms: r.get(4),
        ended_at_ms: r.get(5),
        user_agent: r.get(6),
    }
}

fn code_row(r: &Row) -> AuthCode {
    AuthCode {
        hash: r.get(0),
        client_id: r.get(1),
        user_id: r.get(2),
        redirect_uri: r.get(3),
        redirect_uri_sent: r.get(4),
        scope: r.get(5),
        nonce: r.get(6),
        code_challenge: r.get(7),
        session_id: r.get(8),
        auth_time: r.get(9),
        expires_at_ms: r.get(10),
        consumed_at_ms: r.get(11),
        family_id: r.get(12),
        dpop_jkt: r.get(13),
        authorization_details: r.get(14),
    }
}

fn reuse_detail(presented: i64, current: i64) -> String {
    format!("{{\"presented_generation\":{presented},\"current_generation\":{current}}}")
}

/// Revokes a family and writes the audit event, in one statement (no event when it was
/// already revoked).
const REVOKE_AND_AUDIT: &str = "WITH u AS (UPDATE families SET revoked_at_ms = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at_ms IS NULL RETURNING id, client_id, user_id) \
     INSERT INTO audit_events (at_ms, kind, client_id, user_id, family_id, detail) SELECT $2, $4, client_id, user_id, id, $5 FROM u";

/// Records a DPoP proof's `jti`; false when it was seen before (a replay).
async fn use_jti(c: &deadpool_postgres::Object, key: &[u8; 32], expires_at_ms: i64) -> Result<bool> {
    let st = c
        .prepare_cached("INSERT INTO dpop_jtis (key, expires_at_ms) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .await?;
    Ok(c.execute(&st, &[&&key[..], &expires_at_ms]).await? == 1)
}

/// A unique violation on `dpop_jtis`: the proof was used concurrently by another request.
fn is_jti_conflict(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        *d.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION && d.table() == Some("dpop_jtis")
    })
}

/// A second redemption of a code: revoke the family its first redemption created.
async fn revoke_replayed(
    c: &deadpool_postgres::Object,
    family_id: Option<String>,
    now_ms: i64,
) -> Result<RedeemOutcome> {
    if let Some(fid) = family_id {
        c.execute(
            REVOKE_AND_AUDIT,
            &[
                &fid,
                &now_ms,
                &"authorization_code_replay",
                &"code.replay_detected",
                &None::<String>,
            ],
        )
        .await?;
    }
    Ok(RedeemOutcome::Replayed)
}

/// Ends the uncollected device approvals (`Pending::Devices`) or unredeemed codes
/// (`Pending::Codes`) matching `who` (see [`end_pending_grants_sql`] for the order).
async fn end_pending(
    tx: &deadpool_postgres::Transaction<'_>,
    which: Pending,
    who: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<()> {
    let [devices, codes] = end_pending_grants_sql(who);
    let sql = match which {
        Pending::Devices => devices,
        Pending::Codes => codes,
    };
    tx.execute(&sql, args).await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Pending {
    Devices,
    Codes,
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        self.conn().await?.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn insert_client(&self, cl: Client) -> Result<()> {
        let c = self.conn().await?;
        let secrets = serde_json::to_string(&cl.secrets).unwrap_or_else(|_| "[]".into());
        let uris = serde_json::to_string(&cl.redirect_uris).unwrap_or_else(|_| "[]".into());
        let grants = serde_json::to_string(&cl.grant_types).unwrap_or_else(|_| "[]".into());
        c.execute(
            &format!(
                "INSERT INTO clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            &[
                &cl.id,
                &cl.name,
                &cl.auth_method.as_str(),
                &secrets,
                &uris,
                &grants,
                &cl.scope,
                &cl.dpop_bound,
                &cl.jwks,
                &cl.refresh_idle_ttl_s,
                &cl.refresh_absolute_ttl_s,
                &cl.created_at_ms,
                &cl.require_par,
                &cl.jwks_uri,
                &serde_json::to_string(&cl.post_logout_redirect_uris).unwrap_or_else(|_| "[]".into()),
                &cl.registration_token_hash,
            ],
        )
        .await?;
        Ok(())
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(&format!("SELECT {CLIENT_COLS} FROM clients WHERE id = $1"))
            .await?;
        c.query_opt(&st, &[&id]).await?.as_ref().map(client_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {CLIENT_COLS} FROM clients ORDER BY created_at_ms, id"),
                &[],
            )
            .await?;
        rows.iter().map(client_row).collect()
    }

    async fn delete_client(&self, id: &str, now_ms: i64) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE families SET revoked_at_ms = $2, revoked_reason = 'client_deleted' WHERE client_id = $1 AND revoked_at_ms IS NULL",
            &[&id, &now_ms],
        )
        .await?;
        tx.execute("DELETE FROM consents WHERE client_id = $1", &[&id]).await?;
        // Nothing outstanding may still turn into a grant of the deleted client.
        tx.execute("DELETE FROM codes WHERE client_id = $1", &[&id]).await?;
        tx.execute("DELETE FROM device_codes WHERE client_id = $1", &[&id])
            .await?;
        tx.execute("DELETE FROM par_requests WHERE client_id = $1", &[&id])
            .await?;
        let n = tx.execute("DELETE FROM clients WHERE id = $1", &[&id]).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn update_client(&self, cl: Client) -> Result<bool> {
        let uris = serde_json::to_string(&cl.redirect_uris).unwrap_or_else(|_| "[]".into());
        let grants = serde_json::to_string(&cl.grant_types).unwrap_or_else(|_| "[]".into());
        let logout = serde_json::to_string(&cl.post_logout_redirect_uris).unwrap_or_else(|_| "[]".into());
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE clients SET name = $2, auth_method = $3, redirect_uris = $4, grant_types = $5, scope = $6, jwks = $7, jwks_uri = $8, post_logout_redirect_uris = $9, dpop_bound = $10, require_par = $11 WHERE id = $1",
                &[&cl.id, &cl.name, &cl.auth_method.as_str(), &uris, &grants, &cl.scope, &cl.jwks, &cl.jwks_uri, &logout, &cl.dpop_bound, &cl.require_par],
            )
            .await?;
        Ok(n == 1)
    }

    async fn set_client_secrets(&self, id: &str, secrets: Vec<SecretHash>) -> Result<bool> {
        let json = serde_json::to_string(&secrets).unwrap_or_else(|_| "[]".into());
        let n = self
            .conn()
            .await?
            .execute("UPDATE clients SET secrets = $2 WHERE id = $1", &[&id, &json])
            .await?;
        Ok(n > 0)
    }

    async fn insert_user(&self, u: User) -> Result<()> {
        self.conn()
            .await?
            .execute(
                &format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"),
                &[
                    &u.id,
                    &u.username,
                    &u.password_hash,
                    &u.email,
                    &u.name,
                    &u.created_at_ms,
                ],
            )
            .await?;
        Ok(())
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .await?;
        Ok(c.query_opt(&st, &[&id]).await?.as_ref().map(user_row))
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE username = $1"))
            .await?;
        Ok(c.query_opt(&st, &[&username]).await?.as_ref().map(user_row))
    }

    async fn set_password(&self, user_id: &str, password_hash: &str, now_ms: i64) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let n = tx
            .execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1",
                &[&user_id, &password_hash],
            )
            .await?;
        end_pending(&tx, Pending::Devices, "user_id = $1", &[&user_id]).await?;
        tx.execute(
            "UPDATE sessions SET ended_at_ms = $2 WHERE user_id = $1 AND ended_at_ms IS NULL",
            &[&user_id, &now_ms],
        )
        .await?;
        tx.execute(
            "UPDATE families SET revoked_at_ms = $2, revoked_reason = 'password_changed' WHERE user_id = $1 AND revoked_at_ms IS NULL",
            &[&user_id, &now_ms],
        )
        .await?;
        end_pending(&tx, Pending::Codes, "user_id = $1", &[&user_id]).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn delete_user(&self, user_id: &str, now_ms: i64) -> Result<bool> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "UPDATE families SET revoked_at_ms = $2, revoked_reason = 'user_deleted' WHERE user_id = $1 AND revoked_at_ms IS NULL",
            &[&user_id, &now_ms],
        )
        .await?;
        tx.execute(
            "UPDATE sessions SET ended_at_ms = $2 WHERE user_id = $1 AND ended_at_ms IS NULL",
            &[&user_id, &now_ms],
        )
        .await?;
        tx.execute("DELETE FROM consents WHERE user_id = $1", &[&user_id])
            .await?;
        tx.execute("DELETE FROM codes WHERE user_id = $1", &[&user_id]).await?;
        tx.execute("DELETE FROM device_codes WHERE user_id = $1", &[&user_id])
            .await?;
        let n = tx.execute("DELETE FROM users WHERE id = $1", &[&user_id]).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn revoke_consent(&self, user_id: &str, client_id: &str, now_ms: i64) -> Result<u64> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "DELETE FROM consents WHERE user_id = $1 AND client_id = $2",
            &[&user_id, &client_id],
        )
        .await?;
        for which in [Pending::Devices, Pending::Codes] {
            end_pending(&tx, which, "user_id = $1 AND client_id = $2", &[&user_id, &client_id]).await?;
        }
        let n = tx
            .execute(
                "UPDATE families SET revoked_at_ms = $3, revoked_reason = 'consent_revoked' WHERE user_id = $1 AND client_id = $2 AND revoked_at_ms IS NULL",
                &[&user_id, &client_id, &now_ms],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_user_families(&self, user_id: &str) -> Result<Vec<Family>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!("SELECT {FAMILY_COLS} FROM families f WHERE f.user_id = $1 AND f.revoked_at_ms IS NULL ORDER BY f.created_at_ms DESC"),
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(|r| family_row(r, 0)).collect())
    }

    async fn revoke_user_family(&self, user_id: &str, family_id: &str, reason: &str, now_ms: i64) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE families SET revoked_at_ms = $3, revoked_reason = $4 WHERE id = $2 AND user_id = $1 AND revoked_at_ms IS NULL",
                &[&user_id, &family_id, &now_ms, &reason],
            )
            .await?;
        Ok(n == 1)
    }

    async fn insert_device(&self, d: DeviceCode) -> Result<()> {
        self.conn()
            .await?
            .execute(
                &format!("INSERT INTO device_codes ({DEVICE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"),
                &[
                    &d.device_hash, &d.user_code, &d.client_id, &d.scope, &d.status, &d.interval_s, &d.last_poll_ms, &d.user_id,
                    &d.session_id, &d.auth_time, &d.family_id, &d.created_at_ms, &d.expires_at_ms,
                ],
            )
            .await?;
        Ok(())
    }

    async fn find_device(&self, user_code: &str) -> Result<Option<DeviceCode>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {DEVICE_COLS} FROM device_codes WHERE user_code = $1"),
                &[&user_code],
            )
            .await?;
        Ok(row.as_ref().map(device_row))
    }

    async fn decide_device(
        &self,
        user_code: &str,
        approval: Option<(String, String, i64)>,
        now_ms: i64,
    ) -> Result<bool> {
        let c = self.conn().await?;
        let n = match approval {
            Some((user, session, auth_time)) => {
                c.execute(
                    "UPDATE device_codes SET status = 'approved', user_id = $2, session_id = $3, auth_time = $4 WHERE user_code = $1 AND status = 'pending' AND expires_at_ms > $5",
                    &[&user_code, &user, &session, &auth_time, &now_ms],
                )
                .await?
            }
            None => {
                c.execute(
                    "UPDATE device_codes SET status = 'denied' WHERE user_code = $1 AND status = 'pending' AND expires_at_ms > $2",
                    &[&user_code, &now_ms],
                )
                .await?
            }
        };
        Ok(n == 1)
    }

    async fn poll_device(&self, req: PollDevice) -> Result<DeviceOutcome> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // The row lock serialises polls of one code across processes.
        let Some(row) = tx
            .query_opt(
                &format!("SELECT {DEVICE_COLS} FROM device_codes WHERE device_hash = $1 FOR UPDATE"),
                &[&&req.device_hash[..]],
            )
            .await?
        else {
            return Ok(DeviceOutcome::NotFound);
        };
        let mut d = device_row(&row);
        // An approval turns into tokens only while its session is live; the share lock makes a
        // concurrent `end_session` wait for this poll's family (and then revoke it) or this
        // poll see the session ended (lock order: device code, then session, as in
        // `end_session`).
        let session_end = match (&d.status[..], &d.session_id) {
            ("approved", Some(sid)) => tx
                .query_opt(
                    "SELECT CASE WHEN s.ended_at_ms < s.expires_at_ms THEN s.ended_at_ms ELSE s.expires_at_ms END FROM sessions s WHERE s.id = $1 FOR SHARE",
                    &[sid],
                )
                .await?
                .map(|r| r.get::<_, i64>(0)),
            _ => None,
        };
        let p = device::poll(&d, &req.client_id, req.now_ms, session_end);
        let out = match p {
            Poll::Pending => {
                tx.execute(
                    "UPDATE device_codes SET last_poll_ms = $2 WHERE device_hash = $1",
                    &[&&req.device_hash[..], &req.now_ms],
                )
                .await?;
                DeviceOutcome::Poll(p)
            }
            Poll::SlowDown => {
                tx.execute(
                    "UPDATE device_codes SET last_poll_ms = $2, interval_s = interval_s + 5 WHERE device_hash = $1",
                    &[&&req.device_hash[..], &req.now_ms],
                )
                .await?;
                DeviceOutcome::Poll(p)
            }
            Poll::Issue => {
                let (Some(user), Some(session), Some(auth_time)) =
                    (d.user_id.clone(), d.session_id.clone(), d.auth_time)
                else {
                    return Ok(DeviceOutcome::Poll(Poll::Invalid));
                };
                let f = req
                    .family
                    .build(&d.client_id, &user, &d.scope, None, &session, auth_time, req.now_ms);
                tx.execute(
                    "INSERT INTO families (id, client_id, user_id, scope, authorization_details, dpop_jkt, session_id, sid, auth_time, created_at_ms, absolute_expires_at_ms, idle_expires_at_ms, generation, rotated_at_ms, grace_used, last_used_at_ms, last_user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $10, 0, $10, $13)",
                    &[
                        &f.id, &f.client_id, &f.user_id, &f.scope, &f.authorization_details, &f.dpop_jkt, &f.session_id, &f.sid,
                        &f.auth_time, &f.created_at_ms, &f.absolute_expires_at_ms, &f.idle_expires_at_ms, &f.last_user_agent,
                    ],
                )
                .await?;
                if let Some(h) = &req.family.refresh_hash {
                    tx.execute(
                        "INSERT INTO refresh_tokens (hash, family_id, generation) VALUES ($1, $2, 0)",
                        &[&&h[..], &f.id],
                    )
                    .await?;
                }
                tx.execute(
                    "UPDATE device_codes SET status = 'consumed', family_id = $2 WHERE device_hash = $1",
                    &[&&req.device_hash[..], &f.id],
                )
                .await?;
                d.status = "consumed".into();
                d.family_id = Some(f.id.clone());
                DeviceOutcome::Issued {
                    device: Box::new(d),
                    family: Box::new(f),
                }
            }
            Poll::Denied | Poll::Expired | Poll::Invalid => DeviceOutcome::Poll(p),
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT kid, alg, private_key, public_jwk, created_at_ms, retired_at_ms FROM signing_keys ORDER BY created_at_ms", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| KeyRecord {
                kid: r.get(0),
                alg: r.get(1),
                private_key: r.get(2),
                public_jwk: r.get(3),
                created_at_ms: r.get(4),
                retired_at_ms: r.get(5),
            })
            .collect())
    }

    async fn add_key(&self, k: KeyRecord) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7210432)", &[]).await?;
        tx.execute(
            "UPDATE signing_keys SET retired_at_ms = $1 WHERE retired_at_ms IS NULL",
            &[&k.created_at_ms],
        )
        .await?;
        tx.execute(
            "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&k.kid, &k.alg, &k.private_key, &k.public_jwk, &k.created_at_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ensure_key(&self, k: KeyRecord) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(7210432)", &[]).await?;
        let active: i64 = tx
            .query_one("SELECT COUNT(*) FROM signing_keys WHERE retired_at_ms IS NULL", &[])
            .await?
            .get(0);
        if active == 0 {
            tx.execute(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&k.kid, &k.alg, &k.private_key, &k.public_jwk, &k.created_at_ms],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn server_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &candidate],
        )
        .await?;
        Ok(
            c.query_one("SELECT value FROM server_secrets WHERE name = $1", &[&name])
                .await?
                .get(0),
        )
    }

    async fn insert_session(&self, s: Session) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO sessions (id, token_hash, user_id, auth_time, expires_at_ms, ended_at_ms, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&s.id, &s.token_hash, &s.user_id, &s.auth_time, &s.expires_at_ms, &s.ended_at_ms, &s.user_agent],
            )
            .await?;
        Ok(())
    }

    async fn get_session_by_token(&self, token_hash: [u8; 32]) -> Result<Option<Session>> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(&format!("SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1"))
            .await?;
        Ok(c.query_opt(&st, &[&&token_hash[..]]).await?.as_ref().map(session_row))
    }

    async fn end_session(&self, id: &str, now_ms: i64) -> Result<u64> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // Lock order device code → session → code, as in `poll_device` and `redeem_code`.
        end_pending(&tx, Pending::Devices, "session_id = $1", &[&id]).await?;
        tx.execute(
            "UPDATE sessions SET ended_at_ms = $2 WHERE id = $1 AND ended_at_ms IS NULL",
            &[&id, &now_ms],
        )
        .await?;
        end_pending(&tx, Pending::Codes, "session_id = $1", &[&id]).await?;
        let n = tx
            .execute(
                "UPDATE families SET revoked_at_ms = $2, revoked_reason = 'session_ended' WHERE session_id = $1 AND revoked_at_ms IS NULL",
                &[&id, &now_ms],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!("SELECT {SESSION_COLS} FROM sessions WHERE user_id = $1 AND ended_at_ms IS NULL ORDER BY auth_time DESC"),
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(session_row).collect())
    }

    async fn get_consent(&self, user_id: &str, client_id: &str) -> Result<Option<String>> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
            .await?;
        Ok(c.query_opt(&st, &[&user_id, &client_id]).await?.map(|r| r.get(0)))
    }

    async fn save_consent(&self, user_id: &str, client_id: &str, scope: &str, now_ms: i64) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO consents (user_id, client_id, scope, updated_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at_ms = excluded.updated_at_ms",
                &[&user_id, &client_id, &scope, &now_ms],
            )
            .await?;
        Ok(())
    }

    async fn insert_code(&self, code: AuthCode) -> Result<()> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(&format!(
                "INSERT INTO codes ({CODE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ))
            .await?;
        c.execute(
            &st,
            &[
                &code.hash,
                &code.client_id,
                &code.user_id,
                &code.redirect_uri,
                &code.redirect_uri_sent,
                &code.scope,
                &code.nonce,
                &code.code_challenge,
                &code.session_id,
                &code.auth_time,
                &code.expires_at_ms,
                &code.consumed_at_ms,
                &code.family_id,
                &code.dpop_jkt,
                &code.authorization_details,
            ],
        )
        .await?;
        Ok(())
    }

    async fn redeem_code(&self, req: RedeemCode) -> Result<RedeemOutcome> {
        let c = self.conn().await?;
        if let Some((key, exp)) = &req.dpop_jti {
            if !use_jti(&c, key, *exp).await? {
                return Ok(RedeemOutcome::Rejected("DPoP proof jti has been used before"));
            }
        }
        let select = c
            .prepare_cached(&format!(
                "SELECT {CODE_COLS}, {} FROM codes WHERE hash = $1",
                session_end!("codes")
            ))
            .await?;
        let Some(row) = c.query_opt(&select, &[&&req.code_hash[..]]).await? else {
            return Ok(RedeemOutcome::NotFound);
        };
        let mut code = code_row(&row);
        let redemption = CodeRedemption {
            client_id: &req.client_id,
            dpop_jkt: req.dpop_jkt.as_deref(),
            redirect_uri: req.redirect_uri.as_deref(),
            code_verifier: req.code_verifier.as_deref(),
            now_ms: req.now_ms,
            session_ends_at_ms: row.get(15),
        };
        match check_code(&code, &redemption) {
            CodeCheck::Reject(why) => Ok(RedeemOutcome::Rejected(why)),
            CodeCheck::Replayed => revoke_replayed(&c, code.family_id.clone(), req.now_ms).await,
            CodeCheck::Ok => {
                let nf = &req.family;
                let family = nf.build(
                    &code.client_id,
                    &code.user_id,
                    &code.scope,
                    code.authorization_details.as_deref(),
                    &code.session_id,
                    code.auth_time,
                    req.now_ms,
                );
                // Consume, create the family and its first token in one statement; a racing
                // second redemption finds the code consumed and is treated as a replay. The
                // session must still be live, under a share lock: a concurrent `end_session`
                // either waits and then revokes this family, or has ended the session first and
                // this statement consumes nothing (lock order: session, then code).
                let f = &family;
                let refresh: Option<&[u8]> = nf.refresh_hash.as_ref().map(|h| &h[..]);
                let st = c
                    .prepare_cached(
                        "WITH c AS (UPDATE codes SET consumed_at_ms = $2, family_id = $3 WHERE hash = $1 AND consumed_at_ms IS NULL \
                                    AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = codes.session_id AND s.ended_at_ms IS NULL AND s.expires_at_ms > $2 FOR SHARE) RETURNING hash), \
                         f AS (INSERT INTO families (id, client_id, user_id, scope, authorization_details, dpop_jkt, session_id, sid, auth_time, created_at_ms, absolute_expires_at_ms, idle_expires_at_ms, generation, rotated_at_ms, grace_used, last_used_at_ms, last_user_agent) \
                               SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $2, $12, $13, 0, $2, 0, $2, $14 FROM c RETURNING id), \
                         t AS (INSERT INTO refresh_tokens (hash, family_id, generation) SELECT $15, id, 0 FROM f WHERE $15::bytea IS NOT NULL RETURNING family_id) \
                         SELECT (SELECT COUNT(*) FROM f)",
                    )
                    .await?;
                let n: i64 = c
                    .query_one(
                        &st,
                        &[
                            &&req.code_hash[..],
                            &req.now_ms,
                            &f.id,
                            &f.client_id,
                            &f.user_id,
                            &f.scope,
                            &f.authorization_details,
                            &f.dpop_jkt,
                            &f.session_id,
                            &f.sid,
                            &f.auth_time,
                            &f.absolute_expires_at_ms,
                            &f.idle_expires_at_ms,
                            &f.last_user_agent,
                            &refresh,
                        ],
                    )
                    .await?
                    .get(0);
                if n == 0 {
                    let row = c.query_opt(&select, &[&&req.code_hash[..]]).await?;
                    let consumed = row.as_ref().and_then(|r| r.get::<_, Option<i64>>(11));
                    if consumed.is_none() {
                        // Not consumed by a racing redemption: its session ended meanwhile.
                        return Ok(RedeemOutcome::Rejected(crate::domain::grant::SESSION_ENDED));
                    }
                    let fid = row.as_ref().and_then(|r| r.get::<_, Option<String>>(12));
                    return revoke_replayed(&c, fid, req.now_ms).await;
                }
                code.consumed_at_ms = Some(req.now_ms);
                code.family_id = Some(family.id.clone());
                Ok(RedeemOutcome::Issued {
                    code: Box::new(code),
                    family: Box::new(family),
                })
            }
        }
    }

    async fn rotate_refresh(&self, req: RotateRequest) -> Result<RotateOutcome> {
        let c = self.conn().await?;
        let select = c.prepare_cached(token_lookup!("$1")).await?;
        let write = c
            .prepare_cached(
                "WITH u AS (UPDATE families SET generation = $2, rotated_at_ms = $3, grace_used = $4, idle_expires_at_ms = $5, last_used_at_ms = $6, last_user_agent = $7 \
                            WHERE id = $1 AND generation = $8 AND grace_used = $9 AND revoked_at_ms IS NULL RETURNING id), \
                 j AS (INSERT INTO dpop_jtis (key, expires_at_ms) SELECT $11::bytea, $12::bigint FROM u WHERE $11::bytea IS NOT NULL) \
                 INSERT INTO refresh_tokens (hash, family_id, generation) SELECT $10, id, $2 FROM u",
            )
            .await?;
        let revoke = c.prepare_cached(REVOKE_AND_AUDIT).await?;
        let jti_seen = c.prepare_cached("SELECT 1 FROM dpop_jtis WHERE key = $1").await?;
        // The proof's jti is recorded only by the rotating write (the same statement): a
        // refused refresh records nothing. A used proof is refused before anything else, also
        // after a lost race (the winner of an exact replay has recorded it by then); the
        // unique key refuses a concurrent use of one proof for two tokens (the whole write
        // rolls back). See docs/design/dpop.md.
        let jti: Option<&[u8]> = req.dpop_jti.as_ref().map(|(k, _)| &k[..]);
        let jti_exp: Option<i64> = req.dpop_jti.as_ref().map(|(_, e)| *e);
        for _ in 0..MAX_RACE_RETRIES {
            if let Some(k) = jti {
                if c.query_opt(&jti_seen, &[&k]).await?.is_some() {
                    return Ok(RotateOutcome::Rejected(Reject::DpopReplay));
                }
            }
            let Some(row) = c.query_opt(&select, &[&&req.presented_hash[..]]).await? else {
                return Ok(RotateOutcome::NotFound);
            };
            let generation: i64 = row.get(0);
            let mut family = family_row(&row, 1);
            let (seen_generation, seen_grace) = (family.generation, family.grace_used);
            let attempt = RefreshAttempt {
                client_id: &req.client_id,
                requested_scope: req.requested_scope.as_ref(),
                requested_details: req.requested_details.as_deref(),
                dpop_jkt: req.dpop_jkt.as_deref(),
                now_ms: req.now_ms,
            };
            let decision = decide(&family, generation, &attempt, &req.policy);
            apply(
                &mut family,
                decision,
                &req.policy,
                req.now_ms,
                req.user_agent.as_deref(),
            );
            match decision {
                Decision::Reject(r) => return Ok(RotateOutcome::Rejected(r)),
                Decision::Reuse => {
                    let detail = Some(reuse_detail(generation, seen_generation));
                    let n = c
                        .execute(
                            &revoke,
                            &[
                                &family.id,
                                &req.now_ms,
                                &"refresh_token_reuse",
                                &"refresh.reuse_detected",
                                &detail,
                            ],
                        )
                        .await?;
                    if n == 1 {
                        return Ok(RotateOutcome::Reused { family_id: family.id });
                    }
                    // Revoked since the read (a concurrent replay, logout or revocation): only
                    // the revocation that landed is reuse; classify again (`Revoked`).
                    metrics::counter!("autional_store_rotation_retries_total").increment(1);
                }
                Decision::Rotate | Decision::GraceReissue => {
                    let f = &family;
                    let n = match c
                        .execute(
                            &write,
                            &[
                                &f.id,
                                &f.generation,
                                &f.rotated_at_ms,
                                &f.grace_used,
                                &f.idle_expires_at_ms,
                                &f.last_used_at_ms,
                                &f.last_user_agent,
                                &seen_generation,
                                &seen_grace,
                                &&req.new_hash[..],
                                &jti,
                                &jti_exp,
                            ],
                        )
                        .await
                    {
                        Ok(n) => n,
                        Err(e) if is_jti_conflict(&e) => return Ok(RotateOutcome::Rejected(Reject::DpopReplay)),
                        Err(e) => return Err(e.into()),
                    };
                    if n == 1 {
                        return Ok(RotateOutcome::Issued {
                            family: Box::new(family),
                            grace: decision == Decision::GraceReissue,
                        });
                    }
                    // Lost a race: the family changed since the read. Classify again.
                    metrics::counter!("autional_store_rotation_retries_total").increment(1);
                }
            }
        }
        Err(StoreError::Backend(
            "refresh rotation did not settle under contention".into(),
        ))
    }

    async fn find_refresh(&self, hash: [u8; 32]) -> Result<Option<(i64, Family)>> {
        let c = self.conn().await?;
        let st = c.prepare_cached(token_lookup!("$1")).await?;
        Ok(c.query_opt(&st, &[&&hash[..]])
            .await?
            .map(|r| (r.get(0), family_row(&r, 1))))
    }

    async fn get_family(&self, id: &str) -> Result<Option<Family>> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached(&format!("SELECT {FAMILY_COLS} FROM families f WHERE f.id = $1"))
            .await?;
        Ok(c.query_opt(&st, &[&id]).await?.map(|r| family_row(&r, 0)))
    }

    async fn revoke_family(&self, id: &str, reason: &str, now_ms: i64) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE families SET revoked_at_ms = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at_ms IS NULL",
                &[&id, &now_ms, &reason],
            )
            .await?;
        Ok(n > 0)
    }

    async fn revoke_access_token(&self, jti: &str, expires_at_ms: i64) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO revoked_access_tokens (jti, expires_at_ms) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                &[&jti, &expires_at_ms],
            )
            .await?;
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool> {
        let c = self.conn().await?;
        let st = c
            .prepare_cached("SELECT 1 FROM revoked_access_tokens WHERE jti = $1")
            .await?;
        Ok(c.query_opt(&st, &[&jti]).await?.is_some())
    }

    async fn audit(&self, e: AuditEvent, now_ms: i64) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO audit_events (at_ms, kind, client_id, user_id, family_id, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&now_ms, &e.kind, &e.client_id, &e.user_id, &e.family_id, &e.detail],
            )
            .await?;
        Ok(())
    }

    async fn use_dpop_jti(&self, key: [u8; 32], expires_at_ms: i64) -> Result<bool> {
        use_jti(&self.conn().await?, &key, expires_at_ms).await
    }

    async fn insert_par(&self, p: ParRequest) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO par_requests (hash, client_id, params, expires_at_ms, used_at_ms) VALUES ($1, $2, $3, $4, NULL)",
                &[&&p.hash[..], &p.client_id, &p.params, &p.expires_at_ms],
            )
            .await?;
        Ok(())
    }

    async fn get_par(&self, hash: [u8; 32]) -> Result<Option<ParRequest>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT client_id, params, expires_at_ms, used_at_ms FROM par_requests WHERE hash = $1",
                &[&&hash[..]],
            )
            .await?;
        Ok(row.map(|r| ParRequest {
            hash,
            client_id: r.get(0),
            params: r.get(1),
            expires_at_ms: r.get(2),
            used_at_ms: r.get(3),
        }))
    }

    async fn mark_par_used(&self, hash: [u8; 32], now_ms: i64) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE par_requests SET used_at_ms = $2 WHERE hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2",
                &[&&hash[..], &now_ms],
            )
            .await?;
        Ok(n == 1)
    }

    async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
        let old = now_ms - policy.retention_ms;
        let n = SWEEP_CHUNK as i64;
        let mut total = SweepReport::default();
        loop {
            let mut c = self.conn().await?;
            let tx = c.transaction().await?;
            let mut r = SweepReport::default();
            for (table, key, cond, cutoff) in SWEPT {
                let sql = sweep_sql(table, key, cond, "$1", "$2");
                r.count(table, tx.execute(&sql, &[&cutoff.at(now_ms, policy), &n]).await?);
            }
            let dead: Vec<String> = tx
                .query(
                    "SELECT id FROM families WHERE absolute_expires_at_ms < $1 UNION SELECT id FROM families WHERE revoked_at_ms < $2 LIMIT $3",
                    &[&now_ms, &old, &n],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            r.refresh_tokens = tx
                .execute("DELETE FROM refresh_tokens WHERE family_id = ANY($1)", &[&dead])
                .await?;
            tx.execute("DELETE FROM families WHERE id = ANY($1)", &[&dead]).await?;
            r.families = dead.len() as u64;
            tx.commit().await?;
            total.add(r);
            if !r.full() {
                return Ok(total);
            }
        }
    }
}
