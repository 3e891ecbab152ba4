//! The token-family state machine (SPEC §4 rules 1–6, 8) and the authorization-code checks.
//!
//! A refresh token's state is derived from its generation and its family's:
//! `generation == family.generation` is *current*, `family.generation - 1` is the *immediate
//! predecessor* (its successor has not been used yet, or the family's generation would have
//! moved on), anything lower is *old*. [`decide`] classifies one presentation; each store makes
//! the decision and its write atomic: SQLite runs both in the single writer's transaction,
//! PostgreSQL guards the write with the generation and grace count the decision saw and decides
//! again when the guard fails. See `docs/design/refresh-rotation.md`.

use super::model::{AuthCode, Family};
use super::scope::Scope;

/// Policy knobs for one refresh, from config (and per-client overrides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Grace window for the immediate predecessor; 0 disables reuse entirely.
    pub grace_ms: i64,
    pub grace_count: i64,
    pub idle_ttl_ms: i64,
}

/// What the caller presents besides the token.
#[derive(Clone, Debug)]
pub struct RefreshAttempt<'a> {
    pub client_id: &'a str,
    pub requested_scope: Option<&'a Scope>,
    /// RAR details asked for (rule 7), already validated.
    pub requested_details: Option<&'a [super::rar::Detail]>,
    /// RFC 7638 thumbprint of the DPoP proof's key, when a proof was sent.
    pub dpop_jkt: Option<&'a str>,
    pub now_ms: i64,
}

/// Why a refresh is refused without changing anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    Revoked,
    WrongClient,
    Expired,
    InvalidScope,
    InvalidAuthorizationDetails,
    DpopKeyMismatch,
    DpopProofRequired,
    DpopReplay,
}

impl Reject {
    pub fn description(self) -> &'static str {
        match self {
            Reject::Revoked => "refresh token is revoked",
            Reject::WrongClient => "refresh token was issued to another client",
            Reject::Expired => "refresh token is expired",
            Reject::InvalidScope => "requested scope exceeds the scope granted",
            Reject::InvalidAuthorizationDetails => "requested authorization_details are not covered by the grant",
            Reject::DpopKeyMismatch => "DPoP proof key does not match the key the token is bound to",
            Reject::DpopProofRequired => "refresh token is DPoP-bound: a DPoP proof is required",
            Reject::DpopReplay => "DPoP proof jti has been used before",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Current token: retire it, issue generation + 1.
    Rotate,
    /// Immediate predecessor inside the grace window: issue a sibling of the current generation.
    GraceReissue,
    /// A rotated token outside the grace rules: revoke the family (rule 2).
    Reuse,
    Reject(Reject),
}

/// The grace rule of a policy (SPEC §4 rule 3): how long and how often the immediate
/// predecessor of the current token may still be presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grace {
    /// 0 disables reuse entirely.
    pub ms: i64,
    pub count: i64,
}

impl RefreshPolicy {
    pub fn grace(&self) -> Grace {
        Grace {
            ms: self.grace_ms,
            count: self.grace_count,
        }
    }
}

/// The state a refresh token of a given generation of a given family is in at a given time.
/// The one statement of these rules: [`decide`] (refresh), introspection and revocation
/// (`grants::introspection`, `grants::revocation`) all read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// The family is revoked (reuse, logout, password change, revocation, …).
    Revoked,
    /// The family is past its absolute expiry (counted from the sign-in).
    ExpiredAbsolute,
    /// The current generation, past the family's idle expiry.
    ExpiredIdle,
    /// The current generation, usable: it rotates.
    Current,
    /// The immediate predecessor of the current generation, inside the grace window with grace
    /// presentations left: it may be presented again.
    PredecessorInGrace,
    /// The immediate predecessor outside the grace rules: presenting it is reuse.
    PredecessorOutOfGrace,
    /// Older than the immediate predecessor: presenting it is reuse.
    Rotated,
    /// Newer than the family's generation: cannot happen with a consistent store.
    Unknown,
}

impl TokenState {
    /// Whether the token is active in the RFC 7662 sense: only the current, unexpired token of
    /// a live family (a predecessor in grace is usable once more, but not "active").
    pub fn is_active(self) -> bool {
        self == TokenState::Current
    }

