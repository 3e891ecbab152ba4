//! `autional-bench`: a load generator for the refresh grant, separate from the tests.
//!
//! It starts `autional serve` (optionally pinned to one core with `taskset`) on a fresh SQLite
//! file or PostgreSQL database, obtains N refresh tokens through the real code flow (sign-in
//! page, consent, code exchange with PKCE), then runs C concurrent refresh chains for D seconds:
//! each chain sends the refresh token its previous response returned. It prints throughput,
//! p50/p90/p99 latency and the server's CPU time per refresh (from /proc), one row per
//! concurrency level.
//!
//! With `--target peer` it drives the comparison peer instead: node-oidc-provider configured
//! like autional (`bench/peer/server.mjs`, set up by `bench/peer/setup.sh`), with a durable
//! SQLite or a constant-cost in-memory adapter (`--peer-adapter`). Its refresh tokens come from
//! its own code flow (authorization request, the peer's auto-login/consent interaction, code
//! exchange with PKCE) and its refreshes go to `POST /token` (form-encoded); everything else
//! (chains, warm-up, durations, percentiles, /proc CPU of the server process) is the same.

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    /// autional (`autional serve`).
    Autional,
    /// node-oidc-provider (bench/peer/server.mjs).
    Peer,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum PeerAdapter {
    /// Durable: better-sqlite3, WAL, synchronous=FULL, every write committed before answering.
    Sqlite,
    /// Constant-cost in-memory Maps (not durable).
    Memory,
}

impl PeerAdapter {
    fn name(self) -> &'static str {
        match self {
            PeerAdapter::Sqlite => "sqlite",
            PeerAdapter::Memory => "memory",
        }
    }
}

#[derive(Parser, Clone)]
#[command(about = "Refresh-grant load generator for autional (and its node-oidc-provider peer)")]
struct Args {
    /// Which server to drive: autional, or the node-oidc-provider peer.
    #[arg(long, value_enum, default_value = "autional")]
    target: Target,
    /// The peer's storage (with --target peer): sqlite (durable) or memory.
    #[arg(long, value_enum, default_value = "sqlite")]
    peer_adapter: PeerAdapter,
    /// The peer's directory (server.mjs and its node_modules, see bench/peer/setup.sh).
    #[arg(long, default_value = "bench/peer")]
    peer_dir: String,
    /// The Node.js binary for the peer.
    #[arg(long, default_value = "node")]
    node: String,
    /// The server binary.
    #[arg(long, default_value = "target/release/autional")]
    server: String,
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// PostgreSQL admin URL (a fresh database is created on it for the run).
    #[arg(long, default_value = "postgres://autional:autional@127.0.0.1:5432/autional")]
    pg_url: String,
    /// Server processes (PostgreSQL only; the load is spread over them).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Concurrency levels (comma-separated).
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Measured seconds per level.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds per level (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Pin each server process to this CPU (taskset); empty = unpinned.
    #[arg(long)]
    pin: Option<String>,
    /// Scope of the grants (with `openid` an ID token is re-issued on every refresh).
    #[arg(long, default_value = "openid offline_access")]
    scope: String,
    /// DPoP-bound refreshes: each chain has its own ES256 key; every refresh sends a fresh proof.
    #[arg(long)]
    dpop: bool,
}

struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn cli(args: &Args, db: &str, cmd: &[&str], stdin: &str) -> Result<Value> {
    use std::io::Write;
    let mut c = Command::new(&args.server)
        .env("AUTIONAL_DATABASE_URL", db)
        .env("AUTIONAL_LOG", "warn")
        .args(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", args.server))?;
    c.stdin.take().unwrap().write_all(stdin.as_bytes())?;
    let out = c.wait_with_output()?;
    if !out.status.success() {
        bail!("autional {cmd:?} failed");
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

/// Starts the node-oidc-provider peer (pinned like autional when --pin is given).
fn start_peer(args: &Args, db_path: &std::path::Path) -> Result<Node> {
    use std::io::{BufRead, BufReader};
    let script = std::path::Path::new(&args.peer_dir).join("server.mjs");
    if !std::path::Path::new(&args.peer_dir)
        .join("node_modules/oidc-provider")
        .is_dir()
    {
        bail!("the peer is not set up: run {}/setup.sh", args.peer_dir);
    }
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = match &args.pin {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, &args.node]);
            c
        }
        None => Command::new(&args.node),
    };
    let mut child = cmd
        .arg(&script)
        .env("PORT", port.to_string())
        .env("PEER_ADAPTER", args.peer_adapter.name())
        .env("PEER_SQLITE_PATH", db_path)
        .env("NODE_ENV", "production")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {} {}", args.node, script.display()))?;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line)?;
    if !line.starts_with("listening on") {
        let _ = child.kill();
        bail!("peer did not start: {line}");
    }
    // Keep reading its stdout so that a late write never meets a closed pipe.
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            eprintln!("peer: {l}");
        }
    });
    Ok(Node { child, url })
}

