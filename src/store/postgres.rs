//! PostgreSQL backend, for several `autional serve` processes on one database. The operations
//! are `store::ops`, shared with SQLite, each run on a pooled connection, inside BEGIN/COMMIT
//! when it has more than one statement. Two are PostgreSQL's own, because several processes
//! write at once and a transaction would cost round trips on the hot path:
//!
//! - Refresh rotation is decided in Rust (`ops::decide_rotation`, as on SQLite) and written by
//!   one guarded statement (`UPDATE families … WHERE generation = $seen AND grace_used = $seen
//!   AND revoked_at_ms IS NOT DISTINCT FROM $seen`, with the DPoP `jti` insert). Under READ COMMITTED a racing
//!   loser's guard matches no row; it reads the family and decides again (grace or reuse): no serialization failure can surface as a 500, and of N racing
//!   processes exactly one wins. The decision is taken on the state this process wrote last
//!   when it remembers it (`store::recent`): one round trip in the common case.
//! - Code redemption consumes the code, creates the family and its first token in one
//!   statement guarded on the code being unconsumed and its session live.

use super::recent::Recent;
use super::rows;
use super::sql::{args, refs, Arg, Conn, Record, RowRef, Stmt};
use super::sql_store::{Backend, Op, SqlStore};
use super::*;
use crate::domain::grant::{check_code, CodeCheck, Decision, Reject};
use crate::domain::model::{AuditKind, RevocationReason};
use crate::domain::refresh_token::Presented;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_dpop_rar_par.sql"),
    include_str!("../../migrations/postgres/0003_lifecycle.sql"),
    include_str!("../../migrations/postgres/0004_pending_grants.sql"),
    include_str!("../../migrations/postgres/0005_refresh_tokens_by_lifetime.sql"),
    include_str!("../../migrations/postgres/0006_family_token_hashes.sql"),
    include_str!("../../migrations/postgres/0007_client_display.sql"),
    include_str!("../../migrations/postgres/0008_client_grace.sql"),
    include_str!("../../migrations/postgres/0009_refresh_counts.sql"),
    include_str!("../../migrations/postgres/0010_events.sql"),
    include_str!("../../migrations/postgres/0011_ssf_streams.sql"),
];

/// How many attempts a rotation makes before giving up. Each failed attempt means another
/// request wrote the family (or the state it remembered was stale); at most 22 are possible
/// (docs/design/refresh-rotation.md §7), so a rotation settles long before this.
const MAX_RACE_RETRIES: usize = 64;

/// The PostgreSQL store: the shared operations on the [`Postgres`] backend.
pub type PgStore = SqlStore<Postgres>;

pub struct Postgres {
    pool: Pool,
    /// The families this process rotated last (one-round-trip refreshes).
    recent: Recent,
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
    /// `recent_families` bounds how many rotated families it remembers (`store::recent`).
    pub async fn open(url: &str, pool_size: usize, recent_families: usize) -> anyhow::Result<PgStore> {
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
        Ok(SqlStore::new(Postgres {
            pool,
            recent: Recent::new(recent_families),
        }))
    }
}

impl Postgres {
    async fn conn(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }
}

/// A connection inside BEGIN: unless `finish` is reached, it is taken out of the pool on drop
/// (closed, so the server rolls back), never handed to another request mid-transaction (a
/// request can be cancelled at any await: client gone, `store.timeout`).
struct InTransaction(Option<Object>);

impl InTransaction {
    fn conn(&mut self) -> &mut Object {
        self.0.as_mut().expect("connection present until finished")
    }
    fn finish(mut self) {
        self.0 = None;
    }
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(Object::take(c));
        }
    }
}

/// Consumes the code, creates the family and its first token in one statement; a racing second
/// redemption finds the code consumed and is treated as a replay. The session must still be
/// live, under a share lock: a concurrent `end_session` either waits and then revokes this
/// family, or has ended the session first and this statement consumes nothing (lock order:
/// session, then code).
static REDEEM: Stmt = Stmt::parts(&[
    "WITH c AS (UPDATE codes SET consumed_at_ms = $2, family_id = $3 WHERE hash = $1 AND consumed_at_ms IS NULL \
                AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = codes.session_id AND s.ended_at_ms IS NULL AND s.expires_at_ms > $2 FOR SHARE) RETURNING hash), \
     f AS (INSERT INTO families (",
    Family::COLS,
    ") SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22 FROM c RETURNING id) \
     SELECT (SELECT COUNT(*) FROM f)",
]);

