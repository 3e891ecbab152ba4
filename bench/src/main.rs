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
//! With `--dpop` every chain has its own ES256 key on either target: the code exchange sends a
//! proof, so the refresh family (autional) or the refresh token (node-oidc-provider, for a
//! public client) is bound to that key, and every refresh sends a fresh proof. A server nonce
//! (`DPoP-Nonce`, `use_dpop_nonce`) is followed when a server asks for one: the bench's
//! configurations of both servers do not.
//!
//! Memory: the servers' resident set (VmRSS from /proc, summed over the processes) once idle
//! after start-up and seeding (a header line), and at the end of each level (the last column).
//! `--soak SECONDS` runs one level for that long instead, sampling throughput and RSS every
//! 10 s. `--json FILE` appends one JSON object per table row to FILE (for plots).
//!
//! On PostgreSQL the last column is PostgreSQL's own CPU per refresh (every `postgres` process
//! of the machine, from /proc, over the measured window), beside the server's.
//!
//! `--families N` writes N token families into the database before the server starts, as they
//! look after 10 rotations each (`seed.rs`): the chains then run over a database that has served
//! N users. With `--cold` there are no hot chains: C workers refresh families picked at random
//! out of those N (each worker its own share of them, so no two present one token at once), so
//! nearly every refresh reads and writes a page that is not in any cache.

mod seed;

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
    /// Only print what an ES256 signature and verification cost on this CPU, then exit
    #[arg(long)]
    calibrate: bool,
    /// Soak test: one level at the first --concurrency value for SECONDS after the warm-up,
    /// printing refreshes/s and the servers' RSS every 10 s (instead of the levels' table).
    #[arg(long, value_name = "SECONDS")]
    soak: Option<u64>,
    /// Append one JSON object per table row (one line each) to FILE (not in --soak mode).
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
    /// Seed this many token families (each at generation 10) into the database before the run.
    #[arg(long, default_value_t = 0)]
    families: usize,
    /// Refresh families picked at random out of --families instead of C hot chains.
    #[arg(long)]
    cold: bool,
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
        .env("AUTIONAL_REFRESH__TOKEN_KEYS", format!("[{}]", seed::TOKEN_KEY))
        .env("AUTIONAL_ADMIN__LISTEN", "")
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

/// CPU seconds of every PostgreSQL process on this machine (`comm` = `postgres`: the
/// postmaster, its backends, the WAL writer, the checkpointer, …).
fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(|pid| cpu_seconds(pid).unwrap_or(0.0))
        .sum()
}

/// Resident set size of a process (VmRSS of /proc/<pid>/status), in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    status_mib(pid, "VmRSS")
}

/// One field of /proc/<pid>/status in kB (`VmRSS`, `RssAnon`, `RssFile`), in MiB.
fn status_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .with_context(|| format!("no {field}"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

/// One /proc status field summed over the servers' processes, in MiB (NaN when /proc cannot tell).
fn nodes_status_mib(nodes: &[Node], field: &str) -> f64 {
    nodes
        .iter()
        .map(|n| status_mib(n.child.id(), field).unwrap_or(f64::NAN))
        .sum()
}

/// The servers' RSS summed over their processes, in MiB.
fn nodes_rss_mib(nodes: &[Node]) -> f64 {
    nodes_status_mib(nodes, "VmRSS")
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
    dpop: Option<&mut Dpop>,
) -> Result<String> {
    let redirect = REDIRECT;
    let (verifier, q) = authorization_query(scope, &[]);
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
    // With a proof, the public client's family is bound to this key from the first proof on.
    let token_url = format!("{base}/oauth/token");
    let form = code_exchange_form(&code, redirect, &verifier);
    let bound = dpop.is_some();
    let (_, t) = send_token_request(|| http.post(&token_url).form(&form), &token_url, dpop).await?;
    next_refresh_token(&t, bound).with_context(|| format!("no refresh token: {t}"))
}

/// The form of the bench client's code exchange (PKCE, public client).
fn code_exchange_form<'a>(code: &'a str, redirect: &'a str, verifier: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", "bench"),
        ("code_verifier", verifier),
    ]
}

