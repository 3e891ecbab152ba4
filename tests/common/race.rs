//! Races that provably race. A race test that fires N requests "at once" proves nothing if they
//! run one after another (a cold connection pool opening connections in turn, a client that
//! queues). Here the test first *holds the database* with a gate, so that no request can finish
//! its write; it then starts all N, waits until every one is in flight — on PostgreSQL until
//! `pg_stat_activity` shows the expected number of backends blocked on the gate's lock, i.e.
//! past their read and at their guarded write — checks that none has completed, and only then
//! opens the gate. Every contender has read the same state before any write lands: exactly the
//! interleaving a missing guard gets wrong.
//!
//! - PostgreSQL: the gate is a transaction holding `FOR UPDATE` row locks on a table's rows
//!   (plain reads are not blocked; every `UPDATE` of a locked row waits).
//! - SQLite: the gate is a connection holding the write lock (`BEGIN IMMEDIATE`); the store's
//!   writer waits in its busy handler while every request's job queues behind it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub enum Gate {
    Postgres(tokio_postgres::Client),
    Sqlite(rusqlite::Connection),
}

impl Gate {
    /// Locks every row of `table` in the PostgreSQL database at `url`.
    pub async fn postgres(url: &str, table: &str) -> Gate {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL reachable");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("BEGIN; SELECT 1 FROM {table} FOR UPDATE"))
            .await
            .unwrap();
        Gate::Postgres(client)
    }

    /// Takes the write lock of the SQLite database at `path`.
    pub fn sqlite(path: &std::path::Path) -> Gate {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        Gate::Sqlite(c)
    }

    /// A gate on the database of a test server (`table`'s rows on PostgreSQL).
    pub async fn server(s: &super::Server, table: &str) -> Gate {
        match s.backend {
            super::Backend::Postgres => Gate::postgres(&s.db_url, table).await,
            super::Backend::Sqlite => Gate::sqlite(std::path::Path::new(s.db_url.trim_start_matches("sqlite://"))),
        }
    }

    /// Backends of this database other than the gate's own that wait on a lock.
    async fn lock_waiters(client: &tokio_postgres::Client) -> i64 {
        client
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Waits until the contenders are in the database: on PostgreSQL, until `waiters` backends
    /// block on the gate (panics after 20 s: the requests did not overlap); on SQLite, a pause in
    /// which the queued jobs would have completed were they not held.
    async fn hold_until_contended(&self, waiters: usize) -> String {
        match self {
            Gate::Postgres(c) => {
                let t = Instant::now();
                loop {
                    let n = Gate::lock_waiters(c).await;
                    if n >= waiters as i64 {
                        return format!("{n} backends blocked at their write");
                    }
                    if t.elapsed() > Duration::from_secs(20) {
                        let rows = c
                            .query(
                                "SELECT COALESCE(state, '') || ' ' || COALESCE(wait_event_type, '') || ' ' || COALESCE(wait_event, '') || ' ' || left(query, 80) \
                                 FROM pg_stat_activity WHERE datname = current_database()",
                                &[],
                            )
                            .await
                            .unwrap();
                        let seen: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                        panic!("only {n} of {waiters} requests reached the database together: they did not overlap; backends: {seen:#?}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Gate::Sqlite(_) => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "writer held".to_string()
            }
        }
    }

    async fn open(self) {
        match self {
            Gate::Postgres(c) => c.batch_execute("COMMIT").await.unwrap(),
            Gate::Sqlite(c) => c.execute_batch("COMMIT").unwrap(),
        }
    }
}

/// Runs `n` contenders against a closed `gate`: all start, all are observed in flight together
/// (`waiters` of them blocked at the database on PostgreSQL, none completed), then the gate
/// opens. Returns the outcomes in order.
pub async fn race<T, Fut>(gate: Gate, n: usize, waiters: usize, contender: impl Fn(usize) -> Fut) -> Vec<T>
where
    Fut: Future<Output = T>,
{
    let started = AtomicUsize::new(0);
    let completed = AtomicUsize::new(0);
    let all = futures::future::join_all((0..n).map(|i| {
        let (started, completed) = (&started, &completed);
        let fut = contender(i);
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            let out = fut.await;
            completed.fetch_add(1, Ordering::SeqCst);
            out
        }
    }));
    let control = async {
        let t = Instant::now();
        while started.load(Ordering::SeqCst) < n {
            assert!(t.elapsed() < Duration::from_secs(10), "contenders did not start");
            tokio::task::yield_now().await;
        }
        let seen = gate.hold_until_contended(waiters).await;
        assert_eq!(
            completed.load(Ordering::SeqCst),
            0,
            "a contender finished while the database was held: they did not overlap"
        );
        eprintln!("race: {n} contenders in flight together ({seen})");
        gate.open().await;
    };
    let (out, ()) = tokio::join!(all, control);
    out
}

/// Settings for a test server that takes part in a race: a PostgreSQL pool large enough for
/// every contender to be at the database at once, and a store timeout longer than the gate is
/// held (the contenders wait at the gate; they must not give up with 503 meanwhile).
pub const RACE_ENV: [(&str, &str); 2] = [
    ("AUTIONAL_STORE__PG_POOL_SIZE", "64"),
    ("AUTIONAL_STORE__TIMEOUT", "30"),
];

/// `n` concurrent `POST /oauth/refresh` of the same token against a test server whose database
/// is held until all of them are in flight. On PostgreSQL all `n` must be blocked at their write
/// together (start the server with [`RACE_ENV`]); on
/// SQLite the writer must have committed them in at most three batches (its batch-size metric),
/// which it can only do if they were queued together. Returns the statuses and bodies.
pub async fn concurrent_refreshes(
    s: &super::Server,
    client_id: &str,
    rt: &str,
    n: usize,
) -> Vec<(u16, serde_json::Value)> {
    // Warm up: concurrent readiness checks open n HTTP connections and, on PostgreSQL, make the
    // server's pool open at least n database connections before the gate closes (a connection
    // opened while the gate is held can stall in its sign-in; each readiness check holds one
    // connection for its ping).
    let pg = match s.backend {
        super::Backend::Postgres => {
            let (client, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            Some(client)
        }
        super::Backend::Sqlite => None,
    };
    for round in 0.. {
        futures::future::join_all((0..n + 8).map(|_| s.http.get(s.url("/readyz")).send())).await;
        let Some(c) = &pg else { break };
        let open: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open >= n as i64 {
            break;
        }
        assert!(round < 50, "the server opened only {open} database connections");
    }
    let batches_before = s.metric_value("autional_store_batch_size_count").await;
    let gate = Gate::server(s, "families").await;
    let out = race(gate, n, n, |_| async {
        let r = s.refresh(client_id, rt).await;
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap_or_default())
    })
    .await;
    if s.backend == super::Backend::Sqlite {
        let batches = s.metric_value("autional_store_batch_size_count").await - batches_before;
        assert!(
            batches <= 3.0,
            "{n} refreshes took {batches} write batches: they did not overlap"
        );
        eprintln!("race: {n} refreshes committed in {batches} write batches");
    }
    out
}