/// The guarded rotation: updates the family only if its generation, grace count and revocation
/// (none, or one scheduled for later) are still those the decision saw. One row changed: it rotated; none: the family changed since.
const GUARDED_UPDATE: &str =
    "UPDATE families SET generation = $2, rotated_at_ms = $3, grace_used = $4, idle_expires_at_ms = $5, \
     last_used_at_ms = $6, last_user_agent = $7, token_hashes = $10 \
     WHERE id = $1 AND generation = $8 AND grace_used = $9 AND revoked_at_ms IS NOT DISTINCT FROM $11";
static ROTATE: Stmt = Stmt::parts(&[GUARDED_UPDATE]);
/// The same, recording the DPoP proof's `jti` in the same statement (the row count is the
/// inserted `jti`'s: 1 if and only if the family was updated).
static ROTATE_WITH_JTI: Stmt = Stmt::parts(&[
    "WITH u AS (",
    GUARDED_UPDATE,
    " RETURNING id) INSERT INTO dpop_jtis (key, expires_at_ms) SELECT $12, $13 FROM u",
]);

/// The family a rotation decides on (no row: there is none).
static READ_FOR_ROTATION: Stmt = Stmt::parts(&["SELECT false, ", Family::COLS, " FROM families WHERE id = $1"]);
/// The same, with whether the proof's `jti` (`$2`) was used before, in one round trip.
static READ_FOR_ROTATION_WITH_JTI: Stmt = Stmt::parts(&[
    "SELECT EXISTS (SELECT 1 FROM dpop_jtis WHERE key = $2), ",
    Family::ALIASED,
    " FROM (SELECT 1) o LEFT JOIN families f ON f.id = $1",
]);

/// A row of [`READ_FOR_ROTATION`] or [`READ_FOR_ROTATION_WITH_JTI`]: whether the proof's `jti`
/// was used before, and the family (if there is one).
fn rotation_row(r: &RowRef<'_>) -> Result<(bool, Option<Family>)> {
    let family = match r.get::<Option<String>>(1)? {
        Some(_) => Some(Family::read(r, 1)?),
        None => None,
    };
    Ok((r.get(0)?, family))
}

/// Revokes a family, queues its Security Events (`ops::enqueue_revoked!` on the rows the
/// revocation returned) and writes the audit event, in one statement: one round trip, atomic
/// without a transaction (no event and no audit when it was already revoked).
static REVOKE_AND_AUDIT: Stmt = Stmt::new(concat!(
    "WITH u AS (UPDATE families SET revoked_at_ms = $2, revoked_reason = $3 WHERE id = $1 AND (revoked_at_ms IS NULL OR (revoked_reason = 'revoked_by_admin' AND revoked_at_ms > $2)) \
     RETURNING id, client_id, user_id, sid, revoked_at_ms, revoked_reason), e AS (",
    ops::enqueue_revoked!(@ "replace(CAST(gen_random_uuid() AS TEXT), '-', '')", "u", "TRUE"),
    ") INSERT INTO audit_events (at_ms, kind, client_id, user_id, family_id, detail) SELECT $2, $4, client_id, user_id, id, $5 FROM u",
));

/// A unique violation on `dpop_jtis`: the proof was used concurrently by another request.
fn is_jti_conflict(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| {
        *d.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION && d.table() == Some("dpop_jtis")
    })
}

impl Backend for Postgres {
    type Conn = Object;

    async fn read<T: Send + 'static>(&self, op: impl Op<Object, T>) -> Result<T> {
        let mut c = self.conn().await?;
        op(&mut c).await
    }

    async fn write_one<T: Send + 'static>(&self, op: impl Op<Object, T>) -> Result<T> {
        self.read(op).await
    }

    async fn write<T: Send + 'static>(&self, op: impl Op<Object, T>) -> Result<T> {
        let c = self.conn().await?;
        c.batch_execute("BEGIN").await?;
        let mut tx = InTransaction(Some(c));
        match op(tx.conn()).await {
            Ok(v) => {
                tx.conn().batch_execute("COMMIT").await?;
                tx.finish();
                Ok(v)
            }
            Err(e) => {
                tx.conn().batch_execute("ROLLBACK").await?;
                tx.finish();
                Err(e)
            }
        }
    }

    async fn rotate(&self, req: RotateRequest) -> Result<RotateOutcome> {
        rotate(&mut self.conn().await?, &req, &self.recent).await
    }

    async fn redeem(&self, req: RedeemCode) -> Result<RedeemOutcome> {
        let outcome = redeem(&mut self.conn().await?, &req).await?;
        if let RedeemOutcome::Issued { family, .. } = &outcome {
            self.recent.put(family);
        }
        Ok(outcome)
    }
}

