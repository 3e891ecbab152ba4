//! The rules of a client's secrets (issue 13, docs/design/admin-api.md): which authenticate,
//! how many may, and what adding, rotating, deactivating and deleting one does to the list.
//! Pure functions over the stored list; `grants::secrets` loads it, applies one of these and
//! writes it back with a compare-and-set.
//!
//! - A secret authenticates while it is `active` and not expired ([`is_live`]).
//! - At most [`MAX_ACTIVE`] live secrets per client (the reference's limit): adding a third is
//!   refused; rotation never exceeds it (the new one, and the newest previous one until the
//!   overlap ends; older ones become inactive).
//! - The last live secret of a client cannot be deactivated or deleted: the client would be
//!   locked out (rotate instead).
//! - Only clients that authenticate with a secret have any ([`uses_secrets`]).

use super::model::{AuthMethod, ClientSecret, SecretStatus};

/// Most live (active, unexpired) secrets a client may have.
pub const MAX_ACTIVE: usize = 2;
/// Most entries kept in a client's list: beyond it, the oldest inactive or expired entries go
/// (rotation leaves one inactive entry each time).
pub const MAX_KEPT: usize = 10;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 200;

/// Why a change to a client's secrets is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client authenticates without a secret (`none`, `private_key_jwt`).
    NoSecrets(AuthMethod),
    /// It has [`MAX_ACTIVE`] live secrets already.
    LimitReached,
    /// No secret with this id.
    UnknownSecret(String),
    /// It is the client's last live secret.
    WouldLockOut(String),
    /// A bad value: the field and why.
    Invalid(&'static str, String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoSecrets(m) => write!(f, "the client authenticates with {m}, without a client secret"),
            Refusal::LimitReached => write!(
                f,
                "the client has {MAX_ACTIVE} active secrets already (the limit): deactivate or delete one, or rotate"
            ),
            Refusal::UnknownSecret(id) => write!(f, "no secret {id}"),
            Refusal::WouldLockOut(id) => write!(
                f,
                "secret {id} is the client's last active secret: the client would be locked out (rotate instead)"
            ),
            Refusal::Invalid(field, why) => write!(f, "{field}: {why}"),
        }
    }
}

/// Whether a client with this method authenticates with a secret.
pub fn uses_secrets(m: AuthMethod) -> bool {
    matches!(m, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
}

/// Whether `s` authenticates at `now_ms`: active and not expired.
pub fn is_live(s: &ClientSecret, now_ms: i64) -> bool {
    s.status == SecretStatus::Active && s.expires_at_ms.is_none_or(|e| now_ms < e)
}

/// The status to show at `now_ms`: `inactive` once it no longer authenticates.
pub fn status_at(s: &ClientSecret, now_ms: i64) -> SecretStatus {
    if is_live(s, now_ms) {
        SecretStatus::Active
    } else {
        SecretStatus::Inactive
    }
}

/// A new active secret whose SHA-256 is `hash`.
pub fn entry(
    id: String,
    hash: Vec<u8>,
    description: Option<String>,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> ClientSecret {
    ClientSecret {
        id,
        hash,
        expires_at_ms,
        description,
        status: SecretStatus::Active,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    }
}

/// Completes legacy entries (stored before secrets had ids): the id `legacy-<position>` (stable:
/// the first write stores it), created and updated at the client's creation.
pub fn normalize(list: &mut [ClientSecret], client_created_at_ms: i64) {
    for (i, s) in list.iter_mut().enumerate() {
        if s.id.is_empty() {
            s.id = format!("legacy-{i}");
        }
        if s.created_at_ms == 0 {
            s.created_at_ms = client_created_at_ms;
        }
        if s.updated_at_ms == 0 {
            s.updated_at_ms = s.created_at_ms;
        }
    }
}

/// A requested description and expiry (Unix seconds), checked: the description at most
/// [`MAX_DESCRIPTION`] characters without control characters, the expiry in the future.
/// Returns the expiry in milliseconds.
pub fn check_request(
    description: Option<&str>,
    expires_at_s: Option<i64>,
    now_ms: i64,
) -> Result<Option<i64>, Refusal> {
    if let Some(d) = description {
        if d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control) {
            return Err(Refusal::Invalid(
                "description",
                format!("at most {MAX_DESCRIPTION} characters, without control characters"),
            ));
        }
    }
    match expires_at_s {
        None => Ok(None),
        Some(s) => match s.checked_mul(1000) {
            Some(ms) if ms > now_ms => Ok(Some(ms)),
            Some(_) => Err(Refusal::Invalid(
                "expires_at",
                "must be in the future (Unix seconds)".into(),
            )),
            None => Err(Refusal::Invalid("expires_at", "out of range (Unix seconds)".into())),
        },
    }
}

fn live_count(list: &[ClientSecret], now_ms: i64) -> usize {
    list.iter().filter(|s| is_live(s, now_ms)).count()
}

/// Drops the oldest entries that no longer authenticate while the list is longer than
/// [`MAX_KEPT`].
fn prune(list: &mut Vec<ClientSecret>, now_ms: i64) {
    while list.len() > MAX_KEPT {
        let oldest = list
            .iter()
            .enumerate()
            .filter(|(_, s)| !is_live(s, now_ms))
            .min_by_key(|(_, s)| s.created_at_ms)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                list.remove(i);
            }
            None => return,
        }
    }
}

