//! Events pushed to relying parties (docs/design/events.md): what an outbox row holds, the
//! signed token it becomes at delivery, where a receiver may be, and when a failed delivery is
//! tried again. Pure rules: the outbox's statements are `store::ops`, the worker that claims,
//! signs and sends is `delivery`.
//!
//! Two families of events: OpenID Connect Back-Channel Logout 1.0 ([`EventKind::BackchannelLogout`])
//! and the Shared Signals Framework transmitter's Security Event Tokens (RFC 8417, pushed as
//! RFC 8935 says: [`EventKind::SsfSessionRevoked`], [`EventKind::SsfCredentialCompromise`],
//! [`EventKind::SsfVerification`]; `domain::ssf`). Each kind has its claims in [`token`], its body
//! in [`Token::body`] and its reading of the receiver's answer in [`answer`]; the outbox, the
//! worker and the retry rules are shared.

use super::model::EventKind;
use super::ssf;
use serde::{Deserialize, Serialize};
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
    /// Claims of the kind beyond the common ones (a JSON object: `{}` for a logout,
    /// [`RowClaims`] for the SSF kinds).
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

/// What an SSF event's row says beyond who and where (`event_outbox.claims`): a revocation's
/// reason, time and family (written by the revocation's own statement, `store::ops`
/// ENQUEUE_REVOKED_*), or a verification's `state`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct RowClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The `typ` of a Security Event Token (RFC 8417 §2.3, SSF §4.1.1).
pub const SET_TYP: &str = "secevent+jwt";

/// A Security Event Token's claims (RFC 8417 §2.2, SSF §4): no `sub`, no `exp`; the subject is
/// `sub_id` (RFC 9493), one event per token.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SetClaims {
    pub iss: String,
    pub iat: i64,
    pub jti: String,
    pub aud: String,
    /// Links the SETs of one cause (a reuse's two events), SSF §4.1.6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<String>,
    pub sub_id: serde_json::Value,
    /// The family's sign-in session (the ID tokens' `sid`), where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub events: serde_json::Value,
}

/// Who caused a revocation, as CAEP's `initiating_entity` says it (none where it depends).
fn initiating_entity(reason: &str) -> Option<&'static str> {
    match reason {
        "refresh_token_reuse" | "authorization_code_replay" => Some("policy"),
        "revoked_by_admin" | "user_deleted" | "client_deleted" => Some("admin"),
        "revoked_by_user" | "session_ended" | "consent_revoked" => Some("user"),
        "revoked_by_client" => Some("system"),
        _ => None,
    }
}

