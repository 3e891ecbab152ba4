//! Redemption racing the end of its session, through the `Store` trait on both backends (issue
//! 10 finding 7): whichever commits first, a code is never turned into a live session-bound
//! family of an ended session. Either the redemption wins and `end_session` revokes the family
//! it created, or the session ended first and the redemption creates nothing.

mod common;

use autional::store::RedeemOutcome;
use autional::util::now_ms;
use common::store::{backends, code, fixture, session};
use std::sync::Arc;

/// Many rounds of one redemption and the end of its session started together (a barrier, two
/// tasks on a multi-threaded runtime); the interleavings seen are printed (a typical run saw
/// both orders on both backends: SQLite 21/39, PostgreSQL 57/3 of 60).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redemption_racing_logout_never_leaves_a_live_family_of_an_ended_session() {
    for (name, store, _keep) in backends().await {
        let (mut won, mut lost) = (0, 0);
        for round in 0..60 {
            let f = if round == 0 {
                fixture(&store).await
            } else {
                session(&store).await
            };
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