/// Sends a token-endpoint request built by `build`, with a fresh DPoP proof for `htu` when
/// the chain is bound. The latest `DPoP-Nonce` the server sends is kept in the chain's state
/// and put in its next proofs; a `use_dpop_nonce` error is retried once with the new nonce
/// (RFC 9449 §8). Returns the status and the JSON body (`Null` when the body is not JSON).
async fn send_token_request(
    build: impl Fn() -> reqwest::RequestBuilder,
    htu: &str,
    mut dpop: Option<&mut Dpop>,
) -> Result<(reqwest::StatusCode, Value)> {
    let mut retried = false;
    loop {
        let mut req = build();
        if let Some(d) = dpop.as_deref() {
            req = req.header("DPoP", d.key.proof("POST", htu, d.nonce.as_deref()));
        }
        let r = req.send().await?;
        let status = r.status();
        let nonce = r
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let Some(d) = dpop.as_deref_mut() else {
            return Ok((status, body));
        };
        let asked = nonce.is_some() && !status.is_success() && body["error"] == "use_dpop_nonce";
        if nonce.is_some() {
            d.nonce = nonce;
        }
        if !asked || retried {
            return Ok((status, body));
        }
        retried = true;
    }
}

/// The refresh token of a token response; `None` for a DPoP-bound chain unless the response's
/// `token_type` is `DPoP` (an unbound answer to a proof counts as an error).
fn next_refresh_token(body: &Value, bound: bool) -> Option<String> {
    if bound && body["token_type"] != "DPoP" {
        return None;
    }
    body["refresh_token"].as_str().map(str::to_owned)
}

/// The bench client's redirect URI (never contacted: the code is read from the redirect).
const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// A fresh PKCE verifier and the authorization request's query for the bench client (S256
/// challenge, `state`, plus `extra` pairs).
fn authorization_query(scope: &str, extra: &[(&str, &str)]) -> (String, String) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode(rand_bytes());
    let challenge = b64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", "bench")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "s")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    (verifier, q.finish())
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
/// With `dpop`, the code exchange sends a proof: node-oidc-provider then binds the public
/// client's refresh token to the key (`jkt`) and requires a proof by it on every refresh.
async fn obtain_token_peer(http: &reqwest::Client, base: &str, scope: &str, dpop: Option<&mut Dpop>) -> Result<String> {
    let redirect = REDIRECT;
    // node-oidc-provider drops offline_access unless the prompt includes consent.
    let (verifier, q) = authorization_query(scope, &[("prompt", "consent")]);
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
    // The htu node-oidc-provider expects is its issuer's URL for the token route.
    let token_url = format!("{base}/token");
    let form = code_exchange_form(&code, redirect, &verifier);
    let bound = dpop.is_some();
    let (_, t) = send_token_request(|| http.post(&token_url).form(&form), &token_url, dpop).await?;
    next_refresh_token(&t, bound).with_context(|| format!("no refresh token from the peer: {t}"))
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

    /// A proof for `htm` at `htu`, with the server's `nonce` when it gave one.
    fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims = json!({"jti": b64.encode(&rand_bytes()[..16]), "htm": htm, "htu": htu, "iat": unix_seconds()});
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        let input = format!("{}.{}", self.header, b64.encode(claims.to_string()));
        let sig = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign");
        format!("{input}.{}", b64.encode(sig.as_ref()))
    }
}

/// A chain's DPoP state: its key and the latest nonce the server gave it (RFC 9449 §8).
struct Dpop {
    key: DpopKey,
    nonce: Option<String>,
}

/// One refresh chain: the refresh token to present next, and its DPoP state with --dpop.
struct Chain {
    rt: String,
    dpop: Option<Dpop>,
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    /// PostgreSQL's CPU over the same window (PostgreSQL runs only).
    pg_cpu_s: Option<f64>,
    /// The servers' RSS at the end of the level, in MiB (summed over the processes).
    rss_mib: f64,
}

