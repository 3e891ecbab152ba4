//! Command line (clap): `serve`, `migrate`, `client …`, `user create`, `key rotate`. Wiring
//! only: each command loads the config, opens the store and calls one store or grant function.

use crate::app::App;
use crate::config::Config;
use crate::domain::model::{AuthMethod, Client, SecretHash, User};
use crate::jose::keys::generate;
use crate::store::{DynStore, StoreError};
use crate::util::{b64_decode, b64url, now_ms, random_id, random_token, sha256};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "autional",
    version,
    about = "OAuth 2.0 / OpenID Connect server centred on the refresh token lifecycle"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL (sqlite://PATH); overrides the file and AUTIONAL_DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates and migrates the database, creates a signing key on first start).
    Serve {
        /// Also create a demo user and public client and print a walkthrough.
        #[arg(long)]
        demo: bool,
    },
    /// Run database migrations and exit.
    Migrate,
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCmd),
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Register a client; prints {client_id, client_secret?} (the secret is shown once).
    Create(Box<ClientCreate>),
    /// List clients.
    List,
    /// Delete a client and revoke every grant it holds.
    Delete { id: String },
    /// Issue a new secret; the old one keeps working for client_secret.rotation_overlap.
    RotateSecret { id: String },
}

#[derive(Args)]
struct ClientCreate {
    #[arg(long)]
    name: String,
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A public client (no secret, PKCE required).
    #[arg(long)]
    public: bool,
    /// client_secret_basic (default for confidential), client_secret_post, or none.
    #[arg(long)]
    auth_method: Option<String>,
    /// Replaces the default `authorization_code refresh_token`.
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    #[arg(long, default_value = "openid profile email offline_access")]
    scope: String,
    /// A JWK Set {"keys":[…]} of the client's public keys.
    #[arg(long, value_name = "FILE")]
    jwks: Option<PathBuf>,
    /// Where the client publishes its JWK Set (private_key_jwt), fetched and cached.
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// Accepted `post_logout_redirect_uri` (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Require DPoP-bound access tokens.
    #[arg(long)]
    dpop_bound: bool,
    /// Require pushed authorization requests (PAR) for this client.
    #[arg(long)]
    require_par: bool,
    /// This client's `refresh.idle_ttl` (SPEC §4 rule 4), e.g. `1h`.
    #[arg(long, value_parser = crate::config::parse_duration)]
    refresh_idle_ttl: Option<crate::config::Dur>,
    /// This client's `refresh.absolute_ttl`, e.g. `30d`.
    #[arg(long, value_parser = crate::config::parse_duration)]
    refresh_absolute_ttl: Option<crate::config::Dur>,
    #[arg(long)]
    client_id: Option<String>,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Set a user's password (read from standard input); their sessions and grants end.
    SetPassword {
        #[command(flatten)]
        user: UserRef,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user; their sessions, consents and grants end.
    Delete {
        #[command(flatten)]
        user: UserRef,
    },
}

#[derive(Args)]
struct UserRef {
    #[arg(long)]
    username: String,
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Add a new active signing key; old keys stay in the JWKS until their tokens expire.
    Rotate,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref(), cli.database_url.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AUTIONAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Command, cfg: Config) -> anyhow::Result<()> {
    if let Command::Serve { demo } = cmd {
        return crate::server::serve(cfg, demo).await;
    }
    let store = crate::server::open_store(&cfg).await?;
    match cmd {
        Command::Serve { .. } => unreachable!("handled above"),
        Command::Migrate => {
            store.ping().await?;
            println!("database is migrated");
        }
        Command::Client(c) => client_cmd(c, &cfg, &store).await?,
        Command::User(UserCmd::Create {
            username,
            password_stdin,
            email,
            name,
        }) => {
            if !password_stdin {
                anyhow::bail!("pass the password on standard input with --password-stdin");
            }
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw)?;
            let pw = pw.trim_end_matches(['\n', '\r']).to_string();
            let id = create_user(&store, &username, &pw, email, name).await?;
            println!("{}", serde_json::json!({"id": id, "username": username}));
        }
        Command::User(UserCmd::SetPassword { user, password_stdin }) => {
            if !password_stdin {
                anyhow::bail!("pass the password on standard input with --password-stdin");
            }
            let u = store
                .find_user_by_username(&user.username)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user {}", user.username))?;
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw)?;
            let pw = pw.trim_end_matches(['\n', '\r']).to_string();
            if pw.len() < 8 {
                anyhow::bail!("password must be at least 8 characters");
            }
            let hash = tokio::task::spawn_blocking(move || crate::password::hash(&pw)).await??;
            store.set_password(&u.id, &hash, now_ms()).await?;
            println!(
                "{}",
                serde_json::json!({"id": u.id, "username": u.username, "password_changed": true})
            );
        }
        Command::User(UserCmd::Delete { user }) => {
            let u = store
                .find_user_by_username(&user.username)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user {}", user.username))?;
            store.delete_user(&u.id, now_ms()).await?;
            println!("{}", serde_json::json!({"deleted": u.username}));
        }
        Command::Key(KeyCmd::Rotate) => {
            let enc = cfg.keys.encryption_key.as_deref().and_then(b64_decode);
            if enc.is_none()
                && store
                    .list_keys()
                    .await?
                    .iter()
                    .any(|k| k.private_key.starts_with(b"enc:"))
            {
                anyhow::bail!(
                    "the stored keys are encrypted: set keys.encryption_key (AUTIONAL_KEYS__ENCRYPTION_KEY) to rotate"
                );
            }
            let k = generate(enc.as_deref(), now_ms())?;
            let kid = k.kid.clone();
            store.add_key(k).await?;
            println!("{}", serde_json::json!({"kid": kid}));
        }
    }
    Ok(())
}

