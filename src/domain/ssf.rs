//! The OpenID Shared Signals Framework 1.0 transmitter's rules (docs/design/events.md,
//! "Security events"): the event types it sends, a client's push stream (RFC 8935) and how a
//! stream management request (SSF §8.1.1) creates, updates or replaces it. Pure rules: the
//! use cases are `grants::ssf`, the statements `store::ops`, the Security Event Tokens
//! `domain::events::token`.
//!
//! - One stream per client, created with the client's own access token (`client_credentials`):
//!   the stream only ever carries events about that client's grants.
//! - Event types: CAEP `session-revoked` whenever one of the client's families is revoked, and
//!   RISC `credential-compromise` (`credential_type` `refresh_token`) in addition when the cause is
//!   refresh token reuse. The verification event is sent on request, whatever was requested.
//! - The receiver's URL is checked as every receiver URL is (`events::check_receiver_uri`:
//!   https, no credentials, no fragment; http only on loopback when the operator allows it).

use super::events::check_receiver_uri;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The SSF version implemented (the final 1.0 specification).
pub const SPEC_VERSION: &str = "1_0";
/// Push delivery (RFC 8935), the only delivery method.
pub const PUSH: &str = "urn:ietf:rfc:8935";
/// Poll delivery (RFC 8936): what a stream without `delivery` asks for; not supported.
pub const POLL: &str = "urn:ietf:rfc:8936";
/// OAuth 2.0 (`authorization_schemes`): a Bearer access token from `client_credentials`.
pub const OAUTH: &str = "urn:ietf:rfc:6749";
/// CAEP 1.0 §3.1: one of the client's families (a session of its user) was revoked.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// RISC 1.0 §2.7: the family's refresh token was presented again after it was rotated: the
/// credential is in two hands.
pub const CREDENTIAL_COMPROMISE: &str = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise";
/// SSF 1.0 §8.1.4.1: the verification event.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// The event types a stream may request (`events_supported`).
pub const SUPPORTED: [&str; 2] = [SESSION_REVOKED, CREDENTIAL_COMPROMISE];
/// The `credential_type` of a refresh token in `credential-compromise` (a value the CAEP
/// credential-change list leaves to transmitter and receiver: documented in events.md).
pub const REFRESH_TOKEN_CREDENTIAL: &str = "refresh_token";

/// At most this many `events_requested` entries, each at most [`MAX_EVENT_URI`] bytes.
pub const MAX_EVENTS_REQUESTED: usize = 32;
pub const MAX_EVENT_URI: usize = 512;
/// A longer `description` is truncated (SSF §8.1.1 allows it), to this many characters.
pub const MAX_DESCRIPTION: usize = 256;
/// The longest `state` of a verification request (bytes).
pub const MAX_STATE: usize = 1024;

/// A client's push stream (`ssf_streams`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The client whose stream it is, and the SETs' `aud`.
    pub client_id: String,
    /// Opaque, random, assigned at creation.
    pub stream_id: String,
    /// Where SETs are POSTed: exactly this URL.
    pub endpoint_url: String,
    /// As the receiver sent them (unknown ones included, SSF §8.1.1: ignored, echoed).
    pub events_requested: Vec<String>,
    /// Whether `session-revoked` is delivered (derived from `events_requested`).
    pub session_revoked: bool,
    /// Whether `credential-compromise` is delivered (derived from `events_requested`).
    pub credential_compromise: bool,
    pub description: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Stream {
    /// `events_delivered`: the supported event types it requested.
    pub fn events_delivered(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.session_revoked {
            v.push(SESSION_REVOKED);
        }
        if self.credential_compromise {
            v.push(CREDENTIAL_COMPROMISE);
        }
        v
    }
}

/// `delivery` of a stream (SSF §7.1.1).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Delivery {
    /// `urn:ietf:rfc:8935` (push), the only method supported.
    pub method: String,
    /// Where the SETs are POSTed: https (http only on loopback where the operator allows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Not supported: a request carrying it is refused (the transmitter would have to send it).
    #[serde(default, skip_serializing)]
    #[schema(value_type = Option<String>)]
    pub authorization_header: Option<Value>,
}

