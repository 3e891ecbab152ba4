//! The device grant's two HTTP sides: `POST /oauth/device/authorize` for the device (RFC 8628
//! §3.1–3.2), and the `/oauth/device` page where a signed-in user enters the user code, sees the
//! client and scopes, and approves or denies (§3.3). Every code entered (looked up, approved or
//! denied) is rate-limited per address and per signed-in user.

use super::body::{client_ip, read_params, Accept, MAX_BODY};
use super::error::{no_store, ApiError};
use super::pages::{describe_scope, error_page, render, DevicePage};
use super::session::{csrf_ok, csrf_token, current};
use super::AppState;
use crate::domain::device::{display, normalize};
use crate::domain::error::OAuthError;
use crate::domain::model::{Session, User};
use crate::grants::device;
use crate::params::Params;
use crate::util::now_ms;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// `POST /oauth/device/authorize` (RFC 8628 §3.1).
#[utoipa::path(post, path = crate::paths::DEVICE_AUTHORIZATION, tag = "oauth",
    request_body(content(
        (crate::http::requests::DeviceAuthorizationRequest = "application/x-www-form-urlencoded"),
        (crate::http::requests::DeviceAuthorizationRequest = "application/json"),
    )),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "The device and user codes", body = crate::grants::device::DeviceAuthorization),
        crate::http::openapi::OAuthErrors,
    ))]
pub async fn device_authorization(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        // A form (RFC 8628 §3.1) or, as the reference service, a JSON object.
        let p = read_params(&headers, body, Accept::FormOrJson).await?;
        let client = super::token::authenticated(
            &st,
            addr,
            &headers,
            &p,
            crate::paths::DEVICE_AUTHORIZATION,
            super::ratelimit::Budget::Token,
        )
        .await?;
        device::authorize(&st.app, &client, p.get("scope")?).await
    }
    .await;
    match r {
        Ok(d) => {
            let mut resp = axum::Json(d).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}

#[derive(serde::Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

fn entry(st: &AppState, session: &Session, user: &User, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = csrf_token(st, "device", &session.id);
    let page = DevicePage {
        username: &user.username,
        csrf_token: &csrf,
        client_name: None,
        user_code: "",
        scopes: vec![],
        done: None,
        error,
    };
    render(status, &page, &[])
}

/// The confirmation for a known, pending code; `None` when the code is unknown or no longer
/// pending (counted against the address's attempts).
async fn confirm(st: &AppState, session: &Session, user: &User, input: &str) -> Option<Response> {
    let code = normalize(input)?;
    let d = st.app.store.find_device(&code).await.ok()??;
    if d.status != crate::domain::model::DeviceStatus::Pending || now_ms() >= d.expires_at_ms {
        return None;
    }
    let client = st.app.store.get_client(&d.client_id).await.ok()??;
    let scope = d.scope.clone();
    let csrf = csrf_token(st, "device", &session.id);
    let shown = display(&code);
    let page = DevicePage {
        username: &user.username,
        csrf_token: &csrf,
        client_name: Some(&client.name),
        user_code: &shown,
        scopes: scope.iter().map(|s| (s, describe_scope(s))).collect(),
        done: None,
        error: None,
    };
    Some(render(StatusCode::OK, &page, &[]))
}

fn to_login(user_code: Option<&str>) -> Response {
    let back = match user_code {
        Some(c) => format!(
            "{}?user_code={}",
            crate::paths::DEVICE,
            form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        ),
        None => crate::paths::DEVICE.into(),
    };
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &back)
        .finish();
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("{}?{q}", crate::paths::LOGIN))],
    )
        .into_response()
}

fn unknown_code(st: &AppState, session: &Session, user: &User) -> Response {
    entry(
        st,
        session,
        user,
        StatusCode::BAD_REQUEST,
        Some("That code is not valid or has expired. Check your device and try again."),
    )
}