/// Adds `new` to the list, unless the client has [`MAX_ACTIVE`] live secrets already.
pub fn add(list: &mut Vec<ClientSecret>, new: ClientSecret, now_ms: i64) -> Result<(), Refusal> {
    if live_count(list, now_ms) >= MAX_ACTIVE {
        return Err(Refusal::LimitReached);
    }
    list.push(new);
    prune(list, now_ms);
    Ok(())
}

/// Rotation: `new` is added; the newest previous live secret keeps working until
/// `now_ms + overlap_ms` (or its own earlier expiry); every other live one becomes inactive.
/// Returns when the previous secret stops working (None when there was none).
pub fn rotate(list: &mut Vec<ClientSecret>, new: ClientSecret, now_ms: i64, overlap_ms: i64) -> Option<i64> {
    let newest = list
        .iter()
        .enumerate()
        .filter(|(_, s)| is_live(s, now_ms))
        .max_by_key(|(i, s)| (s.created_at_ms, *i))
        .map(|(i, _)| i);
    let mut previous = None;
    for (i, s) in list.iter_mut().enumerate() {
        if !is_live(s, now_ms) {
            continue;
        }
        if Some(i) == newest {
            let until = s
                .expires_at_ms
                .map_or(now_ms + overlap_ms, |e| e.min(now_ms + overlap_ms));
            s.expires_at_ms = Some(until);
            previous = Some(until);
        } else {
            s.status = SecretStatus::Inactive;
        }
        s.updated_at_ms = now_ms;
    }
    list.push(new);
    prune(list, now_ms);
    previous
}

/// The position of secret `id`, and whether removing it from use would leave the client
/// without a live secret.
fn find(list: &[ClientSecret], id: &str, now_ms: i64) -> Result<usize, Refusal> {
    let i = list
        .iter()
        .position(|s| s.id == id)
        .ok_or_else(|| Refusal::UnknownSecret(id.to_string()))?;
    if is_live(&list[i], now_ms) && live_count(list, now_ms) == 1 {
        return Err(Refusal::WouldLockOut(id.to_string()));
    }
    Ok(i)
}

/// Deactivates secret `id` (it stops authenticating at once); returns it.
pub fn deactivate(list: &mut [ClientSecret], id: &str, now_ms: i64) -> Result<ClientSecret, Refusal> {
    let i = find(list, id, now_ms)?;
    let s = &mut list[i];
    if s.status != SecretStatus::Inactive {
        s.status = SecretStatus::Inactive;
        s.updated_at_ms = now_ms;
    }
    Ok(s.clone())
}