/// A stream management request's body (SSF §8.1.1.1, .3, .4): the receiver-supplied properties;
/// transmitter-supplied ones may be present and must then match.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct StreamRequest {
    /// Required to update or replace; refused on creation.
    #[serde(default)]
    pub stream_id: Option<String>,
    #[serde(default)]
    pub delivery: Option<Delivery>,
    #[serde(default)]
    pub events_requested: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub iss: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub aud: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub events_supported: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub events_delivered: Option<Value>,
}

/// What the transmitter checks a stream against: its issuer and the operator's loopback rule.
#[derive(Clone, Copy, Debug)]
pub struct Transmitter<'a> {
    pub issuer: &'a str,
    pub allow_http_loopback: bool,
}

/// `events_requested` checked (bounded sizes), and the flags of what it delivers.
fn requested(events: Vec<String>) -> Result<(Vec<String>, bool, bool), String> {
    if events.len() > MAX_EVENTS_REQUESTED {
        return Err(format!("events_requested: at most {MAX_EVENTS_REQUESTED} event types"));
    }
    if events.iter().any(|e| e.is_empty() || e.len() > MAX_EVENT_URI) {
        return Err(format!(
            "events_requested: each event type is a non-empty URI of at most {MAX_EVENT_URI} bytes"
        ));
    }
    let has = |t: &str| events.iter().any(|e| e == t);
    let (s, c) = (has(SESSION_REVOKED), has(CREDENTIAL_COMPROMISE));
    Ok((events, s, c))
}

/// The receiver's URL of a push `delivery`.
fn endpoint(d: &Delivery, t: Transmitter<'_>) -> Result<String, String> {
    if d.method == POLL {
        return Err(format!(
            "delivery.method: poll delivery ({POLL}) is not supported; use {PUSH}"
        ));
    }
    if d.method != PUSH {
        return Err(format!("delivery.method: only {PUSH} is supported"));
    }
    if d.authorization_header.is_some() {
        return Err("delivery.authorization_header is not supported".into());
    }
    let Some(url) = d.endpoint_url.as_deref() else {
        return Err("delivery.endpoint_url is required for push delivery".into());
    };
    check_receiver_uri(url, t.allow_http_loopback).map_err(|e| format!("delivery.endpoint_url {e}"))?;
    Ok(url.to_string())
}

/// A description kept to [`MAX_DESCRIPTION`] characters.
fn description(d: Option<String>) -> Option<String> {
    d.map(|s| s.chars().take(MAX_DESCRIPTION).collect())
}

/// The transmitter-supplied properties of `req`, where present, match what the stream of
/// `client_id` has (`current`: its `events_delivered` before the change) (SSF §8.1.1.3).
fn supplied_match(
    req: &StreamRequest,
    t: Transmitter<'_>,
    client_id: &str,
    current: Option<&Stream>,
) -> Result<(), String> {
    let aud_ok = |v: &Value| match v {
        Value::String(s) => s == client_id,
        Value::Array(a) => a.len() == 1 && a[0] == client_id,
        _ => false,
    };
    if req.iss.as_ref().is_some_and(|v| v != t.issuer) {
        return Err("iss does not match the transmitter's issuer".into());
    }
    if req.aud.as_ref().is_some_and(|v| !aud_ok(v)) {
        return Err("aud does not match the stream's audience".into());
    }
    if req
        .events_supported
        .as_ref()
        .is_some_and(|v| *v != serde_json::json!(SUPPORTED))
    {
        return Err("events_supported does not match the supported event types".into());
    }
    if let Some(v) = &req.events_delivered {
        let expected = current.map(Stream::events_delivered).unwrap_or_default();
        if *v != serde_json::json!(expected) {
            return Err("events_delivered does not match the stream's".into());
        }
    }
    Ok(())
}

