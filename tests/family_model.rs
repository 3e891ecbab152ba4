//! A proptest model of the refresh-token family (SPEC §4), checked against the real `Store` on
//! both databases (a SQLite file and a fresh PostgreSQL database, both in every run).
//!
//! The reference model below is written from SPEC §4 and does not use `domain::grant`: it keeps
//! every token it has issued with a *status* (current / immediate predecessor / old) instead of
//! generation arithmetic, and its own clock, grace counter and deadlines. Random sequences of
//! operations (refresh with the current token, the predecessor, an older token, an unknown one,
//! another client's id, no/wrong/right DPoP key, a replayed DPoP `jti`, a scope narrower or wider
//! than the grant; `/oauth/revoke` (`revoke_family`); logout (`end_session`); the clock moved by
//! a few ms, to the grace edge, past the idle and absolute expiry; the grace policy switched;
//! two concurrent refreshes) are applied to the model and to the store. Every step's outcome
//! class must agree (for a concurrent pair: the pair of outcomes must be one of the two
//! serialisations the model allows) and at the end the family rows (revoked and why,
//! generation, grace used, deadlines) and every issued token's standing agree.
//!
//! Two families per case, in one fresh sign-in session: family 0 of client `m1`, family 1 of
//! client `m2` (each optionally DPoP-bound, each optionally `offline_access`); "another client"
//! presents one family's token with the other family's client id.
//!
//! Interpretations where SPEC §4 leaves a choice (they match `docs/design/refresh-rotation.md`):
//! - Check order: revoked, then client, then absolute expiry, then DPoP key, then reuse/grace,
//!   then idle expiry (current token only), then scope. A wrong client or wrong DPoP key changes
//!   nothing: only the owner (and key holder) can rotate, re-issue or revoke through reuse.
//! - An absolute-expired family is dead: any token of it is `Expired`, nothing is revoked.
//!   An idle-expired family is still "live" for reuse detection (rule 3: "any rotated token of a
//!   live family is reuse"): its current token is `Expired`, a rotated one revokes the family.
//! - A grace re-issue gives a sibling of the current token (same standing); using any one
//!   current sibling rotates the family, and all current siblings become the immediate
//!   predecessor (rule 3: "a token whose successor has not itself been used yet"). A re-issue
//!   is not a rotation: it renews no deadline and does not restart the window (no stretching).
//! - The window is inclusive ("within that many seconds": `now - rotation <= grace`), counted
//!   from the rotation of the predecessor; the count resets at each rotation.
//! - A requested scope is checked only when a token would be issued (a replay is reuse whatever
//!   scope it asks for).
//! - A DPoP proof's `jti` is checked before the token is looked up; a replayed `jti` is refused
//!   and changes nothing else. Only a request that issues a token records its `jti` (a refused
//!   refresh records nothing: `docs/design/dpop.md` §4). An unbound family ignores a proof's key.
//! - Rule 10: logout revokes the session's families without `offline_access` (`end_session`
//!   returns how many), those with it live on.
//!
//! Cases: 64 by default (`PROPTEST_CASES` for more; `scripts/model` runs 5000), up to 20 steps,
//! one database per backend shared by all cases (a new session and families per case).

mod common;

use autional::domain::grant::{RefreshPolicy, Reject};
use autional::domain::model::{AuthCode, AuthMethod, Client, RevocationReason, Session, User};
use autional::domain::refresh_token;
use autional::domain::scope::Scope;
use autional::store::postgres::PgStore;
use autional::store::sqlite::SqliteStore;
use autional::store::{DynStore, NewFamily, RedeemCode, RedeemOutcome, RotateOutcome, RotateRequest};
use autional::util::{random_id, random_token, sha256};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::sync::Arc;

