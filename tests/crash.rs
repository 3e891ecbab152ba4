//! Crash consistency under `SIGKILL`. Sixteen clients each keep one refresh-token family (a
//! chain) and refresh it as fast as they can; at a random moment 200–800 ms into the load the
//! server process gets `SIGKILL` (the database is left alone), is restarted on the same database
//! and port, and every chain is checked against the rules a client relies on:
//!
//! - (a) the newest token a client holds, answered with 200, works after the restart;
//! - (b) a token rotated by an answered 200 is reuse (401 `invalid_grant`, the family revoked);
//!   checked on one chain per kill and on every chain at the end, since it revokes;
//! - (c) a request lost in flight (sent, no answer, or a 503 whose write may have landed) leaves
//!   exactly one of those two states: the presented token still works (the rotation was not
//!   durable) or it is reuse (it was). What the database holds decides which one must be seen,
//!   read after the process is dead (and, on PostgreSQL, after its sessions are gone), before
//!   the restart: a stored rotation the server then honours again counts as "rotated and valid",
//!   a token the database lost (or a state the server then contradicts) as "lost".
//!
//! A refused connection (the request never left the client) counts as not sent: rule (a).
//! The chains continue from their surviving tokens; a chain whose family is revoked (by a
//! check or a landed in-flight rotation) starts a new one. `AUTIONAL_CRASH_KILLS` sets the number
//! of kills (2 in the suite; `scripts/crash` runs 20 per database and prints the summary).

mod common;

use common::{Backend, Server};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SCOPE: &str = "openid offline_access";
const CHAINS: usize = 16;

/// How the last request of a chain ended when the server died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Every request was answered (or the next one was never sent).
    None,
    /// Sent without an answer, or answered 503: the rotation may or may not have landed.
    InFlight,
    /// Refused while the server ran (already counted as lost): the chain is dropped.
    Broken,
}

#[derive(Clone, Debug)]
struct Chain {
    /// The newest token answered with 200 (the one the client holds).
    current: String,
    /// The token that `current` replaced, rotated by an answered 200.
    prev: Option<String>,
    pending: Pending,
}

