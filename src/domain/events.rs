//! Events pushed to relying parties (docs/design/events.md): what an outbox row holds, the
//! signed token it becomes at delivery, where a receiver may be, and when a failed delivery is
//! tried again. Pure rules: the outbox's statements are `store::ops`, the worker that claims,
//! signs and sends is `delivery`.
//!
//! One event kind today, OpenID Connect Back-Channel Logout 1.0 ([`EventKind::BackchannelLogout`]).
//! Another kind (the SSF transmitter's Security Event Tokens) adds a variant, its claims in
//! [`token`] and its body in [`Token::body`]; the outbox, the worker and the retry rules are
//! shared.

use super::model::EventKind;
use serde::Serialize;
use std::net::IpAddr;

/// The event a Logout Token carries (Back-Channel Logout §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// An outbox row as a worker claimed it (`event_outbox`): who gets what, and how often it was
/// tried (this attempt included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    pub id: i64,
    /// Fixed when the event was written: every attempt sends the same `jti`, so that a receiver
    /// deduplicates (delivery is at least once).
    pub jti: String,
    pub kind: EventKind,
    pub client_id: String,
    /// The receiver's URL, as registered when the event was written; called exactly.
    pub endpoint: String,
    /// The user (`sub`).
    pub subject: String,
    /// The sign-in session (`sid`).
    pub sid: Option<String>,
    /// Claims of the kind beyond the common ones (a JSON object; `{}` for a logout).
    pub claims: String,
    pub created_at_ms: i64,
    pub attempts: i64,
}

/// A Logout Token's claims (Back-Channel Logout §2.4): never a `nonce`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LogoutClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub events: serde_json::Value,
}

/// What an event becomes at delivery: a JWT of `typ` over `claims`, sent as [`Token::body`].
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub kind: EventKind,
    pub typ: &'static str,
    pub claims: serde_json::Value,
}

impl Token {
    /// The request body carrying the signed `jwt`, and its content type: a Logout Token is the
    /// form field `logout_token` (Back-Channel Logout §2.5).
    pub fn body(&self, jwt: &str) -> (&'static str, String) {
        match self.kind {
            EventKind::BackchannelLogout => (
                "application/x-www-form-urlencoded",
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("logout_token", jwt)
                    .finish(),
            ),
        }
    }
}

/// The token `e` becomes when signed at `now_s` by `issuer`, valid for `ttl_s` seconds.
pub fn token(e: &OutboxEvent, issuer: &str, now_s: i64, ttl_s: i64) -> Token {
    match e.kind {
        EventKind::BackchannelLogout => {
            let claims = LogoutClaims {
                iss: issuer.to_string(),
                aud: e.client_id.clone(),
                iat: now_s,
                exp: now_s + ttl_s,
                jti: e.jti.clone(),
                sub: e.subject.clone(),
                sid: e.sid.clone(),
                events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
            };
            Token {
                kind: e.kind,
                typ: "logout+jwt",
                claims: serde_json::to_value(claims).expect("claims serialize"),
            }
        }
    }
}

/// When failed deliveries are tried again, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first back-off; each further attempt doubles it.
    pub base_ms: i64,
    /// The longest back-off.
    pub max_ms: i64,
    /// How long after it was written an event is given up (`events.max_age`).
    pub max_age_ms: i64,
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time.
    Retry { at_ms: i64 },
    /// The event's time is up: mark it failed.
    Fail,
}

/// After the `attempts`-th failed attempt (1 for the first) of an event written at
/// `created_at_ms`: exponential back-off (`base · 2^(attempts−1)`, at most `max`) with equal
/// jitter (`jitter` in [0, 1) picks a delay between half and all of it), so that receivers
/// coming back are not hit by every event at once; never past the event's deadline, and at or
/// after the deadline the event fails.
pub fn after_failure(p: &RetryPolicy, created_at_ms: i64, attempts: i64, now_ms: i64, jitter: f64) -> Next {
    let deadline = created_at_ms.saturating_add(p.max_age_ms);
    if now_ms >= deadline {
        return Next::Fail;
    }
    let doublings = attempts.clamp(1, 63) - 1;
    let full = p
        .base_ms
        .saturating_mul(1i64.checked_shl(doublings as u32).unwrap_or(i64::MAX));
    let full = full.clamp(1, p.max_ms.max(1));
    let delay = full / 2 + ((full - full / 2) as f64 * jitter.clamp(0.0, 1.0)) as i64;
    Next::Retry {
        at_ms: now_ms.saturating_add(delay.max(1)).min(deadline),
    }
}

