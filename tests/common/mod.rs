//! Test harness: real `autional` processes on loopback ports with a real database (a SQLite file
//! in a temp directory, or a fresh PostgreSQL database), set up through the real CLI, and helpers
//! that walk the real pages over HTTP. `AUTIONAL_TEST_BACKEND` picks the database, so one suite
//! runs on both.
#![allow(dead_code)]

pub mod admin;
pub mod client_key;
pub mod dpop;
pub mod faults;
pub mod race;
pub mod receiver;
pub mod store;

use reqwest::header::{HeaderMap, HeaderValue, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PASSWORD: &str = "alice-password-1";
pub const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// Which database the suite runs on: `AUTIONAL_TEST_BACKEND=sqlite` (default) or `postgres`
/// (each server then gets a fresh database on `AUTIONAL_TEST_POSTGRES_URL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("AUTIONAL_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("AUTIONAL_TEST_BACKEND={other}: use sqlite or postgres"),
    }
}

/// The PostgreSQL server tests use (`scripts/setup` creates the role and database).
pub fn postgres_admin_url() -> String {
    std::env::var("AUTIONAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://autional:autional@127.0.0.1:5432/autional".to_string())
}

/// Runs `f` on a PostgreSQL connection from synchronous test code.
fn with_pg<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(tokio_postgres::Client) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
        + Send
        + 'static,
) -> T {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("PostgreSQL reachable");
            tokio::spawn(conn);
            f(client).await
        })
    })
    .join()
    .unwrap()
}

/// A fresh PostgreSQL database on the test server, dropped when this is dropped.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros()
                % 1_000_000_000
        );
        let admin = postgres_admin_url();
        let n = name.clone();
        with_pg(&admin, move |c| {
            Box::pin(async move {
                c.batch_execute(&format!("CREATE DATABASE {n}"))
                    .await
                    .expect("CREATE DATABASE");
            })
        });
        let mut u = url::Url::parse(&admin).unwrap();
        u.set_path(&format!("/{name}"));
        PgDb {
            name,
            url: u.to_string(),
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        with_pg(&postgres_admin_url(), move |c| {
            Box::pin(async move {
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            })
        });
    }
}

struct Node {
    child: Child,
    base: String,
    /// The node's Prometheus endpoint (`metrics.listen`).
    metrics: String,
    /// The node's admin API root (`admin.listen`), e.g. `http://127.0.0.1:1234`.
    admin: String,
}

pub struct Server {
    /// The first node's URL; also the issuer of every node.
    pub base: String,
    pub backend: Backend,
    pub db_url: String,
    pg: Option<PgDb>,
    pub dir: tempfile::TempDir,
    nodes: Vec<Node>,
    env: Vec<(String, String)>,
    /// Secrets of the confidential clients created by `start`.
    pub conf_secret: String,
    pub post_secret: String,
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
        // Processes first, then the database (`pg` drops after this).
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_autional")
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(30))
        // Below the server's `http.header_read_timeout` (10 s), after which it closes an idle
        // keep-alive connection: a pooled connection older than that could be closed just as a
        // request goes out on it (seen under CI load after a long schemathesis run).
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

impl Server {
    /// Starts a server with the standard fixtures: user `alice`, public clients `pub` and
    /// `pub2`, confidential `conf` (client_secret_basic) and `post` (client_secret_post).
    pub async fn start(env: &[(&str, &str)]) -> Server {
        Server::start_on(backend(), 1, env).await
    }

    /// `n` server processes on one PostgreSQL database, all with the same issuer.
    pub async fn start_cluster(n: usize, env: &[(&str, &str)]) -> Server {
        Server::start_on(Backend::Postgres, n, env).await
    }

