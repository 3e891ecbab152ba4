//! `--families N`: a database that has served many users for a long time, made in seconds.
//! Writes N token families straight into the database before the server starts, each as a
//! family looks after 10 rotations (generation 10, its current token's hash, nothing else: with
//! constant storage per family a rotation leaves no other row, see
//! docs/design/refresh-token-format.md), so N families stand for 10 × N rotations behind them.
//! Their tokens are minted with the run's refresh-token key (`AUTIONAL_REFRESH__TOKEN_KEYS`),
//! which the server is given too, so `--cold` can present them.

use anyhow::{Context, Result};
use autional::domain::refresh_token::{mint, TokenKeys};

/// The bench's refresh-token key (base64url of 32 bytes; any fixed value: it only signs the
/// bench's own tokens).
pub const TOKEN_KEY: &str = "YmVuY2gtcmVmcmVzaC10b2tlbi1rZXktMDEyMzQ1Njc";
/// The generation every seeded family is at.
pub const GENERATION: i64 = 10;
const BATCH: usize = 10_000;

pub fn keys() -> TokenKeys {
    TokenKeys::new(&[
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, TOKEN_KEY)
            .expect("the bench key is base64url"),
    ])
}

/// The id of seeded family `i` (22 characters, as ours).
pub fn family_id(i: usize) -> String {
    format!("seed{i:018}")
}

/// The current token of seeded family `i`, as seeded (deterministic, so nothing is kept for the
/// families the load has not touched yet).
pub fn token(keys: &TokenKeys, i: usize) -> (String, [u8; 32]) {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(i as u64).to_be_bytes());
    secret[8..16].copy_from_slice(b"benchsec");
    mint(keys, &family_id(i), GENERATION, secret)
}

/// The family table's columns, in the order `row` writes them: the server's own list, so a
/// new column fails the seeding loudly instead of drifting.
const COLS: &str = <autional::domain::model::Family as autional::store::sql::Record>::COLS;

/// One family's values, in `COLS` order, as SQL literals (ids and hashes are ours: no quoting
/// issue).
fn row(
    keys: &TokenKeys,
    i: usize,
    client_id: &str,
    user_id: &str,
    now_ms: i64,
    hex: impl Fn(&[u8]) -> String,
) -> String {
    let (_, h) = token(keys, i);
    let day = 86_400_000i64;
    format!(
        "('{}', '{client_id}', '{user_id}', 'openid offline_access', NULL, NULL, NULL, 'seed-session', {}, {}, {}, {}, {GENERATION}, {}, 0, NULL, NULL, {}, 'bench-seed', {})",
        family_id(i),
        now_ms / 1000 - 3600,
        now_ms - 3_600_000,
        now_ms + 80 * day,
        now_ms + 30 * day,
        now_ms - 60_000,
        now_ms - 60_000,
        hex(&h)
    )
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Seeds `n` families into the SQLite database at `path` (one transaction per 10,000).
pub fn sqlite(path: &str, n: usize, client_id: &str, username: &str) -> Result<()> {
    let keys = keys();
    let mut c = rusqlite::Connection::open(path)?;
    let user_id: String = c.query_row("SELECT id FROM users WHERE username = ?1", [username], |r| r.get(0))?;
    let now = now_ms();
    for start in (0..n).step_by(BATCH) {
        let values: Vec<String> = (start..n.min(start + BATCH))
            .map(|i| row(&keys, i, client_id, &user_id, now, |h| format!("X'{}'", to_hex(h))))
            .collect();
        let tx = c.transaction()?;
        tx.execute_batch(&format!("INSERT INTO families ({COLS}) VALUES {}", values.join(",")))?;
        tx.commit()?;
    }
    c.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// Seeds `n` families into the PostgreSQL database at `url`.
pub async fn postgres(url: &str, n: usize, client_id: &str, username: &str) -> Result<()> {
    let keys = keys();
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let user_id: String = c
        .query_one("SELECT id FROM users WHERE username = $1", &[&username])
        .await
        .context("the bench user")?
        .get(0);
    let now = now_ms();
    for start in (0..n).step_by(BATCH) {
        let values: Vec<String> = (start..n.min(start + BATCH))
            .map(|i| {
                row(&keys, i, client_id, &user_id, now, |h| {
                    format!("'\\x{}'::bytea", to_hex(h))
                })
            })
            .collect();
        c.batch_execute(&format!("INSERT INTO families ({COLS}) VALUES {}", values.join(",")))
            .await?;
    }
    c.batch_execute("VACUUM ANALYZE families").await?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