/// Whether `host` (a URL's host, brackets removed) is this machine: `localhost`, 127.0.0.0/8
/// or `::1`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Checks a receiver URL (`backchannel_logout_uri`): absolute, no fragment (Back-Channel Logout
/// §2.2), no credentials, https; http only for a loopback host and only when the operator allows
/// it (`events.allow_http_loopback`, development). The address it resolves to is checked again
/// at each delivery (`outbound`).
pub fn check_receiver_uri(u: &str, allow_http_loopback: bool) -> Result<(), &'static str> {
    let Ok(p) = url::Url::parse(u) else {
        return Err("must be an absolute https URI");
    };
    if p.fragment().is_some() {
        return Err("must not have a fragment");
    }
    if !p.username().is_empty() || p.password().is_some() {
        return Err("must not carry credentials");
    }
    let host = p.host_str().unwrap_or("");
    match p.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if is_loopback(host) && allow_http_loopback => Ok(()),
        "http" if is_loopback(host) => {
            Err("must use https (http on a loopback host only when events.allow_http_loopback is on)")
        }
        _ => Err("must use https (http only on a loopback host, in development)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        base_ms: 1000,
        max_ms: 60_000,
        max_age_ms: 3_600_000,
    };

    #[test]
    fn back_off_doubles_with_jitter_up_to_the_cap_and_the_deadline() {
        assert_eq!(after_failure(&P, 0, 1, 0, 0.0), Next::Retry { at_ms: 500 });
        assert_eq!(after_failure(&P, 0, 1, 0, 0.999_999), Next::Retry { at_ms: 999 });
        assert_eq!(after_failure(&P, 0, 3, 10, 0.0), Next::Retry { at_ms: 2010 });
        // Capped at max_ms, however many attempts (no overflow).
        assert_eq!(after_failure(&P, 0, 40, 0, 0.0), Next::Retry { at_ms: 30_000 });
        assert_eq!(after_failure(&P, 0, i64::MAX, 0, 1.0), Next::Retry { at_ms: 60_000 });
        // Never past the deadline; at the deadline, failed.
        assert_eq!(
            after_failure(&P, 0, 10, 3_590_000, 1.0),
            Next::Retry { at_ms: 3_600_000 }
        );
        assert_eq!(after_failure(&P, 0, 11, 3_600_000, 0.5), Next::Fail);
    }

    #[test]
    fn a_logout_token_has_the_back_channel_claims_and_no_nonce() {
        let e = OutboxEvent {
            id: 1,
            jti: "j1".into(),
            kind: EventKind::BackchannelLogout,
            client_id: "rp".into(),
            endpoint: "https://rp.example/bcl".into(),
            subject: "u1".into(),
            sid: Some("s1".into()),
            claims: "{}".into(),
            created_at_ms: 0,
            attempts: 1,
        };
        let t = token(&e, "https://as.example", 100, 120);
        assert_eq!(t.typ, "logout+jwt");
        assert_eq!(
            t.claims,
            serde_json::json!({"iss": "https://as.example", "aud": "rp", "iat": 100, "exp": 220, "jti": "j1",
                "sub": "u1", "sid": "s1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}})
        );
        let (ct, body) = t.body("a.b.c");
        assert_eq!(
            (ct, body.as_str()),
            ("application/x-www-form-urlencoded", "logout_token=a.b.c")
        );
    }

    #[test]
    fn receivers_are_https_or_allowed_loopback_http() {
        for ok in ["https://rp.example/bcl", "https://rp.example:8443/bcl?x=1"] {
            assert_eq!(check_receiver_uri(ok, false), Ok(()), "{ok}");
        }
        for lo in ["http://127.0.0.1:9/bcl", "http://[::1]:9/bcl", "http://localhost/bcl"] {
            assert_eq!(check_receiver_uri(lo, true), Ok(()), "{lo}");
            assert!(
                check_receiver_uri(lo, false)
                    .unwrap_err()
                    .contains("allow_http_loopback"),
                "{lo}"
            );
        }
        for bad in [
            "http://rp.example/bcl",
            "http://10.0.0.1/bcl",
            "http://127.0.0.1.nip.io/bcl",
            "ftp://rp.example/x",
            "https://",
            "file:///etc/passwd",
        ] {
            assert!(check_receiver_uri(bad, true).is_err(), "{bad}");
        }
        assert_eq!(check_receiver_uri("/bcl", true), Err("must be an absolute https URI"));
        assert_eq!(
            check_receiver_uri("https://rp.example/bcl#x", true),
            Err("must not have a fragment")
        );
        assert_eq!(
            check_receiver_uri("https://u:p@rp.example/bcl", true),
            Err("must not carry credentials")
        );
    }
}
