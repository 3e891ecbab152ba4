//! The server under dependency faults, with real faults: a PostgreSQL cluster of the test's own
//! stopped, restarted and frozen with `SIGSTOP`; a SQLite database on a small tmpfs that is
//! filled to the last byte or remounted read-only. Every failure must be a fast 503
//! `temporarily_unavailable` with `Retry-After` (never a 500, never a hang), change nothing, and
//! heal without a restart. The PostgreSQL cases run in the PostgreSQL pass of the suite, the
//! SQLite cases in the SQLite pass.

mod common;

use common::faults::{Ext4, PrivatePg, Tmpfs};
use common::{backend, Backend, Server};
use serde_json::Value;
use std::time::{Duration, Instant};

const SCOPE: &str = "openid offline_access";

/// A 503 `temporarily_unavailable` with `Retry-After`, as JSON.
async fn assert_unavailable(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 503, "{what}");
    assert!(r.headers().get("retry-after").is_some(), "{what}: Retry-After");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
}

async fn ready(s: &Server) -> u16 {
    reqwest::get(s.url("/readyz")).await.unwrap().status().as_u16()
}

/// Waits (at most `limit`) for `/readyz` to say 200.
async fn until_ready(s: &Server, limit: Duration) -> Duration {
    let t = Instant::now();
    while ready(s).await != 200 {
        assert!(t.elapsed() < limit, "not ready again after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn postgres_down_gives_fast_503_and_heals_without_restart() {
    if backend() != Backend::Postgres {
        eprintln!("PostgreSQL fault case: runs in the PostgreSQL pass");
        return;
    }
    let pg = PrivatePg::start();
    let s = Server::start(&[
        ("AUTIONAL_DATABASE_URL", &pg.url),
        ("AUTIONAL_REGISTRATION__ENABLED", "true"),
    ])
    .await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let a = s.authorize("pub", SCOPE).await;
    let registered: Value = s
        .http
        .post(s.url("/oauth/register"))
        .json(&serde_json::json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "RP"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let read_registration = || {
        s.http
            .get(registered["registration_client_uri"].as_str().unwrap())
            .bearer_auth(registered["registration_access_token"].as_str().unwrap())
            .send()
    };
    assert_eq!(read_registration().await.unwrap().status(), 200);

    pg.stop();
    for _ in 0..3 {
        let started = Instant::now();
        assert_unavailable(s.refresh("pub", &rt).await, "refresh while the database is down").await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "fast: {:?}",
            started.elapsed()
        );
    }
    assert_unavailable(
        s.exchange("pub", &a.code, &a.verifier).await,
        "code exchange while the database is down",
    )
    .await;
    assert_eq!(ready(&s).await, 503, "/readyz while the database is down");
    // RFC 7592: a failing database is not a refused registration access token.
    assert_unavailable(
        read_registration().await.unwrap(),
        "RFC 7592 read while the database is down",
    )
    .await;

    pg.start_again();
    let healed = until_ready(&s, Duration::from_secs(15)).await;
    eprintln!("ready again {healed:?} after the database came back");
    // Nothing the failed requests did stuck: the same token and code still work, once.
    let r = s.refresh("pub", &rt).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_eq!(s.exchange("pub", &a.code, &a.verifier).await.status(), 200);
    assert_eq!(
        s.refresh("pub", &rt).await.status(),
        401,
        "the old token is now a reuse"
    );
    assert_eq!(
        s.refresh("pub", next["refresh_token"].as_str().unwrap()).await.status(),
        401,
        "reuse revoked the family"
    );
}

#[tokio::test]
async fn postgres_frozen_gives_bounded_latency_and_bounded_memory() {
    if backend() != Backend::Postgres {
        eprintln!("PostgreSQL fault case: runs in the PostgreSQL pass");
        return;
    }
    let pg = PrivatePg::start();
    let s = Server::start(&[("AUTIONAL_DATABASE_URL", &pg.url), ("AUTIONAL_STORE__TIMEOUT", "1")]).await;
    let mut chains = Vec::new();
    for _ in 0..4 {
        let (t, _) = s.tokens("pub", SCOPE).await;
        chains.push(t["refresh_token"].as_str().unwrap().to_string());
    }
    let rss_before = rss_kib(s.pid(0));

    pg.pause();
    // Waves of concurrent refreshes against a database that accepts connections and never
    // answers: every one gets 503 within the store timeout plus scheduling slack.
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for wave in 0..5 {
        let results = futures::future::join_all((0..40).map(|i| {
            let rt = chains[i % chains.len()].clone();
            let s = &s;
            async move {
                let t = Instant::now();
                let r = s.refresh("pub", &rt).await;
                (
                    r.status().as_u16(),
                    r.headers().contains_key("retry-after"),
                    t.elapsed(),
                )
            }
        }))
        .await;
        for (status, retry_after, took) in results {
            assert!(status == 503 && retry_after, "wave {wave}: {status}");
            slowest = slowest.max(took);
            statuses.push(status);
        }
    }
    assert_eq!(ready(&s).await, 503, "/readyz while the database is frozen");
    let rss_during = rss_kib(s.pid(0));
    eprintln!(
        "{} requests against a frozen database in {:?}, slowest {slowest:?}, RSS {rss_before} -> {rss_during} KiB",
        statuses.len(),
        started.elapsed()
    );
    assert!(slowest < Duration::from_millis(2500), "bounded latency: {slowest:?}");
    assert!(
        rss_during < rss_before + 64 * 1024,
        "bounded memory: {rss_before} -> {rss_during} KiB"
    );

    pg.resume();
    until_ready(&s, Duration::from_secs(15)).await;
    // Each chain is in one of the two states a lost response may leave: its token still works
    // (no write landed), or it was rotated by a write that landed after its caller was told 503,
    // and then presenting it is a reuse. Never both, never a 5xx.
    for rt in &chains {
        let r = s.refresh("pub", rt).await;
        assert!(matches!(r.status().as_u16(), 200 | 401), "{}", r.status());
    }
}

/// A SQLite server on a small tmpfs (the database and its WAL live there).
async fn sqlite_on(fs: &Tmpfs) -> Server {
    let url = format!("sqlite://{}", fs.path().join("autional.db").display());
    Server::start(&[("AUTIONAL_DATABASE_URL", &url)]).await
}

fn integrity(fs: &Tmpfs) -> String {
    let c = rusqlite::Connection::open(fs.path().join("autional.db")).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

/// The disk under the SQLite database fills up. A refresh updates its family's row in place
/// (no row per token since issue 12), so it may keep committing into pages the WAL already has;
/// either way it is answered at once, 200 or 503, never a 500 or a hang. Writes that need new
/// pages (pushed authorization requests, a new row each) are refused with a fast 503
/// `temporarily_unavailable`; once there is space again everything works with the same token,
/// and the database is intact.
#[tokio::test]
async fn sqlite_disk_full_gives_503_changes_nothing_and_heals() {
    if backend() != Backend::Sqlite {
        eprintln!("SQLite fault case: runs in the SQLite pass");
        return;
    }
    let fs = Tmpfs::mount(8 * 1024);
    let mut s = sqlite_on(&fs).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let mut rt = t["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..20 {
        let r: Value = s.refresh("pub", &rt).await.json().await.unwrap();
        rt = r["refresh_token"].as_str().unwrap().to_string();
    }
    // A pushed request that needs room: a new row of about 2 KB.
    let push = |s: &Server| {
        let (mut pairs, _, _) = Server::authorization_params("pub", SCOPE, &[]);
        pairs.retain(|(k, _)| k != "state");
        pairs.push(("state".to_string(), "s".repeat(2000)));
        s.http.post(s.url("/oauth/pushed-authorization")).form(&pairs).send()
    };

    let filler = fs.fill();
    for _ in 0..20 {
        let started = Instant::now();
        let r = s.refresh("pub", &rt).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "fast: {:?}",
            started.elapsed()
        );
        match r.status().as_u16() {
            200 => {
                rt = r.json::<Value>().await.unwrap()["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
            _ => assert_unavailable(r, "refresh on a full disk").await,
        }
    }
    let mut refused = 0;
    for _ in 0..400 {
        let started = Instant::now();
        let r = push(&s).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "fast: {:?}",
            started.elapsed()
        );
        match r.status().as_u16() {
            201 => {}
            _ => {
                assert_unavailable(r, "a new row on a full disk").await;
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
        }
    }
    assert!(refused > 0, "a full disk refuses writes that need room");

    std::fs::remove_file(filler).unwrap();
    let r = s.refresh("pub", &rt).await;
    assert_eq!(r.status(), 200, "heals once there is space, with the same token");
    assert_eq!(push(&s).await.unwrap().status(), 201, "and takes new rows again");
    s.kill();
    assert_eq!(integrity(&fs), "ok");
}

/// The file system under the SQLite database turns read-only while the server runs (ext4
/// `errors=remount-ro` after an error, as on a failing disk): every write is a fast 503
/// `temporarily_unavailable`, never a 500 or a hang; after a repair the database is intact and
/// the refused refreshes wrote nothing (the presented token is still its family's current one).
#[tokio::test]
async fn sqlite_on_a_file_system_turned_read_only_gives_503_and_changes_nothing() {
    if backend() != Backend::Sqlite {
        eprintln!("SQLite fault case: runs in the SQLite pass");
        return;
    }
    let fs = Ext4::mount(32);
    let db = fs.path().join("autional.db");
    let url = format!("sqlite://{}", db.display());
    let mut s = Server::start(&[("AUTIONAL_DATABASE_URL", &url)]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let r: Value = s
        .refresh("pub", t["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let rt = r["refresh_token"].as_str().unwrap().to_string();

    fs.turn_read_only();
    for _ in 0..10 {
        let started = Instant::now();
        let r = s.refresh("pub", &rt).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "fast: {:?}",
            started.elapsed()
        );
        assert_unavailable(r, "refresh on a read-only file system").await;
    }
    s.kill();

    fs.repair();
    let c = rusqlite::Connection::open(&db).unwrap();
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let (family_id, generation) = common::token_family(&rt);
    let (current_generation, live, hashes): (i64, bool, Vec<u8>) = c
        .query_row(
            "SELECT generation, revoked_at_ms IS NULL, token_hashes FROM families WHERE id = ?1",
            [&family_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let held = hashes.chunks(32).any(|h| h == autional::util::sha256(rt.as_bytes()));
    let current = live && held && generation == current_generation;
    assert!(current, "the refused refreshes changed nothing");
}
