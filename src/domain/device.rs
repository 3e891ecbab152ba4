//! The device authorization grant's rules (RFC 8628): user codes from an unambiguous alphabet
//! shown as `XXXX-XXXX`, their normalisation, and what a poll of the token endpoint gets.

use super::model::{DeviceCode, DeviceStatus};

/// Consonants without look-alikes (RFC 8628 §6.1): no vowels (no words), no 0/O, 1/I/L.
pub const ALPHABET: &[u8] = b"BCDFGHJKMNPQRSTVWXZ";

/// A random 8-character user code (≈ 34 bits), without the dash.
pub fn new_user_code() -> String {
    let bytes = crate::util::random_bytes::<8>();
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// `XXXX-XXXX` for display.
pub fn display(code: &str) -> String {
    if code.len() == 8 {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}

/// What a person typed, normalised: upper case, dashes and spaces dropped; `None` when it
/// cannot be a user code.
pub fn normalize(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (s.len() == 8 && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    Pending,
    /// Polled faster than the interval: the interval grows by 5 s (RFC 8628 §3.5).
    SlowDown,
    Denied,
    Expired,
    /// Approved: issue tokens and consume the code.
    Issue,
    /// Already exchanged, or another client's code.
    Invalid,
}

/// Classifies a poll by `client_id` at `now_ms`. `session_ends_at_ms` is the end of the session
/// that approved the code (`grant::session_ends_at`), `None` when there is none (any more): an
/// approval only turns into tokens while its session is live (`grant::session_live`). A device
/// whose approval died with the session is told `expired_token` (RFC 8628 §3.5: the
/// authorization session has concluded, the device may start a new one): the user did not deny
/// anything, and `access_denied` would tell the device not to ask again.
pub fn poll(d: &DeviceCode, client_id: &str, now_ms: i64, session_ends_at_ms: Option<i64>) -> Poll {
    if d.client_id != client_id || d.status == DeviceStatus::Consumed {
        return Poll::Invalid;
    }
    if now_ms >= d.expires_at_ms || d.status == DeviceStatus::Ended {
        return Poll::Expired;
    }
    match d.status {
        DeviceStatus::Denied => Poll::Denied,
        DeviceStatus::Approved if !super::grant::session_live(session_ends_at_ms, now_ms) => Poll::Expired,
        DeviceStatus::Approved => Poll::Issue,
        DeviceStatus::Pending | DeviceStatus::Consumed | DeviceStatus::Ended => match d.last_poll_ms {
            Some(last) if now_ms - last < d.interval_s * 1000 => Poll::SlowDown,
            _ => Poll::Pending,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(status: &str, last: Option<i64>) -> DeviceCode {
        let status = DeviceStatus::parse(status).expect("a device status");
        DeviceCode {
            device_hash: vec![],
            user_code: "BCDFGHJK".into(),
            client_id: "c".into(),
            scope: crate::domain::scope::Scope::parse("openid").unwrap(),
            status,
            interval_s: 5,
            last_poll_ms: last,
            user_id: None,
            session_id: None,
            auth_time: None,
            family_id: None,
            created_at_ms: 0,
            expires_at_ms: 600_000,
        }
    }

    #[test]
    fn user_codes_are_unambiguous_and_normalised() {
        for _ in 0..100 {
            let c = new_user_code();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(normalize(&display(&c).to_lowercase()), Some(c));
        }
        assert_eq!(normalize("bcdf ghjk"), Some("BCDFGHJK".into()));
        assert_eq!(normalize("BCDF-GHJ0"), None);
        assert_eq!(normalize("BCDF-GHJ"), None);
    }

    #[test]
    fn polling_states() {
        let live = Some(10_000_000);
        assert_eq!(poll(&code("pending", None), "c", 1_000, live), Poll::Pending);
        assert_eq!(poll(&code("pending", Some(1_000)), "c", 3_000, live), Poll::SlowDown);
        assert_eq!(poll(&code("pending", Some(1_000)), "c", 6_000, live), Poll::Pending);
        assert_eq!(poll(&code("approved", None), "c", 1_000, live), Poll::Issue);
        assert_eq!(poll(&code("denied", None), "c", 1_000, live), Poll::Denied);
        assert_eq!(poll(&code("pending", None), "c", 600_000, live), Poll::Expired);
        assert_eq!(poll(&code("approved", None), "other", 1_000, live), Poll::Invalid);
        assert_eq!(poll(&code("consumed", None), "c", 1_000, live), Poll::Invalid);
    }

    #[test]
    fn an_approval_dies_with_its_session() {
        assert_eq!(poll(&code("approved", None), "c", 1_000, Some(1_000)), Poll::Expired);
        assert_eq!(poll(&code("approved", None), "c", 1_000, None), Poll::Expired);
        assert_eq!(poll(&code("ended", None), "c", 1_000, Some(5_000)), Poll::Expired);
        // A pending code has no session yet.
        assert_eq!(poll(&code("pending", None), "c", 1_000, None), Poll::Pending);
    }
}