/// The version of an npm package installed in the peer's node_modules.
fn peer_package_version(args: &Args, name: &str) -> String {
    let p = std::path::Path::new(&args.peer_dir).join(format!("node_modules/{name}/package.json"));
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn start_node(args: &Args, db: &str, issuer: Option<&str>) -> Result<Node> {
    use std::io::{BufRead, BufReader};
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = match &args.pin {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, &args.server]);
            c
        }
        None => Command::new(&args.server),
    };
    let mut child = cmd
        .env("AUTIONAL_DATABASE_URL", db)
        .env("AUTIONAL_LISTEN", format!("127.0.0.1:{port}"))
        .env("AUTIONAL_ISSUER", issuer.unwrap_or(&url))
        .env("AUTIONAL_LOG", "error")
        .env("AUTIONAL_RATE_LIMIT__ENABLED", "false")
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
    if !line.starts_with("listening on") {
        bail!("server did not start: {line}");
    }
    Ok(Node { child, url })
}

/// User CPU + system CPU of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    let hz: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
        .trim()
        .parse()?;
    Ok(ticks / hz)
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let i = html.find(&marker)? + marker.len();
    Some(html[i..].split('"').next()?.replace("&amp;", "&"))
}

fn hidden_all(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|p| {
            let (name, rest) = p.split_once('"')?;
            let v = rest.split_once("value=\"")?.1.split_once('"')?.0;
            Some((name.to_string(), v.replace("&amp;", "&").replace("&#x2f;", "/")))
        })
        .collect()
}

fn location(r: &reqwest::Response) -> Result<String> {
    Ok(r.headers()
        .get("location")
        .context("no Location")?
        .to_str()?
        .to_string())
}

/// Signs in once and returns the cookies; the first authorization records consent.
async fn sign_in(http: &reqwest::Client, base: &str) -> Result<String> {
    let r = http.get(format!("{base}/login")).send().await?;
    let csrf_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("autional_csrf=")
                .map(|s| s.split(';').next().unwrap_or("").to_string())
        })
        .context("csrf cookie")?;
    let token = hidden(&r.text().await?, "csrf_token").context("csrf token")?;
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", format!("autional_csrf={csrf_cookie}"))
        .form(&[
            ("username", "bench"),
            ("password", "bench-password"),
            ("csrf_token", &token),
            ("return_to", "/account"),
        ])
        .send()
        .await?;
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("autional_session=")
                .map(|s| s.split(';').next().unwrap_or("").to_string())
        })
        .context("sign-in failed")?;
    Ok(format!("autional_csrf={csrf_cookie}; autional_session={session}"))
}

/// One refresh token through the real code flow with PKCE.
async fn obtain_token(
    http: &reqwest::Client,
    base: &str,
    cookies: &str,
    scope: &str,
    key: Option<&DpopKey>,
) -> Result<String> {
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let redirect = "http://127.0.0.1:9/cb";
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", "bench")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", scope)
        .append_pair("state", "s")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let r = http
        .get(format!("{base}/oauth/authorize?{q}"))
        .header("cookie", cookies)
        .send()
        .await?;
    let loc = if r.status() == 200 {
        let mut form = hidden_all(&r.text().await?);
        form.push(("approved".into(), "true".into()));
        let r = http
            .post(format!("{base}/oauth/authorize"))
            .header("cookie", cookies)
            .form(&form)
            .send()
            .await?;
        location(&r)?
    } else {
        location(&r)?
    };
    let code = url::Url::parse(&loc)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code")?;
    let mut req = http.post(format!("{base}/oauth/token"));
    if let Some(k) = key {
        // The public client's family is bound to this key from the first proof on.
        req = req.header("DPoP", k.proof("POST", &format!("{base}/oauth/token")));
    }
    let t: Value = req
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", "bench"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?
        .json()
        .await?;
    t["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .context("no refresh token")
}

/// The cookies a response sets, merged into `jar` (an empty value deletes the cookie).
fn absorb_cookies(jar: &mut std::collections::BTreeMap<String, String>, r: &reqwest::Response) {
    for v in r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
        let pair = v.split(';').next().unwrap_or("");
        if let Some((k, val)) = pair.split_once('=') {
            if val.is_empty() {
                jar.remove(k.trim());
            } else {
                jar.insert(k.trim().to_string(), val.to_string());
            }
        }
    }
}