    /// Whether presenting it for refresh is reuse (SPEC §4 rule 2).
    pub fn is_reuse(self) -> bool {
        matches!(self, TokenState::PredecessorOutOfGrace | TokenState::Rotated)
    }
}

/// The state of the token of `generation` of `family` at `now_ms` under `grace`.
pub fn token_state(family: &Family, generation: i64, now_ms: i64, grace: Grace) -> TokenState {
    // A revocation may be scheduled (an operator's `grace_period`): until then the family lives.
    if family.is_revoked(now_ms) {
        return TokenState::Revoked;
    }
    if now_ms >= family.absolute_expires_at_ms {
        return TokenState::ExpiredAbsolute;
    }
    if generation < family.generation {
        if generation != family.generation - 1 {
            return TokenState::Rotated;
        }
        let in_grace = grace.ms > 0 && now_ms - family.rotated_at_ms <= grace.ms && family.grace_used < grace.count;
        return if in_grace {
            TokenState::PredecessorInGrace
        } else {
            TokenState::PredecessorOutOfGrace
        };
    }
    if generation > family.generation {
        return TokenState::Unknown;
    }
    if now_ms >= family.idle_expires_at_ms {
        return TokenState::ExpiredIdle;
    }
    TokenState::Current
}

/// Classifies the presentation of a token of `generation` belonging to `family`: the token's
/// [`token_state`], with the presentation's own checks (client, DPoP key, scope, details) in
/// between — a refused presentation changes nothing, reuse revokes.
pub fn decide(family: &Family, generation: i64, attempt: &RefreshAttempt<'_>, policy: &RefreshPolicy) -> Decision {
    let state = token_state(family, generation, attempt.now_ms, policy.grace());
    if state == TokenState::Revoked {
        return Decision::Reject(Reject::Revoked);
    }
    if family.client_id != attempt.client_id {
        return Decision::Reject(Reject::WrongClient);
    }
    if state == TokenState::ExpiredAbsolute {
        return Decision::Reject(Reject::Expired);
    }
    if let Some(bound) = family.dpop_jkt.as_deref() {
        match attempt.dpop_jkt {
            None => return Decision::Reject(Reject::DpopProofRequired),
            Some(k) if k != bound => return Decision::Reject(Reject::DpopKeyMismatch),
            Some(_) => {}
        }
    }
    let issue = match state {
        TokenState::PredecessorOutOfGrace | TokenState::Rotated => return Decision::Reuse,
        // Cannot happen with a consistent store; refuse rather than guess.
        TokenState::Unknown | TokenState::Revoked => return Decision::Reject(Reject::Revoked),
        TokenState::ExpiredIdle | TokenState::ExpiredAbsolute => return Decision::Reject(Reject::Expired),
        TokenState::PredecessorInGrace => Decision::GraceReissue,
        TokenState::Current => Decision::Rotate,
    };
    match request_checks(family, attempt) {
        Some(reject) => Decision::Reject(reject),
        None => issue,
    }
}

fn request_checks(family: &Family, attempt: &RefreshAttempt<'_>) -> Option<Reject> {
    if let Some(req) = attempt.requested_scope {
        let granted = &family.scope;
        if !req.is_subset_of(granted) {
            return Some(Reject::InvalidScope);
        }
    }
    if let Some(req) = attempt.requested_details {
        let granted: Vec<super::rar::Detail> = family
            .authorization_details
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        if super::rar::narrow(&granted, req).is_none() {
            return Some(Reject::InvalidAuthorizationDetails);
        }
    }
    None
}