/// What one chain did in its measured part.
struct ChainResult {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

/// When the chains run: refreshes that start before `measure_from` are warm-up, and no
/// refresh starts at or after `end`.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

impl Window {
    /// Warm-up from now, then `seconds` measured.
    fn after_warmup(args: &Args, seconds: u64) -> Window {
        let measure_from = Instant::now() + Duration::from_secs(args.warmup);
        Window {
            measure_from,
            end: measure_from + Duration::from_secs(seconds),
        }
    }
}

/// Runs every chain until the window ends: each sends the refresh token its previous response
/// returned (with a fresh proof when it is DPoP-bound) and stops at its first error. Measured
/// refreshes are counted in `counter` as they complete (for --soak's windows) and their
/// latencies kept when `keep_latencies`.
async fn run_chains(
    http: &reqwest::Client,
    nodes: &[Node],
    chains: Vec<Chain>,
    target: Target,
    window: Window,
    counter: Arc<AtomicU64>,
    keep_latencies: bool,
) -> Vec<ChainResult> {
    let path = match target {
        Target::Autional => "/oauth/refresh",
        Target::Peer => "/token",
    };
    let urls: Vec<String> = nodes.iter().map(|n| format!("{}{path}", n.url)).collect();
    // Every process shares the first one's issuer, so proofs name its URL.
    let htu = format!("{}{path}", nodes[0].url);
    let tasks = chains.into_iter().enumerate().map(|(i, chain)| {
        let http = http.clone();
        let url = urls[i % urls.len()].clone();
        let htu = htu.clone();
        let counter = counter.clone();
        async move {
            let Chain { mut rt, mut dpop } = chain;
            let mut lat = Vec::with_capacity(if keep_latencies { 1 << 16 } else { 0 });
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let t0 = Instant::now();
                if t0 >= window.end {
                    break;
                }
                let build = || match target {
                    Target::Autional => http
                        .post(&url)
                        .json(&json!({"refresh_token": rt, "client_id": "bench"})),
                    Target::Peer => http.post(&url).form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", rt.as_str()),
                        ("client_id", "bench"),
                    ]),
                };
                let bound = dpop.is_some();
                let next = match send_token_request(build, &htu, dpop.as_mut()).await {
                    Ok((status, body)) if status == reqwest::StatusCode::OK => next_refresh_token(&body, bound),
                    _ => None,
                };
                match next {
                    Some(next) => {
                        rt = next;
                        if t0 >= window.measure_from {
                            ok += 1;
                            counter.fetch_add(1, Ordering::Relaxed);
                            if keep_latencies {
                                lat.push(t0.elapsed().as_micros() as u32);
                            }
                        }
                    }
                    None => {
                        errors += 1;
                        break;
                    }
                }
            }
            ChainResult {
                ok,
                errors,
                latencies_us: lat,
            }
        }
    });
    futures::future::join_all(tasks).await
}

/// What a level runs: C hot chains, or C workers over the seeded families (`--cold`).
enum Load {
    Chains(Vec<Chain>),
    Cold { workers: usize },
}

/// `--cold`: `workers` tasks, each refreshing families picked at random out of its share of the
/// seeded ones (family i belongs to worker i mod workers) until the window ends; a family's
/// current token is the seeded one until the worker has rotated it. A refused refresh counts as
/// an error and the worker goes on with another family.
async fn run_cold(
    http: &reqwest::Client,
    nodes: &[Node],
    workers: usize,
    families: usize,
    window: Window,
) -> Vec<ChainResult> {
    let url = |w: usize| format!("{}/oauth/refresh", nodes[w % nodes.len()].url);
    let keys = Arc::new(seed::keys());
    let tasks = (0..workers).map(|w| {
        let (http, url, keys) = (http.clone(), url(w), keys.clone());
        async move {
            let share = (families / workers).max(1);
            let mut rotated: std::collections::HashMap<usize, String> = std::collections::HashMap::new();
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut lat = Vec::with_capacity(1 << 16);
            let (mut ok, mut errors) = (0u64, 0u64);
            loop {
                let t0 = Instant::now();
                if t0 >= window.end {
                    break;
                }
                // xorshift64*: uniform enough to spread the load over the share.
                rng ^= rng >> 12;
                rng ^= rng << 25;
                rng ^= rng >> 27;
                let i = w + workers * (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % share as u64) as usize;
                let rt = rotated.get(&i).cloned().unwrap_or_else(|| seed::token(&keys, i).0);
                let r = http
                    .post(&url)
                    .json(&json!({"refresh_token": rt, "client_id": "bench"}))
                    .send()
                    .await;
                let next = match r {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => match r.json::<Value>().await {
                        Ok(body) => next_refresh_token(&body, false),
                        Err(_) => None,
                    },
                    _ => None,
                };
                match next {
                    Some(next) => {
                        rotated.insert(i, next);
                        if t0 >= window.measure_from {
                            ok += 1;
                            lat.push(t0.elapsed().as_micros() as u32);
                        }
                    }
                    None => errors += 1,
                }
            }
            ChainResult {
                ok,
                errors,
                latencies_us: lat,
            }
        }
    });
    futures::future::join_all(tasks).await
}

