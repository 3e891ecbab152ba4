//! SQLite backend (the embedded default). One dedicated writer thread owns the only write
//! connection and commits every job waiting in its queue in one transaction (group commit),
//! each job inside its own SAVEPOINT; a request is answered only after the COMMIT (WAL,
//! `synchronous=FULL`, see `sqlite_writer`), so a 200 means durable. Readers are separate
//! connections on their own threads. WAL checkpoints run on another connection, off the commit
//! path. The operations themselves are `store::ops`, shared with PostgreSQL; they run here on the
//! writer's or a reader's thread, where they never wait (`run_now`).

use super::sql_store::{Backend, Op, OpFuture, SqlStore};
use super::*;
use rusqlite::Connection;
use std::future::Future;
use std::path::Path;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::oneshot;

use super::sqlite_writer::{Completion, WriteJob, Writer};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_dpop_rar_par.sql"),
    include_str!("../../migrations/sqlite/0003_lifecycle.sql"),
    include_str!("../../migrations/sqlite/0004_refresh_tokens_by_seq.sql"),
    include_str!("../../migrations/sqlite/0005_pending_grants.sql"),
    include_str!("../../migrations/sqlite/0006_family_token_hashes.sql"),
    include_str!("../../migrations/sqlite/0007_client_display.sql"),
    include_str!("../../migrations/sqlite/0008_client_grace.sql"),
    include_str!("../../migrations/sqlite/0009_refresh_counts.sql"),
    include_str!("../../migrations/sqlite/0010_events.sql"),
    include_str!("../../migrations/sqlite/0011_ssf_streams.sql"),
];

type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

/// The SQLite store: the shared operations on the [`Sqlite`] backend.
pub type SqliteStore = SqlStore<Sqlite>;

pub struct Sqlite {
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
            let mut c = Connection::open(path)?;
            configure(&c)?;
            c.pragma_update(None, "query_only", true)?;
            let rx = rrx.clone();
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job(&mut c);
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

        Ok(SqlStore::new(Sqlite {
            writer,
            reader: rtx,
            _stop: stop_tx,
        }))
    }
}

/// Runs an operation of `store::ops` to completion on the calling thread. On a SQLite
/// connection every step is synchronous, so the future is ready at its first poll.
fn run_now<T>(mut f: OpFuture<'_, T>) -> Result<T> {
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(StoreError::Backend("a SQLite operation waited".into())),
    }
}

impl Backend for Sqlite {
    type Conn = Connection;

    /// Runs `op` in the writer's next transaction; resolves after the COMMIT.
    async fn write<T: Send + 'static>(&self, op: impl Op<Connection, T>) -> Result<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |conn| {
            let res = match conn {
                Some(c) => run_now(op(c)),
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

    async fn read<T: Send + 'static>(&self, op: impl Op<Connection, T>) -> Result<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        self.reader
            .send(Box::new(move |conn| {
                let _ = tx.send(run_now(op(conn)));
            }))
            .map_err(|_| StoreError::Backend("reader threads stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("reader threads stopped".into()))?
    }

    fn rotate(&self, req: RotateRequest) -> impl Future<Output = Result<RotateOutcome>> + Send {
        self.write(move |c| Box::pin(async move { ops::rotate_serial(c, &req).await }))
    }

    fn redeem(&self, req: RedeemCode) -> impl Future<Output = Result<RedeemOutcome>> + Send {
        self.write(move |c| Box::pin(async move { ops::redeem_serial(c, &req).await }))
    }
}