/// The Security Event Token of an SSF event `e` signed at `now_s` by `issuer`.
fn set_claims(e: &OutboxEvent, issuer: &str, now_s: i64) -> SetClaims {
    let row: RowClaims = serde_json::from_str(&e.claims).unwrap_or_default();
    let (sub_id, events, txn) = match e.kind {
        EventKind::SsfVerification => {
            let mut ev = serde_json::Map::new();
            if let Some(st) = &row.state {
                ev.insert("state".into(), st.clone().into());
            }
            (
                serde_json::json!({"format": "opaque", "id": e.subject}),
                serde_json::json!({ ssf::VERIFICATION: ev }),
                None,
            )
        }
        _ => {
            let reason = row.reason.clone().unwrap_or_default();
            let mut ev = serde_json::Map::new();
            if e.kind == EventKind::SsfCredentialCompromise {
                ev.insert("credential_type".into(), ssf::REFRESH_TOKEN_CREDENTIAL.into());
            }
            ev.insert(
                "event_timestamp".into(),
                (row.at_ms.unwrap_or(e.created_at_ms) / 1000).into(),
            );
            if let Some(who) = initiating_entity(&reason) {
                ev.insert("initiating_entity".into(), who.into());
            }
            ev.insert("reason_admin".into(), serde_json::json!({ "en": reason }));
            let uri = match e.kind {
                EventKind::SsfCredentialCompromise => ssf::CREDENTIAL_COMPROMISE,
                _ => ssf::SESSION_REVOKED,
            };
            // One value for every SET of one revocation, revealing nothing of the family.
            let txn = row.family.as_deref().map(|f| {
                let h = crate::util::sha256(format!("txn\0{f}\0{}", row.at_ms.unwrap_or(0)).as_bytes());
                crate::util::b64url(&h[..16])
            });
            (
                serde_json::json!({"format": "iss_sub", "iss": issuer, "sub": e.subject}),
                serde_json::json!({ uri: ev }),
                txn,
            )
        }
    };
    SetClaims {
        iss: issuer.to_string(),
        iat: now_s,
        jti: e.jti.clone(),
        aud: e.client_id.clone(),
        txn,
        sub_id,
        sid: if e.kind == EventKind::SsfVerification {
            None
        } else {
            e.sid.clone()
        },
        events,
    }
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
            // RFC 8935 §2: the SET itself.
            EventKind::SsfSessionRevoked | EventKind::SsfCredentialCompromise | EventKind::SsfVerification => {
                ("application/secevent+jwt", jwt.to_string())
            }
        }
    }

    /// The `Accept` header of the request: RFC 8935 §2.1 asks for JSON (its error bodies).
    pub fn accept(&self) -> Option<&'static str> {
        match self.kind {
            EventKind::BackchannelLogout => None,
            _ => Some("application/json"),
        }
    }
}

/// What a receiver's answer means for the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Delivered,
    /// Try again later (this error recorded).
    Retry(String),
    /// The receiver refused this token for good (RFC 8935 §2.3 error other than `invalid_key`):
    /// the event is failed at once, sending the same token again would be refused again.
    Refused(String),
}

/// An RFC 8935 §2.3 error body.
#[derive(Deserialize)]
struct PushError {
    err: String,
    #[serde(default)]
    description: Option<String>,
}

