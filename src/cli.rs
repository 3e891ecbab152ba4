//! Command line (clap): `serve`, `migrate`, `client …`, `user create`, `key rotate`. Wiring
//! only: each command loads the config, opens the store and calls one store or grant function
//! (users: `grants::accounts`; client metadata: `domain::registration` with the operator's
//! profile; client secrets: `grants::secrets`, as the admin API).

use crate::config::Config;
use crate::domain::model::ClientSecret;
use crate::domain::registration::{Field, Metadata, Profile};
use crate::domain::secrets as domain_secrets;
use crate::grants::accounts::{self, NewUser};
use crate::grants::clients::{self, CreateError, OperatorRequest};
use crate::grants::secrets;
use crate::jose::keys::generate;
use crate::store::DynStore;
use crate::util::{b64_decode, now_ms};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// `client create`'s default `--scope`.
const DEFAULT_CLIENT_SCOPE: &str = "openid profile email offline_access";

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
    /// Issue a new secret; the newest previous one keeps working for
    /// client_secret.rotation_overlap, older ones stop.
    RotateSecret { id: String },
    /// Manage a client's secrets (at most 2 active).
    #[command(subcommand)]
    Secret(SecretCmd),
}

#[derive(Subcommand)]
enum SecretCmd {
    /// List a client's secrets (never the secrets themselves).
    List { client_id: String },
    /// Add a secret; prints it (shown once).
    Add {
        client_id: String,
        #[arg(long)]
        description: Option<String>,
        /// When it stops working, Unix seconds.
        #[arg(long)]
        expires_at: Option<i64>,
    },
    /// Deactivate a secret: it stops working at once.
    Deactivate { client_id: String, secret_id: String },
    /// Delete a secret.
    Delete { client_id: String, secret_id: String },
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
    #[arg(long, default_value = DEFAULT_CLIENT_SCOPE)]
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
    /// This client's `refresh.reuse_grace_seconds` (SPEC §4 rule 3), 0 to 60; 0 = no grace.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    reuse_grace_seconds: Option<i64>,
    /// This client's `refresh.reuse_grace_count`, 0 to 10.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    reuse_grace_count: Option<i64>,
    #[arg(long)]
    client_id: Option<String>,
    /// An admin client: `client_credentials` only, with the admin API's scopes (`admin:read
    /// admin:write`, or one of them with --scope), for the admin listener (`admin.listen`).
    #[arg(long, conflicts_with = "account")]
    admin: bool,
    /// An account client: the user's own app, which may ask for the consent API's scope
    /// (`consents`: list and withdraw the user's consents to other clients); user-facing grants
    /// only. Without --scope: the OpenID scopes and `consents`.
    #[arg(long)]
    account: bool,
    /// The client's home page (https), linked from the consent page.
    #[arg(long, value_name = "URL")]
    client_uri: Option<String>,
    /// Its logo (https), shown on the consent page.
    #[arg(long, value_name = "URL")]
    logo_uri: Option<String>,
    /// Its privacy policy (https), linked from the consent page.
    #[arg(long, value_name = "URL")]
    policy_uri: Option<String>,
    /// Its terms of service (https), linked from the consent page.
    #[arg(long, value_name = "URL")]
    tos_uri: Option<String>,
    /// Where Logout Tokens are POSTed when a sign-in session it took part in ends (OpenID
    /// Connect Back-Channel Logout; https, or http on loopback with events.allow_http_loopback).
    #[arg(long, value_name = "URL")]
    backchannel_logout_uri: Option<String>,
    /// Its Logout Tokens must carry `sid` (they always do).
    #[arg(long, requires = "backchannel_logout_uri")]
    backchannel_logout_session_required: bool,
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

/// The password on standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut pw = String::new();
    std::io::stdin().read_to_string(&mut pw)?;
    Ok(pw.trim_end_matches(['\n', '\r']).to_string())
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
            let pw = read_password()?;
            let user = NewUser {
                username: &username,
                password: &pw,
                email,
                name,
            };
            let id = accounts::create_user(&store, user).await?;
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
            accounts::set_password(&store, &u.id, &read_password()?).await?;
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

/// The command-line flag of a metadata field, for error messages.
fn flag(f: Field) -> &'static str {
    match f {
        Field::TokenEndpointAuthMethod => "--auth-method",
        Field::GrantTypes => "--grant-type",
        Field::ResponseTypes => "--grant-type",
        Field::RedirectUris => "--redirect-uri",
        Field::PostLogoutRedirectUris => "--post-logout-redirect-uri",
        Field::Jwks => "--jwks",
        Field::JwksUri => "--jwks-uri",
        Field::Scope => "--scope",
        Field::ClientUri => "--client-uri",
        Field::LogoUri => "--logo-uri",
        Field::PolicyUri => "--policy-uri",
        Field::TosUri => "--tos-uri",
        Field::ReuseGraceSeconds => "--reuse-grace-seconds",
        Field::ReuseGraceCount => "--reuse-grace-count",
        Field::BackchannelLogoutUri => "--backchannel-logout-uri",
        // Not settable from the command line.
        Field::Contacts => "contacts",
        Field::SoftwareId => "software_id",
        Field::SoftwareVersion => "software_version",
        Field::ApplicationType => "application_type",
    }
}