/// A new stream for `client_id` (SSF §8.1.1.1): push delivery to a checked URL.
pub fn create(
    client_id: &str,
    stream_id: String,
    req: StreamRequest,
    t: Transmitter<'_>,
    now_ms: i64,
) -> Result<Stream, String> {
    if req.stream_id.is_some() {
        return Err("stream_id is assigned by the transmitter".into());
    }
    supplied_match(&req, t, client_id, None)?;
    let Some(d) = &req.delivery else {
        return Err(format!("delivery is required: poll delivery ({POLL}) is not supported"));
    };
    let endpoint_url = endpoint(d, t)?;
    let (events_requested, session_revoked, credential_compromise) =
        requested(req.events_requested.unwrap_or_default())?;
    Ok(Stream {
        client_id: client_id.to_string(),
        stream_id,
        endpoint_url,
        events_requested,
        session_revoked,
        credential_compromise,
        description: description(req.description),
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    })
}

/// How a change treats what the request leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// PATCH (SSF §8.1.1.3): what is missing stays.
    Update,
    /// PUT (SSF §8.1.1.4): what is missing is removed (`delivery` is required).
    Replace,
}

/// `current` changed by `req` (its `stream_id` must name it: checked by the caller, who looked
/// the stream up by it).
pub fn change(
    current: &Stream,
    req: StreamRequest,
    how: Change,
    t: Transmitter<'_>,
    now_ms: i64,
) -> Result<Stream, String> {
    supplied_match(&req, t, &current.client_id, Some(current))?;
    let endpoint_url = match (&req.delivery, how) {
        (Some(d), _) => endpoint(d, t)?,
        (None, Change::Update) => current.endpoint_url.clone(),
        (None, Change::Replace) => return Err("delivery is required to replace a stream".into()),
    };
    let events = match (req.events_requested, how) {
        (Some(e), _) => e,
        (None, Change::Update) => current.events_requested.clone(),
        (None, Change::Replace) => Vec::new(),
    };
    let (events_requested, session_revoked, credential_compromise) = requested(events)?;
    let description = match (req.description, how) {
        (Some(d), _) => description(Some(d)),
        (None, Change::Update) => current.description.clone(),
        (None, Change::Replace) => None,
    };
    Ok(Stream {
        endpoint_url,
        events_requested,
        session_revoked,
        credential_compromise,
        description,
        updated_at_ms: now_ms,
        ..current.clone()
    })
}