/// One refresh token from the peer through its real code flow with PKCE: the authorization
/// request redirects to the peer's interaction, which signs in the fixed account and grants
/// the scope through node-oidc-provider's API, then back to the authorization endpoint, which
/// redirects to the client with a code. A fresh cookie jar per token gives every chain its own
/// grant, as autional's code exchange starts a new refresh family.
async fn obtain_token_peer(http: &reqwest::Client, base: &str, scope: &str) -> Result<String> {
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let redirect = "http://127.0.0.1:9/cb";
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", "bench")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", scope)
        .append_pair("state", "s")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        // node-oidc-provider drops offline_access unless the prompt includes consent.
        .append_pair("prompt", "consent")
        .finish();
    let mut jar = std::collections::BTreeMap::new();
    let mut url = url::Url::parse(&format!("{base}/auth?{q}"))?;
    let mut code = None;
    for _ in 0..8 {
        let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let r = http.get(url.clone()).header("cookie", cookie.join("; ")).send().await?;
        absorb_cookies(&mut jar, &r);
        if !r.status().is_redirection() {
            bail!(
                "peer authorization stopped at {} {url}: {}",
                r.status(),
                r.text().await?
            );
        }
        url = url.join(&location(&r)?)?;
        if url.as_str().starts_with(redirect) {
            code = url
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned());
            break;
        }
    }
    let code = code.with_context(|| format!("no code from the peer (last redirect {url})"))?;
    let t: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", "bench"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?
        .json()
        .await?;
    t["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no refresh token from the peer: {t}"))
}

/// A client's DPoP key (ES256) and the proofs it signs (RFC 9449 §4.2).
struct DpopKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    /// base64url of the proof header, which never changes for one key.
    header: String,
}

impl DpopKey {
    fn new() -> Result<DpopKey> {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("keygen"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| anyhow::anyhow!("key"))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let point = pair.public_key().as_ref().to_vec();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256", "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65])}});
        Ok(DpopKey {
            pair,
            header: b64.encode(header.to_string()),
        })
    }

    fn proof(&self, htm: &str, htu: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = json!({"jti": b64.encode(&rand_bytes()[..16]), "htm": htm, "htu": htu, "iat": iat});
        let input = format!("{}.{}", self.header, b64.encode(claims.to_string()));
        let sig = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64.encode(sig.as_ref()))
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("rng");
    b
}

struct Level {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    seconds: f64,
    cpu_s: f64,
}

/// C chains for warm-up + duration; returns the measured part.
async fn run_level(
    http: &reqwest::Client,
    nodes: &[Node],
    tokens: Vec<(String, Option<std::sync::Arc<DpopKey>>)>,
    args: &Args,
) -> Result<Level> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    let cpu_pids = pids.clone();
    let cpu_probe = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before: f64 = cpu_pids.iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).sum();
        tokio::time::sleep_until(end.into()).await;
        let after: f64 = cpu_pids.iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).sum();
        after - before
    });
    let path = match args.target {
        Target::Autional => "/oauth/refresh",
        Target::Peer => "/token",
    };
    let target = args.target;
    let urls: Vec<String> = nodes.iter().map(|n| format!("{}{path}", n.url)).collect();
    // Every process shares the first one's issuer, so proofs name its URL.
    let htu = format!("{}{path}", nodes[0].url);
    let tasks = tokens.into_iter().enumerate().map(|(i, (mut rt, key))| {
        let http = http.clone();
        let url = urls[i % urls.len()].clone();
        let htu = htu.clone();
        async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let req = match target {
                    Target::Autional => {
                        let r = http
                            .post(&url)
                            .json(&json!({"refresh_token": rt, "client_id": "bench"}));
                        match &key {
                            Some(k) => r.header("DPoP", k.proof("POST", &htu)),
                            None => r,
                        }
                    }
                    Target::Peer => http.post(&url).form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", rt.as_str()),
                        ("client_id", "bench"),
                    ]),
                };
                let r = req.send().await;
                let body: Option<Value> = match r {
                    Ok(r) if r.status() == 200 => r.json().await.ok(),
                    _ => None,
                };
                let measured = t0 >= measure_from;
                match body.and_then(|b| b["refresh_token"].as_str().map(str::to_owned)) {
                    Some(next) => {
                        rt = next;
                        if measured {
                            ok += 1;
                            lat.push(t0.elapsed().as_micros() as u32);
                        }
                    }
                    None => {
                        errors += 1;
                        break;
                    }
                }
            }
            (ok, errors, lat)
        }
    });
    let results = futures::future::join_all(tasks).await;
    let cpu_s = cpu_probe.await?;
    let mut level = Level {
        ok: 0,
        errors: 0,
        latencies_us: Vec::new(),
        seconds: args.duration as f64,
        cpu_s,
    };
    for (ok, errors, lat) in results {
        level.ok += ok;
        level.errors += errors;
        level.latencies_us.extend(lat);
    }
    level.latencies_us.sort_unstable();
    Ok(level)
}