    async fn start_on(backend: Backend, nodes: usize, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (pg, db_url) = match backend {
            Backend::Sqlite => (None, format!("sqlite://{}", dir.path().join("autional.db").display())),
            Backend::Postgres => {
                let db = PgDb::create();
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut s = Server {
            base: String::new(),
            backend,
            db_url,
            pg,
            dir,
            nodes: Vec::new(),
            env,
            conf_secret: String::new(),
            post_secret: String::new(),
            http: http_client(),
        };
        s.run_cli_stdin(
            &[
                "user",
                "create",
                "--username",
                "alice",
                "--email",
                "alice@example.com",
                "--name",
                "Alice",
                "--password-stdin",
            ],
            PASSWORD,
        );
        for id in ["pub", "pub2"] {
            let name = format!("App {id}");
            s.cli(&[
                "client",
                "create",
                "--name",
                &name,
                "--redirect-uri",
                REDIRECT,
                "--public",
                "--client-id",
                id,
            ]);
        }
        let conf = s.cli(&[
            "client",
            "create",
            "--name",
            "Confidential",
            "--redirect-uri",
            REDIRECT,
            "--client-id",
            "conf",
        ]);
        s.conf_secret = conf["client_secret"].as_str().unwrap().to_string();
        let post = s.cli(&[
            "client",
            "create",
            "--name",
            "Post",
            "--redirect-uri",
            REDIRECT,
            "--client-id",
            "post",
            "--auth-method",
            "client_secret_post",
        ]);
        s.post_secret = post["client_secret"].as_str().unwrap().to_string();
        for _ in 0..nodes {
            s.boot_node(None);
        }
        s
    }

    fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTIONAL_DATABASE_URL", &self.db_url)
            .env("AUTIONAL_LOG", "warn");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts one more process (on `port` when given); the first node's URL is everyone's issuer.
    fn boot_node(&mut self, port: Option<u16>) {
        for attempt in 0..5 {
            let port = match port {
                Some(p) if attempt == 0 => p,
                _ => free_port(),
            };
            let url = format!("http://127.0.0.1:{port}");
            // An `AUTIONAL_ISSUER` in the server's environment wins (e.g. an https issuer in
            // front of plain http on loopback, as behind a TLS-terminating proxy).
            let issuer = match self.env.iter().find(|(k, _)| k == "AUTIONAL_ISSUER") {
                Some((_, v)) => v.clone(),
                None if self.base.is_empty() => url.clone(),
                None => self.base.clone(),
            };
            // Every node serves its metrics on a listener of its own (unless the test names one).
            let metrics = match self.env.iter().find(|(k, _)| k == "AUTIONAL_METRICS__LISTEN") {
                Some((_, v)) => v.clone(),
                None => format!("127.0.0.1:{}", free_port()),
            };
            // And its admin API (`admin.listen`, on by default at a fixed port).
            let admin = match self.env.iter().find(|(k, _)| k == "AUTIONAL_ADMIN__LISTEN") {
                Some((_, v)) => v.clone(),
                None => format!("127.0.0.1:{}", free_port()),
            };
            let mut child = self
                .command()
                .env("AUTIONAL_LISTEN", format!("127.0.0.1:{port}"))
                .env("AUTIONAL_ISSUER", &issuer)
                .env("AUTIONAL_METRICS__LISTEN", &metrics)
                .env("AUTIONAL_ADMIN__LISTEN", &admin)
                .arg("serve")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            if line.starts_with("listening on") {
                if self.base.is_empty() {
                    self.base = url.clone();
                }
                self.nodes.push(Node {
                    child,
                    base: url,
                    metrics: format!("http://{metrics}/metrics"),
                    admin: format!("http://{admin}"),
                });
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("server did not start");
    }

    /// Restarts every process on the same database and ports (e.g. with other settings).
    pub async fn restart(&mut self, env: &[(&str, &str)]) {
        let ports: Vec<u16> = self
            .nodes
            .iter()
            .map(|n| n.base.rsplit(':').next().unwrap().parse().unwrap())
            .collect();
        for mut n in self.nodes.drain(..) {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
        // Pooled connections went down with the old processes.
        self.http = http_client();
        for (k, v) in env {
            self.env.retain(|(a, _)| a != k);
            self.env.push((k.to_string(), v.to_string()));
        }
        for p in ports {
            self.boot_node(Some(p));
        }
    }

    /// The URL of node `i` (0 is `base`).
    pub fn node(&self, i: usize) -> &str {
        &self.nodes[i].base
    }

    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The URL of `path` on node `i`'s admin listener (`admin.listen`).
    pub fn admin_url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[i].admin)
    }

    /// The first node's Prometheus endpoint (its `metrics.listen`).
    pub fn metric_url(&self) -> String {
        self.nodes[0].metrics.clone()
    }

    /// The value of a metric without labels (0 when absent) from the first node's Prometheus
    /// endpoint.
    pub async fn metric_value(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(self.metric_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The process id of node `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.id()
    }

    /// Stops every process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        for mut n in self.nodes.drain(..) {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs a CLI command on this server's database; returns its stdout parsed as JSON.
    pub fn cli(&self, args: &[&str]) -> Value {
        self.run_cli_stdin(args, "")
    }

    /// A CLI command on this server's database, whatever its outcome.
    pub fn run_cli_raw(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn run_cli_stdin(&self, args: &[&str], stdin: &str) -> Value {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "autional {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
    }

    /// Runs `sql` (statements that change the database, e.g. to plant a legacy row).
    pub fn exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(self.db_url.trim_start_matches("sqlite://")).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Backend::Postgres => {
                let sql = sql.to_string();
                with_pg(&self.db_url, move |c| {
                    Box::pin(async move { c.batch_execute(&sql).await.unwrap() })
                });
            }
        }
    }

    /// Rows of `sql` (every column must be TEXT: use `CAST(x AS TEXT)` and [`Server::hex`]).
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.rows_many(&[sql.to_string()]).remove(0)
    }

    /// Rows of several queries, on one connection.
    pub fn rows_many(&self, queries: &[String]) -> Vec<Vec<Vec<Option<String>>>> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.db_url.trim_start_matches("sqlite://");
                let c =
                    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
                queries
                    .iter()
                    .map(|sql| {
                        let mut st = c.prepare(sql).unwrap();
                        let n = st.column_count();
                        st.query_map([], |r| {
                            (0..n)
                                .map(|i| r.get::<_, Option<String>>(i))
                                .collect::<rusqlite::Result<Vec<_>>>()
                        })
                        .unwrap()
                        .map(|r| r.unwrap())
                        .collect()
                    })
                    .collect()
            }
            Backend::Postgres => {
                let queries = queries.to_vec();
                with_pg(&self.db_url, move |c| {
                    Box::pin(async move {
                        let mut out = Vec::new();
                        for sql in queries {
                            let rows = c.query(&sql, &[]).await.unwrap();
                            out.push(
                                rows.iter()
                                    .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
                                    .collect(),
                            );
                        }
                        out
                    })
                })
            }
        }
    }

    /// One integer (`sql` selects one value of any type).
    pub fn scalar_i64(&self, sql: &str) -> i64 {
        self.scalar_str(sql).expect("a value").parse().unwrap()
    }

    pub fn scalar_str(&self, sql: &str) -> Option<String> {
        self.rows(&format!("SELECT CAST(({sql}) AS TEXT)")).remove(0).remove(0)
    }

    /// What the database holds about each refresh token, read through the family the token
    /// names (`None`: no such family).
    pub fn token_rows(&self, tokens: &[String]) -> Vec<Option<TokenRow>> {
        let named: Vec<(String, i64)> = tokens.iter().map(|t| token_family(t)).collect();
        let ids: Vec<String> = named.iter().map(|(id, _)| format!("'{id}'")).collect();
        let rows = self.rows(&format!(
            "SELECT id, CAST(generation AS TEXT), CAST(revoked_at_ms AS TEXT), {} FROM families WHERE id IN ({})",
            self.hex("token_hashes"),
            ids.join(",")
        ));
        tokens
            .iter()
            .zip(named)
            .map(|(t, (id, generation))| {
                let r = rows.iter().find(|r| r[0].as_deref() == Some(id.as_str()))?;
                let want = hex_of(&autional::util::sha256(t.as_bytes()));
                let live = r[3].clone().unwrap_or_default();
                Some(TokenRow {
                    generation,
                    family_generation: r[1].as_deref().unwrap().parse().unwrap(),
                    revoked: r[2].is_some(),
                    held: live.as_bytes().chunks(64).any(|h| h == want.as_bytes()),
                })
            })
            .collect()
    }

    /// SQL for the lowercase hex of a binary column.
    pub fn hex(&self, col: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("lower(hex({col}))"),
            Backend::Postgres => format!("encode({col}, 'hex')"),
        }
    }

    /// Everything a failed request must not change.
    pub fn snapshot(&self) -> String {
        let h = |c: &str| self.hex(c);
        let tables = [
            ("families", format!("SELECT id, CAST(generation AS TEXT), CAST(grace_used AS TEXT), CAST(revoked_at_ms AS TEXT), CAST(idle_expires_at_ms AS TEXT), CAST(rotated_at_ms AS TEXT), {} FROM families ORDER BY id", h("token_hashes"))),
            ("refresh_tokens", format!("SELECT {}, family_id, CAST(generation AS TEXT) FROM refresh_tokens ORDER BY 1", h("hash"))),
            ("codes", format!("SELECT {}, CAST(consumed_at_ms AS TEXT), family_id FROM codes ORDER BY 1", h("hash"))),
            ("sessions", "SELECT id, CAST(ended_at_ms AS TEXT) FROM sessions ORDER BY id".to_string()),
            ("consents", "SELECT user_id, client_id, scope FROM consents ORDER BY user_id, client_id".to_string()),
            ("revoked_access_tokens", "SELECT jti FROM revoked_access_tokens ORDER BY jti".to_string()),
            ("audit_events", "SELECT CAST(id AS TEXT), kind FROM audit_events ORDER BY id".to_string()),
            ("clients", "SELECT id, secrets FROM clients ORDER BY id".to_string()),
        ];
        let queries: Vec<String> = tables.iter().map(|(_, q)| q.clone()).collect();
        let mut out = String::new();
        for ((t, _), rows) in tables.iter().zip(self.rows_many(&queries)) {
            let rows: Vec<String> = rows.into_iter().map(|r| format!("{r:?}")).collect();
            out.push_str(&format!("{t}: {}\n", rows.join("; ")));
        }
        out
    }

    pub fn audit_count(&self, kind: &str) -> i64 {
        self.scalar_i64(&format!("SELECT COUNT(*) FROM audit_events WHERE kind = '{kind}'"))
    }

    // ---- protocol helpers ----

    /// Signs in as alice through the pages and returns the session cookie header value.
    pub async fn sign_in(&self, return_to: &str) -> (String, String) {
        self.sign_in_as("alice", return_to).await
    }

    /// Signs in as `username` (whose password is [`PASSWORD`]) through the pages.
    pub async fn sign_in_as(&self, username: &str, return_to: &str) -> (String, String) {
        let r = self
            .http
            .get(self.url(&format!("/login?return_to={}", enc(return_to))))
            .send()
            .await
            .unwrap();
        let csrf_cookie = set_cookie(r.headers(), "autional_csrf").expect("csrf cookie");
        let html = r.text().await.unwrap();
        let token = hidden(&html, "csrf_token").expect("csrf token");
        let r = self
            .http
            .post(self.url("/login"))
            .header(COOKIE, format!("autional_csrf={csrf_cookie}"))
            .form(&[
                ("username", username),
                ("password", PASSWORD),
                ("csrf_token", &token),
                ("return_to", return_to),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "sign-in failed");
        let session = set_cookie(r.headers(), "autional_session").expect("session cookie");
        let location = r.headers()[LOCATION].to_str().unwrap().to_string();
        (
            format!("autional_csrf={csrf_cookie}; autional_session={session}"),
            location,
        )
    }

    /// The whole code flow through the pages: authorize → sign in → consent → code.
    pub async fn authorize(&self, client_id: &str, scope: &str) -> Authorized {
        self.authorize_with(client_id, scope, &[]).await
    }

    /// The authorization request's parameters (PKCE S256, state `st-1`, a nonce) plus `extra`.
    pub fn authorization_params(
        client_id: &str,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> (Vec<(String, String)>, String, String) {
        let verifier = format!("v{}", "x".repeat(50)) + &rand_suffix();
        let nonce = format!("n-{}", rand_suffix());
        let mut pairs: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st-1"),
            ("nonce", &nonce),
            ("code_challenge", &pkce(&verifier)),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        (pairs, verifier, nonce)
    }

    /// The code flow with extra authorization parameters (e.g. `dpop_jkt`, `authorization_details`).
    pub async fn authorize_with(&self, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> Authorized {
        let (pairs, verifier, nonce) = Server::authorization_params(client_id, scope, extra);
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.walk(&format!("/oauth/authorize?{q}"), verifier, nonce).await
    }

    /// Pushes the request (PAR, public client) and walks `/oauth/authorize?client_id&request_uri`.
    pub async fn authorize_par(&self, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> (Authorized, String) {
        let (pairs, verifier, nonce) = Server::authorization_params(client_id, scope, extra);
        let r = self
            .http
            .post(self.url("/oauth/pushed-authorization"))
            .form(&pairs)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "PAR");
        let body: Value = r.json().await.unwrap();
        assert!(body["expires_in"].as_i64().unwrap() > 0);
        let request_uri = body["request_uri"].as_str().unwrap().to_string();
        let path = format!(
            "/oauth/authorize?client_id={client_id}&request_uri={}",
            enc(&request_uri)
        );
        (self.walk(&path, verifier, nonce).await, path)
    }

    /// Authorize → sign in → consent (when asked) → the redirect with the code.
    pub async fn walk(&self, path: &str, verifier: String, nonce: String) -> Authorized {
        self.walk_as("alice", path, verifier, nonce).await
    }

    /// An authorization request's path and query (see [`Server::authorization_params`]).
    pub fn authorize_path(client_id: &str, scope: &str) -> (String, String, String) {
        let (pairs, verifier, nonce) = Server::authorization_params(client_id, scope, &[]);
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        (format!("/oauth/authorize?{q}"), verifier, nonce)
    }

    /// The code flow through the pages as `username`.
    pub async fn authorize_as(&self, username: &str, client_id: &str, scope: &str) -> Authorized {
        let (path, verifier, nonce) = Server::authorize_path(client_id, scope);
        self.walk_as(username, &path, verifier, nonce).await
    }

    /// The text of the page at `path`, with the session `cookies`.
    pub async fn page(&self, path: &str, cookies: &str) -> String {
        self.http
            .get(self.url(path))
            .header(COOKIE, cookies)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The JSON document at `path` (a GET without credentials).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Signs out through the account page's form (`POST /logout`).
    pub async fn sign_out(&self, cookies: &str) {
        let html = self.page("/account", cookies).await;
        let csrf = form_field(&html, "/logout", "csrf_token").expect("the sign-out form");
        let r = self
            .http
            .post(self.url("/logout"))
            .header(COOKIE, cookies)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    }

    /// A `client_credentials` access token of a new admin client `id` (`client create --admin`).
    pub async fn admin_token(&self, id: &str) -> String {
        let made = self.cli(&["client", "create", "--name", "Admin", "--admin", "--client-id", id]);
        let r = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(id, made["client_secret"].as_str())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t: Value = r.json().await.unwrap();
        t["access_token"].as_str().unwrap().to_string()
    }

    /// [`Server::walk`] as `username`.
    pub async fn walk_as(&self, username: &str, path: &str, verifier: String, nonce: String) -> Authorized {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "authorize should send to sign-in");
        let (cookies, back) = self
            .sign_in_as(username, &path_from_login(r.headers()[LOCATION].to_str().unwrap()))
            .await;
        let r = self
            .http
            .get(self.url(&back))
            .header(COOKIE, &cookies)
            .send()
            .await
            .unwrap();
        let mut consent_html = None;
        let location = if r.status() == 200 {
            let html = r.text().await.unwrap();
            consent_html = Some(html.clone());
            let mut form = hidden_all(&html);
            form.push(("approved".into(), "true".into()));
            let r = self
                .http
                .post(self.url("/oauth/authorize"))
                .header(COOKIE, &cookies)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "consent should redirect");
            r.headers()[LOCATION].to_str().unwrap().to_string()
        } else {
            assert_eq!(r.status(), 302);
            r.headers()[LOCATION].to_str().unwrap().to_string()
        };
        let u = url::Url::parse(&location).unwrap();
        let get = |k: &str| u.query_pairs().find(|(a, _)| a == k).map(|(_, v)| v.into_owned());
        assert_eq!(get("state").as_deref(), Some("st-1"));
        assert_eq!(get("iss").as_deref(), Some(self.base.as_str()));
        Authorized {
            code: get("code").expect("code in redirect"),
            verifier,
            nonce,
            cookies,
            consent_html,
        }
    }

    /// Code flow plus the code exchange for a public client: the token response.
    pub async fn tokens(&self, client_id: &str, scope: &str) -> (Value, Authorized) {
        let a = self.authorize(client_id, scope).await;
        let r = self.exchange(client_id, &a.code, &a.verifier).await;
        assert_eq!(r.status(), 200);
        (r.json().await.unwrap(), a)
    }

    pub async fn exchange(&self, client_id: &str, code: &str, verifier: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", client_id),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
    }

    /// `POST /oauth/refresh` with a JSON body.
    pub async fn refresh(&self, client_id: &str, rt: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/refresh"))
            .json(&serde_json::json!({"refresh_token": rt, "client_id": client_id}))
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh_json(&self, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/refresh"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn introspect(&self, token: &str) -> Value {
        let r = self
            .http
            .post(self.url("/oauth/introspect"))
            .basic_auth("conf", Some(&self.conf_secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn userinfo(&self, at: &str) -> reqwest::Response {
        self.http
            .get(self.url("/oauth/userinfo"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap()
    }
}

pub struct Authorized {
    pub code: String,
    pub verifier: String,
    pub nonce: String,
    pub cookies: String,
    /// The consent page, when one was shown.
    pub consent_html: Option<String>,
}

pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t}{}", N.fetch_add(1, Ordering::Relaxed))
}

pub fn pkce(verifier: &str) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn path_from_login(location: &str) -> String {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .expect("return_to")
}

pub fn set_cookie(h: &HeaderMap<HeaderValue>, name: &str) -> Option<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Decodes the HTML entities the templates produce (named and numeric, as askama escapes).
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..end];
        let decoded = match entity {
            "quot" => Some('"'),
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every `<input type="hidden" name=… value=…>` of a page.
pub fn hidden_all(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let (name, rest) = part.split_once('"').unwrap();
        let value = rest
            .split_once("value=\"")
            .map(|(_, v)| v.split_once('"').unwrap().0)
            .unwrap_or("");
        out.push((unescape(name), unescape(value)));
    }
    out
}

pub fn hidden(html: &str, name: &str) -> Option<String> {
    hidden_all(html).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The payload of a JWT, decoded without verification (the tests check claims).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

impl Server {
    /// Runs the verifier `tests/py/<script>` (joserfc) on `{"jwks": <our JWKS>, "issuer", key:
    /// items}`, which prints `[{"header", "claims"}]`, one per item; checks each header's `typ`
    /// and `alg` (ES256) and returns the claims. Panics with its error when it refuses a token.
    pub async fn verify_with_python(&self, script: &str, key: &str, typ: &str, items: Vec<Value>) -> Vec<Value> {
        let jwks = self.get_json("/oauth/jwks").await;
        let n = items.len();
        let input = serde_json::json!({"jwks": jwks, "issuer": self.base, key: items}).to_string();
        let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
        let mut child = Command::new("python3")
            .arg(script)
            .current_dir(&py)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/setup installs joserfc)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "joserfc refused a token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(all.len(), n);
        all.into_iter()
            .map(|v| {
                assert_eq!(
                    (&v["header"]["typ"], &v["header"]["alg"]),
                    (&Value::from(typ), &Value::from("ES256"))
                );
                v["claims"].clone()
            })
            .collect()
    }
}

/// Runs the binary with only `env` (plus PATH); returns its output (for start-up errors).
pub fn run_raw(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut c = Command::new(bin());
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

/// A hidden field of the form posting to `action` (the first such form).
pub fn form_field(html: &str, action: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("action=\"{action}\""))?;
    let form = &html[start..html[start..].find("</form>").map(|e| start + e).unwrap_or(html.len())];
    hidden(form, name)
}

/// A refresh token's standing in the database (see `Server::token_rows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// The generation the token names.
    pub generation: i64,
    pub family_generation: i64,
    pub revoked: bool,
    /// Its hash is among the family's live ones.
    pub held: bool,
}

impl TokenRow {
    /// The family's current (live, unrevoked) token.
    pub fn is_current(&self) -> bool {
        !self.revoked && self.held && self.generation == self.family_generation
    }
}

/// The family id and generation a refresh token names (`domain::refresh_token`'s layout:
/// version, key id, generation, id length, id, secret, tag), read without the server key.
pub fn token_family(token: &str) -> (String, i64) {
    let raw = autional::util::b64url_decode(token.strip_prefix("rt_").expect("a refresh token")).expect("base64url");
    let generation = i64::from_be_bytes(raw[5..13].try_into().unwrap());
    let len = raw[13] as usize;
    (String::from_utf8(raw[14..14 + len].to_vec()).unwrap(), generation)
}

pub fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
