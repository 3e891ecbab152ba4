//! RFC 7591 display metadata (`client_uri`, `logo_uri`, `policy_uri`, `tos_uri`, `contacts`,
//! `software_id`, `software_version`, `application_type`): accepted, stored and returned by
//! registration (RFC 7592 read and update too), the admin API (under the reference's names) and
//! the public client information; each bad value refused naming its field, storing nothing; shown
//! escaped on the consent page, whose CSP lets in the logo's https origin and nothing more.

mod common;

use common::{Server, REDIRECT};
use serde_json::{json, Value};

const REGISTRATION_ON: (&str, &str) = ("AUTIONAL_REGISTRATION__ENABLED", "true");
const NO_LIMITS: (&str, &str) = ("AUTIONAL_RATE_LIMIT__ENABLED", "false");

fn all_fields() -> Value {
    json!({
        "redirect_uris": ["https://app.example/cb"],
        "token_endpoint_auth_method": "none",
        "client_name": "Display App",
        "client_uri": "https://app.example/",
        "logo_uri": "https://cdn.example/logo.png?v=2",
        "policy_uri": "https://app.example/privacy#data",
        "tos_uri": "https://app.example/tos",
        "contacts": ["ops@app.example", "security@app.example"],
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1.0",
        "application_type": "native",
    })
}

const DISPLAY: [&str; 8] = [
    "client_uri",
    "logo_uri",
    "policy_uri",
    "tos_uri",
    "contacts",
    "software_id",
    "software_version",
    "application_type",
];

async fn register(s: &Server, meta: &Value) -> reqwest::Response {
    s.http.post(s.url("/oauth/register")).json(meta).send().await.unwrap()
}

