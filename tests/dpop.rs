//! DPoP (RFC 9449) through issue, refresh and use — SPEC §4 rule 8. Each failing proof is refused
//! with its exact error and rotates nothing; binding of public families, confidential clients'
//! access tokens, `dpop_jkt` on the authorization request, server nonces, userinfo with `ath`.

mod common;

use common::dpop::{DpopKey, Opts};
use common::{claims, Server, REDIRECT};
use serde_json::{json, Value};

const SCOPE: &str = "openid offline_access";

async fn exchange_dpop(
    s: &Server,
    client_id: &str,
    code: &str,
    verifier: &str,
    proof: Option<String>,
) -> reqwest::Response {
    let mut r = s.http.post(s.url("/oauth/token")).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id),
        ("code_verifier", verifier),
    ]);
    if let Some(p) = proof {
        r = r.header("DPoP", p);
    }
    r.send().await.unwrap()
}

async fn refresh_dpop(s: &Server, client_id: &str, rt: &str, proof: Option<String>) -> reqwest::Response {
    let mut r = s
        .http
        .post(s.url("/oauth/refresh"))
        .json(&json!({"refresh_token": rt, "client_id": client_id}));
    if let Some(p) = proof {
        r = r.header("DPoP", p);
    }
    r.send().await.unwrap()
}