/// Deletes secret `id`.
pub fn delete(list: &mut Vec<ClientSecret>, id: &str, now_ms: i64) -> Result<(), Refusal> {
    let i = find(list, id, now_ms)?;
    list.remove(i);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, created: i64, expires: Option<i64>) -> ClientSecret {
        ClientSecret {
            expires_at_ms: expires,
            ..entry(id.into(), vec![created as u8], None, None, created)
        }
    }

    #[test]
    fn only_active_unexpired_secrets_are_live() {
        let mut a = s("a", 1, Some(100));
        assert!(is_live(&a, 99));
        assert!(!is_live(&a, 100));
        a.expires_at_ms = None;
        a.status = SecretStatus::Inactive;
        assert!(!is_live(&a, 0));
        assert_eq!(status_at(&a, 0), SecretStatus::Inactive);
    }

    #[test]
    fn add_stops_at_two_live_secrets_and_expired_ones_do_not_count() {
        let mut l = vec![s("a", 1, None)];
        add(&mut l, s("b", 2, None), 10).unwrap();
        assert_eq!(add(&mut l, s("c", 3, None), 10), Err(Refusal::LimitReached));
        assert_eq!(l.len(), 2);
        l[0].expires_at_ms = Some(20);
        add(&mut l, s("c", 3, None), 20).unwrap();
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn rotation_keeps_the_newest_previous_for_the_overlap_and_retires_older_ones() {
        let mut l = vec![s("old", 1, None), s("newer", 2, None), s("gone", 0, Some(5))];
        let until = rotate(&mut l, s("new", 10, None), 10, 100);
        assert_eq!(until, Some(110));
        let by = |id: &str| l.iter().find(|x| x.id == id).unwrap().clone();
        assert_eq!(by("newer").expires_at_ms, Some(110));
        assert_eq!(by("newer").status, SecretStatus::Active);
        assert_eq!(by("old").status, SecretStatus::Inactive);
        assert_eq!(by("new").expires_at_ms, None);
        assert_eq!(live_count(&l, 10), 2);
        // An earlier expiry is not extended.
        let mut l = vec![s("a", 1, Some(50))];
        assert_eq!(rotate(&mut l, s("b", 10, None), 10, 100), Some(50));
        // No previous secret.
        let mut l = vec![];
        assert_eq!(rotate(&mut l, s("b", 10, None), 10, 100), None);
    }

    #[test]
    fn the_last_live_secret_cannot_be_deactivated_or_deleted() {
        let mut l = vec![s("a", 1, None), s("b", 2, Some(5))];
        assert_eq!(deactivate(&mut l, "a", 10), Err(Refusal::WouldLockOut("a".into())));
        assert_eq!(delete(&mut l, "a", 10), Err(Refusal::WouldLockOut("a".into())));
        // The expired one can go.
        delete(&mut l, "b", 10).unwrap();
        assert_eq!(delete(&mut l, "b", 10), Err(Refusal::UnknownSecret("b".into())));
        l.push(s("c", 3, None));
        assert_eq!(deactivate(&mut l, "a", 10).unwrap().status, SecretStatus::Inactive);
        assert_eq!(delete(&mut l, "c", 10), Err(Refusal::WouldLockOut("c".into())));
        delete(&mut l, "a", 10).unwrap();
    }

    #[test]
    fn legacy_entries_get_stable_ids_and_times() {
        let mut l: Vec<ClientSecret> =
            serde_json::from_str(r#"[{"hash":[1],"expires_at_ms":null},{"hash":[2],"expires_at_ms":9}]"#).unwrap();
        normalize(&mut l, 7);
        assert_eq!((l[0].id.as_str(), l[1].id.as_str()), ("legacy-0", "legacy-1"));
        assert_eq!(
            (l[0].created_at_ms, l[0].updated_at_ms, l[0].status),
            (7, 7, SecretStatus::Active)
        );
        assert_eq!(l[1].expires_at_ms, Some(9));
    }

    #[test]
    fn requests_are_checked_and_the_list_is_bounded() {
        assert!(check_request(Some("ci"), Some(2), 1000).is_ok());
        assert!(check_request(Some("ci"), Some(1), 1000).is_err());
        assert!(check_request(Some("a\nb"), None, 0).is_err());
        assert!(check_request(None, Some(i64::MAX), 0).is_err());
        let mut l: Vec<ClientSecret> = (0..MAX_KEPT as i64).map(|i| s(&i.to_string(), i, Some(0))).collect();
        l.push(s("x", 100, None));
        rotate(&mut l, s("y", 200, None), 200, 10);
        assert_eq!(l.len(), MAX_KEPT);
        assert!(l.iter().all(|x| x.id != "0" && x.id != "1"));
    }
}