/// C chains for warm-up + duration; returns the measured part.
async fn run_level(http: &reqwest::Client, nodes: &[Node], load: Load, args: &Args) -> Result<Level> {
    let window = Window::after_warmup(args, args.duration);
    let cpu_pids: Vec<u32> = nodes.iter().map(|n| n.child.id()).collect();
    let postgres = args.backend == "postgres" && args.target == Target::Autional;
    let cpu_probe = tokio::spawn(async move {
        tokio::time::sleep_until(window.measure_from.into()).await;
        let pg_before = if postgres { postgres_cpu_seconds() } else { 0.0 };
        let before: f64 = cpu_pids.iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).sum();
        tokio::time::sleep_until(window.end.into()).await;
        let after: f64 = cpu_pids.iter().map(|p| cpu_seconds(*p).unwrap_or(0.0)).sum();
        let pg = postgres.then(|| postgres_cpu_seconds() - pg_before);
        (after - before, pg)
    });
    let counter = Arc::new(AtomicU64::new(0));
    let results = match load {
        Load::Chains(chains) => run_chains(http, nodes, chains, args.target, window, counter, true).await,
        Load::Cold { workers } => run_cold(http, nodes, workers, args.families, window).await,
    };
    let (cpu_s, pg_cpu_s) = cpu_probe.await?;
    let mut level = Level {
        ok: 0,
        errors: 0,
        latencies_us: Vec::new(),
        seconds: args.duration as f64,
        cpu_s,
        pg_cpu_s,
        rss_mib: nodes_rss_mib(nodes),
    };
    for r in results {
        level.ok += r.ok;
        level.errors += r.errors;
        level.latencies_us.extend(r.latencies_us);
    }
    level.latencies_us.sort_unstable();
    Ok(level)
}

/// Seconds between two samples of --soak.
const SOAK_SAMPLE_S: u64 = 10;

/// `--soak`: the chains of one level run for `seconds` after the warm-up (the same chains as
/// `run_level`'s, each going the whole time); every 10 s (and at the end) a table row with that
/// window's refreshes/s and the servers' RSS, then a summary line.
async fn run_soak(http: &reqwest::Client, nodes: &[Node], chains: Vec<Chain>, args: &Args, seconds: u64) -> Result<()> {
    let c = chains.len();
    let window = Window::after_warmup(args, seconds);
    let counter = Arc::new(AtomicU64::new(0));
    println!("| t s | refreshes/s | RSS MiB | of which anonymous MiB | of which file-backed MiB |");
    println!("|---|---|---|---|---|");
    let sampler = async {
        let mut samples: Vec<(u64, f64)> = Vec::new();
        let mut anon_samples: Vec<(u64, f64)> = Vec::new();
        let (mut t, mut last_count, mut last_at) = (0, 0, window.measure_from);
        while t < seconds {
            t = (t + SOAK_SAMPLE_S).min(seconds);
            tokio::time::sleep_until((window.measure_from + Duration::from_secs(t)).into()).await;
            let (count, now) = (counter.load(Ordering::Relaxed), Instant::now());
            let rate = (count - last_count) as f64 / now.duration_since(last_at).as_secs_f64();
            let rss = nodes_rss_mib(nodes);
            // Anonymous (heap, stacks) and file-backed (binary, mapped database pages).
            let (anon, file) = (nodes_status_mib(nodes, "RssAnon"), nodes_status_mib(nodes, "RssFile"));
            println!("| {t} | {rate:.0} | {rss:.1} | {anon:.1} | {file:.1} |");
            samples.push((t, rss));
            anon_samples.push((t, anon));
            (last_count, last_at) = (count, now);
        }
        (samples, anon_samples)
    };
    let chains = run_chains(http, nodes, chains, args.target, window, counter.clone(), false);
    let (results, (samples, anon_samples)) = tokio::join!(chains, sampler);
    let ok: u64 = results.iter().map(|r| r.ok).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    println!(
        "# soak C={c} {seconds} s: {ok} refreshes ({:.0}/s), {errors} errors; RSS: {}; anonymous: {}",
        ok as f64 / seconds as f64,
        soak_rss_summary(&samples),
        soak_rss_summary(&anon_samples)
    );
    Ok(())
}

