//! Store-level fixtures shared by the suites that drive the `Store` trait directly
//! (`store_suite`, `session_races`): both backends (a SQLite file, a fresh PostgreSQL database
//! with a warmed pool), client `c`, user `u`, sessions, codes.

use super::race::Gate;
use autional::domain::model::{AuthCode, AuthMethod, Client, Session, User};
use autional::store::postgres::PgStore;
use autional::store::sqlite::SqliteStore;
use autional::store::{DynStore, NewFamily, RedeemCode};
use autional::util::{now_ms, random_id, random_token, sha256};
use futures::future::join_all;
use std::sync::Arc;

/// PostgreSQL connections per test store: the most contenders that can be at the database at once.
pub const PG_POOL: usize = 32;

/// Where a test store keeps its data, for a race gate (`common::race`).
pub enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    pub async fn gate(&self, table: &str) -> Gate {
        match self {
            Db::Sqlite(path) => Gate::sqlite(path),
            Db::Postgres(url) => Gate::postgres(url, table).await,
        }
    }

    /// Writes refresh token rows of the earlier format (one row per token, as databases made
    /// before migration 0006 hold them: hash, family, generation), kept for `ttl_ms` from now,
    /// straight into the table.
    pub async fn insert_legacy_tokens(&self, rows: &[([u8; 32], String, i64)], ttl_ms: i64) {
        let forget_at_ms = now_ms() + ttl_ms;
        const SQL: &str = "INSERT INTO refresh_tokens (hash, family_id, generation, ttl_ms, forget_at_ms) VALUES ";
        match self {
            Db::Sqlite(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                let tx = c.transaction().unwrap();
                for (hash, family_id, generation) in rows {
                    tx.execute(
                        &format!("{SQL}(?1, ?2, ?3, ?4, ?5)"),
                        rusqlite::params![&hash[..], family_id, generation, ttl_ms, forget_at_ms],
                    )
                    .unwrap();
                }
                tx.commit().unwrap();
            }
            Db::Postgres(url) => {
                let c = self.pg(url).await;
                let st = c.prepare(&format!("{SQL}($1, $2, $3, $4, $5)")).await.unwrap();
                for (hash, family_id, generation) in rows {
                    c.execute(&st, &[&&hash[..], family_id, generation, &ttl_ms, &forget_at_ms])
                        .await
                        .unwrap();
                }
            }
        }
    }

    /// Runs SQL straight on the database (fixtures that the store API cannot make).
    pub async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path).unwrap().execute_batch(sql).unwrap(),
            Db::Postgres(url) => self.pg(url).await.batch_execute(sql).await.unwrap(),
        }
    }

    /// The one number a query returns (a count, a sum).
    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Db::Postgres(url) => self.pg(url).await.query_one(sql, &[]).await.unwrap().get(0),
        }
    }

    async fn pg(&self, url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }
}

/// Both backends, each with what keeps it alive and where its data is.
pub async fn backends_at() -> Vec<(&'static str, DynStore, Box<dyn std::any::Any>, Db)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let sqlite: DynStore = Arc::new(SqliteStore::open(&path, 256, 2).unwrap());
    let pg = super::PgDb::create();
    let url = pg.url.clone();
    let postgres: DynStore = Arc::new(PgStore::open(&pg.url, PG_POOL, 1024).await.unwrap());
    // Warm the pool: every connection open (and signed in) before any race starts.
    for r in join_all((0..PG_POOL).map(|_| postgres.ping())).await {
        r.unwrap();
    }
    vec![
        ("sqlite", sqlite, Box::new(dir), Db::Sqlite(path)),
        ("postgres", postgres, Box::new(pg), Db::Postgres(url)),
    ]
}

/// Both backends, each with what keeps it alive.
pub async fn backends() -> Vec<(&'static str, DynStore, Box<dyn std::any::Any>)> {
    backends_at()
        .await
        .into_iter()
        .map(|(name, store, keep, _)| (name, store, keep))
        .collect()
}

pub struct Fixture {
    pub session: String,
}

pub async fn fixture(store: &DynStore) -> Fixture {
    let now = now_ms();
    store
        .insert_client(Client {
            id: "c".into(),
            name: "C".into(),
            auth_method: AuthMethod::None,
            secrets: vec![],
            redirect_uris: vec!["https://app/cb".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scope: "openid offline_access".into(),
            dpop_bound: false,
            require_par: false,
            jwks_uri: None,
            post_logout_redirect_uris: vec![],
            registration_token_hash: None,
            jwks: None,
            refresh_idle_ttl_s: None,
            refresh_absolute_ttl_s: None,
            reuse_grace_seconds: None,
            reuse_grace_count: None,
            created_at_ms: now,
            display: Default::default(),
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
        })
        .await
        .unwrap();
    store
        .insert_user(User {
            id: "u".into(),
            username: "u".into(),
            password_hash: "x".into(),
            email: None,
            name: None,
            created_at_ms: now,
        })
        .await
        .unwrap();
    session(store).await
}

/// A new sign-in session of user `u` (see [`fixture`]).
pub async fn session(store: &DynStore) -> Fixture {
    let now = now_ms();
    let session = random_id();
    store
        .insert_session(Session {
            id: session.clone(),
            token_hash: sha256(random_token().as_bytes()).to_vec(),
            user_id: "u".into(),
            auth_time: now / 1000,
            expires_at_ms: now + 3_600_000,
            ended_at_ms: None,
            user_agent: None,
        })
        .await
        .unwrap();
    Fixture { session }
}

/// A code for `scope`, and the request that redeems it.
pub async fn code(store: &DynStore, f: &Fixture, scope: &str, absolute_ttl_ms: i64) -> RedeemCode {
    let code = random_token();
    let hash = sha256(code.as_bytes());
    let now = now_ms();
    store
        .insert_code(AuthCode {
            hash: hash.to_vec(),
            client_id: "c".into(),
            user_id: "u".into(),
            redirect_uri: "https://app/cb".into(),
            redirect_uri_sent: true,
            scope: autional::domain::scope::Scope::parse(scope).unwrap(),
            nonce: None,
            code_challenge: None,
            dpop_jkt: None,
            authorization_details: None,
            session_id: f.session.clone(),
            auth_time: now / 1000,
            expires_at_ms: now + 60_000,
            consumed_at_ms: None,
            family_id: None,
        })
        .await
        .unwrap();
    RedeemCode {
        code_hash: hash,
        client_id: "c".into(),
        dpop_jkt: None,
        dpop_jti: None,
        redirect_uri: Some("https://app/cb".into()),
        code_verifier: None,
        now_ms: now,
        family: NewFamily {
            id: random_id(),
            refresh_hash: Some(sha256(random_token().as_bytes())),
            idle_ttl_ms: 3_600_000,
            absolute_ttl_ms,
            dpop_jkt: None,
            user_agent: None,
        },
    }
}