const IDLE_MS: i64 = 600_000;
const ABSOLUTE_MS: i64 = 3_600_000;
const CLIENTS: [&str; 2] = ["m1", "m2"];
const KEYS: [&str; 2] = ["jkt-right", "jkt-wrong"];
const GRANT_SCOPE: &str = "openid profile";

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Clone, Copy, Debug)]
enum Pick {
    Current,
    Predecessor,
    Old,
    Any(usize),
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum Dpop {
    None,
    Right,
    Wrong,
}

#[derive(Clone, Copy, Debug)]
enum ScopeReq {
    None,
    Narrow,
    Wide,
}

#[derive(Clone, Copy, Debug)]
struct Refresh {
    fam: usize,
    pick: Pick,
    other_client: bool,
    dpop: Dpop,
    replay_jti: bool,
    scope: ScopeReq,
}

#[derive(Clone, Copy, Debug)]
enum Clock {
    Ms(i64),
    GraceEdge { fam: usize, past: bool },
    PastIdle { fam: usize },
    PastAbsolute { fam: usize },
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Refresh(Refresh),
    Concurrent(Refresh, Refresh),
    Revoke { fam: usize },
    EndSession,
    Clock(Clock),
    Policy { grace_ms: i64, count: i64 },
}

#[derive(Clone, Debug)]
struct Case {
    /// Per family: DPoP-bound, `offline_access`.
    bound: [bool; 2],
    offline: [bool; 2],
    /// Milliseconds past a whole second at the start (auth_time is in seconds).
    start_ms: i64,
    policy: (i64, i64),
    ops: Vec<Op>,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        8 => Just(Pick::Current),
        4 => Just(Pick::Predecessor),
        1 => Just(Pick::Old),
        1 => (0usize..16).prop_map(Pick::Any),
        1 => Just(Pick::Unknown),
    ]
}

fn refresh() -> impl Strategy<Value = Refresh> {
    (
        0usize..2,
        pick(),
        prop::bool::weighted(0.1),
        prop_oneof![6 => Just(Dpop::Right), 1 => Just(Dpop::None), 1 => Just(Dpop::Wrong)],
        prop::bool::weighted(0.08),
        prop_oneof![8 => Just(ScopeReq::None), 1 => Just(ScopeReq::Narrow), 1 => Just(ScopeReq::Wide)],
    )
        .prop_map(|(fam, pick, other_client, dpop, replay_jti, scope)| Refresh {
            fam,
            pick,
            other_client,
            dpop,
            replay_jti,
            scope,
        })
}

/// A plain refresh: own client, right key, no scope.
fn plain(fam: usize, pick: Pick) -> Refresh {
    Refresh {
        fam,
        pick,
        other_client: false,
        dpop: Dpop::Right,
        replay_jti: false,
        scope: ScopeReq::None,
    }
}

/// One half of a concurrent pair.
fn plain_refresh() -> impl Strategy<Value = Refresh> {
    (0usize..2, pick()).prop_map(|(fam, pick)| plain(fam, pick))
}

fn grace_policy() -> impl Strategy<Value = (i64, i64)> {
    (
        prop_oneof![Just(0i64), Just(1_000), Just(30_000), Just(60_000)],
        1i64..=3,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => refresh().prop_map(Op::Refresh),
        3 => (plain_refresh(), plain_refresh()).prop_map(|(a, b)| Op::Concurrent(a, b)),
        // The classic races: the current token twice, or it and its predecessor.
        2 => (0usize..2, prop::bool::ANY).prop_map(|(fam, same)| Op::Concurrent(
            plain(fam, Pick::Current),
            plain(fam, if same { Pick::Current } else { Pick::Predecessor }),
        )),
        1 => (0usize..2).prop_map(|fam| Op::Revoke { fam }),
        1 => Just(Op::EndSession),
        4 => (0i64..70_000).prop_map(|ms| Op::Clock(Clock::Ms(ms))),
        2 => (0usize..2, prop::bool::ANY).prop_map(|(fam, past)| Op::Clock(Clock::GraceEdge { fam, past })),
        1 => (0usize..2).prop_map(|fam| Op::Clock(Clock::PastIdle { fam })),
        1 => (0usize..2).prop_map(|fam| Op::Clock(Clock::PastAbsolute { fam })),
        2 => grace_policy().prop_map(|(grace_ms, count)| Op::Policy { grace_ms, count }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::array::uniform2(prop::bool::ANY),
        prop::array::uniform2(prop::bool::ANY),
        0i64..1000,
        grace_policy(),
        prop::collection::vec(op(), 1..=20),
    )
        .prop_map(|(bound, offline, start_ms, policy, ops)| Case {
            bound,
            offline,
            start_ms,
            policy,
            ops,
        })
}

// ---------------------------------------------------------------------------------------------
// The reference model (SPEC §4)

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Current,
    Predecessor,
    Old,
}