/// First, last and max of the RSS samples `(t s, MiB)`, and the growth from the sample at 60 s
/// (after start-up effects) to the last one.
fn soak_rss_summary(samples: &[(u64, f64)]) -> String {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return "no RSS samples".into();
    };
    let max = samples.iter().map(|s| s.1).fold(f64::NAN, f64::max);
    let growth = match samples.iter().find(|s| s.0 == 60) {
        Some(at60) if last.0 > 60 => format!(
            "{:+.1} MiB ({:+.1} %)",
            last.1 - at60.1,
            (last.1 - at60.1) / at60.1 * 100.0
        ),
        _ => "n/a (needs --soak > 60)".into(),
    };
    format!(
        "MiB first {:.1} last {:.1} max {max:.1}, growth from 60 s to the end {growth}",
        first.1, last.1
    )
}

fn pct(v: &[u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// Starts autional on a fresh database with the bench's user and public client.
async fn start_autional(args: &Args, dir: &std::path::Path) -> Result<(Vec<Node>, Option<PgGuard>)> {
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
    if args.families > 0 {
        let t = Instant::now();
        match args.backend.as_str() {
            "sqlite" => seed::sqlite(db.trim_start_matches("sqlite://"), args.families, "bench", "bench")?,
            _ => seed::postgres(&db, args.families, "bench", "bench").await?,
        }
        eprintln!(
            "# seeded {} families in {:.1} s",
            args.families,
            t.elapsed().as_secs_f64()
        );
    }
    let first = start_node(args, &db, None)?;
    let issuer = first.url.clone();
    let mut nodes = vec![first];
    for _ in 1..args.nodes {
        nodes.push(start_node(args, &db, Some(&issuer))?);
    }
    Ok((nodes, pg_guard))
}

/// C chains, each with its own refresh token from the code flow (and its own key with --dpop).
async fn seed_chains(http: &reqwest::Client, issuer: &str, cookies: &str, args: &Args, c: usize) -> Result<Vec<Chain>> {
    let mut chains = Vec::with_capacity(c);
    for _ in 0..c {
        let mut dpop = if args.dpop {
            Some(Dpop {
                key: DpopKey::new()?,
                nonce: None,
            })
        } else {
            None
        };
        let rt = match args.target {
            Target::Autional => obtain_token(http, issuer, cookies, &args.scope, dpop.as_mut()).await?,
            Target::Peer => obtain_token_peer(http, issuer, &args.scope, dpop.as_mut()).await?,
        };
        chains.push(Chain { rt, dpop });
    }
    Ok(chains)
}

/// Prints what ES256 costs on this CPU (aws-lc-rs, the library autional signs and verifies
/// with, on the calling thread): the floor of a refresh is two signatures, plus one
/// verification with DPoP. `bench/run` runs it pinned to the server's core.
fn calibrate() -> Result<()> {
    use aws_lc_rs::signature::{
        EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| anyhow::anyhow!("keygen"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("key"))?;
    let msg = [b'x'; 600];
    let n = 4000u32;
    let t = Instant::now();
    let mut sig = Vec::new();
    for _ in 0..n {
        sig = pair
            .sign(&rng, &msg)
            .map_err(|_| anyhow::anyhow!("sign"))?
            .as_ref()
            .to_vec();
    }
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t = Instant::now();
    for _ in 0..n {
        // Parsed per call, as a DPoP proof's key is.
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
            .map_err(|_| anyhow::anyhow!("public key"))?;
        key.verify_sig(&msg, &sig).map_err(|_| anyhow::anyhow!("verify"))?;
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
        .map_err(|_| anyhow::anyhow!("public key"))?;
    let t = Instant::now();
    for _ in 0..n {
        key.verify_sig(&msg, &sig).map_err(|_| anyhow::anyhow!("verify"))?;
    }
    let parsed_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "# ES256 on this CPU (aws-lc-rs, one thread): sign {sign_us:.1} µs, verify {verify_us:.1} µs \
         ({parsed_us:.1} µs with the key parsed once); crypto floor of a refresh: {:.0} µs ({:.0} µs with DPoP)",
        2.0 * sign_us,
        2.0 * sign_us + verify_us
    );
    Ok(())
}

/// The header lines: what runs and how, then the servers' idle RSS (after start-up and the
/// first level's seeding, before any load).
fn print_header(args: &Args, nodes: &[Node], first_c: usize) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let what = match args.target {
        Target::Autional => format!(
            "target=autional backend={} nodes={} dpop={} families={} cold={}",
            args.backend, args.nodes, args.dpop, args.families, args.cold
        ),
        Target::Peer => format!(
            "target=peer (node-oidc-provider {}, better-sqlite3 {}, node {}) adapter={} dpop={}",
            peer_package_version(args, "oidc-provider"),
            peer_package_version(args, "better-sqlite3"),
            Command::new(&args.node)
                .arg("--version")
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|v| v.trim().to_string())
                .unwrap_or_default(),
            args.peer_adapter.name(),
            args.dpop
        ),
    };
    let length = match args.soak {
        Some(s) => format!("soak={s}s C={first_c}"),
        None => format!("duration={}s", args.duration),
    };
    println!(
        "# autional refresh benchmark: {what} pin={} scope=\"{}\" warmup={}s {length} cpus={cores}",
        args.pin.as_deref().unwrap_or("none"),
        args.scope,
        args.warmup,
    );
    let per_node: Vec<String> = nodes
        .iter()
        .map(|n| format!("{:.1}", rss_mib(n.child.id()).unwrap_or(f64::NAN)))
        .collect();
    let split = if nodes.len() > 1 {
        format!(" ({})", per_node.join(" + "))
    } else {
        String::new()
    };
    println!(
        "# idle server RSS after start-up and seeding {}: {:.1} MiB{split}",
        match args.cold {
            true => format!("{} families", args.families),
            false => format!("{first_c} chain(s)"),
        },
        nodes_rss_mib(nodes)
    );
}

/// One row of the levels' table.
struct Row {
    c: usize,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    errors: u64,
    rss_mib: f64,
    /// PostgreSQL's CPU µs per refresh (PostgreSQL runs only).
    pg_cpu_us: Option<f64>,
}

impl Row {
    fn of(c: usize, l: &Level) -> Row {
        Row {
            c,
            rps: l.ok as f64 / l.seconds,
            p50_ms: pct(&l.latencies_us, 0.50),
            p90_ms: pct(&l.latencies_us, 0.90),
            p99_ms: pct(&l.latencies_us, 0.99),
            cpu_us: if l.ok > 0 {
                l.cpu_s * 1e6 / l.ok as f64
            } else {
                f64::NAN
            },
            errors: l.errors,
            rss_mib: l.rss_mib,
            pg_cpu_us: l
                .pg_cpu_s
                .map(|s| if l.ok > 0 { s * 1e6 / l.ok as f64 } else { f64::NAN }),
        }
    }

    /// The markdown row. Columns 2..7 (C, refreshes/s, p50, p90, p99, CPU µs/refresh) are
    /// read by position by bench/run; new columns go at the end.
    fn markdown(&self) -> String {
        format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.3} | {} | {:.1} | {} |",
            self.c,
            self.rps,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.cpu_us,
            self.cpu_us / 1000.0,
            self.errors,
            self.rss_mib,
            self.pg_cpu_us.map_or("–".to_string(), |u| format!("{u:.0}"))
        )
    }

    /// The row as one JSON object for --json (figures that are NaN become null).
    fn json(&self, args: &Args, run: &RunInfo) -> Value {
        let round = |x: f64, digits: i32| (x * 10f64.powi(digits)).round() / 10f64.powi(digits);
        json!({
            "target": match args.target {
                Target::Autional => "autional",
                Target::Peer => "peer",
            },
            "adapter": match args.target {
                Target::Autional => None,
                Target::Peer => Some(args.peer_adapter.name()),
            },
            "backend": args.backend,
            "nodes": args.nodes,
            "dpop": args.dpop,
            "pinned": args.pin.is_some(),
            "c": self.c,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "cpu_us": round(self.cpu_us, 1),
            "errors": self.errors,
            "rss_mib": round(self.rss_mib, 1),
            "pg_cpu_us": self.pg_cpu_us.map(|u| round(u, 1)),
            "families": args.families,
            "cold": args.cold,
            "commit": run.commit,
            "date": run.date,
            "label": series_label(args),
        })
    }
}