/// A second redemption of a code: revoke the family its first redemption created.
async fn revoke_replayed(c: &mut Object, family_id: Option<String>, now_ms: i64) -> Result<RedeemOutcome> {
    if let Some(fid) = family_id {
        c.exec(
            &REVOKE_AND_AUDIT,
            args![
                fid,
                now_ms,
                RevocationReason::AuthorizationCodeReplay,
                AuditKind::CodeReplayDetected,
                None::<String>
            ],
        )
        .await?;
    }
    Ok(RedeemOutcome::Replayed)
}

async fn redeem(c: &mut Object, req: &RedeemCode) -> Result<RedeemOutcome> {
    if let Some((key, exp)) = &req.dpop_jti {
        if !ops::use_jti(c, key, *exp).await? {
            return Ok(RedeemOutcome::Rejected("DPoP proof jti has been used before"));
        }
    }
    let hash = &req.code_hash[..];
    let Some((mut code, session_end)) = c.one(&ops::GET_CODE, args![hash], rows::code_and_session_end).await? else {
        return Ok(RedeemOutcome::NotFound);
    };
    match check_code(&code, &ops::redemption(req, session_end)) {
        CodeCheck::Reject(why) => Ok(RedeemOutcome::Rejected(why)),
        CodeCheck::Replayed => revoke_replayed(c, code.family_id.clone(), req.now_ms).await,
        CodeCheck::Ok => {
            let f = ops::code_family(req, &code);
            let family = f.bind();
            let mut a: Vec<&dyn Arg> = args![hash, req.now_ms].to_vec();
            a.extend(refs(&family));
            let made = c.one(&REDEEM, &a, rows::i64_col).await?;
            if made != Some(1) {
                let now = c.one(&ops::GET_CODE, args![hash], rows::one::<AuthCode>).await?;
                let Some(now) = now.filter(|r| r.consumed_at_ms.is_some()) else {
                    // Not consumed by a racing redemption: its session ended meanwhile.
                    return Ok(RedeemOutcome::Rejected(crate::domain::grant::SESSION_ENDED));
                };
                return revoke_replayed(c, now.family_id, req.now_ms).await;
            }
            code.consumed_at_ms = Some(req.now_ms);
            code.family_id = Some(f.id.clone());
            Ok(RedeemOutcome::Issued {
                code: Box::new(code),
                family: Box::new(f),
            })
        }
    }
}

/// What a rotation decides on: a token's generation and its family, and whether the family was
/// read just now (else it is the state this process wrote last, `Postgres::recent`).
struct Sight {
    generation: i64,
    family: Family,
    fresh: bool,
}

/// Where the state of a just-read family leads: a sight to decide on, or an outcome without
/// a decision (a used proof, an unknown family, a token the family does not hold).
fn settle(req: &RotateRequest, jti_used: bool, family: Option<Family>) -> std::result::Result<Sight, RotateOutcome> {
    if jti_used {
        return Err(RotateOutcome::Rejected(Reject::DpopReplay));
    }
    let family = family.ok_or(RotateOutcome::NotFound)?;
    let generation = ops::known(&req.presented, &family).ok_or(RotateOutcome::NotFound)?;
    Ok(Sight {
        generation,
        family,
        fresh: true,
    })
}

/// Reads the presented token's family (and whether the proof was used) for a decision: one
/// round trip.
async fn read_sight(
    c: &mut Object,
    req: &RotateRequest,
    jti: Option<&[u8]>,
) -> Result<std::result::Result<Sight, RotateOutcome>> {
    match &req.presented {
        Presented::Bound { family_id, .. } => {
            let row = match jti {
                Some(k) => {
                    c.one(&READ_FOR_ROTATION_WITH_JTI, args![family_id, k], rotation_row)
                        .await?
                }
                None => c.one(&READ_FOR_ROTATION, args![family_id], rotation_row).await?,
            };
            let (used, family) = row.unwrap_or((false, None));
            Ok(settle(req, used, family))
        }
        // A token of the earlier format is found by its row (two round trips; it is rotated
        // once into the current format).
        _ => {
            let used = match jti {
                Some(k) => ops::jti_seen(c, k.try_into().expect("a jti key is 32 bytes")).await?,
                None => false,
            };
            if used {
                return Ok(Err(RotateOutcome::Rejected(Reject::DpopReplay)));
            }
            Ok(match ops::presented(c, &req.presented).await? {
                Some((generation, family)) => Ok(Sight {
                    generation,
                    family,
                    fresh: true,
                }),
                None => Err(RotateOutcome::NotFound),
            })
        }
    }
}