pub async fn create_user(
    store: &DynStore,
    username: &str,
    password: &str,
    email: Option<String>,
    name: Option<String>,
) -> anyhow::Result<String> {
    if username.is_empty() || username.len() > 200 {
        anyhow::bail!("username must be 1-200 characters");
    }
    if password.len() < 8 {
        anyhow::bail!("password must be at least 8 characters");
    }
    let pw = password.to_string();
    let hash = tokio::task::spawn_blocking(move || crate::password::hash(&pw)).await??;
    let id = random_id();
    store
        .insert_user(User {
            id: id.clone(),
            username: username.into(),
            password_hash: hash,
            email,
            name,
            created_at_ms: now_ms(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => anyhow::anyhow!("a user named {username} already exists"),
            e => e.into(),
        })?;
    Ok(id)
}

fn validate_redirect_uri(u: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(u).map_err(|e| anyhow::anyhow!("redirect URI {u} is not an absolute URI: {e}"))?;
    if parsed.fragment().is_some() {
        anyhow::bail!("redirect URI {u} must not have a fragment");
    }
    Ok(())
}

async fn client_cmd(c: ClientCmd, cfg: &Config, store: &DynStore) -> anyhow::Result<()> {
    match c {
        ClientCmd::Create(a) => {
            let method = match a.auth_method.as_deref() {
                Some(m) => AuthMethod::parse(m).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--auth-method {m} is not supported (use client_secret_basic, client_secret_post or none)"
                    )
                })?,
                None if a.public => AuthMethod::None,
                None => AuthMethod::ClientSecretBasic,
            };
            if a.public && method != AuthMethod::None {
                anyhow::bail!("--public clients authenticate with `none`");
            }
            let grant_types = if a.grant_types.is_empty() {
                vec!["authorization_code".to_string(), "refresh_token".to_string()]
            } else {
                a.grant_types.clone()
            };
            for g in &grant_types {
                if !crate::domain::model::GRANT_TYPES.contains(&g.as_str()) {
                    anyhow::bail!(
                        "--grant-type {g} is not supported (use one of {})",
                        crate::domain::model::GRANT_TYPES.join(", ")
                    );
                }
            }
            if [a.refresh_idle_ttl, a.refresh_absolute_ttl]
                .iter()
                .flatten()
                .any(|d| d.as_secs() == 0)
            {
                anyhow::bail!("--refresh-idle-ttl and --refresh-absolute-ttl must be greater than zero");
            }
            if method == AuthMethod::PrivateKeyJwt && a.jwks.is_none() && a.jwks_uri.is_none() {
                anyhow::bail!("--auth-method private_key_jwt needs --jwks FILE or --jwks-uri URL");
            }
            for u in a.jwks_uri.iter() {
                validate_redirect_uri(u)?;
            }
            if grant_types.iter().any(|g| g == "authorization_code") && a.redirect_uris.is_empty() {
                anyhow::bail!("--redirect-uri is required with the authorization_code grant");
            }
            // The same rules as dynamic registration (https; http on loopback IPs; private-use
            // schemes): the server redirects browsers there.
            for u in &a.redirect_uris {
                crate::domain::redirect_uri::check(u).map_err(|e| anyhow::anyhow!("--redirect-uri: {e}"))?;
            }
            for u in &a.post_logout_redirect_uris {
                crate::domain::redirect_uri::check(u)
                    .map_err(|e| anyhow::anyhow!("--post-logout-redirect-uri: {e}"))?;
            }
            let scope = crate::domain::scope::Scope::parse(&a.scope).map_err(anyhow::Error::msg)?;
            if !scope.unknown(&cfg.scopes.custom).is_empty() {
                anyhow::bail!(
                    "--scope has unknown values: {}",
                    scope.unknown(&cfg.scopes.custom).join(" ")
                );
            }
            let jwks = match &a.jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(path)?;
                    let v: serde_json::Value = serde_json::from_str(&text)?;
                    if !v["keys"].is_array() {
                        anyhow::bail!("--jwks must be a JWK Set {{\"keys\": [...]}}");
                    }
                    Some(v.to_string())
                }
                None => None,
            };
            let secret =
                matches!(method, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost).then(random_token);
            let id = a.client_id.clone().unwrap_or_else(random_id);
            let client = Client {
                id: id.clone(),
                name: a.name.clone(),
                auth_method: method,
                secrets: secret
                    .iter()
                    .map(|s| SecretHash {
                        hash: sha256(s.as_bytes()).to_vec(),
                        expires_at_ms: None,
                    })
                    .collect(),
                redirect_uris: a.redirect_uris.clone(),
                grant_types,
                scope: scope.to_string(),
                dpop_bound: a.dpop_bound,
                require_par: a.require_par,
                jwks_uri: a.jwks_uri.clone(),
                post_logout_redirect_uris: a.post_logout_redirect_uris.clone(),
                registration_token_hash: None,
                jwks,
                refresh_idle_ttl_s: a.refresh_idle_ttl.map(|d| d.as_secs()),
                refresh_absolute_ttl_s: a.refresh_absolute_ttl.map(|d| d.as_secs()),
                created_at_ms: now_ms(),
            };
            store.insert_client(client).await.map_err(|e| match e {
                StoreError::Conflict(_) => anyhow::anyhow!("a client with id {id} already exists"),
                e => e.into(),
            })?;
            let mut out = serde_json::json!({"client_id": id});
            if let Some(s) = secret {
                out["client_secret"] = serde_json::json!(s);
            }
            println!("{out}");
        }
        ClientCmd::List => {
            for c in store.list_clients().await? {
                println!(
                    "{}",
                    serde_json::json!({
                        "client_id": c.id, "name": c.name, "token_endpoint_auth_method": c.auth_method.as_str(),
                        "redirect_uris": c.redirect_uris, "grant_types": c.grant_types, "scope": c.scope,
                        "dpop_bound_access_tokens": c.dpop_bound,
                        "require_pushed_authorization_requests": c.require_par,
                    })
                );
            }
        }
        ClientCmd::Delete { id } => {
            if !store.delete_client(&id, now_ms()).await? {
                anyhow::bail!("no client {id}");
            }
            println!("{}", serde_json::json!({"deleted": id}));
        }
        ClientCmd::RotateSecret { id } => {
            let client = store
                .get_client(&id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no client {id}"))?;
            if !matches!(
                client.auth_method,
                AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
            ) {
                anyhow::bail!(
                    "client {id} authenticates without a secret ({})",
                    client.auth_method.as_str()
                );
            }
            let now = now_ms();
            let until = now + cfg.client_secret.rotation_overlap.as_ms();
            let secret = random_token();
            // The newest previous secret keeps working for the overlap; older ones stop now.
            let mut secrets = vec![SecretHash {
                hash: sha256(secret.as_bytes()).to_vec(),
                expires_at_ms: None,
            }];
            if let Some(prev) = client.secrets.iter().find(|s| s.expires_at_ms.is_none()) {
                secrets.push(SecretHash {
                    hash: prev.hash.clone(),
                    expires_at_ms: Some(until),
                });
            }
            store.set_client_secrets(&id, secrets).await?;
            println!(
                "{}",
                serde_json::json!({"client_id": id, "client_secret": secret, "previous_secret_valid_until": until / 1000})
            );
        }
    }
    Ok(())
}