#[derive(Default, Debug)]
struct Counts {
    requests: AtomicU64,
    lost: AtomicU64,
    /// Of `lost`, those found by the checks after a restart (the rest: refused while running).
    lost_at_restart: AtomicU64,
    both: AtomicU64,
    other_5xx: AtomicU64,
    s503: AtomicU64,
    in_flight: AtomicU64,
    landed: AtomicU64,
    not_landed: AtomicU64,
    reuse_checks: AtomicU64,
    new_chains: AtomicU64,
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What one refresh request came to.
enum Outcome {
    Ok(String),
    Status(u16, String),
    /// The connection was refused: nothing was sent.
    Refused,
    /// Sent, no answer.
    NoAnswer,
}

async fn refresh(http: &reqwest::Client, base: &str, token: &str, counts: &Counts) -> Outcome {
    add(&counts.requests);
    let r = http
        .post(format!("{base}/oauth/refresh"))
        .json(&serde_json::json!({"refresh_token": token, "client_id": "pub"}))
        .send()
        .await;
    let r = match r {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Outcome::Refused,
        Err(_) => return Outcome::NoAnswer,
    };
    let status = r.status().as_u16();
    let body: Value = match r.json().await {
        Ok(b) => b,
        Err(_) => return Outcome::NoAnswer,
    };
    if status == 200 {
        return Outcome::Ok(body["refresh_token"].as_str().unwrap().to_string());
    }
    if status >= 500 && status != 503 {
        add(&counts.other_5xx);
    }
    if status == 503 {
        add(&counts.s503);
    }
    Outcome::Status(status, body["error"].as_str().unwrap_or("").to_string())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// What the database says about a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored {
    /// The family's current token.
    Current,
    /// Replaced by a later generation.
    Rotated,
    /// The family is revoked.
    Revoked,
    /// No such token.
    Unknown,
}

/// The stored state of each token, read in one go.
fn stored(s: &Server, tokens: &[String]) -> Vec<Stored> {
    s.token_rows(tokens)
        .into_iter()
        .map(|r| match r {
            None => Stored::Unknown,
            Some(r) if r.revoked => Stored::Revoked,
            Some(r) if r.is_current() => Stored::Current,
            Some(r) if r.generation < r.family_generation => Stored::Rotated,
            Some(_) => Stored::Unknown,
        })
        .collect()
}

/// Waits until no session of the killed process is left in the database (PostgreSQL finishes a
/// command it already received, a COMMIT included, before it notices the client is gone).
async fn settle(s: &Server) {
    if s.backend != Backend::Postgres {
        return;
    }
    let t = Instant::now();
    loop {
        let n = s.scalar_i64(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        if n == 0 {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{n} sessions of the killed server remain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh family through the code flow.
async fn new_chain(s: &Server, counts: &Counts) -> Chain {
    add(&counts.new_chains);
    let (t, _) = s.tokens("pub", SCOPE).await;
    Chain {
        current: t["refresh_token"].as_str().unwrap().to_string(),
        prev: None,
        pending: Pending::None,
    }
}

/// One client refreshing its chain until the server goes away (or `stop`).
async fn load(http: reqwest::Client, base: String, mut c: Chain, stop: Arc<AtomicBool>, counts: Arc<Counts>) -> Chain {
    while !stop.load(Ordering::Relaxed) {
        match refresh(&http, &base, &c.current, &counts).await {
            Outcome::Ok(next) => {
                c.prev = Some(std::mem::replace(&mut c.current, next));
            }
            Outcome::Refused => break,
            Outcome::NoAnswer | Outcome::Status(503, _) => {
                c.pending = Pending::InFlight;
                add(&counts.in_flight);
                break;
            }
            Outcome::Status(status, error) => {
                // The client's newest 200-answered token refused while the server ran.
                eprintln!("during load: {status} {error} for a token answered with 200");
                add(&counts.lost);
                c.pending = Pending::Broken;
                break;
            }
        }
    }
    c
}

/// Presents `token` until it gets an answer other than 503 (the store may still be warming up).
async fn answered(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    counts: &Counts,
    recovered: &Mutex<Option<Instant>>,
) -> Outcome {
    let t = Instant::now();
    loop {
        let o = refresh(http, base, token, counts).await;
        match o {
            Outcome::Status(503, _) | Outcome::NoAnswer | Outcome::Refused if t.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Outcome::Ok(_) => {
                recovered.lock().unwrap().get_or_insert_with(Instant::now);
                return o;
            }
            _ => return o,
        }
    }
}

/// Checks one chain after the restart against what the database held at the crash; returns the
/// chain to continue with, or `None` when its family is now revoked.
async fn verify(
    http: &reqwest::Client,
    base: &str,
    mut c: Chain,
    at_crash: Stored,
    check_reuse: bool,
    counts: &Counts,
    recovered: &Mutex<Option<Instant>>,
) -> Option<Chain> {
    let expect_works = match (c.pending, at_crash) {
        (Pending::Broken, _) => return None,
        (Pending::None, Stored::Current) => true,
        (Pending::None, other) => {
            eprintln!("a token answered with 200 is {other:?} in the database");
            add(&counts.lost);
            add(&counts.lost_at_restart);
            return None;
        }
        (Pending::InFlight, Stored::Current) => {
            add(&counts.not_landed);
            true
        }
        (Pending::InFlight, Stored::Rotated) => {
            add(&counts.landed);
            false
        }
        (Pending::InFlight, other) => {
            eprintln!("an in-flight token is {other:?} in the database");
            add(&counts.lost);
            add(&counts.lost_at_restart);
            return None;
        }
    };
    if check_reuse && expect_works {
        // (b): the predecessor, rotated by an answered 200 before the crash, is reuse ...
        if let Some(prev) = c.prev.clone() {
            add(&counts.reuse_checks);
            match answered(http, base, &prev, counts, recovered).await {
                Outcome::Status(401, e) if e == "invalid_grant" => {}
                Outcome::Ok(_) => {
                    eprintln!("a token rotated by an answered 200 works after the restart");
                    add(&counts.both);
                }
                Outcome::Status(s, e) => panic!("reuse after the restart: {s} {e}"),
                _ => panic!("reuse after the restart: no answer"),
            }
            // ... and revoked the family: the current token is refused too.
            match answered(http, base, &c.current, counts, recovered).await {
                Outcome::Status(401, _) => {}
                Outcome::Ok(_) => {
                    eprintln!("the family survived reuse of its predecessor");
                    add(&counts.both);
                }
                _ => panic!("current token after reuse: unexpected answer"),
            }
            return None;
        }
    }
    match answered(http, base, &c.current, counts, recovered).await {
        Outcome::Ok(next) if expect_works => {
            c.prev = Some(std::mem::replace(&mut c.current, next));
            c.pending = Pending::None;
            Some(c)
        }
        Outcome::Ok(_) => {
            eprintln!("a token whose rotation was stored works after the restart");
            add(&counts.both);
            None
        }
        Outcome::Status(401, e) if e == "invalid_grant" && !expect_works => None,
        Outcome::Status(s, e) => {
            eprintln!("a token that must work after the restart: {s} {e}");
            add(&counts.lost);
            add(&counts.lost_at_restart);
            None
        }
        _ => panic!("no answer after the restart"),
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_refresh_load_keeps_every_chain_consistent() {
    let kills: usize = std::env::var("AUTIONAL_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut seed: u64 = std::env::var("AUTIONAL_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    let first_seed = seed;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut s = Server::start(&[("AUTIONAL_RATE_LIMIT__ENABLED", "false"), ("AUTIONAL_LOG", "error")]).await;
    let base = s.base.clone();
    let counts = Arc::new(Counts::default());
    let mut chains = Vec::new();
    for _ in 0..CHAINS {
        chains.push(new_chain(&s, &counts).await);
    }
    // A chain outside the load, refreshed once after each restart: a 200 on it is always
    // possible, so recovery is timed even when every loaded chain ends in reuse.
    let mut probe = new_chain(&s, &counts).await;
    let mut recover = Vec::new();
    // Of which: until the new process listens (start-up: migrations check, keys, pools).
    let mut listening = Vec::new();
    let started = Instant::now();
    for round in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let client = http();
        let tasks: Vec<_> = chains
            .drain(..)
            .map(|c| tokio::spawn(load(client.clone(), base.clone(), c, stop.clone(), counts.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(200 + rand(601))).await;
        let r = unsafe { libc::kill(s.pid(0) as i32, libc::SIGKILL) };
        assert_eq!(r, 0, "kill");
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            chains.push(t.await.unwrap());
        }
        drop(client);
        settle(&s).await;
        chains.push(probe);
        let currents: Vec<String> = chains.iter().map(|c| c.current.clone()).collect();
        let at_crash = stored(&s, &currents);

        let t0 = Instant::now();
        s.restart(&[]).await;
        assert_eq!(s.node(0), base, "restarted on the same port");
        listening.push(t0.elapsed());
        let recovered = Arc::new(Mutex::new(None));
        let client = http();
        // One chain per kill (without a request in flight) also gets the reuse check.
        let sample = (0..CHAINS)
            .map(|i| (i + round) % CHAINS)
            .find(|&i| chains[i].pending == Pending::None && chains[i].prev.is_some());
        let checks: Vec<_> = chains
            .drain(..)
            .zip(at_crash)
            .enumerate()
            .map(|(i, (c, st))| {
                let (client, base, counts, recovered) =
                    (client.clone(), base.clone(), counts.clone(), recovered.clone());
                tokio::spawn(async move { verify(&client, &base, c, st, sample == Some(i), &counts, &recovered).await })
            })
            .collect();
        let mut survivors = Vec::new();
        for t in checks {
            survivors.push(t.await.unwrap());
        }
        let rec = recovered
            .lock()
            .unwrap()
            .map(|t| t - t0)
            .expect("a refresh succeeded after the restart");
        recover.push(rec);
        probe = match survivors.pop().unwrap() {
            Some(c) => c,
            None => new_chain(&s, &counts).await,
        };
        for c in survivors {
            chains.push(match c {
                Some(c) => c,
                None => new_chain(&s, &counts).await,
            });
        }
        eprintln!(
            "kill {}/{kills}: requests {}, in flight {}, recovered in {rec:?}",
            round + 1,
            counts.requests.load(Ordering::Relaxed),
            counts.in_flight.load(Ordering::Relaxed)
        );
    }
    // (b) on every chain at the end: the predecessor is reuse and revokes the family.
    let client = http();
    let never = Mutex::new(None);
    for c in chains.iter().chain([&probe]) {
        let Some(prev) = &c.prev else { continue };
        add(&counts.reuse_checks);
        match answered(&client, &base, prev, &counts, &never).await {
            Outcome::Status(401, e) if e == "invalid_grant" => {}
            Outcome::Ok(_) => add(&counts.both),
            _ => panic!("final reuse check: unexpected answer"),
        }
        match answered(&client, &base, &c.current, &counts, &never).await {
            Outcome::Status(401, _) => {}
            Outcome::Ok(_) => add(&counts.both),
            _ => panic!("final revocation check: unexpected answer"),
        }
    }
    recover.sort();
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let backend = format!("{:?}", s.backend).to_lowercase();
    let (lo, med, hi) = if recover.is_empty() {
        (Duration::ZERO, Duration::ZERO, Duration::ZERO)
    } else {
        (recover[0], percentile(&recover, 50), *recover.last().unwrap())
    };
    println!(
        "\ncrash summary ({backend}, seed {first_seed}, {:.1} s)\n\
         | backend | kills (runs) | requests | in flight (landed / not) | 503 | reuse checks | new chains | tokens lost | rotated and valid | 5xx other than 503 | recover min / median / max |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n\
         | {backend} | {kills} | {} | {} ({} / {}) | {} | {} | {} | {} | {} | {} | {} / {} / {} ms |",
        started.elapsed().as_secs_f64(),
        g(&counts.requests),
        g(&counts.in_flight),
        g(&counts.landed),
        g(&counts.not_landed),
        g(&counts.s503),
        g(&counts.reuse_checks),
        g(&counts.new_chains),
        g(&counts.lost),
        g(&counts.both),
        g(&counts.other_5xx),
        lo.as_millis(),
        med.as_millis(),
        hi.as_millis(),
    );
    listening.sort();
    if !listening.is_empty() {
        println!(
            "restart until listening ({backend}): {} / {} / {} ms (min / median / max)",
            listening[0].as_millis(),
            percentile(&listening, 50).as_millis(),
            listening.last().unwrap().as_millis()
        );
    }
    println!(
        "tokens lost ({backend}): {} ({} found after a restart, {} refused while the server ran)",
        g(&counts.lost),
        g(&counts.lost_at_restart),
        g(&counts.lost) - g(&counts.lost_at_restart)
    );
    assert_eq!(g(&counts.lost), 0, "tokens lost");
    assert_eq!(g(&counts.both), 0, "tokens both rotated and valid");
    assert_eq!(g(&counts.other_5xx), 0, "5xx other than 503");
}
