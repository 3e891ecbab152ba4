//! Test harness: a real `autional` process on a loopback port with a real SQLite file in a temp
//! directory, set up through the real CLI, and helpers that walk the real pages over HTTP.
#![allow(dead_code)]

use reqwest::header::{HeaderMap, HeaderValue, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PASSWORD: &str = "alice-password-1";
pub const REDIRECT: &str = "http://127.0.0.1:9/cb";

pub struct Server {
    pub base: String,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
    child: Child,
    env: Vec<(String, String)>,
    /// Secrets of the confidential clients created by `start`.
    pub conf_secret: String,
    pub post_secret: String,
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

impl Server {
    /// Starts a server with the standard fixtures: user `alice`, public clients `pub` and
    /// `pub2`, confidential `conf` (client_secret_basic) and `post` (client_secret_post).
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("autional.db");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = Server::spawn(dir, db, env, String::new(), String::new());
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
            s.cli(&[
                "client",
                "create",
                "--name",
                &format!("App {id}"),
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
        s.boot().await;
        s
    }

    fn spawn(
        dir: tempfile::TempDir,
        db: PathBuf,
        env: Vec<(String, String)>,
        conf_secret: String,
        post_secret: String,
    ) -> Server {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        // A placeholder child; `boot` replaces it.
        let child = Command::new("true").spawn().unwrap();
        Server {
            base: String::new(),
            db,
            dir,
            child,
            env,
            conf_secret,
            post_secret,
            http,
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "AUTIONAL_DATABASE_URL",
                format!("sqlite://{}", self.db.display()),
            )
            .env("AUTIONAL_LOG", "warn");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    async fn boot(&mut self) {
        // A restart keeps the port (and so the issuer) when it can.
        let keep = self
            .base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        for attempt in 0..5 {
            let port = match keep {
                Some(p) if attempt == 0 => p,
                _ => free_port(),
            };
            let base = format!("http://127.0.0.1:{port}");
            let mut child = self
                .command()
                .env("AUTIONAL_LISTEN", format!("127.0.0.1:{port}"))
                .env("AUTIONAL_ISSUER", &base)
                .arg("serve")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            if line.starts_with("listening on") {
                let _ = self.child.kill();
                self.child = child;
                self.base = base;
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("server did not start");
    }

    /// Restarts the process on the same database (e.g. with other settings).
    pub async fn restart(&mut self, env: &[(&str, &str)]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Pooled connections went down with the old process.
        self.http = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        for (k, v) in env {
            self.env.retain(|(a, _)| a != k);
            self.env.push((k.to_string(), v.to_string()));
        }
        self.boot().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs a CLI command on this server's database; returns its stdout parsed as JSON.
    pub fn cli(&self, args: &[&str]) -> Value {
        self.run_cli_stdin(args, "")
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
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "autional {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or(Value::Null)
    }

    /// A read-only look at the database, for assertions about what is stored.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    }

    /// Everything a failed request must not change.
    pub fn snapshot(&self) -> String {
        let c = self.db();
        let mut out = String::new();
        for (t, q) in [
            ("families", "SELECT id, generation, grace_used, revoked_at_ms, idle_expires_at_ms, rotated_at_ms FROM families ORDER BY id"),
            ("refresh_tokens", "SELECT hex(hash), family_id, generation FROM refresh_tokens ORDER BY hash"),
            ("codes", "SELECT hex(hash), consumed_at_ms, family_id FROM codes ORDER BY hash"),
            ("sessions", "SELECT id, ended_at_ms FROM sessions ORDER BY id"),
            ("consents", "SELECT user_id, client_id, scope FROM consents ORDER BY user_id, client_id"),
            ("revoked_access_tokens", "SELECT jti FROM revoked_access_tokens ORDER BY jti"),
            ("audit_events", "SELECT id, kind FROM audit_events ORDER BY id"),
            ("clients", "SELECT id, secrets FROM clients ORDER BY id"),
        ] {
            let mut st = c.prepare(q).unwrap();
            let n = st.column_count();
            let rows: Vec<String> = st
                .query_map([], |r| {
                    let mut cols = Vec::new();
                    for i in 0..n {
                        let v: rusqlite::types::Value = r.get(i)?;
                        cols.push(format!("{v:?}"));
                    }
                    Ok(cols.join("|"))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            out.push_str(&format!("{t}: {}\n", rows.join("; ")));
        }
        out
    }

    pub fn audit_count(&self, kind: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT COUNT(*) FROM audit_events WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )
            .unwrap()
    }

    // ---- protocol helpers ----

    /// Signs in as alice through the pages and returns the session cookie header value.
    pub async fn sign_in(&self, return_to: &str) -> (String, String) {
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
                ("username", "alice"),
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
        let verifier = format!("v{}", "x".repeat(50)) + &rand_suffix();
        let challenge = pkce(&verifier);
        let nonce = format!("n-{}", rand_suffix());
        let q = format!(
            "response_type=code&client_id={client_id}&redirect_uri={}&scope={}&state=st-1&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
            enc(REDIRECT),
            enc(scope)
        );
        let path = format!("/oauth/authorize?{q}");
        let r = self.http.get(self.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "authorize should send to sign-in");
        let (cookies, back) = self
            .sign_in(&path_from_login(r.headers()[LOCATION].to_str().unwrap()))
            .await;
        let r = self
            .http
            .get(self.url(&back))
            .header(COOKIE, &cookies)
            .send()
            .await
            .unwrap();
        let location = if r.status() == 200 {
            let html = r.text().await.unwrap();
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
        let get = |k: &str| {
            u.query_pairs()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(get("state").as_deref(), Some("st-1"));
        assert_eq!(get("iss").as_deref(), Some(self.base.as_str()));
        Authorized {
            code: get("code").expect("code in redirect"),
            verifier,
            nonce,
            cookies,
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

pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
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
    hidden_all(html)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The payload of a JWT, decoded without verification (the tests check claims).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

/// Runs the binary with only `env` (plus PATH); returns its output (for start-up errors).
pub fn run_raw(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}