/// The family row after applying `decision` at `now_ms` (only for Rotate / GraceReissue /
/// Reuse). Returns the generation the new token gets, if one is issued.
pub fn apply(
    family: &mut Family,
    decision: Decision,
    policy: &RefreshPolicy,
    now_ms: i64,
    user_agent: Option<&str>,
) -> Option<i64> {
    match decision {
        Decision::Rotate => {
            family.generation += 1;
            family.rotated_at_ms = now_ms;
            family.grace_used = 0;
            family.idle_expires_at_ms = (now_ms + policy.idle_ttl_ms).min(family.absolute_expires_at_ms);
            family.last_used_at_ms = now_ms;
            family.last_user_agent = user_agent.map(str::to_owned);
            Some(family.generation)
        }
        Decision::GraceReissue => {
            family.grace_used += 1;
            family.last_used_at_ms = now_ms;
            family.last_user_agent = user_agent.map(str::to_owned);
            Some(family.generation)
        }
        Decision::Reuse => {
            family.revoked_at_ms = Some(now_ms);
            family.revoked_reason = Some(crate::domain::model::RevocationReason::RefreshTokenReuse);
            None
        }
        Decision::Reject(_) => None,
    }
}

/// What a new family is made of: who, what, and the sign-in it came from.
pub struct FamilySeed<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub scope: &'a Scope,
    pub authorization_details: Option<&'a str>,
    pub dpop_jkt: Option<&'a str>,
    /// The sign-in session that authorised it (`sid`).
    pub session_id: &'a str,
    pub auth_time: i64,
    pub idle_ttl_ms: i64,
    pub absolute_ttl_ms: i64,
    pub user_agent: Option<&'a str>,
    pub now_ms: i64,
    /// The hash of its first refresh token, when the client may refresh.
    pub first_token: Option<&'a [u8; 32]>,
}

/// A fresh family at generation 0: bound to its session unless the grant has `offline_access`;
/// its absolute expiry counts from the sign-in (rule 4).
pub fn new_family(s: FamilySeed<'_>) -> Family {
    let absolute = (s.auth_time * 1000).saturating_add(s.absolute_ttl_ms);
    Family {
        id: s.id.to_string(),
        client_id: s.client_id.to_string(),
        user_id: s.user_id.to_string(),
        scope: s.scope.clone(),
        authorization_details: s.authorization_details.map(str::to_owned),
        dpop_jkt: s.dpop_jkt.map(str::to_owned),
        // A grant with `offline_access` outlives the sign-in session (SPEC §4 rule 10).
        session_id: (!s.scope.contains("offline_access")).then(|| s.session_id.to_string()),
        sid: Some(s.session_id.to_string()),
        auth_time: s.auth_time,
        created_at_ms: s.now_ms,
        absolute_expires_at_ms: absolute,
        idle_expires_at_ms: (s.now_ms + s.idle_ttl_ms).min(absolute),
        generation: 0,
        rotated_at_ms: s.now_ms,
        grace_used: 0,
        revoked_at_ms: None,
        revoked_reason: None,
        last_used_at_ms: s.now_ms,
        last_user_agent: s.user_agent.map(str::to_owned),
        token_hashes: s.first_token.map(|h| h.to_vec()).unwrap_or_default(),
    }
}

/// Records the token issued by `decision` (stored under `hash`) among the family's live tokens:
/// a rotation makes it the only one, a grace re-issue adds a sibling of the current generation
/// (at most `grace_count` of them, so the set stays bounded).
pub fn record_issued(family: &mut Family, decision: Decision, hash: &[u8; 32]) {
    match decision {
        Decision::Rotate => family.token_hashes = hash.to_vec(),
        Decision::GraceReissue => family.token_hashes.extend_from_slice(hash),
        Decision::Reuse | Decision::Reject(_) => {}
    }
}

/// What redeeming an authorization code presents.
#[derive(Clone, Debug)]
pub struct CodeRedemption<'a> {
    pub client_id: &'a str,
    /// Thumbprint of the DPoP proof's key, when one was sent.
    pub dpop_jkt: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub now_ms: i64,
    /// When the sign-in session that authorised the code ends (see [`session_ends_at`]);
    /// `None` when the session is gone.
    pub session_ends_at_ms: Option<i64>,
}

/// When a sign-in session stops counting: when it was ended (logout, password change, ended
/// from the account page), else its expiry. Stores read it as
/// `COALESCE(ended_at_ms, expires_at_ms)`.
pub fn session_ends_at(ended_at_ms: Option<i64>, expires_at_ms: i64) -> i64 {
    ended_at_ms.map_or(expires_at_ms, |e| e.min(expires_at_ms))
}

