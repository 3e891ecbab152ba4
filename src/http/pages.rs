//! HTML pages: askama templates (auto-escaped) served with a strict Content-Security-Policy,
//! `X-Frame-Options: DENY`, `no-store`, and no referrer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(askama::Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf_token: &'a str,
    pub return_to: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(askama::Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    /// The client's display metadata (https URIs only, `domain::display`).
    pub logo_uri: Option<&'a str>,
    pub client_uri: Option<&'a str>,
    pub policy_uri: Option<&'a str>,
    pub tos_uri: Option<&'a str>,
    pub username: &'a str,
    pub scopes: Vec<(&'a str, &'static str)>,
    /// RAR details in plain words.
    pub details: Vec<String>,
    pub redirect_host: &'a str,
    pub fields: Vec<(&'a str, &'a str)>,
    pub csrf_token: &'a str,
}

#[derive(askama::Template)]
#[template(path = "device.html")]
pub struct DevicePage<'a> {
    pub username: &'a str,
    pub csrf_token: &'a str,
    /// Set once the code is known: the confirmation with the approve/deny buttons.
    pub client_name: Option<&'a str>,
    pub user_code: &'a str,
    pub scopes: Vec<(&'a str, &'static str)>,
    /// Set after the decision.
    pub done: Option<&'a str>,
    pub error: Option<&'a str>,
}

#[derive(askama::Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub signed_out: bool,
    pub client_name: Option<&'a str>,
    pub username: &'a str,
    pub fields: Vec<(&'a str, &'a str)>,
    pub csrf_token: &'a str,
}

#[derive(askama::Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub error: &'a str,
    pub description: Option<&'a str>,
}

#[derive(askama::Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    pub username: &'a str,
    /// For the revoke forms.
    pub csrf_token: &'a str,
    /// For the sign-out form.
    pub logout_token: &'a str,
    pub apps: Vec<AccountApp>,
    pub sessions: Vec<AccountSession>,
}

/// One of the user's sign-in sessions.
pub struct AccountSession {
    pub id: String,
    pub signed_in: String,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// One client holding grants of the signed-in user.
pub struct AccountApp {
    pub client_id: String,
    pub client_name: String,
    pub grants: Vec<AccountGrant>,
}

pub struct AccountGrant {
    pub id: String,
    pub scope: String,
    pub first_used: String,
    pub last_used: String,
    pub user_agent: Option<String>,
    /// When an administrator's scheduled revocation ends it.
    pub ends: Option<String>,
}

/// `YYYY-MM-DD HH:MM UTC` for a millisecond timestamp.
pub fn utc(ms: i64) -> String {
    let secs = ms / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[derive(askama::Template)]
#[template(path = "demo_callback.html")]
pub struct DemoCallbackPage {
    pub code: Option<String>,
    pub error: Option<String>,
    pub state: Option<String>,
}

/// What each scope lets the client do, in plain words.
pub fn describe_scope(s: &str) -> &'static str {
    match s {
        "openid" => "confirm who you are",
        "profile" => "see your name and username",
        "email" => "see your email address",
        "offline_access" => "stay connected after you sign out, until you revoke it",
        crate::domain::consents::SCOPE => crate::domain::consents::DESCRIPTION,
        _ => "a permission this server does not describe",
    }
}

/// The CSP source for where a form submission may end up (the client's redirect URI).
pub fn form_target_source(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    match u.scheme() {
        "http" | "https" => Some(u.origin().ascii_serialization()),
        other => Some(format!("{other}:")),
    }
}

/// The CSP source for an image the page shows (the consent page's client logo): its https
/// origin, nothing wider; `None` for anything else (never plain http: no mixed content).
pub fn image_source(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    (u.scheme() == "https" && u.host().is_some()).then(|| u.origin().ascii_serialization())
}

/// Renders a page with the security headers. `form_targets` are extra `form-action` sources.
pub fn render<T: askama::Template>(status: StatusCode, page: &T, form_targets: &[String]) -> Response {
    render_with_images(status, page, form_targets, &[])
}

/// [`render`], with extra `img-src` sources (see [`image_source`]).
pub fn render_with_images<T: askama::Template>(
    status: StatusCode,
    page: &T,
    form_targets: &[String],
    images: &[String],
) -> Response {
    let html = match page.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let mut resp = (status, axum::response::Html(html)).into_response();
    secure_headers(&mut resp, form_targets, images);
    resp
}

/// `'self'` and `extra`, less any source that could break out of its directive.
fn sources(extra: &[String]) -> String {
    let mut out = String::from("'self'");
    for t in extra {
        if !t.contains([';', ',', '\'', ' ', '\n', '\r']) {
            out.push(' ');
            out.push_str(t);
        }
    }
    out
}

/// The pages' headers: a strict CSP (`form_targets` extra `form-action` sources, `images` extra
/// `img-src` ones), no framing, no sniffing, no referrer, no caching.
pub fn secure_headers(resp: &mut Response, form_targets: &[String], images: &[String]) {
    let (form_action, img) = (sources(form_targets), sources(images));
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src {img}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub fn error_page(status: StatusCode, error: &str, description: Option<&str>) -> Response {
    let mut resp = render(status, &ErrorPage { error, description }, &[]);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::domain::error::RETRY_AFTER_UNAVAILABLE_S),
        );
    }
    resp
}

/// The page for a store failure: 503 `temporarily_unavailable` (logged by the conversion).
pub fn unavailable_page(e: crate::store::StoreError) -> Response {
    let e = crate::domain::error::OAuthError::from(e);
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    error_page(status, e.code.as_str(), e.description.as_deref())
}

/// `GET /static/style.css`: the pages' stylesheet.
#[utoipa::path(get, path = crate::paths::STYLESHEET, tag = "pages",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
pub async fn stylesheet() -> Response {
    let mut resp = (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/style.css"),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp.headers_mut()
        .insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    error: Option<String>,
    state: Option<String>,
}

/// `--demo` only: shows the authorization response so a newcomer can copy the code.
pub async fn demo_callback(axum::extract::Query(q): axum::extract::Query<CallbackQuery>) -> Response {
    render(
        StatusCode::OK,
        &DemoCallbackPage {
            code: q.code,
            error: q.error,
            state: q.state,
        },
        &[],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc(1_795_677_799_000), "2026-11-26 07:23 UTC");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