#[derive(Clone, Debug)]
struct ModelFamily {
    client: &'static str,
    key: Option<&'static str>,
    offline: bool,
    /// Every token issued in this family, in issue order.
    tokens: Vec<([u8; 32], Standing)>,
    revoked: Option<&'static str>,
    rotations: i64,
    last_rotation_ms: i64,
    grace_used: i64,
    idle_deadline_ms: i64,
    absolute_deadline_ms: i64,
}

/// The outcome classes both sides are reduced to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Class {
    /// A rotation: the family's rotation count after it.
    Rotated(i64),
    /// A grace re-issue (same rotation count).
    GraceReissued(i64),
    /// Reuse: the family is now revoked.
    Reused,
    Rejected(Reject),
    NotFound,
}

#[derive(Clone, Debug)]
struct Model {
    now: i64,
    grace_ms: i64,
    grace_count: i64,
    families: [ModelFamily; 2],
    jtis: Vec<[u8; 32]>,
}

/// One presentation as both sides see it.
#[derive(Clone, Debug)]
struct Presented {
    token: [u8; 32],
    new_token: [u8; 32],
    client: &'static str,
    key: Option<&'static str>,
    jti: Option<[u8; 32]>,
    scope: ScopeReq,
}

impl Model {
    fn present(&mut self, p: &Presented) -> Class {
        if let Some(jti) = p.jti {
            if self.jtis.contains(&jti) {
                return Class::Rejected(Reject::DpopReplay);
            }
        }
        let class = self.decide(p);
        if let (Some(jti), Class::Rotated(_) | Class::GraceReissued(_)) = (p.jti, &class) {
            self.jtis.push(jti);
        }
        class
    }

    /// The outcome of a presentation whose proof (if any) is not a replay.
    fn decide(&mut self, p: &Presented) -> Class {
        let now = self.now;
        let (grace_ms, grace_count) = (self.grace_ms, self.grace_count);
        let Some((fi, ti)) = self
            .families
            .iter()
            .enumerate()
            .find_map(|(fi, f)| f.tokens.iter().position(|t| t.0 == p.token).map(|ti| (fi, ti)))
        else {
            return Class::NotFound;
        };
        let f = &mut self.families[fi];
        if f.revoked.is_some() {
            return Class::Rejected(Reject::Revoked);
        }
        if f.client != p.client {
            return Class::Rejected(Reject::WrongClient);
        }
        if now >= f.absolute_deadline_ms {
            return Class::Rejected(Reject::Expired);
        }
        if let Some(bound) = f.key {
            match p.key {
                None => return Class::Rejected(Reject::DpopProofRequired),
                Some(k) if k != bound => return Class::Rejected(Reject::DpopKeyMismatch),
                Some(_) => {}
            }
        }
        let wide = matches!(p.scope, ScopeReq::Wide);
        match f.tokens[ti].1 {
            Standing::Old => {
                f.revoked = Some("refresh_token_reuse");
                Class::Reused
            }
            Standing::Predecessor => {
                let in_window = grace_ms > 0 && now - f.last_rotation_ms <= grace_ms;
                if !in_window || f.grace_used >= grace_count {
                    f.revoked = Some("refresh_token_reuse");
                    return Class::Reused;
                }
                if wide {
                    return Class::Rejected(Reject::InvalidScope);
                }
                f.grace_used += 1;
                f.tokens.push((p.new_token, Standing::Current));
                Class::GraceReissued(f.rotations)
            }
            Standing::Current => {
                if now >= f.idle_deadline_ms {
                    return Class::Rejected(Reject::Expired);
                }
                if wide {
                    return Class::Rejected(Reject::InvalidScope);
                }
                for t in &mut f.tokens {
                    t.1 = match t.1 {
                        Standing::Current => Standing::Predecessor,
                        _ => Standing::Old,
                    };
                }
                f.tokens.push((p.new_token, Standing::Current));
                f.rotations += 1;
                f.last_rotation_ms = now;
                f.grace_used = 0;
                f.idle_deadline_ms = (now + IDLE_MS).min(f.absolute_deadline_ms);
                Class::Rotated(f.rotations)
            }
        }
    }

