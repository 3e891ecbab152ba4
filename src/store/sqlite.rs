//! SQLite backend (the embedded default). One dedicated writer thread owns the only write
//! connection and commits every job waiting in its queue in one transaction (group commit),
//! each job inside its own SAVEPOINT; a request is answered only after the COMMIT (WAL,
//! `synchronous=FULL`, see `sqlite_writer`), so a 200 means durable. Readers are separate connections on their
//! own threads. WAL checkpoints run on another connection, off the commit path.

use super::*;
use crate::domain::device::{self, Poll};
use crate::domain::grant::Reject;
use crate::domain::grant::{apply, check_code, decide, CodeCheck, CodeRedemption, Decision, RefreshAttempt};
use crate::domain::model::AuthMethod;
use crate::domain::model::DeviceCode;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;

use super::sqlite_writer::{Completion, WriteJob, Writer};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_dpop_rar_par.sql"),
    include_str!("../../migrations/sqlite/0003_lifecycle.sql"),
    include_str!("../../migrations/sqlite/0004_refresh_tokens_by_seq.sql"),
    include_str!("../../migrations/sqlite/0005_pending_grants.sql"),
];

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub struct SqliteStore {
    writer: Writer,
    reader: flume::Sender<ReadJob>,
    _stop: flume::Sender<()>,
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // Query-planner stability: without it this build (STAT4) marks statements to be re-parsed
    // and re-planned whenever a bound value changes, i.e. on every refresh.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Reads through a memory map: no pread(2) per page that is not in the page cache (a larger
    // page cache instead measured no better: SQLite scans its whole hash table at each commit).
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    Ok(())
}

