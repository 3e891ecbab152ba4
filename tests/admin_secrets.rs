//! A client's secrets over the admin API (issue 13), on the backend the run selects: list, add,
//! deactivate, delete and rotate, checked where it matters, at `/oauth/token`
//! (`client_credentials`): a new secret authenticates, a deactivated, deleted or expired one
//! gets 401 `invalid_client`, a rotated-out one works for the overlap only. Also: at most two
//! active secrets, no lock-out, the read scope cannot change anything, concurrent changes
//! neither lose an update nor exceed the limit, and secrets stored before secrets had ids keep
//! working.

mod common;

use common::admin::{admin_token, call, client_token};
use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const SECRETS: &str = "/admin/oauth/clients/svc/secrets";
const ROTATE: &str = "/admin/oauth/clients/svc/rotate-secret";

/// A confidential client `svc` with the `client_credentials` grant; its first secret.
fn make_svc(s: &Server) -> String {
    let out = s.cli(&[
        "client",
        "create",
        "--name",
        "Svc",
        "--client-id",
        "svc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "profile",
    ]);
    out["client_secret"].as_str().unwrap().to_string()
}

/// `svc`'s `client_credentials` request with `secret`: the status and the body.
async fn token_with(s: &Server, secret: &str) -> (StatusCode, Value) {
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth("svc", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn works(s: &Server, what: &str, secret: &str) {
    let (status, body) = token_with(s, secret).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
}

async fn refused(s: &Server, what: &str, secret: &str) {
    let (status, body) = token_with(s, secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
}

/// `svc`'s secrets as the API lists them.
async fn listed(s: &Server, token: &str) -> Vec<Value> {
    let (status, body, _) = call(s, Method::GET, SECRETS, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]["secrets"].as_array().unwrap().clone()
}

/// A refused call: what, the method, the path, the token, the body, the status, a part of the
/// message.
type Case<'a> = (&'a str, Method, String, &'a str, Option<Value>, StatusCode, &'a str);

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Every operation, and what it does at the token endpoint; every refusal changes nothing.
#[tokio::test]
async fn secrets_are_listed_added_deactivated_deleted_and_expire() {
    let s = Server::start(&[]).await;
    let write = admin_token(&s, "adm", None).await;
    let read = admin_token(&s, "adm-ro", Some("admin:read")).await;
    let first = make_svc(&s);

    // The first secret, listed in the reference's shape: never the secret or its hash.
    let l = listed(&s, &read).await;
    assert_eq!(l.len(), 1);
    let mut keys: Vec<&str> = l[0].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "description",
            "expires_at",
            "last_used_at",
            "secret_id",
            "status",
            "updated_at"
        ]
    );
    assert_eq!(l[0]["status"], "active");
    assert_eq!(l[0]["expires_at"], Value::Null);
    let first_id = l[0]["secret_id"].as_str().unwrap().to_string();

    // Add one: 201, shown once, authenticates next to the first.
    let (status, body, _) = call(
        &s,
        Method::POST,
        SECRETS,
        Some(&write),
        Some(json!({"description": "ci", "expires_at": now_s() + 3600})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let d = &body["data"];
    let second = d["secret_value"].as_str().unwrap().to_string();
    let second_id = d["secret_id"].as_str().unwrap().to_string();
    assert_eq!(d["status"], "active");
    assert!(d["expires_at"].as_i64().unwrap() > now_s());
    assert!(second.len() >= 43, "256 bits: {second}");
    works(&s, "the added secret", &second).await;
    works(&s, "the first secret", &first).await;
    let stored = s.rows("SELECT secrets FROM clients WHERE id = 'svc'")[0][0]
        .clone()
        .unwrap();
    assert!(
        !stored.contains(&second) && !stored.contains(&first),
        "only hashes are stored"
    );
    assert_eq!(listed(&s, &read).await[1]["description"], "ci");

    // Refusals, each changing nothing: the limit, bad bodies, unknown ids, the read scope, a
    // client without secrets, the last active secret.
    let before = s.snapshot();
    let secret_path = |id: &str| format!("{SECRETS}/{id}");
    let deactivate_path = |id: &str| format!("{SECRETS}/{id}/deactivate");
    let cases: Vec<Case> = vec![
        (
            "a third active secret",
            Method::POST,
            SECRETS.into(),
            &write,
            None,
            StatusCode::CONFLICT,
            "2 active secrets",
        ),
        (
            "an unknown field",
            Method::POST,
            SECRETS.into(),
            &write,
            Some(json!({"secret": "x"})),
            StatusCode::BAD_REQUEST,
            "unknown field `secret`",
        ),
        (
            "a past expiry",
            Method::POST,
            SECRETS.into(),
            &write,
            Some(json!({"expires_at": now_s() - 1})),
            StatusCode::BAD_REQUEST,
            "expires_at: must be in the future",
        ),
        (
            "an unknown client",
            Method::POST,
            "/admin/oauth/clients/nope/secrets".into(),
            &write,
            None,
            StatusCode::NOT_FOUND,
            "no client nope",
        ),
        (
            "an unknown client's list",
            Method::GET,
            "/admin/oauth/clients/nope/secrets".into(),
            &read,
            None,
            StatusCode::NOT_FOUND,
            "no client nope",
        ),
        (
            "an unknown secret",
            Method::PUT,
            deactivate_path("zzz"),
            &write,
            None,
            StatusCode::NOT_FOUND,
            "no secret zzz of client svc",
        ),
        (
            "an unknown secret's deletion",
            Method::DELETE,
            secret_path("zzz"),
            &write,
            None,
            StatusCode::NOT_FOUND,
            "no secret zzz of client svc",
        ),
        (
            "read scope: add",
            Method::POST,
            SECRETS.into(),
            &read,
            None,
            StatusCode::FORBIDDEN,
            "admin:write",
        ),
        (
            "read scope: rotate",
            Method::POST,
            ROTATE.into(),
            &read,
            None,
            StatusCode::FORBIDDEN,
            "admin:write",
        ),
        (
            "read scope: deactivate",
            Method::PUT,
            deactivate_path(&second_id),
            &read,
            None,
            StatusCode::FORBIDDEN,
            "admin:write",
        ),
        (
            "read scope: delete",
            Method::DELETE,
            secret_path(&second_id),
            &read,
            None,
            StatusCode::FORBIDDEN,
            "admin:write",
        ),
        (
            "a rotation with a body",
            Method::POST,
            ROTATE.into(),
            &write,
            Some(json!({"x": 1})),
            StatusCode::BAD_REQUEST,
            "unknown field `x`",
        ),
        (
            "a public client's secret",
            Method::POST,
            "/admin/oauth/clients/pub/secrets".into(),
            &write,
            None,
            StatusCode::CONFLICT,
            "client pub: the client authenticates with none, without a client secret",
        ),
        (
            "a public client's rotation",
            Method::POST,
            "/admin/oauth/clients/pub/rotate-secret".into(),
            &write,
            None,
            StatusCode::CONFLICT,
            "authenticates with none",
        ),
    ];
    for (what, method, path, token, body, want, message) in cases {
        let (status, got, _) = call(&s, method, &path, Some(token), body).await;
        assert_eq!(status, want, "{what}: {got}");
        let m = got["message"].as_str().unwrap_or_default();
        assert!(m.contains(message), "{what}: {m}");
        assert_eq!(s.snapshot(), before, "{what} changed something");
    }

    // Deactivated: 200 with the secret, inactive; it stops at once.
    let (status, body, _) = call(&s, Method::PUT, &deactivate_path(&second_id), Some(&write), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["secret_id"], second_id.as_str());
    assert_eq!(body["data"]["status"], "inactive");
    refused(&s, "a deactivated secret", &second).await;
    works(&s, "the first secret", &first).await;

    // The first is now the last active one: neither deactivated nor deleted.
    let before = s.snapshot();
    for (method, path) in [
        (Method::PUT, deactivate_path(&first_id)),
        (Method::DELETE, secret_path(&first_id)),
    ] {
        let (status, body, _) = call(&s, method, &path, Some(&write), None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["message"].as_str().unwrap().contains("locked out"), "{body}");
        assert_eq!(s.snapshot(), before);
    }
    works(&s, "the last active secret", &first).await;

    // The inactive one no longer counts: another can be added; then deleted (204), it stops.
    let (status, body, _) = call(&s, Method::POST, SECRETS, Some(&write), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let third = body["data"]["secret_value"].as_str().unwrap().to_string();
    let third_id = body["data"]["secret_id"].as_str().unwrap().to_string();
    works(&s, "the third secret", &third).await;
    let (status, _, _) = call(&s, Method::DELETE, &secret_path(&third_id), Some(&write), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    refused(&s, "a deleted secret", &third).await;
    let ids: Vec<Value> = listed(&s, &read).await.iter().map(|x| x["secret_id"].clone()).collect();
    assert_eq!(ids, [json!(first_id), json!(second_id)]);
    // The inactive one can be deleted (it is not the last active one).
    let (status, _, _) = call(&s, Method::DELETE, &secret_path(&second_id), Some(&write), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // One that expires: works until then, then 401, listed inactive, and no longer counted.
    let (status, body, _) = call(
        &s,
        Method::POST,
        SECRETS,
        Some(&write),
        Some(json!({"expires_at": now_s() + 2})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let short = body["data"]["secret_value"].as_str().unwrap().to_string();
    works(&s, "a secret before its expiry", &short).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    refused(&s, "an expired secret", &short).await;
    assert_eq!(listed(&s, &read).await[1]["status"], "inactive");
    let (status, body, _) = call(&s, Method::POST, SECRETS, Some(&write), None).await;
    assert_eq!(status, StatusCode::CREATED, "expired secrets do not count: {body}");
}

/// Rotation: a new secret; the newest previous one works until the overlap ends
/// (`client_secret.rotation_overlap`), older ones stop at once. The CLI's `rotate-secret` is
/// the same operation.
#[tokio::test]
async fn rotation_keeps_the_newest_previous_secret_for_the_overlap_only() {
    let s = Server::start(&[("AUTIONAL_CLIENT_SECRET__ROTATION_OVERLAP", "2s")]).await;
    let write = admin_token(&s, "adm", None).await;
    let oldest = make_svc(&s);
    let (status, body, _) = call(&s, Method::POST, SECRETS, Some(&write), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let newer = body["data"]["secret_value"].as_str().unwrap().to_string();

    let (status, body, _) = call(&s, Method::POST, ROTATE, Some(&write), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(d["client_id"], "svc");
    let rotated_at = d["rotated_at"].as_i64().unwrap();
    assert!((rotated_at - now_s()).abs() <= 1, "{d}");
    let until = d["previous_secret_expires_at"].as_i64().unwrap();
    assert!((until - (rotated_at + 2)).abs() <= 1, "the overlap is 2 s: {d}");
    let new = d["new_secret"].as_str().unwrap().to_string();
    works(&s, "the new secret", &new).await;
    works(&s, "the newest previous secret, during the overlap", &newer).await;
    refused(&s, "an older secret", &oldest).await;
    let l = listed(&s, &write).await;
    let statuses: Vec<&str> = l.iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["inactive", "active", "active"]);
    assert_eq!(l[1]["expires_at"], until);

    tokio::time::sleep(Duration::from_millis(3100)).await;
    refused(&s, "the previous secret after the overlap", &newer).await;
    works(&s, "the new secret after the overlap", &new).await;

    // The CLI: same shape as before, same rule.
    let out = s.cli(&["client", "rotate-secret", "svc"]);
    assert_eq!(out["client_id"], "svc");
    let cli_new = out["client_secret"].as_str().unwrap().to_string();
    assert!(out["previous_secret_valid_until"].as_i64().unwrap() > now_s(), "{out}");
    works(&s, "the CLI's new secret", &cli_new).await;
    works(&s, "the secret the CLI rotated out, during the overlap", &new).await;
    // And its other secret commands, on the same service.
    let l = s.run_cli_raw(&["client", "secret", "list", "svc"]);
    let lines = String::from_utf8_lossy(&l.stdout).lines().count();
    assert_eq!(lines, listed(&s, &write).await.len());
    let third = s.run_cli_raw(&["client", "secret", "add", "svc"]);
    assert!(!third.status.success(), "two active secrets already");
    assert!(String::from_utf8_lossy(&third.stderr).contains("2 active secrets"));
}

/// Concurrent changes on one client: of 8 adds to a client with one active secret exactly one
/// is accepted and the rest get 409; of 8 rotations none is lost (the last two new secrets
/// work, as after 8 rotations in a row). A blind overwrite of the stored list fails both.
#[tokio::test]
async fn concurrent_adds_and_rotations_neither_exceed_the_limit_nor_lose_an_update() {
    let s = Server::start(&[]).await;
    let write = admin_token(&s, "adm", None).await;
    let first = make_svc(&s);
    let all = |path: &'static str| {
        let (s, write) = (&s, &write);
        futures::future::join_all((0..8).map(move |_| call(s, Method::POST, path, Some(write), None)))
    };
    let adds = all(SECRETS).await;
    let created: Vec<&Value> = adds
        .iter()
        .filter(|(st, _, _)| *st == StatusCode::CREATED)
        .map(|(_, b, _)| b)
        .collect();
    let statuses: Vec<StatusCode> = adds.iter().map(|(st, _, _)| *st).collect();
    assert_eq!(created.len(), 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|st| *st == StatusCode::CREATED || *st == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let l = listed(&s, &write).await;
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[1]["secret_id"], created[0]["data"]["secret_id"]);
    works(
        &s,
        "the accepted secret",
        created[0]["data"]["secret_value"].as_str().unwrap(),
    )
    .await;
    works(&s, "the first secret", &first).await;

    let rotations = all(ROTATE).await;
    let mut working = 0;
    for (st, b, _) in &rotations {
        assert_eq!(*st, StatusCode::OK, "{b}");
        let (status, _) = token_with(&s, b["data"]["new_secret"].as_str().unwrap()).await;
        working += usize::from(status == StatusCode::OK);
    }
    assert_eq!(working, 2, "the last rotation's secret and the one it rotated out");
    let l = listed(&s, &write).await;
    assert_eq!(l.len(), 10, "2 secrets and 8 rotations, kept up to 10: {l:?}");
    let active = l.iter().filter(|x| x["status"] == "active").count();
    assert_eq!(active, 2, "{l:?}");
}

/// A client whose secrets were stored before secrets had ids (`[{hash, expires_at_ms}]`):
/// it authenticates, is listed with a stable id, and can be rotated.
#[tokio::test]
async fn secrets_stored_in_the_old_format_keep_working() {
    let s = Server::start(&[]).await;
    let write = admin_token(&s, "adm", None).await;
    make_svc(&s);
    let secret = "legacy-secret-of-svc-0123456789abcdefghijklmnopqrstuv";
    let hash: Vec<u8> = autional::util::sha256(secret.as_bytes()).to_vec();
    let old = json!([{"hash": hash, "expires_at_ms": null}]).to_string();
    s.exec(&format!("UPDATE clients SET secrets = '{old}' WHERE id = 'svc'"));
    works(&s, "a secret in the old format", secret).await;

    let created = s.scalar_i64("SELECT CAST(created_at_ms AS TEXT) FROM clients WHERE id = 'svc'") / 1000;
    let l = listed(&s, &write).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["secret_id"], "legacy-0");
    assert_eq!(l[0]["status"], "active");
    assert_eq!(l[0]["created_at"], created);
    assert_eq!(listed(&s, &write).await, l, "the same id on every read");

    let (status, body, _) = call(&s, Method::POST, ROTATE, Some(&write), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    works(&s, "the old-format secret during the overlap", secret).await;
    works(&s, "the new secret", body["data"]["new_secret"].as_str().unwrap()).await;
    let l = listed(&s, &write).await;
    assert_eq!(l[0]["secret_id"], "legacy-0", "its id is kept once written");
    assert!(l[0]["expires_at"].is_i64());
    let stored = s.rows("SELECT secrets FROM clients WHERE id = 'svc'")[0][0]
        .clone()
        .unwrap();
    assert!(stored.contains("\"id\":\"legacy-0\""), "{stored}");
}

/// A token of another client cannot be used for a secret's client: the secret endpoints are
/// behind the admin listener's authentication like every other.
#[tokio::test]
async fn the_secret_endpoints_need_an_admin_token() {
    let s = Server::start(&[]).await;
    let first = make_svc(&s);
    let svc_token = client_token(&s, "svc", &first, None).await;
    let before = s.snapshot();
    for (method, path) in [(Method::GET, SECRETS), (Method::POST, SECRETS), (Method::POST, ROTATE)] {
        let (status, body, _) = call(&s, method.clone(), path, Some(&svc_token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        let (status, _, _) = call(&s, method.clone(), path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(s.snapshot(), before);
}