fn too_many(st: &AppState, session: &Session, user: &User, retry_after: u64) -> Response {
    let mut resp = entry(
        st,
        session,
        user,
        StatusCode::TOO_MANY_REQUESTS,
        Some("Too many attempts. Wait a minute and try again."),
    );
    resp.headers_mut().insert(header::RETRY_AFTER, retry_after.into());
    resp
}

/// Charges one user code entered by `user` from the request's address (RFC 8628 §5.1: lookups,
/// approvals and denials alike); `Some(429 page)` when either budget is spent.
fn guess_limited(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    session: &Session,
    user: &User,
) -> Option<Response> {
    let ip = client_ip(addr.ip(), headers, st.app.cfg.http.forwarded_hops);
    st.limits
        .check_user_code(ip, &user.id)
        .err()
        .map(|e| too_many(st, session, user, e.retry_after.unwrap_or(60)))
}

/// `GET /oauth/device`: the page where a user enters the code shown on a device.
#[utoipa::path(get, path = crate::paths::DEVICE, tag = "pages",
    params(("user_code" = Option<String>, Query, description = "Prefilled from `verification_uri_complete`")),
    responses(crate::http::openapi::PageResponses))]
pub async fn device_page(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<DeviceQuery>,
) -> Response {
    let Some((session, user)) = current(&st, &headers).await else {
        return to_login(q.user_code.as_deref());
    };
    let Some(code) = q.user_code.filter(|c| !c.is_empty()) else {
        return entry(&st, &session, &user, StatusCode::OK, None);
    };
    if let Some(resp) = guess_limited(&st, addr, &headers, &session, &user) {
        return resp;
    }
    match confirm(&st, &session, &user, &code).await {
        Some(resp) => resp,
        None => unknown_code(&st, &session, &user),
    }
}

/// `POST /oauth/device`: the user's code and decision (CSRF-checked form).
#[utoipa::path(post, path = crate::paths::DEVICE, tag = "pages",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(crate::http::openapi::PageResponses))]
pub async fn device_submit(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            Some("request body is too large"),
        );
    };
    let p = match Params::from_form(&bytes) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, e.code.as_str(), e.description.as_deref()),
    };
    let Some((session, user)) = current(&st, &headers).await else {
        return to_login(p.get("user_code").ok().flatten());
    };
    if !csrf_ok(&st, "device", &session.id, p.get("csrf_token").ok().flatten()) {
        return error_page(
            StatusCode::FORBIDDEN,
            "invalid_request",
            Some("the form expired or was not sent by this server"),
        );
    }
    let input = p.get("user_code").ok().flatten().unwrap_or("");
    let decision = p.get("approved").ok().flatten();
    // Every path that takes a user code is charged, the decision included: a decision on an
    // unknown code answers differently from one on a pending code.
    if let Some(resp) = guess_limited(&st, addr, &headers, &session, &user) {
        return resp;
    }
    if decision.is_none() {
        return match confirm(&st, &session, &user, input).await {
            Some(resp) => resp,
            None => unknown_code(&st, &session, &user),
        };
    }
    let Some(code) = normalize(input) else {
        return unknown_code(&st, &session, &user);
    };
    let (approval, done) = match decision {
        Some("true") => (
            Some((user.id.clone(), session.id.clone(), session.auth_time)),
            "Device connected",
        ),
        Some("false") => (None, "Request denied"),
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("approved must be true or false"),
            )
        }
    };
    match st.app.store.decide_device(&code, approval, now_ms()).await {
        Ok(true) => {
            let csrf = csrf_token(&st, "device", &session.id);
            let page = DevicePage {
                username: &user.username,
                csrf_token: &csrf,
                client_name: None,
                user_code: "",
                scopes: vec![],
                done: Some(done),
                error: None,
            };
            render(StatusCode::OK, &page, &[])
        }
        Ok(false) => unknown_code(&st, &session, &user),
        Err(e) => ApiError(OAuthError::from(e)).into_response(),
    }
}
