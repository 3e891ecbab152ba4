//! The device authorization grant's rules (RFC 8628): user codes from an unambiguous alphabet
//! shown as `XXXX-XXXX`, their normalisation, and what a poll of the token endpoint gets.

use super::model::DeviceCode;

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

/// Classifies a poll by `client_id` at `now_ms`.
pub fn poll(d: &DeviceCode, client_id: &str, now_ms: i64) -> Poll {
    if d.client_id != client_id || d.status == "consumed" {
        return Poll::Invalid;
    }
    if now_ms >= d.expires_at_ms {
        return Poll::Expired;
    }
    match d.status.as_str() {
        "denied" => Poll::Denied,
        "approved" => Poll::Issue,
        _ => match d.last_poll_ms {
            Some(last) if now_ms - last < d.interval_s * 1000 => Poll::SlowDown,
            _ => Poll::Pending,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(status: &str, last: Option<i64>) -> DeviceCode {
        DeviceCode {
            device_hash: vec![],
            user_code: "BCDFGHJK".into(),
            client_id: "c".into(),
            scope: "openid".into(),
            status: status.into(),
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
        assert_eq!(poll(&code("pending", None), "c", 1_000), Poll::Pending);
        assert_eq!(poll(&code("pending", Some(1_000)), "c", 3_000), Poll::SlowDown);
        assert_eq!(poll(&code("pending", Some(1_000)), "c", 6_000), Poll::Pending);
        assert_eq!(poll(&code("approved", None), "c", 1_000), Poll::Issue);
        assert_eq!(poll(&code("denied", None), "c", 1_000), Poll::Denied);
        assert_eq!(poll(&code("pending", None), "c", 600_000), Poll::Expired);
        assert_eq!(poll(&code("approved", None), "other", 1_000), Poll::Invalid);
        assert_eq!(poll(&code("consumed", None), "c", 1_000), Poll::Invalid);
    }
}
