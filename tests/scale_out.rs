//! Scale-out: three `autional serve` processes on one PostgreSQL database, no other shared
//! state. Racing refreshes spread over the processes, the grace window across processes, key
//! rotation reaching every process, sessions valid everywhere, and no 500 under contention.

mod common;

use common::Server;
use futures::future::join_all;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SCOPE: &str = "openid offline_access";

async fn refresh_at(s: &Server, node: usize, rt: &str) -> reqwest::Response {
    s.http
        .post(format!("{}/oauth/refresh", s.node(node)))
        .json(&json!({"refresh_token": rt, "client_id": "pub"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn racing_refreshes_across_three_processes_exactly_one_wins() {
    let s = Server::start_cluster(3, &[]).await;
    for round in 0..3 {
        let (t, _) = s.tokens("pub", SCOPE).await;
        let rt = t["refresh_token"].as_str().unwrap().to_string();
        let results = join_all((0..45).map(|i| refresh_at(&s, i % 3, &rt))).await;
        let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "no 500: {statuses:?}");
    }
    assert_eq!(s.audit_count("refresh.reuse_detected"), 3, "one reuse event per family");
}

#[tokio::test]
async fn grace_window_holds_across_processes() {
    let s = Server::start_cluster(
        3,
        &[
            ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "30"),
            ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "1"),
        ],
    )
    .await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let rt0 = t["refresh_token"].as_str().unwrap().to_string();
    let r = refresh_at(&s, 0, &rt0).await;
    assert_eq!(r.status(), 200);
    let rt1 = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The lost response is retried on another process: one grace re-issue.
    let r = refresh_at(&s, 1, &rt0).await;
    assert_eq!(r.status(), 200);
    // A third presentation, on the third process, is past the count: reuse, family revoked.
    assert_eq!(refresh_at(&s, 2, &rt0).await.status(), 401);
    assert_eq!(refresh_at(&s, 0, &rt1).await.status(), 401);
    assert_eq!(s.audit_count("refresh.reuse_detected"), 1);
}

#[tokio::test]
async fn sessions_and_tokens_work_on_every_process() {
    let s = Server::start_cluster(3, &[]).await;
    // Signed in (and consented) through node 0.
    let (t, a) = s.tokens("pub", SCOPE).await;
    for i in 1..3 {
        let r = s
            .http
            .get(format!("{}/account", s.node(i)))
            .header("cookie", &a.cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "session valid on node {i}");
        assert!(r.text().await.unwrap().contains("alice"));
        // The access token from node 0 works at node i's userinfo and introspection.
        let r = s
            .http
            .get(format!("{}/oauth/userinfo", s.node(i)))
            .bearer_auth(t["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A chain of refreshes hopping across processes.
    let mut rt = t["refresh_token"].as_str().unwrap().to_string();
    for i in 0..9 {
        let r = refresh_at(&s, i % 3, &rt).await;
        assert_eq!(r.status(), 200);
        rt = r.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
    }
}

#[tokio::test]
async fn a_rotated_key_reaches_every_process_within_the_reload_interval() {
    let s = Server::start_cluster(3, &[("AUTIONAL_KEYS__RELOAD_INTERVAL", "1s")]).await;
    let (t, _) = s.tokens("pub", SCOPE).await;
    let kid = s.cli(&["key", "rotate"])["kid"].as_str().unwrap().to_string();
    let started = Instant::now();
    for i in 0..3 {
        loop {
            let jwks: Value = s
                .http
                .get(format!("{}/oauth/jwks", s.node(i)))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid.as_str())
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "node {i} did not load the new key"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // New tokens are signed with it everywhere; the old access token still verifies.
    let r: Value = refresh_at(&s, 2, t["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    use base64::Engine;
    let header = r["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let h: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(h["kid"], kid.as_str());
    let intro = s
        .http
        .post(format!("{}/oauth/introspect", s.node(1)))
        .basic_auth("conf", Some(&s.conf_secret))
        .form(&[("token", t["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        intro["active"], true,
        "a token signed by the previous key still verifies on every process"
    );
}

#[tokio::test]
async fn no_500_under_sustained_contention() {
    let s = Server::start_cluster(
        3,
        &[
            ("AUTIONAL_REFRESH__REUSE_GRACE_SECONDS", "5"),
            ("AUTIONAL_REFRESH__REUSE_GRACE_COUNT", "2"),
        ],
    )
    .await;
    let mut chains = Vec::new();
    for _ in 0..4 {
        let (t, _) = s.tokens("pub", SCOPE).await;
        chains.push(t["refresh_token"].as_str().unwrap().to_string());
    }
    // Each chain is driven by three racing clients (one per process) for two seconds.
    let deadline = Instant::now() + Duration::from_secs(2);
    let tasks = chains.into_iter().map(|rt| {
        let s = &s;
        async move {
            let mut rt = rt;
            let mut statuses = Vec::new();
            while Instant::now() < deadline {
                let rs = join_all((0..3).map(|i| refresh_at(s, i, &rt))).await;
                let mut next = None;
                for r in rs {
                    statuses.push(r.status().as_u16());
                    if r.status() == 200 {
                        next = Some(
                            r.json::<Value>().await.unwrap()["refresh_token"]
                                .as_str()
                                .unwrap()
                                .to_string(),
                        );
                    }
                }
                match next {
                    Some(n) => rt = n,
                    None => break,
                }
            }
            statuses
        }
    });
    let all: Vec<u16> = join_all(tasks).await.into_iter().flatten().collect();
    assert!(!all.is_empty());
    assert!(all.iter().all(|s| *s == 200 || *s == 401), "only 200 or 401: {all:?}");
}

#[tokio::test]
async fn a_dpop_proof_replayed_on_another_process_is_refused() {
    let s = Server::start_cluster(3, &[]).await;
    let key = common::dpop::DpopKey::new();
    let a = s.authorize("pub", SCOPE).await;
    // Every process shares the issuer, so `htu` is the same URL on each.
    let r = s
        .http
        .post(format!("{}/oauth/token", s.node(0)))
        .header("DPoP", key.proof("POST", &s.url("/oauth/token")))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", a.code.as_str()),
            ("redirect_uri", common::REDIRECT),
            ("client_id", "pub"),
            ("code_verifier", a.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let proof = key.proof("POST", &s.url("/oauth/refresh"));
    let send = |node: usize, proof: String, rt: String| {
        s.http
            .post(format!("{}/oauth/refresh", s.node(node)))
            .header("DPoP", proof)
            .json(&json!({"refresh_token": rt, "client_id": "pub"}))
            .send()
    };
    let r = send(0, proof.clone(), rt.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let rt1 = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    for node in [1, 2] {
        let before = s.snapshot();
        let r = send(node, proof.clone(), rt1.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "node {node}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof");
        assert!(body["error_description"].as_str().unwrap().contains("jti"));
        assert_eq!(before, s.snapshot(), "node {node}: nothing rotated");
    }
    // A fresh proof works anywhere.
    let r = send(2, key.proof("POST", &s.url("/oauth/refresh")), rt1).await.unwrap();
    assert_eq!(r.status(), 200);
}