/// `client create`'s flags as RFC 7591 metadata and the operator's settings, for
/// `grants::clients::create` (the one validator, shared with the admin API).
fn operator_request(a: &ClientCreate) -> anyhow::Result<OperatorRequest> {
    let method = match a.auth_method.as_deref() {
        Some(m) => m,
        None if a.public => "none",
        None => "client_secret_basic",
    };
    if a.public && method != "none" {
        anyhow::bail!("--public clients authenticate with `none`");
    }
    if [a.refresh_idle_ttl, a.refresh_absolute_ttl]
        .iter()
        .flatten()
        .any(|d| d.as_secs() == 0)
    {
        anyhow::bail!("--refresh-idle-ttl and --refresh-absolute-ttl must be greater than zero");
    }
    let jwks = match &a.jwks {
        Some(path) => Some(serde_json::from_str(&std::fs::read_to_string(path)?)?),
        None => None,
    };
    let profile = match (a.admin, a.account) {
        (true, _) => Profile::Admin,
        (_, true) => Profile::Account,
        _ => Profile::Operator,
    };
    // An admin or account client's scope is its profile's default unless --scope names one
    // (the default --scope is the ordinary user-facing one).
    let scope = (profile == Profile::Operator || a.scope != DEFAULT_CLIENT_SCOPE).then(|| a.scope.clone());
    let meta = Metadata {
        client_id: None,
        redirect_uris: a.redirect_uris.clone(),
        token_endpoint_auth_method: Some(method.to_string()),
        grant_types: (!a.grant_types.is_empty()).then(|| a.grant_types.clone()),
        response_types: None,
        client_name: Some(a.name.clone()),
        scope,
        jwks,
        jwks_uri: a.jwks_uri.clone(),
        post_logout_redirect_uris: a.post_logout_redirect_uris.clone(),
        dpop_bound_access_tokens: a.dpop_bound,
        require_pushed_authorization_requests: a.require_par,
        client_uri: a.client_uri.clone(),
        logo_uri: a.logo_uri.clone(),
        policy_uri: a.policy_uri.clone(),
        tos_uri: a.tos_uri.clone(),
        backchannel_logout_uri: a.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: a.backchannel_logout_session_required,
        ..Metadata::default()
    };
    Ok(OperatorRequest {
        meta,
        client_id: a.client_id.clone(),
        profile,
        refresh_idle_ttl_s: a.refresh_idle_ttl.map(|d| d.as_secs()),
        refresh_absolute_ttl_s: a.refresh_absolute_ttl.map(|d| d.as_secs()),
        grace: crate::domain::grace::Change {
            seconds: a.reuse_grace_seconds.map(Some),
            count: a.reuse_grace_count.map(Some),
        },
    })
}

async fn client_cmd(c: ClientCmd, cfg: &Config, store: &DynStore) -> anyhow::Result<()> {
    match c {
        ClientCmd::Create(a) => {
            let (client, secret) = clients::create(cfg, store, operator_request(&a)?)
                .await
                .map_err(|e| match e {
                    CreateError::Invalid(e) => anyhow::anyhow!("{}: {}", flag(e.field), e.description),
                    CreateError::Exists(id) => anyhow::anyhow!("a client with id {id} already exists"),
                    CreateError::Store(e) => e.into(),
                })?;
            let id = client.id;
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
            let r = secrets::rotate(store, &id, cfg.client_secret.rotation_overlap.as_ms()).await?;
            println!(
                "{}",
                serde_json::json!({
                    "client_id": id,
                    "client_secret": r.new.secret,
                    "previous_secret_valid_until": r.previous_expires_at_ms.map(|t| t / 1000),
                })
            );
        }
        ClientCmd::Secret(c) => secret_cmd(c, store).await?,
    }
    Ok(())
}

/// A secret's entry as `client secret` prints it (never the secret or its hash).
fn secret_json(s: &ClientSecret) -> serde_json::Value {
    serde_json::json!({
        "secret_id": s.id,
        "description": s.description,
        "status": domain_secrets::status_at(s, now_ms()).as_str(),
        "created_at": s.created_at_ms / 1000,
        "expires_at": s.expires_at_ms.map(|t| t / 1000),
    })
}

async fn secret_cmd(c: SecretCmd, store: &DynStore) -> anyhow::Result<()> {
    match c {
        SecretCmd::List { client_id } => {
            for s in secrets::list(store, &client_id).await? {
                println!("{}", secret_json(&s));
            }
        }
        SecretCmd::Add {
            client_id,
            description,
            expires_at,
        } => {
            let new = secrets::add(store, &client_id, description, expires_at).await?;
            let mut out = secret_json(&new.entry);
            out["secret_value"] = serde_json::json!(new.secret);
            println!("{out}");
        }
        SecretCmd::Deactivate { client_id, secret_id } => {
            println!(
                "{}",
                secret_json(&secrets::deactivate(store, &client_id, &secret_id).await?)
            );
        }
        SecretCmd::Delete { client_id, secret_id } => {
            secrets::delete(store, &client_id, &secret_id).await?;
            println!("{}", serde_json::json!({"deleted": secret_id}));
        }
    }
    Ok(())
}