/// A DPoP-bound family for the public client `pub`.
async fn bound(s: &Server, key: &DpopKey) -> Value {
    let a = s.authorize("pub", SCOPE).await;
    let r = exchange_dpop(
        s,
        "pub",
        &a.code,
        &a.verifier,
        Some(key.proof("POST", &s.url("/oauth/token"))),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn expect_err(r: reqwest::Response, status: u16, error: &str) -> reqwest::header::HeaderMap {
    let got = r.status().as_u16();
    let h = r.headers().clone();
    let body: Value = r.json().await.unwrap();
    assert_eq!((got, body["error"].as_str().unwrap_or("")), (status, error), "{body}");
    h
}

#[tokio::test]
async fn rule8_dpop_binds_public_families_and_access_tokens() {
    let s = Server::start(&[]).await;
    let key = DpopKey::new();
    let t = bound(&s, &key).await;
    assert_eq!(t["token_type"], "DPoP");
    assert_eq!(t["dpop_access_token_bound"], true);
    assert_eq!(t["dpop_signing_alg"], "ES256");
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt().as_str()
    );
    let intro = s.introspect(t["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (intro["token_type"].as_str(), intro["cnf"]["jkt"].as_str()),
        (Some("DPoP"), Some(key.jkt().as_str()))
    );
    assert_eq!(
        s.introspect(t["refresh_token"].as_str().unwrap()).await["cnf"]["jkt"],
        key.jkt().as_str()
    );
    // Refresh with the same key: a bound pair again.
    let r = refresh_dpop(
        &s,
        "pub",
        t["refresh_token"].as_str().unwrap(),
        Some(key.proof("POST", &s.url("/oauth/refresh"))),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!(
        (r["token_type"].as_str(), r["dpop_access_token_bound"].as_bool()),
        (Some("DPoP"), Some(true))
    );
    assert_eq!(
        claims(r["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt().as_str()
    );
}

#[tokio::test]
async fn rule8_dpop_each_failing_proof_is_refused_without_rotating() {
    let s = Server::start(&[]).await;
    let key = DpopKey::new();
    let t = bound(&s, &key).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let htu = s.url("/oauth/refresh");
    let replayed = key.proof("POST", &htu);
    let r = refresh_dpop(&s, "pub", &rt, Some(replayed.clone())).await;
    assert_eq!(r.status(), 200);
    let rt = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let other = DpopKey::new();
    let age = 65; // past the 60 s window, with room for a second boundary between client and server
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        (
            "wrong typ",
            Some(key.proof_with(
                "POST",
                &htu,
                Opts {
                    typ: "jwt",
                    ..Opts::default()
                },
            )),
            400,
            "invalid_dpop_proof",
        ),
        (
            "alg none",
            Some(key.proof_with(
                "POST",
                &htu,
                Opts {
                    alg: "none",
                    ..Opts::default()
                },
            )),
            400,
            "invalid_dpop_proof",
        ),
        (
            "HS256",
            Some(key.proof_with(
                "POST",
                &htu,
                Opts {
                    alg: "HS256",
                    ..Opts::default()
                },
            )),
            400,
            "invalid_dpop_proof",
        ),
        (
            "private key in jwk",
            Some(key.proof_with(
                "POST",
                &htu,
                Opts {
                    private_jwk: true,
                    ..Opts::default()
                },
            )),
            400,
            "invalid_dpop_proof",
        ),
        (
            "bad signature",
            Some(key.proof_with(
                "POST",
                &htu,
                Opts {
                    bad_signature: true,
                    ..Opts::default()
                },
            )),
            400,
            "invalid_dpop_proof",
        ),
        ("wrong htm", Some(key.proof("GET", &htu)), 400, "invalid_dpop_proof"),
        (
            "wrong htu",
            Some(key.proof("POST", &s.url("/oauth/token"))),
            400,
            "invalid_dpop_proof",
        ),
        (
            "iat too old",
            Some(key.proof_with(
                "POST",
                &htu,
                Opts {
                    iat_offset: -age,
                    ..Opts::default()
                },
            )),
            400,
            "invalid_dpop_proof",
        ),
        (
            "iat too far ahead",
            Some(key.proof_with(
                "POST",
                &htu,
                Opts {
                    // Made now, sent after the cases before it: keep it ahead under a slow run.
                    iat_offset: age + 60,
                    ..Opts::default()
                },
            )),
            400,
            "invalid_dpop_proof",
        ),
        ("replayed jti", Some(replayed), 400, "invalid_dpop_proof"),
        (
            "another key for the bound family",
            Some(other.proof("POST", &htu)),
            401,
            "invalid_grant",
        ),
        ("no proof for the bound family", None, 400, "invalid_dpop_proof"),
    ];
    let reasons = [
        ("wrong typ", "typ"),
        ("alg none", "alg"),
        ("HS256", "alg"),
        ("private key in jwk", "public key"),
        ("bad signature", "signature"),
        ("wrong htm", "htm"),
        ("wrong htu", "htu"),
        ("iat too old", "too old"),
        ("iat too far ahead", "future"),
        ("replayed jti", "jti"),
        ("another key for the bound family", "bound to"),
        ("no proof for the bound family", "proof is required"),
    ];
    for (name, proof, status, error) in cases {
        let before = s.snapshot();
        let r = refresh_dpop(&s, "pub", &rt, proof).await;
        let got = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        println!("{name:<36} {got} {} {}", body["error"], body["error_description"]);
        assert_eq!(
            (got, body["error"].as_str().unwrap_or("")),
            (status, error),
            "{name}: {body}"
        );
        let why = reasons.iter().find(|(n, _)| *n == name).unwrap().1;
        assert!(
            body["error_description"].as_str().unwrap().contains(why),
            "{name}: refused for its own reason: {body}"
        );
        assert_eq!(before, s.snapshot(), "{name}: nothing rotated or revoked");
    }
    // The good key still refreshes: nothing above touched the family.
    let r = refresh_dpop(&s, "pub", &rt, Some(key.proof("POST", &htu))).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rule8_dpop_server_nonces_missing_stale_and_fresh() {
    let s = Server::start(&[
        ("AUTIONAL_DPOP__REQUIRE_NONCE", "true"),
        ("AUTIONAL_DPOP__NONCE_WINDOW", "1s"),
    ])
    .await;
    let key = DpopKey::new();
    let a = s.authorize("pub", SCOPE).await;
    let token_htu = s.url("/oauth/token");
    // Missing nonce: 400 use_dpop_nonce with a fresh DPoP-Nonce.
    let r = exchange_dpop(&s, "pub", &a.code, &a.verifier, Some(key.proof("POST", &token_htu))).await;
    let h = expect_err(r, 400, "use_dpop_nonce").await;
    let nonce = h["dpop-nonce"].to_str().unwrap().to_string();
    // An unknown nonce is refused the same way.
    let o = Opts {
        nonce: Some("bm90LWEtbm9uY2U".into()),
        ..Opts::default()
    };
    let r = exchange_dpop(
        &s,
        "pub",
        &a.code,
        &a.verifier,
        Some(key.proof_with("POST", &token_htu, o)),
    )
    .await;
    expect_err(r, 400, "use_dpop_nonce").await;
    // With the nonce: issued, and the answer carries the next nonce.
    let o = Opts {
        nonce: Some(nonce.clone()),
        ..Opts::default()
    };
    let r = exchange_dpop(
        &s,
        "pub",
        &a.code,
        &a.verifier,
        Some(key.proof_with("POST", &token_htu, o)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("dpop-nonce"));
    let t: Value = r.json().await.unwrap();
    // A stale nonce (two windows old) is refused: nothing rotates.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let before = s.snapshot();
    let o = Opts {
        nonce: Some(nonce),
        ..Opts::default()
    };
    let refresh_htu = s.url("/oauth/refresh");
    let r = refresh_dpop(
        &s,
        "pub",
        t["refresh_token"].as_str().unwrap(),
        Some(key.proof_with("POST", &refresh_htu, o)),
    )
    .await;
    expect_err(r, 400, "use_dpop_nonce").await;
    assert_eq!(before, s.snapshot());
    // GET /oauth/dpop/nonce gives a fresh one that works.
    let r = s.http.get(s.url("/oauth/dpop/nonce")).send().await.unwrap();
    let fresh = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
    let o = Opts {
        nonce: Some(fresh),
        ..Opts::default()
    };
    let r = refresh_dpop(
        &s,
        "pub",
        t["refresh_token"].as_str().unwrap(),
        Some(key.proof_with("POST", &refresh_htu, o)),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rule8_dpop_userinfo_needs_the_dpop_scheme_and_the_right_ath() {
    let s = Server::start(&[]).await;
    let key = DpopKey::new();
    let t = bound(&s, &key).await;
    let at = t["access_token"].as_str().unwrap().to_string();
    let ui = s.url("/oauth/userinfo");
    // Bearer with a bound token: 401 with a DPoP challenge.
    let r = s.http.get(&ui).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(www.starts_with("DPoP ") && www.contains("invalid_token"), "{www}");
    let get = |proof: String| {
        s.http
            .get(&ui)
            .header("Authorization", format!("DPoP {at}"))
            .header("DPoP", proof)
            .send()
    };
    // ath of another token, or none: invalid_dpop_proof.
    for o in [
        Opts {
            ath: Some("AAAA".into()),
            ..Opts::default()
        },
        Opts::default(),
    ] {
        let r = get(key.proof_with("GET", &ui, o)).await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_dpop_proof"));
    }
    // Another key with the right ath: refused.
    let other = DpopKey::new();
    let r = get(other.proof_with(
        "GET",
        &ui,
        Opts {
            ath_for: Some(at.clone()),
            ..Opts::default()
        },
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    // The right proof: the claims; the same proof again: a replay.
    let good = key.proof_with(
        "GET",
        &ui,
        Opts {
            ath_for: Some(at.clone()),
            ..Opts::default()
        },
    );
    let r = get(good.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["sub"].is_string());
    let r = get(good).await.unwrap();
    assert_eq!(r.status(), 401);
    // An unbound token with the DPoP scheme is refused too.
    let (plain, _) = s.tokens("pub2", SCOPE).await;
    let pat = plain["access_token"].as_str().unwrap().to_string();
    let r = s
        .http
        .get(&ui)
        .header("Authorization", format!("DPoP {pat}"))
        .header(
            "DPoP",
            key.proof_with(
                "GET",
                &ui,
                Opts {
                    ath_for: Some(pat.clone()),
                    ..Opts::default()
                },
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn rule8_dpop_userinfo_nonce_challenge() {
    let s = Server::start(&[("AUTIONAL_DPOP__REQUIRE_NONCE", "true")]).await;
    let key = DpopKey::new();
    let nonce = s.http.get(s.url("/oauth/dpop/nonce")).send().await.unwrap().headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_string();
    let a = s.authorize("pub", SCOPE).await;
    let o = Opts {
        nonce: Some(nonce.clone()),
        ..Opts::default()
    };
    let r = exchange_dpop(
        &s,
        "pub",
        &a.code,
        &a.verifier,
        Some(key.proof_with("POST", &s.url("/oauth/token"), o)),
    )
    .await;
    let at = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ui = s.url("/oauth/userinfo");
    let r = s
        .http
        .get(&ui)
        .header("Authorization", format!("DPoP {at}"))
        .header(
            "DPoP",
            key.proof_with(
                "GET",
                &ui,
                Opts {
                    ath_for: Some(at.clone()),
                    ..Opts::default()
                },
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"use_dpop_nonce\""));
    assert!(r.headers().contains_key("dpop-nonce"));
}

#[tokio::test]
async fn rule8_dpop_jkt_on_the_authorization_request_binds_the_code() {
    let s = Server::start(&[]).await;
    let key = DpopKey::new();
    let other = DpopKey::new();
    let a = s.authorize_with("pub", SCOPE, &[("dpop_jkt", &key.jkt())]).await;
    let htu = s.url("/oauth/token");
    let before = s.snapshot();
    expect_err(
        exchange_dpop(&s, "pub", &a.code, &a.verifier, None).await,
        400,
        "invalid_grant",
    )
    .await;
    expect_err(
        exchange_dpop(&s, "pub", &a.code, &a.verifier, Some(other.proof("POST", &htu))).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(before, s.snapshot(), "the code is still unused");
    let r = exchange_dpop(&s, "pub", &a.code, &a.verifier, Some(key.proof("POST", &htu))).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rule8_dpop_confidential_refresh_tokens_unbound_access_tokens_bound() {
    let s = Server::start(&[]).await;
    let a = s.authorize("conf", SCOPE).await;
    let k1 = DpopKey::new();
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("conf", Some(&s.conf_secret))
        .header("DPoP", k1.proof("POST", &s.url("/oauth/token")))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &a.code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &a.verifier),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["cnf"]["jkt"],
        k1.jkt().as_str()
    );
    assert!(
        s.introspect(t["refresh_token"].as_str().unwrap())
            .await
            .get("cnf")
            .is_none(),
        "refresh token not bound"
    );
    // Another key at refresh: allowed for a confidential client; the new access token follows it.
    let k2 = DpopKey::new();
    let r = s
        .http
        .post(s.url("/oauth/refresh"))
        .basic_auth("conf", Some(&s.conf_secret))
        .header("DPoP", k2.proof("POST", &s.url("/oauth/refresh")))
        .json(&json!({"refresh_token": t["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!(
        claims(r["access_token"].as_str().unwrap())["cnf"]["jkt"],
        k2.jkt().as_str()
    );
}

#[tokio::test]
async fn rule8_dpop_bound_client_setting_requires_proofs() {
    let s = Server::start(&[]).await;
    s.cli(&[
        "client",
        "create",
        "--name",
        "Bound",
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        "bound",
        "--dpop-bound",
    ]);
    let a = s.authorize("bound", SCOPE).await;
    let before = s.snapshot();
    expect_err(
        exchange_dpop(&s, "bound", &a.code, &a.verifier, None).await,
        400,
        "invalid_dpop_proof",
    )
    .await;
    assert_eq!(before, s.snapshot());
    let key = DpopKey::new();
    let r = exchange_dpop(
        &s,
        "bound",
        &a.code,
        &a.verifier,
        Some(key.proof("POST", &s.url("/oauth/token"))),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rule8_dpop_ed25519_proofs_under_both_names() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let s = Server::start(&[]).await;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pair = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let x = B64.encode(pair.public_key().as_ref());
    let proof = |alg: &str, htu: &str| {
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}});
        let claims = json!({"jti": common::rand_suffix(), "htm": "POST", "htu": htu, "iat": common::dpop::now()});
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        format!("{input}.{}", B64.encode(pair.sign(input.as_bytes()).as_ref()))
    };
    for alg in ["EdDSA", "Ed25519"] {
        let a = s.authorize("pub", SCOPE).await;
        let r = exchange_dpop(
            &s,
            "pub",
            &a.code,
            &a.verifier,
            Some(proof(alg, &s.url("/oauth/token"))),
        )
        .await;
        assert_eq!(r.status(), 200, "{alg}");
        let t: Value = r.json().await.unwrap();
        assert_eq!(t["dpop_signing_alg"], alg);
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let jkt = B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref());
        assert_eq!(claims(t["access_token"].as_str().unwrap())["cnf"]["jkt"], jkt.as_str());
        // A proof labelled Ed25519 with an EC key is refused.
        let ec = DpopKey::new().proof_with(
            "POST",
            &s.url("/oauth/refresh"),
            Opts {
                alg: "Ed25519",
                ..Opts::default()
            },
        );
        let r = refresh_dpop(&s, "pub", t["refresh_token"].as_str().unwrap(), Some(ec)).await;
        expect_err(r, 400, "invalid_dpop_proof").await;
    }
}

#[tokio::test]
async fn rule8_dpop_client_credentials_binds_and_refuses_a_replayed_proof() {
    let s = Server::start(&[]).await;
    let cc = s.cli(&[
        "client",
        "create",
        "--name",
        "CC",
        "--client-id",
        "cc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api.read",
    ]);
    let secret = cc["client_secret"].as_str().unwrap().to_string();
    let key = DpopKey::new();
    let proof = key.proof("POST", &s.url("/oauth/token"));
    let send = |p: String| {
        s.http
            .post(s.url("/oauth/token"))
            .basic_auth("cc", Some(&secret))
            .header("DPoP", p)
            .form(&[("grant_type", "client_credentials"), ("scope", "api.read")])
            .send()
    };
    let r = send(proof.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "DPoP");
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt().as_str()
    );
    expect_err(send(proof).await.unwrap(), 400, "invalid_dpop_proof").await;
}

/// Issue 10 finding 10: a refused refresh records nothing, not even its proof's `jti` (a
/// refused request must not cost a write); a proof is spent by the refresh it succeeds with,
/// and then refused as a replay.
#[tokio::test]
async fn rule8_dpop_a_refused_refresh_records_no_jti() {
    let s = Server::start(&[]).await;
    let key = DpopKey::new();
    let t = bound(&s, &key).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let htu = s.url("/oauth/refresh");
    let jtis = || s.scalar_i64("SELECT COUNT(*) FROM dpop_jtis");
    let n = jtis();
    let proof = key.proof("POST", &htu);
    expect_err(
        refresh_dpop(&s, "pub", "rt_unknown", Some(proof.clone())).await,
        401,
        "invalid_grant",
    )
    .await;
    let wider = s
        .http
        .post(&htu)
        .header("DPoP", proof.clone())
        .json(&json!({"refresh_token": rt, "client_id": "pub", "scope": "openid profile"}))
        .send()
        .await
        .unwrap();
    expect_err(wider, 400, "invalid_scope").await;
    assert_eq!(jtis(), n, "refused refreshes record no jti");
    // The proof was never used for anything: it works once, then it is a replay.
    let r = refresh_dpop(&s, "pub", &rt, Some(proof.clone())).await;
    assert_eq!(r.status(), 200);
    assert_eq!(jtis(), n + 1, "recorded with the rotation");
    let rt2 = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let before = s.snapshot();
    let h = expect_err(
        refresh_dpop(&s, "pub", &rt2, Some(proof)).await,
        400,
        "invalid_dpop_proof",
    )
    .await;
    drop(h);
    assert_eq!(before, s.snapshot(), "a replayed proof rotates nothing");
    assert_eq!(
        refresh_dpop(&s, "pub", &rt2, Some(key.proof("POST", &htu)))
            .await
            .status(),
        200
    );
}
