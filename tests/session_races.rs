//! Redemption racing the end of its session, through the `Store` trait on both backends (issue
//! 10 finding 7): whichever commits first, a code is never turned into a live session-bound
//! family of an ended session. Either the redemption wins and `end_session` revokes the family
//! it created, or the session ended first and the redemption creates nothing.

mod common;

use autional::domain::model::{AuthCode, AuthMethod, Client, Session, User};
use autional::store::postgres::PgStore;
use autional::store::sqlite::SqliteStore;
use autional::store::{DynStore, NewFamily, RedeemCode, RedeemOutcome};
use autional::util::{now_ms, random_id, random_token, sha256};
use std::sync::Arc;

async fn backends() -> Vec<(&'static str, DynStore, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: DynStore = Arc::new(SqliteStore::open(&dir.path().join("s.db"), 256, 2).unwrap());
    let pg = common::PgDb::create();
    let postgres: DynStore = Arc::new(PgStore::open(&pg.url, 8).await.unwrap());
    vec![("sqlite", sqlite, Box::new(dir)), ("postgres", postgres, Box::new(pg))]
}

struct Fixture {
    session: String,
}

async fn fixture(store: &DynStore, first: bool) -> Fixture {
    let now = now_ms();
    if first {
        store
            .insert_client(Client {
                id: "c".into(),
                name: "C".into(),
                auth_method: AuthMethod::None,
                secrets: vec![],
                redirect_uris: vec!["https://app/cb".into()],
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                scope: "openid offline_access".into(),
                dpop_bound: false,
                require_par: false,
                jwks_uri: None,
                post_logout_redirect_uris: vec![],
                registration_token_hash: None,
                jwks: None,
                refresh_idle_ttl_s: None,
                refresh_absolute_ttl_s: None,
                created_at_ms: now,
            })
            .await
            .unwrap();
        store
            .insert_user(User {
                id: "u".into(),
                username: "u".into(),
                password_hash: "x".into(),
                email: None,
                name: None,
                created_at_ms: now,
            })
            .await
            .unwrap();
    }
    let session = random_id();
    store
        .insert_session(Session {
            id: session.clone(),
            token_hash: sha256(random_token().as_bytes()).to_vec(),
            user_id: "u".into(),
            auth_time: now / 1000,
            expires_at_ms: now + 3_600_000,
            ended_at_ms: None,
            user_agent: None,
        })
        .await
        .unwrap();
    Fixture { session }
}

/// A code for `scope`, and the request that redeems it.
async fn code(store: &DynStore, f: &Fixture, scope: &str, absolute_ttl_ms: i64) -> RedeemCode {
    let code = random_token();
    let hash = sha256(code.as_bytes());
    let now = now_ms();
    store
        .insert_code(AuthCode {
            hash: hash.to_vec(),
            client_id: "c".into(),
            user_id: "u".into(),
            redirect_uri: "https://app/cb".into(),
            redirect_uri_sent: true,
            scope: scope.into(),
            nonce: None,
            code_challenge: None,
            dpop_jkt: None,
            authorization_details: None,
            session_id: f.session.clone(),
            auth_time: now / 1000,
            expires_at_ms: now + 60_000,
            consumed_at_ms: None,
            family_id: None,
        })
        .await
        .unwrap();
    RedeemCode {
        code_hash: hash,
        client_id: "c".into(),
        dpop_jkt: None,
        dpop_jti: None,
        redirect_uri: Some("https://app/cb".into()),
        code_verifier: None,
        now_ms: now,
        family: NewFamily {
            id: random_id(),
            refresh_hash: Some(sha256(random_token().as_bytes())),
            idle_ttl_ms: 3_600_000,
            absolute_ttl_ms,
            dpop_jkt: None,
            user_agent: None,
        },
    }
}

/// Many rounds of one redemption and the end of its session started together (a barrier, two
/// tasks on a multi-threaded runtime); the interleavings seen are printed (a typical run saw
/// both orders on both backends: SQLite 21/39, PostgreSQL 57/3 of 60).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redemption_racing_logout_never_leaves_a_live_family_of_an_ended_session() {
    for (name, store, _keep) in backends().await {
        let (mut won, mut lost) = (0, 0);
        for round in 0..60 {
            let f = fixture(&store, round == 0).await;
            let req = code(&store, &f, "openid", 86_400_000).await;
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let (b1, b2) = (barrier.clone(), barrier);
            let (s1, s2) = (store.clone(), store.clone());
            let sid = f.session.clone();
            let redeem = tokio::spawn(async move {
                b1.wait().await;
                s1.redeem_code(req).await.unwrap()
            });
            let end = tokio::spawn(async move {
                b2.wait().await;
                s2.end_session(&sid, now_ms()).await.unwrap()
            });
            let (outcome, _) = (redeem.await.unwrap(), end.await.unwrap());
            match outcome {
                RedeemOutcome::Issued { family, .. } => {
                    won += 1;
                    let fam = store.get_family(&family.id).await.unwrap().unwrap();
                    assert!(
                        fam.revoked_at_ms.is_some(),
                        "{name} round {round}: a live family of an ended session"
                    );
                }
                RedeemOutcome::Rejected(_) | RedeemOutcome::NotFound => lost += 1,
                other => panic!("{name} round {round}: unexpected {other:?}"),
            }
        }
        println!("{name}: redemption first {won}, logout first {lost}");
        assert_eq!(won + lost, 60);
    }
}