fn pct(v: &[u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// Starts autional on a fresh database with the bench's user and public client.
fn start_autional(args: &Args, dir: &std::path::Path) -> Result<(Vec<Node>, Option<PgGuard>)> {
    let (db, pg_guard) = match args.backend.as_str() {
        "sqlite" => (format!("sqlite://{}/bench.db", dir.display()), None),
        "postgres" => {
            let name = format!("bench_{}", std::process::id());
            let admin = args.pg_url.clone();
            run_psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
            run_psql(&admin, &format!("CREATE DATABASE {name}"))?;
            let mut u = url::Url::parse(&admin)?;
            u.set_path(&format!("/{name}"));
            (u.to_string(), Some(PgGuard { admin, name }))
        }
        other => bail!("--backend {other}: use sqlite or postgres"),
    };
    if args.nodes > 1 && args.backend != "postgres" {
        bail!("--nodes > 1 needs --backend postgres");
    }
    cli(
        args,
        &db,
        &["user", "create", "--username", "bench", "--password-stdin"],
        "bench-password",
    )?;
    cli(
        args,
        &db,
        &[
            "client",
            "create",
            "--name",
            "bench",
            "--public",
            "--client-id",
            "bench",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
        ],
        "",
    )?;
    let first = start_node(args, &db, None)?;
    let issuer = first.url.clone();
    let mut nodes = vec![first];
    for _ in 1..args.nodes {
        nodes.push(start_node(args, &db, Some(&issuer))?);
    }
    Ok((nodes, pg_guard))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.dpop && matches!(args.target, Target::Peer) {
        bail!("--dpop is implemented for --target autional only (the peer's DPoP rows are still to do)");
    }
    let dir = tempfile::tempdir()?;
    let (nodes, _pg_guard) = match args.target {
        Target::Autional => start_autional(&args, dir.path())?,
        Target::Peer => {
            if args.nodes > 1 || args.backend != "sqlite" {
                bail!("--target peer runs one process; its storage is chosen with --peer-adapter");
            }
            (vec![start_peer(&args, &dir.path().join("peer.db"))?], None)
        }
    };
    let issuer = nodes[0].url.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1024)
        .build()?;
    let cookies = match args.target {
        Target::Autional => sign_in(&http, &issuer).await?,
        Target::Peer => String::new(),
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let what = match args.target {
        Target::Autional => format!(
            "target=autional backend={} nodes={} dpop={}",
            args.backend, args.nodes, args.dpop
        ),
        Target::Peer => format!(
            "target=peer (node-oidc-provider {}, better-sqlite3 {}, node {}) adapter={}",
            peer_package_version(&args, "oidc-provider"),
            peer_package_version(&args, "better-sqlite3"),
            Command::new(&args.node)
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|v| v.trim().to_string())
                .unwrap_or_default(),
            args.peer_adapter.name()
        ),
    };
    println!(
        "# autional refresh benchmark: {what} pin={} scope=\"{}\" warmup={}s duration={}s cpus={}",
        args.pin.as_deref().unwrap_or("none"),
        args.scope,
        args.warmup,
        args.duration,
        cores
    );
    println!("| C | refreshes/s | p50 ms | p90 ms | p99 ms | server CPU µs/refresh | server CPU s/1000 | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    for &c in &args.concurrency {
        let mut tokens = Vec::with_capacity(c);
        for _ in 0..c {
            let key = if args.dpop {
                Some(std::sync::Arc::new(DpopKey::new()?))
            } else {
                None
            };
            let rt = match args.target {
                Target::Autional => obtain_token(&http, &issuer, &cookies, &args.scope, key.as_deref()).await?,
                Target::Peer => obtain_token_peer(&http, &issuer, &args.scope).await?,
            };
            tokens.push((rt, key));
        }
        let l = run_level(&http, &nodes, tokens, &args).await?;
        let rate = l.ok as f64 / l.seconds;
        let cpu_us = if l.ok > 0 {
            l.cpu_s * 1e6 / l.ok as f64
        } else {
            f64::NAN
        };
        println!(
            "| {c} | {rate:.0} | {:.2} | {:.2} | {:.2} | {cpu_us:.0} | {:.3} | {} |",
            pct(&l.latencies_us, 0.50),
            pct(&l.latencies_us, 0.90),
            pct(&l.latencies_us, 0.99),
            cpu_us / 1000.0,
            l.errors
        );
    }
    Ok(())
}

struct PgGuard {
    admin: String,
    name: String,
}

impl Drop for PgGuard {
    fn drop(&mut self) {
        let _ = run_psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn run_psql(url: &str, sql: &str) -> Result<()> {
    let st = Command::new("psql")
        .args([url, "-qc", sql])
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("psql failed: {sql}");
    }
    Ok(())
}