/// `serve --demo`: a demo user and public client, and a walkthrough to paste.
pub async fn demo_setup(app: &App) -> anyhow::Result<()> {
    let store = &app.store;
    let issuer = &app.cfg.issuer;
    let password = format!("demo-{}", &random_token()[..12]);
    // A fresh password at every start (the demo user's earlier sessions and grants end).
    match store.find_user_by_username("demo").await? {
        None => {
            let (email, name) = (Some("demo@example.com".into()), Some("Demo User".into()));
            create_user(store, "demo", &password, email, name).await?;
        }
        Some(u) => {
            let pw = password.clone();
            let hash = tokio::task::spawn_blocking(move || crate::password::hash(&pw)).await??;
            store.set_password(&u.id, &hash, now_ms()).await?;
        }
    }
    let password_note = password;
    let redirect = format!("{issuer}/demo/callback");
    if store.get_client("demo-app").await?.is_none() {
        store
            .insert_client(Client {
                id: "demo-app".into(),
                name: "Demo App".into(),
                auth_method: AuthMethod::None,
                secrets: vec![],
                redirect_uris: vec![redirect.clone()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scope: "openid profile email offline_access".into(),
                dpop_bound: false,
                require_par: false,
                jwks_uri: None,
                post_logout_redirect_uris: vec![issuer.to_string() + "/login"],
                registration_token_hash: None,
                jwks: None,
                refresh_idle_ttl_s: None,
                refresh_absolute_ttl_s: None,
                created_at_ms: now_ms(),
            })
            .await?;
    }
    let verifier = random_token();
    let challenge = b64url(&sha256(verifier.as_bytes()));
    let authorize = format!(
        "{issuer}/oauth/authorize?response_type=code&client_id=demo-app&redirect_uri={}&scope=openid%20profile%20offline_access&state=demo&code_challenge={challenge}&code_challenge_method=S256",
        percent_encoding::utf8_percent_encode(&redirect, percent_encoding::NON_ALPHANUMERIC)
    );
    println!(
        r#"
Demo ready.
  user:      demo
  password:  {password_note}
  client_id: demo-app (public, PKCE S256)

1. Open in a browser, sign in, allow:
   {authorize}
2. Copy the code from the page, then:
   CODE=<paste the code>
   curl -s {issuer}/oauth/token -d grant_type=authorization_code -d client_id=demo-app \
     -d code=$CODE -d redirect_uri={redirect} -d code_verifier={verifier}
3. Refresh (rotation: the old refresh token stops working):
   RT=<refresh_token from step 2>
   curl -s {issuer}/oauth/refresh -H 'Content-Type: application/json' \
     -d "{{\"refresh_token\":\"$RT\",\"client_id\":\"demo-app\"}}"
"#
    );
    Ok(())
}