/// What the answer `status` with `body` to an event of `kind` means: a 2xx is delivered
/// (RFC 8935 §2.2 asks for 202; Back-Channel Logout for 200). A SET's 400 with an RFC 8935 error
/// is a refusal, except `invalid_key` (the receiver may not have fetched a new key yet); any
/// other answer is tried again.
pub fn answer(kind: EventKind, status: u16, body: &[u8]) -> Answer {
    if (200..300).contains(&status) {
        return Answer::Delivered;
    }
    if kind != EventKind::BackchannelLogout && status == 400 {
        if let Ok(e) = serde_json::from_slice::<PushError>(body) {
            let mut what: String = e.err.chars().take(64).collect();
            if let Some(d) = e.description {
                what.push_str(": ");
                what.extend(d.chars().take(200));
            }
            let msg = format!("bad response: status 400, {what}");
            return if e.err == "invalid_key" {
                Answer::Retry(msg)
            } else {
                Answer::Refused(msg)
            };
        }
    }
    Answer::Retry(format!("bad response: status {status}"))
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
        EventKind::SsfSessionRevoked | EventKind::SsfCredentialCompromise | EventKind::SsfVerification => Token {
            kind: e.kind,
            typ: SET_TYP,
            claims: serde_json::to_value(set_claims(e, issuer, now_s)).expect("claims serialize"),
        },
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

    fn ssf_event(kind: EventKind, claims: &str, sid: Option<&str>) -> OutboxEvent {
        OutboxEvent {
            id: 2,
            jti: "j2".into(),
            kind,
            client_id: "rp".into(),
            endpoint: "https://rp.example/ssf".into(),
            subject: "u1".into(),
            sid: sid.map(str::to_owned),
            claims: claims.into(),
            created_at_ms: 7_000,
            attempts: 1,
        }
    }

    #[test]
    fn a_revocation_is_a_session_revoked_set_and_reuse_also_a_credential_compromise() {
        let row = r#"{"reason":"refresh_token_reuse","at_ms":5000,"family":"f1"}"#;
        let t = token(
            &ssf_event(EventKind::SsfSessionRevoked, row, Some("s1")),
            "https://as.example",
            100,
            120,
        );
        assert_eq!(t.typ, "secevent+jwt");
        let txn = t.claims["txn"].clone();
        assert!(txn.as_str().is_some_and(|t| t.len() == 22));
        assert_eq!(
            t.claims,
            serde_json::json!({"iss": "https://as.example", "iat": 100, "jti": "j2", "aud": "rp", "txn": txn,
                "sub_id": {"format": "iss_sub", "iss": "https://as.example", "sub": "u1"}, "sid": "s1",
                "events": {ssf::SESSION_REVOKED: {"event_timestamp": 5, "initiating_entity": "policy",
                    "reason_admin": {"en": "refresh_token_reuse"}}}})
        );
        assert!(t.claims.get("exp").is_none() && t.claims.get("sub").is_none());
        assert_eq!(t.body("a.b.c"), ("application/secevent+jwt", "a.b.c".to_string()));
        assert_eq!(t.accept(), Some("application/json"));
        let c = token(
            &ssf_event(EventKind::SsfCredentialCompromise, row, None),
            "https://as.example",
            100,
            120,
        );
        assert_eq!(c.claims["txn"], txn, "one txn for the two events of one reuse");
        assert_eq!(
            c.claims["events"],
            serde_json::json!({ssf::CREDENTIAL_COMPROMISE: {"credential_type": "refresh_token", "event_timestamp": 5,
                "initiating_entity": "policy", "reason_admin": {"en": "refresh_token_reuse"}}})
        );
        assert!(c.claims.get("sid").is_none());
        let logout = r#"{"reason":"session_ended","at_ms":6000,"family":"f2"}"#;
        let l = token(
            &ssf_event(EventKind::SsfSessionRevoked, logout, None),
            "https://as.example",
            100,
            120,
        );
        assert_ne!(l.claims["txn"], txn);
        assert_eq!(
            l.claims["events"][ssf::SESSION_REVOKED]["reason_admin"]["en"],
            "session_ended"
        );
    }

    #[test]
    fn a_verification_set_names_the_stream_and_echoes_the_state() {
        let v = token(
            &ssf_event(EventKind::SsfVerification, r#"{"state":"st"}"#, None),
            "https://as.example",
            100,
            120,
        );
        assert_eq!(v.claims["sub_id"], serde_json::json!({"format": "opaque", "id": "u1"}));
        assert_eq!(
            v.claims["events"],
            serde_json::json!({ssf::VERIFICATION: {"state": "st"}})
        );
        let none = token(
            &ssf_event(EventKind::SsfVerification, "{}", None),
            "https://as.example",
            100,
            120,
        );
        assert_eq!(none.claims["events"], serde_json::json!({ssf::VERIFICATION: {}}));
    }

    #[test]
    fn answers_are_delivered_refused_or_retried() {
        let set = EventKind::SsfSessionRevoked;
        assert_eq!(answer(set, 202, b""), Answer::Delivered);
        assert_eq!(answer(set, 200, b""), Answer::Delivered);
        assert_eq!(
            answer(set, 400, br#"{"err":"invalid_audience","description":"nope"}"#),
            Answer::Refused("bad response: status 400, invalid_audience: nope".into())
        );
        assert_eq!(
            answer(set, 400, br#"{"err":"invalid_key"}"#),
            Answer::Retry("bad response: status 400, invalid_key".into())
        );
        assert_eq!(
            answer(set, 400, b"oops"),
            Answer::Retry("bad response: status 400".into())
        );
        assert_eq!(answer(set, 503, b""), Answer::Retry("bad response: status 503".into()));
        // A logout receiver's 400 is not an RFC 8935 answer.
        assert_eq!(
            answer(EventKind::BackchannelLogout, 400, br#"{"err":"invalid_request"}"#),
            Answer::Retry("bad response: status 400".into())
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