/// The refresh grant's atomic step. The decision is `ops::decide_rotation`'s, as on SQLite; what
/// is PostgreSQL's own is how it is made atomic across processes: the write is guarded by the
/// state the decision saw, and a lost race reads the family and decides again. In the common
/// case (this process rotated the family last) the decision is taken on the state it remembers
/// and the refresh is one round trip; otherwise a read comes first
/// (docs/design/refresh-rotation.md §7).
///
/// A decision that writes nothing (refusal, reuse) is only taken on a state read just now. The
/// proof's jti is recorded only by the rotating write (the same statement): a refused refresh
/// records nothing. A used proof is refused before anything else, also after a lost race (the
/// winner of an exact replay has recorded it by then); the unique key refuses a concurrent use
/// of one proof for two tokens (the whole statement rolls back). See docs/design/dpop.md.
async fn rotate(c: &mut Object, req: &RotateRequest, recent: &Recent) -> Result<RotateOutcome> {
    let jti: Option<&[u8]> = req.dpop_jti.as_ref().map(|(k, _)| &k[..]);
    let jti_exp: Option<i64> = req.dpop_jti.as_ref().map(|(_, e)| *e);
    let write = c
        .prepare_cached(if jti.is_some() {
            ROTATE_WITH_JTI.pg()
        } else {
            ROTATE.pg()
        })
        .await?;
    let mut sight = match &req.presented {
        Presented::Bound { family_id, .. } => recent.get(family_id).and_then(|family| {
            let generation = ops::known(&req.presented, &family)?;
            Some(Sight {
                generation,
                family,
                fresh: false,
            })
        }),
        _ => None,
    };
    for _ in 0..MAX_RACE_RETRIES {
        let s = match sight.take() {
            Some(s) => s,
            None => match read_sight(c, req, jti).await? {
                Ok(s) => s,
                Err(outcome) => return Ok(outcome),
            },
        };
        let (generation, mut family) = (s.generation, s.family);
        let (seen_generation, seen_grace, seen_revoked) = (family.generation, family.grace_used, family.revoked_at_ms);
        let decision = ops::decide_rotation(&mut family, generation, req)?;
        match decision {
            Decision::Rotate | Decision::GraceReissue => {
                let f = &family;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 13] = [
                    &f.id,
                    &f.generation,
                    &f.rotated_at_ms,
                    &f.grace_used,
                    &f.idle_expires_at_ms,
                    &f.last_used_at_ms,
                    &f.last_user_agent,
                    &seen_generation,
                    &seen_grace,
                    &f.token_hashes,
                    &seen_revoked,
                    &jti,
                    &jti_exp,
                ];
                let n = match c.execute(&write, &params[..if jti.is_some() { 13 } else { 11 }]).await {
                    Ok(n) => n,
                    Err(e) if is_jti_conflict(&e) => return Ok(RotateOutcome::Rejected(Reject::DpopReplay)),
                    Err(e) => return Err(e.into()),
                };
                if n == 1 {
                    recent.put(&family);
                    return Ok(RotateOutcome::Issued {
                        family: Box::new(family),
                        grace: decision == Decision::GraceReissue,
                    });
                }
                // The family changed since that state (another request or process wrote it):
                // read it and decide again.
                if s.fresh {
                    metrics::counter!("autional_store_rotation_retries_total").increment(1);
                }
            }
            // Decided on a remembered state: read, and decide again.
            _ if !s.fresh => {}
            Decision::Reject(r) => return Ok(RotateOutcome::Rejected(r)),
            Decision::Reuse => {
                let event = AuditEvent::refresh_reuse(&family, generation, seen_generation);
                recent.forget(&family.id);
                let n = c
                    .exec(
                        &REVOKE_AND_AUDIT,
                        args![
                            family.id,
                            req.now_ms,
                            RevocationReason::RefreshTokenReuse,
                            event.kind,
                            event.detail
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
        }
    }
    Err(StoreError::Backend(
        "refresh rotation did not settle under contention".into(),
    ))
}
