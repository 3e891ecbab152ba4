//! The server's shared state, free of HTTP: configuration, the store, the signing keys and the
//! server secret. Built once at start-up and shared by every request.

use crate::config::Config;
use crate::jose::keys::{generate, KeySet, Keyring};
use crate::store::DynStore;
use crate::util::{b64_decode, now_ms, random_bytes};
use std::sync::Arc;

pub struct App {
    pub cfg: Config,
    pub store: DynStore,
    pub keys: Keyring,
    /// The `aud` values of access tokens, by scope (computed once from the configuration).
    pub audiences: crate::domain::audience::Audiences,
    /// HMAC key for CSRF tokens (shared by every process through the database).
    pub form_secret: Vec<u8>,
    /// HMAC key for stateless DPoP nonces (shared by every process through the database).
    pub dpop_nonce_key: Vec<u8>,
    /// The keys that authenticate refresh tokens (`refresh.token_keys`, else a database-held one).
    pub refresh_keys: crate::domain::refresh_token::TokenKeys,
    encryption_key: Option<Vec<u8>>,
    last_forced_reload_ms: std::sync::atomic::AtomicI64,
    /// Clients' `jwks_uri` documents, fetched under the outbound policy and cached by URL.
    pub client_jwks: crate::jose::jwks_fetch::JwksFetcher,
    /// Public clients by id, for the token hot path: (read at ms, client).
    /// This process's refreshes per client, not yet in the database (`grants::refresh_counts`).
    pub refresh_counts: crate::grants::refresh_counts::RefreshCounts,
    public_clients: std::sync::RwLock<std::collections::HashMap<String, (i64, Arc<crate::domain::model::Client>)>>,
}

/// How long a public client's record is reused without reading the database.
const PUBLIC_CLIENT_CACHE_MS: i64 = 5_000;

impl App {
    /// Loads keys (creating the first one when there is none) and the form secret.
    pub async fn new(cfg: Config, store: DynStore) -> anyhow::Result<Arc<App>> {
        let encryption_key = cfg.keys.encryption_key.as_deref().and_then(b64_decode);
        store.ensure_key(generate(encryption_key.as_deref(), now_ms())?).await?;
        let keys = Keyring::new(load_keys(&cfg, &store, encryption_key.as_deref()).await?);
        let form_secret = store.server_secret("form_hmac", random_bytes::<32>().to_vec()).await?;
        let dpop_nonce_key = store.server_secret("dpop_nonce", random_bytes::<32>().to_vec()).await?;
        let mut token_keys = cfg.refresh.token_key_bytes();
        if token_keys.is_empty() {
            token_keys.push(
                store
                    .server_secret("refresh_token_mac", random_bytes::<32>().to_vec())
                    .await?,
            );
        }
        let refresh_keys = crate::domain::refresh_token::TokenKeys::new(&token_keys);
        let client_jwks = client_jwks_fetcher(&cfg)?;
        Ok(Arc::new(App {
            audiences: cfg.audiences(),
            cfg,
            store,
            keys,
            form_secret,
            dpop_nonce_key,
            refresh_keys,
            encryption_key,
            last_forced_reload_ms: Default::default(),
            client_jwks,
            refresh_counts: Default::default(),
            public_clients: Default::default(),
        }))
    }

    /// Re-reads the keys when the store has a newer one (`autional key rotate` elsewhere).
    pub async fn reload_keys(&self) -> anyhow::Result<bool> {
        let records = self.store.list_keys().await?;
        let newest = records.iter().map(|r| r.created_at_ms).max().unwrap_or(0);
        if newest == self.keys.get().newest_ms {
            return Ok(false);
        }
        let set = KeySet::from_records(&records, self.encryption_key.as_deref(), now_ms(), self.key_keep_ms())?;
        self.keys.replace(set);
        Ok(true)
    }

    /// Reloads keys after a token named a `kid` this process does not know yet (a rotation by
    /// another process), at most once a second.
    pub async fn reload_keys_for_unknown_kid(&self) -> bool {
        let now = now_ms();
        let last = self.last_forced_reload_ms.load(std::sync::atomic::Ordering::Relaxed);
        if now - last < 1000
            || self
                .last_forced_reload_ms
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        self.reload_keys().await.unwrap_or(false)
    }

    /// A client for authentication. Public clients (no secret, nothing to rotate) are cached for
    /// `PUBLIC_CLIENT_CACHE_MS`, which spares the refresh hot path a database read; deleting a
    /// client revokes its families and deletes its outstanding codes, device codes and pushed
    /// requests in one transaction, so a stale entry cannot issue tokens. Clients with secrets or
    /// keys are always read fresh.
    pub async fn client_for_auth(
        &self,
        id: &str,
    ) -> Result<Option<Arc<crate::domain::model::Client>>, crate::store::StoreError> {
        let now = now_ms();
        if let Some((at, c)) = self.public_clients.read().expect("client cache").get(id) {
            if now - at < PUBLIC_CLIENT_CACHE_MS {
                return Ok(Some(c.clone()));
            }
        }
        let Some(c) = self.store.get_client(id).await? else {
            return Ok(None);
        };
        let c = Arc::new(c);
        if c.is_public() {
            let mut cache = self.public_clients.write().expect("client cache");
            if cache.len() > 10_000 {
                cache.retain(|_, (at, _)| now - *at < PUBLIC_CLIENT_CACHE_MS);
            }
            cache.insert(id.to_string(), (now, c.clone()));
        }
        Ok(Some(c))
    }

    fn key_keep_ms(&self) -> i64 {
        key_keep_ms(&self.cfg)
    }
}

/// The `jwks_uri` fetcher as `client_auth.*` configures it.
fn client_jwks_fetcher(cfg: &Config) -> anyhow::Result<crate::jose::jwks_fetch::JwksFetcher> {
    use crate::outbound::{AddressPolicy, Limits, Outbound};
    let ca = &cfg.client_auth;
    let policy = AddressPolicy::parse(&ca.jwks_fetch_allow).map_err(anyhow::Error::msg)?;
    let limits = Limits {
        timeout: ca.jwks_fetch_timeout.0,
        connect_timeout: ca.jwks_fetch_timeout.0.min(std::time::Duration::from_secs(2)),
        max_bytes: ca.jwks_fetch_max_bytes,
        concurrency: ca.jwks_fetch_concurrency,
    };
    Ok(crate::jose::jwks_fetch::JwksFetcher::new(
        Outbound::new(policy, limits)?,
        ca.jwks_cache_ttl.as_ms(),
        ca.jwks_cache_entries,
    ))
}

/// Retired keys stay in the JWKS while tokens they signed may still be valid.
fn key_keep_ms(cfg: &Config) -> i64 {
    cfg.access_token.ttl.as_ms().max(cfg.id_token.ttl.as_ms()) + 60_000
}

async fn load_keys(cfg: &Config, store: &DynStore, enc: Option<&[u8]>) -> anyhow::Result<KeySet> {
    let records = store.list_keys().await?;
    KeySet::from_records(&records, enc, now_ms(), key_keep_ms(cfg))
}