/// The JSON body of a request's response.
async fn json_of(r: reqwest::RequestBuilder) -> Value {
    r.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn registration_round_trips_every_display_field() {
    let s = Server::start(&[REGISTRATION_ON, NO_LIMITS]).await;
    let meta = all_fields();
    let r = register(&s, &meta).await;
    assert_eq!(r.status(), 201);
    let out: Value = r.json().await.unwrap();
    for f in DISPLAY {
        assert_eq!(out[f], meta[f], "{f}: {out}");
    }
    // RFC 7592 read gives the same; an update replaces them (omitted ones are cleared).
    let id = out["client_id"].as_str().unwrap().to_string();
    let rat = out["registration_access_token"].as_str().unwrap().to_string();
    let uri = s.url(&format!("/oauth/register/{id}"));
    let read = json_of(s.http.get(&uri).bearer_auth(&rat)).await;
    for f in DISPLAY {
        assert_eq!(read[f], meta[f], "{f}: {read}");
    }
    let mut changed = meta.clone();
    changed["client_id"] = json!(id);
    changed["logo_uri"] = json!("https://cdn.example/new.png");
    changed.as_object_mut().unwrap().remove("contacts");
    changed.as_object_mut().unwrap().remove("application_type");
    let r = s.http.put(&uri).bearer_auth(&rat).json(&changed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["logo_uri"], "https://cdn.example/new.png");
    assert_eq!(updated["contacts"], json!([]));
    assert_eq!(updated["application_type"], "web");
    assert_eq!(updated["tos_uri"], meta["tos_uri"]);
    // The public client information shows the links.
    let info = json_of(s.http.get(s.url(&format!("/oauth/client/{id}")))).await;
    let d = &info["data"];
    assert_eq!(d["client_name"], "Display App");
    assert_eq!(d["logo_uri"], "https://cdn.example/new.png");
    assert_eq!(d["client_uri"], meta["client_uri"]);
    assert_eq!(d["policy_uri"], meta["policy_uri"]);
    assert_eq!(d["tos_uri"], meta["tos_uri"]);
    assert!(d.get("contacts").is_none(), "not public: {d}");
}

#[tokio::test]
async fn each_bad_display_value_is_refused_naming_its_field_and_stores_nothing() {
    let s = Server::start(&[REGISTRATION_ON, NO_LIMITS]).await;
    let cases: Vec<(&str, Value)> = vec![
        ("client_uri", json!("http://app.example/")),
        ("client_uri", json!("https://user:pw@app.example/")),
        ("client_uri", json!("https:app.example")),
        ("client_uri", json!("/home")),
        ("logo_uri", json!("http://cdn.example/logo.png")),
        ("logo_uri", json!("https://cdn.example/logo.png#frag")),
        ("logo_uri", json!("javascript:alert(1)")),
        ("logo_uri", json!("data:image/png;base64,AAAA")),
        (
            "logo_uri",
            json!("https://cdn.example/l.png?a=\"><script>alert(1)</script>"),
        ),
        ("logo_uri", json!(format!("https://cdn.example/{}", "a".repeat(2000)))),
        ("policy_uri", json!("ftp://app.example/privacy")),
        ("policy_uri", json!("https://app.example/pri vacy")),
        ("tos_uri", json!("https://bank.example@evil.example/tos")),
        ("tos_uri", json!("")),
        ("contacts", json!(["not an address"])),
        ("contacts", json!(["ops@localhost"])),
        ("contacts", json!(["<ops@app.example>"])),
        ("contacts", json!(vec!["ops@app.example"; 11])),
        ("contacts", json!([format!("{}@app.example", "a".repeat(250))])),
        ("software_id", json!("")),
        ("software_id", json!("x".repeat(201))),
        ("software_version", json!("1.0\u{0007}")),
        ("application_type", json!("browser")),
        ("application_type", json!("WEB")),
    ];
    let before = s.scalar_i64("SELECT COUNT(*) FROM clients");
    for (field, value) in cases {
        let mut meta = all_fields();
        meta[field] = value.clone();
        let r = register(&s, &meta).await;
        assert_eq!(r.status(), 400, "{field} = {value}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client_metadata", "{field} = {value}: {body}");
        let d = body["error_description"].as_str().unwrap();
        assert!(d.starts_with(field), "{field} = {value}: {d}");
    }
    assert_eq!(s.scalar_i64("SELECT COUNT(*) FROM clients"), before);
    // The CLI refuses the same values, naming its flag.
    let out = s.run_cli_raw(&[
        "client",
        "create",
        "--name",
        "X",
        "--redirect-uri",
        REDIRECT,
        "--logo-uri",
        "http://cdn.example/l.png",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--logo-uri"));
}

/// The consent page's Content-Security-Policy for `client_id` (asked again with
/// `prompt=consent` in the signed-in session `cookies`).
async fn consent_csp(s: &Server, client_id: &str, cookies: &str) -> String {
    let (path, _, _) = Server::authorize_path(client_id, "openid");
    let r = s
        .http
        .get(s.url(&format!("{path}&prompt=consent")))
        .header("Cookie", cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["content-security-policy"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn the_admin_api_takes_and_returns_the_references_names() {
    let s = Server::start(&[NO_LIMITS]).await;
    let token = s.admin_token("adm").await;
    let clients = s.admin_url(0, "/admin/oauth/clients");
    let names = json!({
        "logo_url": "https://cdn.example/l.png",
        "website": "https://app.example/",
        "privacy_policy": "https://app.example/privacy",
        "terms_url": "https://app.example/tos",
    });
    let mut body = json!({"name": "Shop", "redirect_uris": ["https://app.example/cb"]});
    body.as_object_mut().unwrap().extend(names.as_object().unwrap().clone());
    let r = s
        .http
        .post(&clients)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    for (k, v) in names.as_object().unwrap() {
        assert_eq!(&created["data"][k], v, "{k}");
    }
    assert!(created["data"]["client_secret"].is_string());
    let id = created["data"]["client_id"].as_str().unwrap().to_string();
    // Stored under RFC 7591's names: the registration view of the same client.
    let info = json_of(s.http.get(s.url(&format!("/oauth/client/{id}")))).await;
    assert_eq!(info["data"]["logo_uri"], names["logo_url"]);
    assert_eq!(info["data"]["tos_uri"], names["terms_url"]);
    // A partial update changes one and keeps the rest.
    let one = s.admin_url(0, &format!("/admin/oauth/clients/{id}"));
    let r = s
        .http
        .put(&one)
        .bearer_auth(&token)
        .json(&json!({"website": "https://shop.example/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["data"]["website"], "https://shop.example/");
    assert_eq!(got["data"]["logo_url"], names["logo_url"]);
    // Bad values are refused under the reference's names; fapi_profile stays unsupported.
    let before = s.snapshot();
    for (field, value) in [
        ("logo_url", "http://cdn.example/l.png"),
        ("website", "javascript:alert(1)"),
        ("privacy_policy", "https://a@b.example/"),
        ("terms_url", "tos"),
        ("fapi_profile", "fapi2"),
    ] {
        let r = s
            .http
            .put(&one)
            .bearer_auth(&token)
            .json(&json!({ field: value }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{field}");
        let body: Value = r.json().await.unwrap();
        let m = body["message"].as_str().unwrap();
        assert!(m.starts_with(&format!("{field}:")), "{field}: {m}");
    }
    assert_eq!(s.snapshot(), before);
    let got = json_of(s.http.get(&one).bearer_auth(&token)).await;
    assert_eq!(got["data"]["website"], "https://shop.example/");
    assert!(got["data"]["fapi_profile"].is_null());
}

fn csp_directive(csp: &str, name: &str) -> String {
    csp.split(';')
        .map(str::trim)
        .find(|d| d.starts_with(name))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_consent_page_shows_escaped_display_metadata_and_lets_in_only_the_logo_origin() {
    let s = Server::start(&[NO_LIMITS]).await;
    let name = "<script>alert('n')</script> \"Evil\" & Co";
    let logo = "https://cdn.example:8443/l.png?a=1&b='x'";
    let policy = "https://app.example/privacy?q='x'&r=1";
    s.cli(&[
        "client",
        "create",
        "--name",
        name,
        "--redirect-uri",
        REDIRECT,
        "--public",
        "--client-id",
        "shown",
        "--logo-uri",
        logo,
        "--policy-uri",
        policy,
        "--tos-uri",
        "https://app.example/tos",
    ]);
    let a = s.authorize("shown", "openid").await;
    let html = a.consent_html.expect("a consent page");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&#60;script&#62;alert("), "{html}");
    let escaped_logo = "https://cdn.example:8443/l.png?a=1&#38;b=&#39;x&#39;";
    assert!(
        html.contains(&format!("<img class=\"logo\" src=\"{escaped_logo}\"")),
        "{html}"
    );
    assert!(html.contains("alt=\"&#60;script&#62;alert(&#39;n&#39;)&#60;/script&#62; &#34;Evil&#34; &#38; Co\""));
    assert!(html.contains("width=\"64\" height=\"64\""));
    for link in [
        "https://app.example/privacy?q=&#39;x&#39;&#38;r=1",
        "https://app.example/tos",
    ] {
        assert!(
            html.contains(&format!(
                "<a href=\"{link}\" target=\"_blank\" rel=\"noopener noreferrer\">"
            )),
            "{link}: {html}"
        );
    }

    // The CSP: images from the page's origin and the logo's https origin, nothing wider.
    let csp = consent_csp(&s, "shown", &a.cookies).await;
    assert_eq!(
        csp_directive(&csp, "img-src"),
        "img-src 'self' https://cdn.example:8443",
        "{csp}"
    );
    assert_eq!(csp_directive(&csp, "default-src"), "default-src 'none'");
    // A client without a logo: no image, and img-src stays 'self'.
    let a = s.authorize("pub", "openid").await;
    assert!(!a.consent_html.unwrap().contains("<img"));
    let csp = consent_csp(&s, "pub", &a.cookies).await;
    assert_eq!(csp_directive(&csp, "img-src"), "img-src 'self'", "{csp}");
}
