//! The admin API's test helpers: an admin client's token, a `client_credentials` token, and a
//! call to the admin listener.

use super::Server;
use reqwest::StatusCode;
use serde_json::Value;

/// An admin client (`client create --admin`, optionally narrowed with `--scope`) and an access
/// token it got with `client_credentials`.
pub async fn admin_token(s: &Server, id: &str, scope: Option<&str>) -> String {
    let mut args = vec!["client", "create", "--name", "Admin", "--admin", "--client-id", id];
    if let Some(sc) = scope {
        args.extend(["--scope", sc]);
    }
    let secret = s.cli(&args)["client_secret"].as_str().unwrap().to_string();
    client_token(s, id, &secret, None).await
}

/// A `client_credentials` token of `id`.
pub async fn client_token(s: &Server, id: &str, secret: &str, scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(sc) = scope {
        form.push(("scope", sc));
    }
    let r = s
        .http
        .post(s.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

pub async fn call(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = s.http.request(method, s.admin_url(0, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body, headers)
}