/// Whether a grant made in a session whose end is `ends_at_ms` may still be completed at
/// `now_ms`. An authorization code or an approved device code is only a promise of a grant:
/// when the session it was made in has ended before the client collects it, it dies with the
/// session — even with `offline_access`, which lets a *family* outlive the session, not an
/// unredeemed code (SPEC §4 rule 10; see `docs/design/sessions-and-cookies.md`).
pub fn session_live(ends_at_ms: Option<i64>, now_ms: i64) -> bool {
    ends_at_ms.is_some_and(|end| now_ms < end)
}

/// Why a code (or device approval) whose session has ended is refused.
pub const SESSION_ENDED: &str = "the sign-in session that authorised this grant has ended";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Ok,
    /// Second use: revoke what the first issued.
    Replayed,
    Reject(&'static str),
}

/// RFC 6749 §4.1.3 and RFC 7636 §4.6 checks. Nothing but `Ok` and `Replayed` may change state.
pub fn check_code(code: &AuthCode, r: &CodeRedemption<'_>) -> CodeCheck {
    if code.client_id != r.client_id {
        return CodeCheck::Reject("authorization code was issued to another client");
    }
    if code.consumed_at_ms.is_some() {
        return CodeCheck::Replayed;
    }
    if r.now_ms >= code.expires_at_ms {
        return CodeCheck::Reject("authorization code is expired");
    }
    if !session_live(r.session_ends_at_ms, r.now_ms) {
        return CodeCheck::Reject(SESSION_ENDED);
    }
    match (code.redirect_uri_sent, r.redirect_uri) {
        (true, None) => return CodeCheck::Reject("redirect_uri is required: it was sent on the authorization request"),
        (_, Some(u)) if u != code.redirect_uri => {
            return CodeCheck::Reject("redirect_uri does not match the authorization request")
        }
        _ => {}
    }
    match (&code.code_challenge, r.code_verifier) {
        (Some(ch), Some(v)) => {
            if !super::pkce::verify_s256(v, ch) {
                return CodeCheck::Reject("code_verifier does not match the code_challenge");
            }
        }
        (Some(_), None) => return CodeCheck::Reject("code_verifier is required"),
        (None, Some(_)) => {
            return CodeCheck::Reject("code_verifier sent but no code_challenge was on the authorization request")
        }
        (None, None) => {}
    }
    if let Some(bound) = &code.dpop_jkt {
        match r.dpop_jkt {
            None => return CodeCheck::Reject("the code is bound to a DPoP key (dpop_jkt): send a DPoP proof"),
            Some(k) if k != bound => return CodeCheck::Reject("the DPoP proof key does not match dpop_jkt"),
            Some(_) => {}
        }
    }
    CodeCheck::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family() -> Family {
        Family {
            id: "f".into(),
            client_id: "c".into(),
            user_id: "u".into(),
            scope: Scope::parse("openid profile").unwrap(),
            authorization_details: None,
            dpop_jkt: None,
            session_id: None,
            sid: None,
            auth_time: 0,
            created_at_ms: 0,
            absolute_expires_at_ms: 1_000_000,
            idle_expires_at_ms: 500_000,
            generation: 3,
            rotated_at_ms: 10_000,
            grace_used: 0,
            revoked_at_ms: None,
            revoked_reason: None,
            last_used_at_ms: 10_000,
            last_user_agent: None,
            token_hashes: vec![],
        }
    }
    const P0: RefreshPolicy = RefreshPolicy {
        grace_ms: 0,
        grace_count: 1,
        idle_ttl_ms: 100_000,
    };
    const P5: RefreshPolicy = RefreshPolicy {
        grace_ms: 5_000,
        grace_count: 2,
        idle_ttl_ms: 100_000,
    };

    fn at(now: i64) -> RefreshAttempt<'static> {
        RefreshAttempt {
            client_id: "c",
            requested_scope: None,
            requested_details: None,
            dpop_jkt: None,
            now_ms: now,
        }
    }

    #[test]
    fn current_token_rotates() {
        assert_eq!(decide(&family(), 3, &at(11_000), &P0), Decision::Rotate);
    }

    #[test]
    fn predecessor_without_grace_is_reuse_even_in_the_same_millisecond() {
        assert_eq!(decide(&family(), 2, &at(10_000), &P0), Decision::Reuse);
    }

    #[test]
    fn grace_only_for_immediate_predecessor_within_window_and_count() {
        let f = family();
        assert_eq!(decide(&f, 2, &at(15_000), &P5), Decision::GraceReissue);
        assert_eq!(decide(&f, 2, &at(15_001), &P5), Decision::Reuse);
        assert_eq!(decide(&f, 1, &at(10_001), &P5), Decision::Reuse);
        let mut used = family();
        used.grace_used = 2;
        assert_eq!(decide(&used, 2, &at(10_001), &P5), Decision::Reuse);
    }

    #[test]
    fn rejections_change_nothing_and_come_first() {
        let mut f = family();
        let other = RefreshAttempt {
            client_id: "x",
            ..at(11_000)
        };
        assert_eq!(decide(&f, 2, &other, &P0), Decision::Reject(Reject::WrongClient));
        assert_eq!(decide(&f, 3, &at(2_000_000), &P0), Decision::Reject(Reject::Expired));
        assert_eq!(decide(&f, 3, &at(600_000), &P0), Decision::Reject(Reject::Expired));
        f.revoked_at_ms = Some(1);
        assert_eq!(decide(&f, 3, &at(11_000), &P0), Decision::Reject(Reject::Revoked));
    }

    #[test]
    fn scope_must_be_subset_but_reuse_wins() {
        let f = family();
        let wide = Scope::parse("openid email").unwrap();
        let narrow = Scope::parse("openid").unwrap();
        let a = RefreshAttempt {
            requested_scope: Some(&wide),
            ..at(11_000)
        };
        assert_eq!(decide(&f, 3, &a, &P0), Decision::Reject(Reject::InvalidScope));
        assert_eq!(decide(&f, 2, &a, &P0), Decision::Reuse);
        let b = RefreshAttempt {
            requested_scope: Some(&narrow),
            ..at(11_000)
        };
        assert_eq!(decide(&f, 3, &b, &P0), Decision::Rotate);
    }

    #[test]
    fn dpop_bound_family_needs_its_key() {
        let mut f = family();
        f.dpop_jkt = Some("k1".into());
        assert_eq!(
            decide(&f, 3, &at(11_000), &P0),
            Decision::Reject(Reject::DpopProofRequired)
        );
        let wrong = RefreshAttempt {
            dpop_jkt: Some("k2"),
            ..at(11_000)
        };
        assert_eq!(decide(&f, 3, &wrong, &P0), Decision::Reject(Reject::DpopKeyMismatch));
        let right = RefreshAttempt {
            dpop_jkt: Some("k1"),
            ..at(11_000)
        };
        assert_eq!(decide(&f, 3, &right, &P0), Decision::Rotate);
    }

    const G5: Grace = Grace { ms: 5_000, count: 2 };

    /// A family is active (its access tokens too) until it is revoked or reaches its absolute
    /// expiry, whatever its idle deadline (that is the refresh token's, not the grant's).
    #[test]
    fn a_family_is_active_until_revoked_or_absolutely_expired() {
        let f = family();
        assert!(f.is_active(0));
        assert!(f.is_active(600_000), "past the idle deadline, the grant lives on");
        assert!(f.is_active(999_999));
        assert!(!f.is_active(1_000_000), "at the absolute expiry it has ended");
        assert!(!f.is_active(1_000_001));
        let mut revoked = family();
        revoked.revoked_at_ms = Some(1);
        assert!(!revoked.is_active(0), "a revocation counts when written");
        revoked.revoked_reason = Some(crate::domain::model::RevocationReason::RevokedByAdmin);
        assert!(!revoked.is_active(1), "a scheduled one from its time on");
        assert!(revoked.is_active(0), "and not before");
    }

    #[test]
    fn token_state_by_generation_and_time() {
        let f = family();
        assert_eq!(token_state(&f, 3, 11_000, G5), TokenState::Current);
        assert_eq!(token_state(&f, 3, 500_000, G5), TokenState::ExpiredIdle);
        assert_eq!(token_state(&f, 3, 1_000_000, G5), TokenState::ExpiredAbsolute);
        assert_eq!(token_state(&f, 2, 15_000, G5), TokenState::PredecessorInGrace);
        assert_eq!(token_state(&f, 2, 15_001, G5), TokenState::PredecessorOutOfGrace);
        assert_eq!(
            token_state(&f, 2, 10_000, P0.grace()),
            TokenState::PredecessorOutOfGrace
        );
        assert_eq!(token_state(&f, 1, 10_001, G5), TokenState::Rotated);
        assert_eq!(token_state(&f, 0, 10_001, G5), TokenState::Rotated);
        assert_eq!(token_state(&f, 4, 11_000, G5), TokenState::Unknown);
        // An old token of an expired family is expired, not reuse.
        assert_eq!(token_state(&f, 1, 1_000_000, G5), TokenState::ExpiredAbsolute);
        let mut used = family();
        used.grace_used = 2;
        assert_eq!(token_state(&used, 2, 10_001, G5), TokenState::PredecessorOutOfGrace);
        let mut revoked = family();
        revoked.revoked_at_ms = Some(1);
        for g in 0..=4 {
            assert_eq!(token_state(&revoked, g, 11_000, G5), TokenState::Revoked);
        }
        assert_eq!(token_state(&revoked, 3, 2_000_000, G5), TokenState::Revoked);
    }

    #[test]
    fn only_the_current_token_is_active_and_only_rotated_ones_are_reuse() {
        use TokenState::*;
        for (s, active, reuse) in [
            (Revoked, false, false),
            (ExpiredAbsolute, false, false),
            (ExpiredIdle, false, false),
            (Current, true, false),
            (PredecessorInGrace, false, false),
            (PredecessorOutOfGrace, false, true),
            (Rotated, false, true),
            (Unknown, false, false),
        ] {
            assert_eq!((s.is_active(), s.is_reuse()), (active, reuse), "{s:?}");
        }
    }

    #[test]
    fn a_revocation_scheduled_for_later_leaves_the_family_live_until_then() {
        let mut f = family();
        f.revoked_at_ms = Some(5_000);
        // Only an operator's revocation is a schedule; any other counts when written.
        f.revoked_reason = Some(crate::domain::model::RevocationReason::RefreshTokenReuse);
        assert_eq!(
            token_state(&f, f.generation, 4_999, Grace { ms: 0, count: 1 }),
            TokenState::Revoked
        );
        f.revoked_reason = Some(crate::domain::model::RevocationReason::RevokedByAdmin);
        let g = Grace { ms: 0, count: 1 };
        assert_eq!(token_state(&f, f.generation, 4_999, g), TokenState::Current);
        assert!(f.is_active(4_999));
        assert_eq!(token_state(&f, f.generation, 5_000, g), TokenState::Revoked);
        assert!(!f.is_active(5_000));
    }

    #[test]
    fn decide_follows_token_state() {
        let f = family();
        for (generation, now) in [
            (3, 11_000),
            (3, 500_000),
            (2, 15_000),
            (2, 15_001),
            (1, 11_000),
            (4, 11_000),
        ] {
            let expected = match token_state(&f, generation, now, P5.grace()) {
                TokenState::Current => Decision::Rotate,
                TokenState::PredecessorInGrace => Decision::GraceReissue,
                s if s.is_reuse() => Decision::Reuse,
                TokenState::ExpiredIdle | TokenState::ExpiredAbsolute => Decision::Reject(Reject::Expired),
                _ => Decision::Reject(Reject::Revoked),
            };
            assert_eq!(decide(&f, generation, &at(now), &P5), expected, "{generation} at {now}");
        }
    }

    #[test]
    fn apply_rotate_renews_idle_but_never_past_absolute() {
        let mut f = family();
        let g = apply(&mut f, Decision::Rotate, &P0, 950_000, Some("ua"));
        assert_eq!(g, Some(4));
        assert_eq!(f.idle_expires_at_ms, 1_000_000);
        assert_eq!(f.rotated_at_ms, 950_000);
        assert_eq!(f.absolute_expires_at_ms, 1_000_000);
    }

    #[test]
    fn apply_grace_keeps_generation_and_counts() {
        let mut f = family();
        assert_eq!(apply(&mut f, Decision::GraceReissue, &P5, 12_000, None), Some(3));
        assert_eq!(f.grace_used, 1);
        assert_eq!(f.rotated_at_ms, 10_000);
    }

    fn code() -> AuthCode {
        AuthCode {
            hash: vec![],
            client_id: "c".into(),
            user_id: "u".into(),
            redirect_uri: "https://app/cb".into(),
            redirect_uri_sent: true,
            scope: Scope::parse("openid").unwrap(),
            nonce: None,
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            dpop_jkt: None,
            authorization_details: None,
            session_id: "s".into(),
            auth_time: 0,
            expires_at_ms: 60_000,
            consumed_at_ms: None,
            family_id: None,
        }
    }

    #[test]
    fn code_checks() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let ok = CodeRedemption {
            client_id: "c",
            dpop_jkt: None,
            redirect_uri: Some("https://app/cb"),
            code_verifier: Some(v),
            now_ms: 1,
            session_ends_at_ms: Some(1_000),
        };
        assert_eq!(check_code(&code(), &ok), CodeCheck::Ok);
        assert!(matches!(
            check_code(
                &code(),
                &CodeRedemption {
                    redirect_uri: Some("https://app/cb2"),
                    ..ok.clone()
                }
            ),
            CodeCheck::Reject(_)
        ));
        assert!(matches!(
            check_code(
                &code(),
                &CodeRedemption {
                    redirect_uri: None,
                    ..ok.clone()
                }
            ),
            CodeCheck::Reject(_)
        ));
        assert!(matches!(
            check_code(
                &code(),
                &CodeRedemption {
                    code_verifier: None,
                    ..ok.clone()
                }
            ),
            CodeCheck::Reject(_)
        ));
        assert!(matches!(
            check_code(
                &code(),
                &CodeRedemption {
                    now_ms: 60_000,
                    ..ok.clone()
                }
            ),
            CodeCheck::Reject(_)
        ));
        assert!(matches!(
            check_code(
                &code(),
                &CodeRedemption {
                    client_id: "d",
                    ..ok.clone()
                }
            ),
            CodeCheck::Reject(_)
        ));
        let mut bound = code();
        bound.dpop_jkt = Some("k1".into());
        assert!(matches!(check_code(&bound, &ok), CodeCheck::Reject(_)));
        assert!(matches!(
            check_code(
                &bound,
                &CodeRedemption {
                    dpop_jkt: Some("k2"),
                    ..ok.clone()
                }
            ),
            CodeCheck::Reject(_)
        ));
        assert_eq!(
            check_code(
                &bound,
                &CodeRedemption {
                    dpop_jkt: Some("k1"),
                    ..ok.clone()
                }
            ),
            CodeCheck::Ok
        );
        let mut used = code();
        used.consumed_at_ms = Some(1);
        assert_eq!(check_code(&used, &ok), CodeCheck::Replayed);
    }

    #[test]
    fn a_code_dies_with_its_session_but_a_replay_is_still_a_replay() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let r = |ends: Option<i64>| CodeRedemption {
            client_id: "c",
            dpop_jkt: None,
            redirect_uri: Some("https://app/cb"),
            code_verifier: Some(v),
            now_ms: 500,
            session_ends_at_ms: ends,
        };
        assert_eq!(check_code(&code(), &r(Some(501))), CodeCheck::Ok);
        assert_eq!(check_code(&code(), &r(Some(500))), CodeCheck::Reject(SESSION_ENDED));
        assert_eq!(check_code(&code(), &r(None)), CodeCheck::Reject(SESSION_ENDED));
        let mut used = code();
        used.consumed_at_ms = Some(1);
        assert_eq!(check_code(&used, &r(None)), CodeCheck::Replayed);
        assert_eq!(session_ends_at(Some(10), 20), 10);
        assert_eq!(session_ends_at(None, 20), 20);
        assert_eq!(session_ends_at(Some(30), 20), 20);
    }
}