/// A verification request's `state` (SSF §8.1.4.2), bounded.
pub fn check_state(state: Option<&str>) -> Result<(), String> {
    match state {
        Some(s) if s.len() > MAX_STATE => Err(format!("state: at most {MAX_STATE} bytes")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Transmitter<'static> = Transmitter {
        issuer: "https://as.example",
        allow_http_loopback: false,
    };

    fn req(v: Value) -> StreamRequest {
        serde_json::from_value(v).unwrap()
    }

    fn push(url: &str) -> Value {
        serde_json::json!({"method": PUSH, "endpoint_url": url})
    }

    #[test]
    fn a_stream_delivers_the_supported_types_it_requested_and_echoes_the_rest() {
        let s = create(
            "c1",
            "s1".into(),
            req(serde_json::json!({"delivery": push("https://rp.example/ssf"),
                "events_requested": [SESSION_REVOKED, "urn:example:other"], "description": "d"})),
            T,
            5,
        )
        .unwrap();
        assert_eq!(s.endpoint_url, "https://rp.example/ssf");
        assert_eq!(s.events_requested, [SESSION_REVOKED, "urn:example:other"]);
        assert_eq!(s.events_delivered(), [SESSION_REVOKED]);
        assert!(!s.credential_compromise);
        assert_eq!((s.created_at_ms, s.description.as_deref()), (5, Some("d")));
    }

    #[test]
    fn bad_streams_are_refused_with_the_reason() {
        let bad = |v: Value| create("c1", "s1".into(), req(v), T, 0).unwrap_err();
        assert!(bad(serde_json::json!({})).contains("poll"));
        assert!(bad(serde_json::json!({"delivery": {"method": POLL}})).contains("not supported"));
        assert!(bad(serde_json::json!({"delivery": {"method": "urn:x"}})).contains("only"));
        assert!(bad(serde_json::json!({"delivery": {"method": PUSH}})).contains("endpoint_url is required"));
        assert!(bad(serde_json::json!({"delivery": push("http://rp.example/ssf")})).contains("https"));
        assert!(bad(serde_json::json!({"delivery": push("http://127.0.0.1:9/ssf")})).contains("allow_http_loopback"));
        assert!(bad(
            serde_json::json!({"delivery": {"method": PUSH, "endpoint_url": "https://rp.example/",
            "authorization_header": "Bearer x"}})
        )
        .contains("authorization_header"));
        let ok = push("https://rp.example/ssf");
        assert!(bad(serde_json::json!({"delivery": ok, "stream_id": "x"})).contains("assigned"));
        assert!(bad(serde_json::json!({"delivery": ok, "iss": "https://other"})).contains("iss"));
        assert!(bad(serde_json::json!({"delivery": ok, "aud": "c2"})).contains("aud"));
        let many: Vec<String> = (0..33).map(|i| format!("urn:e:{i}")).collect();
        assert!(bad(serde_json::json!({"delivery": ok, "events_requested": many})).contains("at most"));
        assert!(bad(serde_json::json!({"delivery": ok, "events_requested": [""]})).contains("non-empty"));
        let loopback = Transmitter {
            allow_http_loopback: true,
            ..T
        };
        let r = req(serde_json::json!({"delivery": push("http://127.0.0.1:9/ssf"), "aud": ["c1"], "iss": T.issuer}));
        assert!(create("c1", "s1".into(), r, loopback, 0).is_ok());
    }

    #[test]
    fn update_keeps_what_is_missing_and_replace_removes_it() {
        let s = create(
            "c1",
            "s1".into(),
            req(serde_json::json!({"delivery": push("https://rp.example/a"),
                "events_requested": [SESSION_REVOKED, CREDENTIAL_COMPROMISE], "description": "d"})),
            T,
            1,
        )
        .unwrap();
        let u = change(
            &s,
            req(serde_json::json!({"stream_id": "s1", "events_requested": [CREDENTIAL_COMPROMISE]})),
            Change::Update,
            T,
            2,
        )
        .unwrap();
        assert_eq!(
            (u.endpoint_url.as_str(), u.description.as_deref()),
            ("https://rp.example/a", Some("d"))
        );
        assert_eq!(u.events_delivered(), [CREDENTIAL_COMPROMISE]);
        assert_eq!((u.created_at_ms, u.updated_at_ms), (1, 2));
        let r = change(
            &s,
            req(serde_json::json!({"stream_id": "s1", "delivery": push("https://rp.example/b")})),
            Change::Replace,
            T,
            3,
        )
        .unwrap();
        assert_eq!(
            (
                r.endpoint_url.as_str(),
                r.description.as_deref(),
                r.events_delivered().len()
            ),
            ("https://rp.example/b", None, 0)
        );
        assert!(change(&s, req(serde_json::json!({"stream_id": "s1"})), Change::Replace, T, 3).is_err());
        // events_delivered, if sent, is the stream's before the change.
        let stale = req(serde_json::json!({"stream_id": "s1", "events_delivered": [SESSION_REVOKED]}));
        assert!(change(&s, stale, Change::Update, T, 3)
            .unwrap_err()
            .contains("events_delivered"));
        let right =
            req(serde_json::json!({"stream_id": "s1", "events_delivered": [SESSION_REVOKED, CREDENTIAL_COMPROMISE]}));
        assert!(change(&s, right, Change::Update, T, 3).is_ok());
    }

    #[test]
    fn descriptions_are_truncated_and_states_bounded() {
        let long = "é".repeat(300);
        let s = create(
            "c1",
            "s1".into(),
            req(serde_json::json!({"delivery": push("https://rp.example/a"), "description": long})),
            T,
            0,
        )
        .unwrap();
        assert_eq!(s.description.unwrap().chars().count(), MAX_DESCRIPTION);
        assert!(check_state(Some(&"x".repeat(MAX_STATE))).is_ok());
        assert!(check_state(Some(&"x".repeat(MAX_STATE + 1))).is_err());
        assert!(check_state(None).is_ok());
    }
}
