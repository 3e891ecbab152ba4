//! The delivery worker (docs/design/events.md): one tokio task per server process that takes due
//! events from the outbox, signs each at delivery with the server's current signing key, POSTs it
//! to its receiver and records the outcome.
//!
//! - Claiming: `Store::claim_events` leases a batch to this round (`EventsConfig::lease_ms`); on
//!   PostgreSQL a concurrent claim skips the rows (`FOR UPDATE SKIP LOCKED`) and, once committed,
//!   the lease keeps every other process off them: each event is sent by one process at a time.
//!   An idle worker only reads (`Store::events_due`).
//! - Sending: through its own [`Outbound`] (address policy `events.receiver_allow`, no redirects,
//!   `events.timeout`, `events.max_response_bytes`), to the exact URL stored with the event, at
//!   most `events.per_receiver` requests at once per receiver (scheme, host, port).
//! - Outcome (`domain::events::answer`): a 2xx answer is delivered; a receiver's RFC 8935 refusal
//!   of a SET fails it at once; anything else is tried again after an exponential back-off with
//!   jitter (`domain::events::after_failure`), until `events.max_age` has passed since the event
//!   was written (for a scheduled revocation, since it took effect): then it is failed. Metrics: `autional_events_delivered_total`,
//!   `autional_events_retried_total`, `autional_events_failed_total`, labelled by `kind`.

use crate::app::App;
use crate::domain::events::{self, after_failure, Answer, Next, OutboxEvent, RetryPolicy};
use crate::domain::model::EventState;
use crate::outbound::{AddressPolicy, Limits, Outbound};
use crate::store::{Settlement, StoreError};
use crate::util::{now_ms, random_bytes, random_id};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The worker of one server process.
pub struct Worker {
    app: Arc<App>,
    outbound: Outbound,
    /// One semaphore per receiver (its origin), of `events.per_receiver` permits.
    receivers: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Starts the worker of this process on the runtime.
pub fn start(app: Arc<App>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let ev = &app.cfg.events;
    let policy = AddressPolicy::parse(&ev.receiver_allow).map_err(anyhow::Error::msg)?;
    let limits = Limits {
        timeout: ev.timeout.0,
        connect_timeout: ev.timeout.0.min(Duration::from_secs(2)),
        max_bytes: ev.max_response_bytes,
        concurrency: ev.batch,
    };
    let worker = Arc::new(Worker {
        outbound: Outbound::new(policy, limits)?,
        app,
        receivers: Mutex::default(),
    });
    Ok(tokio::spawn(worker.run()))
}

impl Worker {
    async fn run(self: Arc<Self>) {
        let ev = &self.app.cfg.events;
        let mut tick = tokio::time::interval(Duration::from_millis(ev.poll_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A full batch: there may be more due at once.
            loop {
                match self.clone().round().await {
                    Ok(n) if n == ev.batch => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "event delivery round failed");
                        break;
                    }
                }
            }
        }
    }

    /// Claims the due events (at most a batch), delivers them, and returns how many it claimed.
    async fn round(self: Arc<Self>) -> Result<usize, StoreError> {
        let ev = &self.app.cfg.events;
        let now = now_ms();
        if !self.app.store.events_due(now).await? {
            return Ok(0);
        }
        let owner = random_id();
        let claimed = self
            .app
            .store
            .claim_events(now, now + ev.lease_ms(), &owner, ev.batch as i64)
            .await?;
        let n = claimed.len();
        let mut set = tokio::task::JoinSet::new();
        for e in claimed {
            set.spawn(self.clone().deliver(e, owner.clone()));
        }
        while set.join_next().await.is_some() {}
        self.receivers
            .lock()
            .expect("receivers lock")
            .retain(|_, s| Arc::strong_count(s) > 1);
        Ok(n)
    }

    /// The semaphore of `endpoint`'s receiver.
    fn receiver(&self, endpoint: &str) -> Arc<Semaphore> {
        let origin = url::Url::parse(endpoint)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| endpoint.to_string());
        let per = self.app.cfg.events.per_receiver;
        self.receivers
            .lock()
            .expect("receivers lock")
            .entry(origin)
            .or_insert_with(|| Arc::new(Semaphore::new(per)))
            .clone()
    }

    /// One attempt: sign, send, record.
    async fn deliver(self: Arc<Self>, e: OutboxEvent, owner: String) {
        let cfg = &self.app.cfg;
        let receiver = self.receiver(&e.endpoint);
        let Ok(_permit) = receiver.acquire().await else {
            return;
        };
        let token = events::token(&e, &cfg.issuer, now_ms() / 1000, cfg.events.token_ttl.as_secs());
        let jwt = crate::jose::jwt::sign_typed(&self.app.keys.get(), token.typ, &token.claims);
        let (content_type, body) = token.body(&jwt);
        let sent = match self
            .outbound
            .post(&e.endpoint, content_type, token.accept(), body)
            .await
        {
            Ok((status, body)) => events::answer(e.kind, status, &body),
            Err(err) => Answer::Retry(err.to_string()),
        };
        let now = now_ms();
        let policy = RetryPolicy {
            base_ms: cfg.events.retry_base_ms as i64,
            max_ms: cfg.events.retry_max.as_ms(),
            max_age_ms: cfg.events.max_age.as_ms(),
        };
        let (state, next_attempt_at_ms, last_error) = match sent {
            Answer::Delivered => (EventState::Delivered, now, None),
            Answer::Refused(err) => (EventState::Failed, now, Some(err)),
            Answer::Retry(err) => match after_failure(&policy, e.created_at_ms, e.attempts, now, jitter()) {
                Next::Retry { at_ms } => (EventState::Pending, at_ms, Some(err)),
                Next::Fail => (EventState::Failed, now, Some(err)),
            },
        };
        let kind = e.kind.as_str();
        let metric = match state {
            EventState::Delivered => "autional_events_delivered_total",
            EventState::Pending => "autional_events_retried_total",
            EventState::Failed => "autional_events_failed_total",
        };
        metrics::counter!(metric, "kind" => kind).increment(1);
        match state {
            EventState::Failed => {
                tracing::warn!(kind, client_id = %e.client_id, jti = %e.jti, attempts = e.attempts, error = ?last_error, "event failed: not delivered in time")
            }
            EventState::Pending => {
                tracing::info!(kind, client_id = %e.client_id, jti = %e.jti, attempts = e.attempts, error = ?last_error, "event delivery failed; will retry")
            }
            EventState::Delivered => tracing::debug!(kind, client_id = %e.client_id, jti = %e.jti, "event delivered"),
        }
        let settlement = Settlement {
            id: e.id,
            owner,
            state,
            next_attempt_at_ms,
            last_error,
            now_ms: now,
        };
        match self.app.store.settle_event(settlement).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(jti = %e.jti, "event lease lost before its outcome was recorded"),
            // The lease passes and the event is sent again (at least once).
            Err(err) => tracing::warn!(error = %err, jti = %e.jti, "event outcome not recorded"),
        }
    }
}

/// A uniform draw in [0, 1).
fn jitter() -> f64 {
    (u64::from_le_bytes(random_bytes::<8>()) >> 11) as f64 / (1u64 << 53) as f64
}