/// What --json records of the run besides the row.
struct RunInfo {
    /// `git rev-parse --short HEAD`, if git can tell.
    commit: Option<String>,
    /// The UTC date, YYYY-MM-DD.
    date: String,
}

impl RunInfo {
    fn now() -> RunInfo {
        let commit = Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        RunInfo {
            commit,
            date: utc_date(unix_seconds()),
        }
    }
}

/// The name of the run's series in plots: "autional sqlite", "autional postgres x2",
/// "peer memory", … with " dpop" when DPoP-bound and " unpinned" without --pin.
fn series_label(args: &Args) -> String {
    let mut label = match args.target {
        Target::Autional if args.nodes > 1 => format!("autional {} x{}", args.backend, args.nodes),
        Target::Autional => format!("autional {}", args.backend),
        Target::Peer => format!("peer {}", args.peer_adapter.name()),
    };
    if args.dpop {
        label.push_str(" dpop");
    }
    if args.families > 0 {
        label.push_str(&format!(" +{} families", args.families));
    }
    if args.cold {
        label.push_str(" cold");
    }
    if args.pin.is_none() {
        label.push_str(" unpinned");
    }
    label
}

/// The UTC date (YYYY-MM-DD) of a Unix time (days to civil date, as in Howard Hinnant's
/// `civil_from_days`).
fn utc_date(unix_s: u64) -> String {
    let z = (unix_s / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Appends one line of JSON to `path`.
fn append_json_line(path: &std::path::Path, v: &Value) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{v}")?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.calibrate {
        return calibrate();
    }
    let first_c = *args.concurrency.first().context("--concurrency is empty")?;
    if args.soak == Some(0) {
        bail!("--soak needs at least 1 second");
    }
    if args.cold && (args.families == 0 || args.dpop || args.soak.is_some() || args.target != Target::Autional) {
        bail!("--cold needs --families, and runs bearer refreshes on autional, not a soak");
    }
    let dir = tempfile::tempdir()?;
    let (nodes, _pg_guard) = match args.target {
        Target::Autional => start_autional(&args, dir.path()).await?,
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
    // The first level's chains come before the header, so that the idle RSS includes seeding.
    let mut seeded = match args.cold {
        true => None,
        false => Some(seed_chains(&http, &issuer, &cookies, &args, first_c).await?),
    };
    print_header(&args, &nodes, first_c);
    if let Some(seconds) = args.soak {
        let chains = seeded.take().unwrap_or_default();
        return run_soak(&http, &nodes, chains, &args, seconds).await;
    }
    let run = RunInfo::now();
    println!(
        "| C | refreshes/s | p50 ms | p90 ms | p99 ms | server CPU µs/refresh | server CPU s/1000 | errors | RSS MiB | PostgreSQL CPU µs/refresh |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &c in &args.concurrency {
        let load = if args.cold {
            Load::Cold { workers: c }
        } else {
            Load::Chains(match seeded.take() {
                Some(chains) => chains,
                None => seed_chains(&http, &issuer, &cookies, &args, c).await?,
            })
        };
        let l = run_level(&http, &nodes, load, &args).await?;
        let row = Row::of(c, &l);
        println!("{}", row.markdown());
        if let Some(path) = &args.json {
            append_json_line(path, &row.json(&args, &run))?;
        }
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