    fn revoke(&mut self, fam: usize) -> bool {
        let f = &mut self.families[fam];
        if f.revoked.is_some() {
            return false;
        }
        f.revoked = Some("revoked_by_client");
        true
    }

    fn end_session(&mut self) -> u64 {
        let mut n = 0;
        for f in &mut self.families {
            if !f.offline && f.revoked.is_none() {
                f.revoked = Some("session_ended");
                n += 1;
            }
        }
        n
    }

    fn token(&self, fam: usize, pick: Pick, unknown: [u8; 32]) -> [u8; 32] {
        let toks = &self.families[fam].tokens;
        let last = |s: Standing| toks.iter().rev().find(|t| t.1 == s).map(|t| t.0);
        let any = |i: usize| toks[i % toks.len()].0;
        match pick {
            Pick::Current => last(Standing::Current).unwrap_or_else(|| any(0)),
            Pick::Predecessor => last(Standing::Predecessor).unwrap_or_else(|| any(0)),
            Pick::Old => last(Standing::Old).unwrap_or_else(|| any(1)),
            Pick::Any(i) => any(i),
            Pick::Unknown => unknown,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real store

struct Backend {
    name: &'static str,
    store: DynStore,
    _keep: Box<dyn std::any::Any>,
}

async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: DynStore = Arc::new(SqliteStore::open(&dir.path().join("m.db"), 256, 2).unwrap());
    let pg = common::PgDb::create();
    let postgres: DynStore = Arc::new(PgStore::open(&pg.url, 4, 1024).await.unwrap());
    let all = vec![
        Backend {
            name: "sqlite",
            store: sqlite,
            _keep: Box::new(dir),
        },
        Backend {
            name: "postgres",
            store: postgres,
            _keep: Box::new(pg),
        },
    ];
    for b in &all {
        for id in CLIENTS {
            b.store.insert_client(client(id)).await.unwrap();
        }
        b.store
            .insert_user(User {
                id: "mu".into(),
                username: "mu".into(),
                password_hash: "x".into(),
                email: None,
                name: None,
                created_at_ms: 0,
            })
            .await
            .unwrap();
    }
    all
}

fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        name: id.into(),
        auth_method: AuthMethod::None,
        secrets: vec![],
        redirect_uris: vec!["https://app/cb".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scope: "openid profile offline_access".into(),
        dpop_bound: false,
        require_par: false,
        jwks_uri: None,
        post_logout_redirect_uris: vec![],
        registration_token_hash: None,
        jwks: None,
        refresh_idle_ttl_s: None,
        refresh_absolute_ttl_s: None,
        reuse_grace_seconds: None,
        reuse_grace_count: None,
        created_at_ms: 0,
        display: Default::default(),
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
    }
}

/// What one case created in one store.
struct Live {
    session: String,
    family_ids: [String; 2],
}

fn class(o: &RotateOutcome) -> Class {
    match o {
        RotateOutcome::Issued { family, grace: false } => Class::Rotated(family.generation),
        RotateOutcome::Issued { family, grace: true } => Class::GraceReissued(family.generation),
        RotateOutcome::Reused { .. } => Class::Reused,
        RotateOutcome::Rejected(r) => Class::Rejected(*r),
        RotateOutcome::NotFound => Class::NotFound,
    }
}

fn hash() -> [u8; 32] {
    sha256(random_token().as_bytes())
}

/// Sets up a case in `store` and in a fresh model.
async fn start(store: &DynStore, c: &Case, t0: i64) -> (Model, Live) {
    let session = random_id();
    store
        .insert_session(Session {
            id: session.clone(),
            token_hash: hash().to_vec(),
            user_id: "mu".into(),
            auth_time: t0 / 1000,
            expires_at_ms: t0 + 10 * ABSOLUTE_MS,
            ended_at_ms: None,
            user_agent: None,
        })
        .await
        .unwrap();
    let mut fams = Vec::new();
    let mut ids = Vec::new();
    for (i, &client_id) in CLIENTS.iter().enumerate() {
        let code = hash();
        let scope = if c.offline[i] {
            format!("{GRANT_SCOPE} offline_access")
        } else {
            GRANT_SCOPE.to_string()
        };
        store
            .insert_code(AuthCode {
                hash: code.to_vec(),
                client_id: client_id.into(),
                user_id: "mu".into(),
                redirect_uri: "https://app/cb".into(),
                redirect_uri_sent: true,
                scope: autional::domain::scope::Scope::parse(&scope).unwrap(),
                nonce: None,
                code_challenge: None,
                dpop_jkt: None,
                authorization_details: None,
                session_id: session.clone(),
                auth_time: t0 / 1000,
                expires_at_ms: t0 + 60_000,
                consumed_at_ms: None,
                family_id: None,
            })
            .await
            .unwrap();
        let first = hash();
        let key = c.bound[i].then_some(KEYS[0]);
        let out = store
            .redeem_code(RedeemCode {
                code_hash: code,
                client_id: client_id.into(),
                dpop_jkt: key.map(str::to_owned),
                dpop_jti: None,
                redirect_uri: Some("https://app/cb".into()),
                code_verifier: None,
                now_ms: t0,
                family: NewFamily {
                    id: random_id(),
                    refresh_hash: Some(first),
                    idle_ttl_ms: IDLE_MS,
                    absolute_ttl_ms: ABSOLUTE_MS,
                    dpop_jkt: key.map(str::to_owned),
                    user_agent: None,
                },
            })
            .await
            .unwrap();
        let RedeemOutcome::Issued { family, .. } = out else {
            panic!("redeem: {out:?}")
        };
        TOKENS.lock().unwrap().insert(first, (family.id.clone(), 0));
        ids.push(family.id.clone());
        // Rule 4: the absolute lifetime counts from the sign-in's auth_time (whole seconds).
        let absolute = (t0 / 1000) * 1000 + ABSOLUTE_MS;
        fams.push(ModelFamily {
            client: client_id,
            key,
            offline: c.offline[i],
            tokens: vec![(first, Standing::Current)],
            revoked: None,
            rotations: 0,
            last_rotation_ms: t0,
            grace_used: 0,
            idle_deadline_ms: (t0 + IDLE_MS).min(absolute),
            absolute_deadline_ms: absolute,
        });
    }
    let model = Model {
        now: t0,
        grace_ms: c.policy.0,
        grace_count: c.policy.1,
        families: [fams[0].clone(), fams[1].clone()],
        jtis: vec![],
    };
    (
        model,
        Live {
            session,
            family_ids: [ids[0].clone(), ids[1].clone()],
        },
    )
}

fn presented(m: &Model, r: &Refresh) -> Presented {
    let f = &m.families[r.fam];
    let client = if r.other_client { CLIENTS[1 - r.fam] } else { f.client };
    let key = match r.dpop {
        Dpop::None => None,
        Dpop::Right => Some(f.key.unwrap_or(KEYS[0])),
        Dpop::Wrong => Some(KEYS[1]),
    };
    let jti = key.map(|_| match (r.replay_jti, m.jtis.last()) {
        (true, Some(j)) => *j,
        _ => hash(),
    });
    Presented {
        token: m.token(r.fam, r.pick, hash()),
        new_token: hash(),
        client,
        key,
        jti,
        scope: r.scope,
    }
}

/// Every token the run issued (or offered to issue), by hash: its family and generation, as the
/// server reads them from the token itself.
static TOKENS: std::sync::Mutex<std::collections::BTreeMap<[u8; 32], (String, i64)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The token stored under `hash` as the grant presents it; a hash the run never issued names no
/// family the store knows.
fn as_presented(hash: [u8; 32]) -> refresh_token::Presented {
    let (family_id, generation) = TOKENS
        .lock()
        .unwrap()
        .get(&hash)
        .cloned()
        .unwrap_or_else(|| ("never-issued".into(), 0));
    refresh_token::Presented::Bound {
        family_id,
        generation,
        hash,
    }
}

fn request(m: &Model, p: &Presented) -> RotateRequest {
    let presented = as_presented(p.token);
    let refresh_token::Presented::Bound {
        family_id, generation, ..
    } = &presented
    else {
        unreachable!()
    };
    TOKENS
        .lock()
        .unwrap()
        .insert(p.new_token, (family_id.clone(), generation + 1));
    RotateRequest {
        new_generation: generation + 1,
        presented,
        new_hash: p.new_token,
        client_id: p.client.into(),
        requested_scope: match p.scope {
            ScopeReq::None => None,
            ScopeReq::Narrow => Scope::parse("openid").ok(),
            ScopeReq::Wide => Scope::parse("openid profile email").ok(),
        },
        requested_details: None,
        dpop_jkt: p.key.map(str::to_owned),
        dpop_jti: p.jti.map(|j| (j, i64::MAX / 2)),
        policy: RefreshPolicy {
            grace_ms: m.grace_ms,
            grace_count: m.grace_count,
            idle_ttl_ms: IDLE_MS,
        },
        now_ms: m.now,
        user_agent: Some("model".into()),
    }
}

/// How often each model outcome occurred (a step of a concurrent pair counts twice), to show
/// what a run covered.
static SEEN: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn seen(what: String) {
    *SEEN.lock().unwrap().entry(what).or_default() += 1;
}

fn label(c: &Class) -> String {
    match c {
        Class::Rotated(_) => "rotated".into(),
        Class::GraceReissued(_) => "grace re-issued".into(),
        Class::Reused => "reuse (family revoked)".into(),
        Class::Rejected(r) => format!("rejected {r:?}"),
        Class::NotFound => "not found".into(),
    }
}

/// Runs one case on one store; `Err` describes the first disagreement.
async fn run(store: &DynStore, c: &Case, t0: i64) -> Result<(), String> {
    let (mut m, live) = start(store, c, t0).await;
    for (step, op) in c.ops.iter().enumerate() {
        let at = |what: String| format!("step {step} {op:?}: {what}");
        match *op {
            Op::Refresh(r) => {
                let p = presented(&m, &r);
                let got = class(
                    &store
                        .rotate_refresh(request(&m, &p))
                        .await
                        .map_err(|e| at(e.to_string()))?,
                );
                let want = m.present(&p);
                seen(label(&want));
                if got != want {
                    return Err(at(format!("store {got:?}, model {want:?}")));
                }
            }
            Op::Concurrent(a, b) => {
                let pa = presented(&m, &a);
                let mut pb = presented(&m, &b);
                if pb.jti.is_some() {
                    pb.jti = Some(hash());
                }
                let (ra, rb) = tokio::join!(
                    store.rotate_refresh(request(&m, &pa)),
                    store.rotate_refresh(request(&m, &pb))
                );
                let got = (
                    class(&ra.map_err(|e| at(e.to_string()))?),
                    class(&rb.map_err(|e| at(e.to_string()))?),
                );
                let mut ab = m.clone();
                let wa = ab.present(&pa);
                let wb = ab.present(&pb);
                let mut ba = m.clone();
                let vb = ba.present(&pb);
                let va = ba.present(&pa);
                seen(format!("concurrent pair: {} + {}", label(&got.0), label(&got.1)));
                if got == (wa.clone(), wb.clone()) {
                    m = ab;
                } else if got == (va.clone(), vb.clone()) {
                    m = ba;
                } else {
                    return Err(at(format!(
                        "store {got:?}, model allows a-then-b ({wa:?}, {wb:?}) or b-then-a ({va:?}, {vb:?})"
                    )));
                }
            }
            Op::Revoke { fam } => {
                let got = store
                    .revoke_family(&live.family_ids[fam], RevocationReason::RevokedByClient, m.now)
                    .await
                    .map_err(|e| at(e.to_string()))?;
                let want = m.revoke(fam);
                seen(format!("revoke_family -> {want}"));
                if got != want {
                    return Err(at(format!("revoke_family: store {got}, model {want}")));
                }
            }
            Op::EndSession => {
                let got = store
                    .end_session(&live.session, m.now)
                    .await
                    .map_err(|e| at(e.to_string()))?;
                let want = m.end_session();
                seen(format!("end_session -> {want} revoked"));
                if got != want {
                    return Err(at(format!("end_session revoked: store {got}, model {want}")));
                }
            }
            Op::Clock(k) => {
                let target = match k {
                    Clock::Ms(ms) => m.now + ms,
                    Clock::GraceEdge { fam, past } => m.families[fam].last_rotation_ms + m.grace_ms + past as i64,
                    Clock::PastIdle { fam } => m.families[fam].idle_deadline_ms,
                    Clock::PastAbsolute { fam } => m.families[fam].absolute_deadline_ms,
                };
                m.now = m.now.max(target);
            }
            Op::Policy { grace_ms, count } => {
                m.grace_ms = grace_ms;
                m.grace_count = count;
            }
        }
    }
    // Final state: each family row, and every token's standing by its generation.
    for (i, f) in m.families.iter().enumerate() {
        let row = store
            .get_family(&live.family_ids[i])
            .await
            .map_err(|e| e.to_string())?
            .ok_or("family row missing")?;
        let got = (
            row.revoked_reason.map(|r| r.as_str()),
            row.revoked_at_ms.is_some(),
            row.generation,
            row.grace_used,
            row.rotated_at_ms,
            row.idle_expires_at_ms,
            row.absolute_expires_at_ms,
        );
        let want = (
            f.revoked,
            f.revoked.is_some(),
            f.rotations,
            f.grace_used,
            f.last_rotation_ms,
            f.idle_deadline_ms,
            f.absolute_deadline_ms,
        );
        if got != want {
            return Err(format!(
                "final family {i}: store (reason, revoked, generation, grace_used, rotated_at, idle, absolute) = {got:?}, model {want:?}"
            ));
        }
        for (n, (tok, standing)) in f.tokens.iter().enumerate() {
            let (g, fam) = store
                .find_refresh(as_presented(*tok))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("final family {i}: token #{n} unknown to the store"))?;
            let ok = fam.id == live.family_ids[i]
                && match standing {
                    Standing::Current => g == row.generation,
                    Standing::Predecessor => g == row.generation - 1,
                    Standing::Old => g < row.generation - 1,
                };
            if !ok {
                return Err(format!(
                    "final family {i}: token #{n} is {standing:?} in the model, generation {g} of {} in the store",
                    row.generation
                ));
            }
        }
    }
    Ok(())
}

/// Cases from `PROPTEST_CASES` (default 64).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

#[test]
fn token_family_matches_the_spec_model_on_both_databases() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backends = rt.block_on(backends());
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    // Each case gets its own stretch of time (its families are independent of earlier ones').
    let epoch = std::sync::atomic::AtomicI64::new(1_800_000_000_000);
    let started = std::time::Instant::now();
    let result = runner.run(&case(), |c| {
        let t0 = epoch.fetch_add(100 * ABSOLUTE_MS, std::sync::atomic::Ordering::Relaxed) + c.start_ms;
        for b in &backends {
            rt.block_on(run(&b.store, &c, t0))
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", b.name)))?;
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            eprintln!(
                "family model: {} cases x {} backends agree ({:.1} s); outcomes (both backends):",
                cases(),
                backends.len(),
                started.elapsed().as_secs_f64()
            );
            for (what, n) in SEEN.lock().unwrap().iter() {
                eprintln!("  {n:>7}  {what}");
            }
        }
        Err(TestError::Fail(why, c)) => panic!("model and store disagree: {why}\nminimal case: {c:#?}"),
        Err(e) => panic!("{e}"),
    }
}