/// Applies pending migrations (tracked in `PRAGMA user_version`).
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path` and starts its threads.
    pub fn open(path: &Path, max_batch: usize, readers: usize) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display()))?;
        // 1 KiB pages for a new database: a rotation dirties three pages (its family row, a
        // token leaf, an index leaf), and every dirty page is written to the WAL whole, so small
        // pages cut the bytes per commit (measured +25 % refreshes/s against 4 KiB). No effect
        // on an existing database.
        conn.pragma_update(None, "page_size", 1024)?;
        configure(&conn)?;
        // Checkpoints run on their own connection so they never sit inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        migrate(&conn)?;

        let writer = Writer::start(conn, max_batch)?;

        let (rtx, rrx) = flume::unbounded::<ReadJob>();
        for i in 0..readers {
            let c = Connection::open(path)?;
            configure(&c)?;
            c.pragma_update(None, "query_only", true)?;
            let rx = rrx.clone();
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job(&c);
                    }
                })?;
        }

        let (stop_tx, stop_rx) = flume::bounded::<()>(0);
        let cp = Connection::open(path)?;
        configure(&cp)?;
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(flume::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(Duration::from_millis(500)) {
                    if let Err(e) = cp.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
                let _ = cp.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })?;

        Ok(SqliteStore {
            writer,
            reader: rtx,
            _stop: stop_tx,
        })
    }

    /// Runs `f` in the writer's next transaction; resolves after the COMMIT.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |conn| {
            let res = match conn {
                Some(c) => f(c),
                None => Err(StoreError::Backend("the transaction could not begin".into())),
            };
            let ok = res.is_ok();
            let done: Completion = Box::new(move |committed| {
                // A failed job reports its own error; a good one only once committed.
                let out = match res {
                    Ok(_) if !committed => Err(StoreError::Backend("commit failed".into())),
                    other => other,
                };
                let _ = tx.send(out);
            });
            (ok, done)
        });
        if !self.writer.send(job) {
            return Err(StoreError::Backend("writer thread stopped".into()));
        }
        rx.await
            .map_err(|_| StoreError::Backend("writer thread stopped".into()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        self.reader
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| StoreError::Backend("reader threads stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("reader threads stopped".into()))?
    }
}

const CLIENT_COLS: &str = "id, name, auth_method, secrets, redirect_uris, grant_types, scope, dpop_bound, jwks, refresh_idle_ttl_s, refresh_absolute_ttl_s, created_at_ms, require_par, jwks_uri, post_logout_redirect_uris, registration_token_hash";

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn client_row(r: &Row) -> rusqlite::Result<Client> {
    let method: String = r.get(2)?;
    Ok(Client {
        id: r.get(0)?,
        name: r.get(1)?,
        auth_method: AuthMethod::parse(&method).unwrap_or(AuthMethod::ClientSecretBasic),
        secrets: serde_json::from_str(&r.get::<_, String>(3)?).map_err(json_err)?,
        redirect_uris: serde_json::from_str(&r.get::<_, String>(4)?).map_err(json_err)?,
        grant_types: serde_json::from_str(&r.get::<_, String>(5)?).map_err(json_err)?,
        scope: r.get(6)?,
        dpop_bound: r.get(7)?,
        jwks: r.get(8)?,
        refresh_idle_ttl_s: r.get(9)?,
        refresh_absolute_ttl_s: r.get(10)?,
        created_at_ms: r.get(11)?,
        require_par: r.get(12)?,
        jwks_uri: r.get(13)?,
        post_logout_redirect_uris: serde_json::from_str(&r.get::<_, String>(14)?).map_err(json_err)?,
        registration_token_hash: r.get(15)?,
    })
}

const USER_COLS: &str = "id, username, password_hash, email, name, created_at_ms";

fn user_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        email: r.get(3)?,
        name: r.get(4)?,
        created_at_ms: r.get(5)?,
    })
}

const FAMILY_COLS: &str = family_cols!();

fn family_row(r: &Row, o: usize) -> rusqlite::Result<Family> {
    Ok(Family {
        id: r.get(o)?,
        client_id: r.get(o + 1)?,
        user_id: r.get(o + 2)?,
        scope: r.get(o + 3)?,
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
        revoked_reason: r.get(o + 16)?,
        last_used_at_ms: r.get(o + 17)?,
        last_user_agent: r.get(o + 18)?,
    })
}

fn insert_family(conn: &Connection, f: &Family) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO families (id, client_id, user_id, scope, authorization_details, dpop_jkt, session_id, sid, auth_time, created_at_ms, absolute_expires_at_ms, idle_expires_at_ms, generation, rotated_at_ms, grace_used, revoked_at_ms, revoked_reason, last_used_at_ms, last_user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?
    .execute(params![
        f.id, f.client_id, f.user_id, f.scope, f.authorization_details, f.dpop_jkt, f.session_id, f.sid,
        f.auth_time, f.created_at_ms, f.absolute_expires_at_ms, f.idle_expires_at_ms, f.generation,
        f.rotated_at_ms, f.grace_used, f.revoked_at_ms, f.revoked_reason, f.last_used_at_ms, f.last_user_agent
    ])?;
    Ok(())
}

/// Remembers a refresh token of `family` (generation `generation`, written at `now_ms`): until
/// `now_ms` plus the family's absolute lifetime, never before the family's absolute expiry.
fn insert_refresh(
    conn: &Connection,
    hash: &[u8; 32],
    family: &Family,
    generation: i64,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let ttl_ms = family.absolute_expires_at_ms - family.auth_time * 1000;
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (hash, family_id, generation, ttl_ms, forget_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &hash[..],
        family.id,
        generation,
        ttl_ms,
        now_ms.saturating_add(ttl_ms).max(family.absolute_expires_at_ms)
    ])?;
    Ok(())
}

fn audit_insert(conn: &Connection, e: &AuditEvent, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events (at_ms, kind, client_id, user_id, family_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![now_ms, e.kind, e.client_id, e.user_id, e.family_id, e.detail])?;
    Ok(())
}

fn revoke_family_sql(conn: &Connection, id: &str, reason: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE families SET revoked_at_ms = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at_ms IS NULL",
        )?
        .execute(params![id, now_ms, reason])?;
    Ok(n > 0)
}

/// Ends the unredeemed codes and uncollected device approvals matching `who` (see
/// [`end_pending_grants_sql`]).
fn end_pending_grants(conn: &Connection, who: &str, args: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<()> {
    for sql in end_pending_grants_sql(who) {
        conn.prepare_cached(&sql)?.execute(args)?;
    }
    Ok(())
}

fn get_family_sql(conn: &Connection, id: &str) -> rusqlite::Result<Option<Family>> {
    conn.prepare_cached(&format!("SELECT {FAMILY_COLS} FROM families f WHERE f.id = ?1"))?
        .query_row([id], |r| family_row(r, 0))
        .optional()
}

const CODE_COLS: &str = "hash, client_id, user_id, redirect_uri, redirect_uri_sent, scope, nonce, code_challenge, session_id, auth_time, expires_at_ms, consumed_at_ms, family_id, dpop_jkt, authorization_details";

const DEVICE_COLS: &str = "device_hash, user_code, client_id, scope, status, interval_s, last_poll_ms, user_id, session_id, auth_time, family_id, created_at_ms, expires_at_ms";

fn device_row(r: &Row) -> rusqlite::Result<DeviceCode> {
    Ok(DeviceCode {
        device_hash: r.get(0)?,
        user_code: r.get(1)?,
        client_id: r.get(2)?,
        scope: r.get(3)?,
        status: r.get(4)?,
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

fn poll(conn: &Connection, req: &PollDevice) -> Result<DeviceOutcome> {
    let Some(d) = conn
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLS}, {} FROM device_codes WHERE device_hash = ?1",
            session_end!("device_codes")
        ))?
        .query_row([&req.device_hash[..]], |r| {
            Ok((device_row(r)?, r.get::<_, Option<i64>>(13)?))
        })
        .optional()?
    else {
        return Ok(DeviceOutcome::NotFound);
    };
    let (mut d, session_end) = d;
    let p = device::poll(&d, &req.client_id, req.now_ms, session_end);
    match p {
        Poll::Pending => {
            conn.execute(
                "UPDATE device_codes SET last_poll_ms = ?2 WHERE device_hash = ?1",
                params![&req.device_hash[..], req.now_ms],
            )?;
        }
        Poll::SlowDown => {
            conn.execute(
                "UPDATE device_codes SET last_poll_ms = ?2, interval_s = interval_s + 5 WHERE device_hash = ?1",
                params![&req.device_hash[..], req.now_ms],
            )?;
        }
        Poll::Issue => {
            let (Some(user), Some(session), Some(auth_time)) = (&d.user_id, &d.session_id, d.auth_time) else {
                return Ok(DeviceOutcome::Poll(Poll::Invalid));
            };
            let family = req
                .family
                .build(&d.client_id, user, &d.scope, None, session, auth_time, req.now_ms);
            insert_family(conn, &family)?;
            if let Some(h) = &req.family.refresh_hash {
                insert_refresh(conn, h, &family, 0, req.now_ms)?;
            }
            conn.execute(
                "UPDATE device_codes SET status = 'consumed', family_id = ?2 WHERE device_hash = ?1",
                params![&req.device_hash[..], family.id],
            )?;
            d.status = "consumed".into();
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

const SESSION_COLS: &str = "id, token_hash, user_id, auth_time, expires_at_ms, ended_at_ms, user_agent";

fn session_row(r: &Row) -> rusqlite::Result<Session> {
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

fn code_row(r: &Row) -> rusqlite::Result<AuthCode> {
    Ok(AuthCode {
        hash: r.get(0)?,
        client_id: r.get(1)?,
        user_id: r.get(2)?,
        redirect_uri: r.get(3)?,
        redirect_uri_sent: r.get(4)?,
        scope: r.get(5)?,
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

fn rotate(conn: &Connection, req: &RotateRequest) -> Result<RotateOutcome> {
    // A used proof is refused first; the proof's jti is recorded only with a rotation (below),
    // in the same transaction: a refused refresh writes nothing (see docs/design/dpop.md).
    if let Some((key, _)) = &req.dpop_jti {
        if jti_seen(conn, key)? {
            return Ok(RotateOutcome::Rejected(Reject::DpopReplay));
        }
    }
    let row = conn
        .prepare_cached(token_lookup!("?1"))?
        .query_row([&req.presented_hash[..]], |r| {
            Ok((r.get::<_, i64>(0)?, family_row(r, 1)?))
        })
        .optional()?;
    let Some((generation, mut family)) = row else {
        return Ok(RotateOutcome::NotFound);
    };
    let attempt = RefreshAttempt {
        client_id: &req.client_id,
        requested_scope: req.requested_scope.as_ref(),
        requested_details: req.requested_details.as_deref(),
        dpop_jkt: req.dpop_jkt.as_deref(),
        now_ms: req.now_ms,
    };
    let decision = decide(&family, generation, &attempt, &req.policy);
    let new_generation = apply(
        &mut family,
        decision,
        &req.policy,
        req.now_ms,
        req.user_agent.as_deref(),
    );
    match decision {
        Decision::Reject(r) => Ok(RotateOutcome::Rejected(r)),
        Decision::Reuse => {
            revoke_family_sql(conn, &family.id, "refresh_token_reuse", req.now_ms)?;
            audit_insert(
                conn,
                &AuditEvent {
                    kind: "refresh.reuse_detected",
                    client_id: Some(family.client_id.clone()),
                    user_id: Some(family.user_id.clone()),
                    family_id: Some(family.id.clone()),
                    detail: Some(format!(
                        "{{\"presented_generation\":{generation},\"current_generation\":{}}}",
                        family.generation
                    )),
                },
                req.now_ms,
            )?;
            Ok(RotateOutcome::Reused { family_id: family.id })
        }
        Decision::Rotate | Decision::GraceReissue => {
            let generation = new_generation.unwrap_or(family.generation);
            conn.prepare_cached(
                "UPDATE families SET generation = ?2, rotated_at_ms = ?3, grace_used = ?4, idle_expires_at_ms = ?5, last_used_at_ms = ?6, last_user_agent = ?7 WHERE id = ?1",
            )?
            .execute(params![
                family.id, family.generation, family.rotated_at_ms, family.grace_used,
                family.idle_expires_at_ms, family.last_used_at_ms, family.last_user_agent
            ])?;
            insert_refresh(conn, &req.new_hash, &family, generation, req.now_ms)?;
            if let Some((key, exp)) = &req.dpop_jti {
                use_jti(conn, key, *exp)?;
            }
            Ok(RotateOutcome::Issued {
                family: Box::new(family),
                grace: decision == Decision::GraceReissue,
            })
        }
    }
}

/// Whether a DPoP proof's `jti` has been recorded (a replay).
fn jti_seen(conn: &Connection, key: &[u8; 32]) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM dpop_jtis WHERE key = ?1")?
        .query_row([&key[..]], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Records a DPoP proof's `jti`; false when it was seen before (a replay).
fn use_jti(conn: &Connection, key: &[u8; 32], expires_at_ms: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("INSERT INTO dpop_jtis (key, expires_at_ms) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING")?
        .execute(params![&key[..], expires_at_ms])?;
    Ok(n == 1)
}

fn redeem(conn: &Connection, req: &RedeemCode) -> Result<RedeemOutcome> {
    if let Some((key, exp)) = &req.dpop_jti {
        if !use_jti(conn, key, *exp)? {
            return Ok(RedeemOutcome::Rejected("DPoP proof jti has been used before"));
        }
    }
    let code = conn
        .prepare_cached(&format!(
            "SELECT {CODE_COLS}, {} FROM codes WHERE hash = ?1",
            session_end!("codes")
        ))?
        .query_row([&req.code_hash[..]], |r| {
            Ok((code_row(r)?, r.get::<_, Option<i64>>(15)?))
        })
        .optional()?;
    let Some((mut code, session_ends_at_ms)) = code else {
        return Ok(RedeemOutcome::NotFound);
    };
    let check = check_code(
        &code,
        &CodeRedemption {
            client_id: &req.client_id,
            dpop_jkt: req.dpop_jkt.as_deref(),
            redirect_uri: req.redirect_uri.as_deref(),
            code_verifier: req.code_verifier.as_deref(),
            now_ms: req.now_ms,
            session_ends_at_ms,
        },
    );
    match check {
        CodeCheck::Reject(why) => Ok(RedeemOutcome::Rejected(why)),
        CodeCheck::Replayed => {
            if let Some(fid) = &code.family_id {
                if revoke_family_sql(conn, fid, "authorization_code_replay", req.now_ms)? {
                    audit_insert(
                        conn,
                        &AuditEvent {
                            kind: "code.replay_detected",
                            client_id: Some(code.client_id.clone()),
                            user_id: Some(code.user_id.clone()),
                            family_id: Some(fid.clone()),
                            detail: None,
                        },
                        req.now_ms,
                    )?;
                }
            }
            Ok(RedeemOutcome::Replayed)
        }
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
            insert_family(conn, &family)?;
            if let Some(h) = &nf.refresh_hash {
                insert_refresh(conn, h, &family, 0, req.now_ms)?;
            }
            conn.prepare_cached("UPDATE codes SET consumed_at_ms = ?2, family_id = ?3 WHERE hash = ?1")?
                .execute(params![&req.code_hash[..], req.now_ms, family.id])?;
            code.consumed_at_ms = Some(req.now_ms);
            code.family_id = Some(family.id.clone());
            Ok(RedeemOutcome::Issued {
                code: Box::new(code),
                family: Box::new(family),
            })
        }
    }
}

/// One bounded round of the sweeper.
fn sweep_chunk(c: &Connection, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
    let old = now_ms - policy.retention_ms;
    let n = SWEEP_CHUNK as i64;
    let mut r = SweepReport::default();
    for (table, key, cond, cutoff) in SWEPT {
        let sql = sweep_sql(table, key, cond, "?1", "?2");
        r.count(
            table,
            c.prepare_cached(&sql)?.execute(params![cutoff.at(now_ms, policy), n])? as u64,
        );
    }
    let dead: Vec<String> = c
        .prepare_cached(
            "SELECT id FROM families WHERE absolute_expires_at_ms < ?1 UNION SELECT id FROM families WHERE revoked_at_ms < ?2 LIMIT ?3",
        )?
        .query_map(params![now_ms, old, n], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in &dead {
        c.prepare_cached("DELETE FROM families WHERE id = ?1")?.execute([id])?;
    }
    // Token rows, each lifetime class from its front (rows whose `forget_at_ms` has passed).
    // The classes are listed by seeking the index from one to the next.
    let classes: Vec<i64> = c
        .prepare_cached(
            "WITH RECURSIVE k(t) AS (SELECT min(ttl_ms) FROM refresh_tokens \
             UNION ALL SELECT (SELECT min(ttl_ms) FROM refresh_tokens WHERE ttl_ms > k.t) FROM k WHERE k.t IS NOT NULL) \
             SELECT t FROM k WHERE t IS NOT NULL",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for ttl in classes {
        r.refresh_tokens += c
            .prepare_cached(
                "DELETE FROM refresh_tokens WHERE seq IN \
                 (SELECT seq FROM refresh_tokens WHERE ttl_ms = ?1 AND forget_at_ms < ?2 LIMIT ?3)",
            )?
            .execute(params![ttl, now_ms, n])? as u64;
    }
    r.families = dead.len() as u64;
    Ok(r)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn insert_client(&self, cl: Client) -> Result<()> {
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO clients ({CLIENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ),
                params![
                    cl.id,
                    cl.name,
                    cl.auth_method.as_str(),
                    serde_json::to_string(&cl.secrets).unwrap_or_else(|_| "[]".into()),
                    serde_json::to_string(&cl.redirect_uris).unwrap_or_else(|_| "[]".into()),
                    serde_json::to_string(&cl.grant_types).unwrap_or_else(|_| "[]".into()),
                    cl.scope,
                    cl.dpop_bound,
                    cl.jwks,
                    cl.refresh_idle_ttl_s,
                    cl.refresh_absolute_ttl_s,
                    cl.created_at_ms,
                    cl.require_par,
                    cl.jwks_uri,
                    serde_json::to_string(&cl.post_logout_redirect_uris).unwrap_or_else(|_| "[]".into()),
                    cl.registration_token_hash
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {CLIENT_COLS} FROM clients WHERE id = ?1"))?
                    .query_row([id], client_row)
                    .optional()?,
            )
        })
        .await
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        self.read(|c| {
            let mut st = c.prepare(&format!("SELECT {CLIENT_COLS} FROM clients ORDER BY created_at_ms, id"))?;
            let rows = st.query_map([], client_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_client(&self, id: &str, now_ms: i64) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            c.execute(
                "UPDATE families SET revoked_at_ms = ?2, revoked_reason = 'client_deleted' WHERE client_id = ?1 AND revoked_at_ms IS NULL",
                params![id, now_ms],
            )?;
            c.execute("DELETE FROM consents WHERE client_id = ?1", [&id])?;
            // Nothing outstanding may still turn into a grant of the deleted client.
            c.execute("DELETE FROM codes WHERE client_id = ?1", [&id])?;
            c.execute("DELETE FROM device_codes WHERE client_id = ?1", [&id])?;
            c.execute("DELETE FROM par_requests WHERE client_id = ?1", [&id])?;
            Ok(c.execute("DELETE FROM clients WHERE id = ?1", [&id])? > 0)
        })
        .await
    }

    async fn update_client(&self, cl: Client) -> Result<bool> {
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE clients SET name = ?2, auth_method = ?3, redirect_uris = ?4, grant_types = ?5, scope = ?6, jwks = ?7, jwks_uri = ?8, post_logout_redirect_uris = ?9, dpop_bound = ?10, require_par = ?11 WHERE id = ?1",
                params![
                    cl.id,
                    cl.name,
                    cl.auth_method.as_str(),
                    serde_json::to_string(&cl.redirect_uris).unwrap_or_else(|_| "[]".into()),
                    serde_json::to_string(&cl.grant_types).unwrap_or_else(|_| "[]".into()),
                    cl.scope,
                    cl.jwks,
                    cl.jwks_uri,
                    serde_json::to_string(&cl.post_logout_redirect_uris).unwrap_or_else(|_| "[]".into()),
                    cl.dpop_bound,
                    cl.require_par
                ],
            )? == 1)
        })
        .await
    }

    async fn set_client_secrets(&self, id: &str, secrets: Vec<SecretHash>) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let json = serde_json::to_string(&secrets).unwrap_or_else(|_| "[]".into());
            Ok(c.execute("UPDATE clients SET secrets = ?2 WHERE id = ?1", params![id, json])? > 0)
        })
        .await
    }

    async fn insert_user(&self, u: User) -> Result<()> {
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![u.id, u.username, u.password_hash, u.email, u.name, u.created_at_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
                    .query_row([id], user_row)
                    .optional()?,
            )
        })
        .await
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let username = username.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE username = ?1"))?
                    .query_row([username], user_row)
                    .optional()?,
            )
        })
        .await
    }

    async fn set_password(&self, user_id: &str, password_hash: &str, now_ms: i64) -> Result<bool> {
        let (id, hash) = (user_id.to_string(), password_hash.to_string());
        self.write(move |c| {
            let n = c.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id, hash])?;
            c.execute(
                "UPDATE sessions SET ended_at_ms = ?2 WHERE user_id = ?1 AND ended_at_ms IS NULL",
                params![id, now_ms],
            )?;
            c.execute(
                "UPDATE families SET revoked_at_ms = ?2, revoked_reason = 'password_changed' WHERE user_id = ?1 AND revoked_at_ms IS NULL",
                params![id, now_ms],
            )?;
            end_pending_grants(c, "user_id = ?1", params![id])?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_user(&self, user_id: &str, now_ms: i64) -> Result<bool> {
        let id = user_id.to_string();
        self.write(move |c| {
            c.execute(
                "UPDATE families SET revoked_at_ms = ?2, revoked_reason = 'user_deleted' WHERE user_id = ?1 AND revoked_at_ms IS NULL",
                params![id, now_ms],
            )?;
            c.execute("UPDATE sessions SET ended_at_ms = ?2 WHERE user_id = ?1 AND ended_at_ms IS NULL", params![id, now_ms])?;
            c.execute("DELETE FROM consents WHERE user_id = ?1", [&id])?;
            c.execute("DELETE FROM codes WHERE user_id = ?1", [&id])?;
            c.execute("DELETE FROM device_codes WHERE user_id = ?1", [&id])?;
            Ok(c.execute("DELETE FROM users WHERE id = ?1", [&id])? > 0)
        })
        .await
    }

    async fn revoke_consent(&self, user_id: &str, client_id: &str, now_ms: i64) -> Result<u64> {
        let (u, cl) = (user_id.to_string(), client_id.to_string());
        self.write(move |c| {
            c.execute("DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2", params![u, cl])?;
            end_pending_grants(c, "user_id = ?1 AND client_id = ?2", params![u, cl])?;
            Ok(c.execute(
                "UPDATE families SET revoked_at_ms = ?3, revoked_reason = 'consent_revoked' WHERE user_id = ?1 AND client_id = ?2 AND revoked_at_ms IS NULL",
                params![u, cl, now_ms],
            )? as u64)
        })
        .await
    }

    async fn list_user_families(&self, user_id: &str) -> Result<Vec<Family>> {
        let id = user_id.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {FAMILY_COLS} FROM families f WHERE f.user_id = ?1 AND f.revoked_at_ms IS NULL ORDER BY f.created_at_ms DESC"
            ))?;
            let rows = st.query_map([id], |r| family_row(r, 0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn revoke_user_family(&self, user_id: &str, family_id: &str, reason: &str, now_ms: i64) -> Result<bool> {
        let (u, f, why) = (user_id.to_string(), family_id.to_string(), reason.to_string());
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE families SET revoked_at_ms = ?3, revoked_reason = ?4 WHERE id = ?2 AND user_id = ?1 AND revoked_at_ms IS NULL",
                params![u, f, now_ms, why],
            )? == 1)
        })
        .await
    }

    async fn insert_device(&self, d: DeviceCode) -> Result<()> {
        self.write(move |c| {
            c.execute(
                &format!("INSERT INTO device_codes ({DEVICE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                params![
                    d.device_hash, d.user_code, d.client_id, d.scope, d.status, d.interval_s, d.last_poll_ms, d.user_id,
                    d.session_id, d.auth_time, d.family_id, d.created_at_ms, d.expires_at_ms
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn find_device(&self, user_code: &str) -> Result<Option<DeviceCode>> {
        let code = user_code.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM device_codes WHERE user_code = ?1"))?
                    .query_row([code], device_row)
                    .optional()?,
            )
        })
        .await
    }

    async fn decide_device(
        &self,
        user_code: &str,
        approval: Option<(String, String, i64)>,
        now_ms: i64,
    ) -> Result<bool> {
        let code = user_code.to_string();
        self.write(move |c| {
            let n = match approval {
                Some((user, session, auth_time)) => c.execute(
                    "UPDATE device_codes SET status = 'approved', user_id = ?2, session_id = ?3, auth_time = ?4 WHERE user_code = ?1 AND status = 'pending' AND expires_at_ms > ?5",
                    params![code, user, session, auth_time, now_ms],
                )?,
                None => c.execute(
                    "UPDATE device_codes SET status = 'denied' WHERE user_code = ?1 AND status = 'pending' AND expires_at_ms > ?2",
                    params![code, now_ms],
                )?,
            };
            Ok(n == 1)
        })
        .await
    }

    async fn poll_device(&self, req: PollDevice) -> Result<DeviceOutcome> {
        self.write(move |c| poll(c, &req)).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT kid, alg, private_key, public_jwk, created_at_ms, retired_at_ms FROM signing_keys ORDER BY created_at_ms",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok(KeyRecord {
                        kid: r.get(0)?,
                        alg: r.get(1)?,
                        private_key: r.get(2)?,
                        public_jwk: r.get(3)?,
                        created_at_ms: r.get(4)?,
                        retired_at_ms: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn add_key(&self, k: KeyRecord) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE signing_keys SET retired_at_ms = ?1 WHERE retired_at_ms IS NULL",
                [k.created_at_ms],
            )?;
            c.execute(
                "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k.kid, k.alg, k.private_key, k.public_jwk, k.created_at_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn ensure_key(&self, k: KeyRecord) -> Result<()> {
        self.write(move |c| {
            let active: i64 =
                c.query_row("SELECT COUNT(*) FROM signing_keys WHERE retired_at_ms IS NULL", [], |r| r.get(0))?;
            if active == 0 {
                c.execute(
                    "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![k.kid, k.alg, k.private_key, k.public_jwk, k.created_at_ms],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn server_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>> {
        let name = name.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, candidate],
            )?;
            Ok(c.query_row("SELECT value FROM server_secrets WHERE name = ?1", [name], |r| r.get(0))?)
        })
        .await
    }

    async fn insert_session(&self, s: Session) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions (id, token_hash, user_id, auth_time, expires_at_ms, ended_at_ms, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![s.id, s.token_hash, s.user_id, s.auth_time, s.expires_at_ms, s.ended_at_ms, s.user_agent],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_session_by_token(&self, token_hash: [u8; 32]) -> Result<Option<Session>> {
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {SESSION_COLS} FROM sessions WHERE token_hash = ?1"))?
                    .query_row([&token_hash[..]], session_row)
                    .optional()?,
            )
        })
        .await
    }

    async fn end_session(&self, id: &str, now_ms: i64) -> Result<u64> {
        let id = id.to_string();
        self.write(move |c| {
            c.execute(
                "UPDATE sessions SET ended_at_ms = ?2 WHERE id = ?1 AND ended_at_ms IS NULL",
                params![id, now_ms],
            )?;
            end_pending_grants(c, "session_id = ?1", params![id])?;
            let n = c.execute(
                "UPDATE families SET revoked_at_ms = ?2, revoked_reason = 'session_ended' WHERE session_id = ?1 AND revoked_at_ms IS NULL",
                params![id, now_ms],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let id = user_id.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!("SELECT {SESSION_COLS} FROM sessions WHERE user_id = ?1 AND ended_at_ms IS NULL ORDER BY auth_time DESC"))?;
            let rows = st
                .query_map([id], session_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn get_consent(&self, user_id: &str, client_id: &str) -> Result<Option<String>> {
        let (u, cl) = (user_id.to_string(), client_id.to_string());
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT scope FROM consents WHERE user_id = ?1 AND client_id = ?2")?
                    .query_row([u, cl], |r| r.get(0))
                    .optional()?,
            )
        })
        .await
    }

    async fn save_consent(&self, user_id: &str, client_id: &str, scope: &str, now_ms: i64) -> Result<()> {
        let (u, cl, s) = (user_id.to_string(), client_id.to_string(), scope.to_string());
        self.write(move |c| {
            c.execute(
                "INSERT INTO consents (user_id, client_id, scope, updated_at_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at_ms = excluded.updated_at_ms",
                params![u, cl, s, now_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn insert_code(&self, code: AuthCode) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO codes ({CODE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?
            .execute(params![
                code.hash, code.client_id, code.user_id, code.redirect_uri, code.redirect_uri_sent, code.scope,
                code.nonce, code.code_challenge, code.session_id, code.auth_time, code.expires_at_ms,
                code.consumed_at_ms, code.family_id, code.dpop_jkt, code.authorization_details
            ])?;
            Ok(())
        })
        .await
    }

    async fn redeem_code(&self, req: RedeemCode) -> Result<RedeemOutcome> {
        self.write(move |c| redeem(c, &req)).await
    }

    async fn rotate_refresh(&self, req: RotateRequest) -> Result<RotateOutcome> {
        self.write(move |c| rotate(c, &req)).await
    }

    async fn find_refresh(&self, hash: [u8; 32]) -> Result<Option<(i64, Family)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(token_lookup!("?1"))?
                .query_row([&hash[..]], |r| Ok((r.get::<_, i64>(0)?, family_row(r, 1)?)))
                .optional()?)
        })
        .await
    }

    async fn get_family(&self, id: &str) -> Result<Option<Family>> {
        let id = id.to_string();
        self.read(move |c| Ok(get_family_sql(c, &id)?)).await
    }

    async fn revoke_family(&self, id: &str, reason: &str, now_ms: i64) -> Result<bool> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.write(move |c| Ok(revoke_family_sql(c, &id, &reason, now_ms)?))
            .await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at_ms: i64) -> Result<()> {
        let jti = jti.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT INTO revoked_access_tokens (jti, expires_at_ms) VALUES (?1, ?2) ON CONFLICT (jti) DO NOTHING",
                params![jti, expires_at_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool> {
        let jti = jti.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM revoked_access_tokens WHERE jti = ?1")?
                .query_row([jti], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }

    async fn audit(&self, e: AuditEvent, now_ms: i64) -> Result<()> {
        self.write(move |c| Ok(audit_insert(c, &e, now_ms)?)).await
    }

    async fn use_dpop_jti(&self, key: [u8; 32], expires_at_ms: i64) -> Result<bool> {
        self.write(move |c| Ok(use_jti(c, &key, expires_at_ms)?)).await
    }

    async fn insert_par(&self, p: ParRequest) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO par_requests (hash, client_id, params, expires_at_ms, used_at_ms) VALUES (?1, ?2, ?3, ?4, NULL)",
                params![&p.hash[..], p.client_id, p.params, p.expires_at_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_par(&self, hash: [u8; 32]) -> Result<Option<ParRequest>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT client_id, params, expires_at_ms, used_at_ms FROM par_requests WHERE hash = ?1",
            )?
            .query_row([&hash[..]], |r| {
                Ok(ParRequest {
                    hash,
                    client_id: r.get(0)?,
                    params: r.get(1)?,
                    expires_at_ms: r.get(2)?,
                    used_at_ms: r.get(3)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn mark_par_used(&self, hash: [u8; 32], now_ms: i64) -> Result<bool> {
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE par_requests SET used_at_ms = ?2 WHERE hash = ?1 AND used_at_ms IS NULL AND expires_at_ms > ?2",
                params![&hash[..], now_ms],
            )? == 1)
        })
        .await
    }

    async fn sweep(&self, now_ms: i64, policy: SweepPolicy) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        loop {
            let r = self.write(move |c| sweep_chunk(c, now_ms, policy)).await?;
            total.add(r);
            if !r.full() {
                return Ok(total);
            }
        }
    }
}
