//! Sign-in sessions and their pages: `/login` (CSRF here; the sign-in itself, argon2id under
//! `crate::limits` — per-address limit, per-account back-off, bounded concurrent hashes — in
//! `grants::accounts`), `/logout` (ends the session
//! and its session-bound families), `/account`. Cookies (see `cookies`) are HttpOnly,
//! SameSite=Lax, `__Host-` and Secure when the issuer is https; the session cookie holds a
//! 256-bit secret stored only as its SHA-256.

use super::body::user_agent;
use super::cookies::Cookie;
use super::pages::{
    error_page, form_target_source, render, unavailable_page, utc, AccountApp, AccountGrant, AccountPage,
    AccountSession, LoginPage,
};
use super::AppState;
use crate::domain::model::{Session, User};
use crate::grants::accounts::{self, SignInRefused, SignInRequest};
use crate::paths;
use crate::util::{b64url, ct_eq, hmac_sha256, now_ms, random_token, sha256};
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// A CSRF token bound to `purpose` and `binding` (the CSRF cookie, or the session id).
pub fn csrf_token(st: &AppState, purpose: &str, binding: &str) -> String {
    b64url(&hmac_sha256(
        &st.app.form_secret,
        format!("{purpose}:{binding}").as_bytes(),
    ))
}

pub fn csrf_ok(st: &AppState, purpose: &str, binding: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| ct_eq(p.as_bytes(), csrf_token(st, purpose, binding).as_bytes()))
}

/// The signed-in session and its user, if the cookie names a live one.
pub async fn current(st: &AppState, headers: &HeaderMap) -> Option<(Session, User)> {
    let token = Cookie::Session.get(&st.app.cfg, headers)?;
    let s = st
        .app
        .store
        .get_session_by_token(sha256(token.as_bytes()))
        .await
        .ok()??;
    if s.ended_at_ms.is_some() || now_ms() >= s.expires_at_ms {
        return None;
    }
    let u = st.app.store.get_user(&s.user_id).await.ok()??;
    Some((s, u))
}

/// Whether `p` is `path` with a query.
fn with_query(p: &str, path: &str) -> bool {
    p.strip_prefix(path).is_some_and(|rest| rest.starts_with('?'))
}

/// To the sign-in page, back to the account page after.
fn sign_in_for_account() -> Response {
    let to = format!("{}?return_to=%2Faccount", paths::LOGIN);
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// Only paths of this server that a sign-in may continue to.
fn safe_return_to(r: Option<&str>) -> String {
    match r {
        Some(p)
            if (with_query(p, paths::AUTHORIZE)
                || p == paths::ACCOUNT
                || p == paths::DEVICE
                || with_query(p, paths::DEVICE))
                && !p.contains(['\r', '\n', '\\']) =>
        {
            p.to_string()
        }
        _ => paths::ACCOUNT.to_string(),
    }
}

/// `form-action` for the login page: the client's redirect URI may end the chain.
fn login_form_targets(return_to: &str) -> Vec<String> {
    return_to
        .strip_prefix(paths::AUTHORIZE)
        .and_then(|r| r.strip_prefix('?'))
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "redirect_uri")
                .map(|(_, v)| v.into_owned())
        })
        .and_then(|u| form_target_source(&u))
        .into_iter()
        .collect()
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

fn login_form(
    st: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let (csrf_cookie, fresh) = match Cookie::Csrf.get(&st.app.cfg, headers) {
        Some(c) if c.len() == 43 => (c, false),
        _ => (random_token(), true),
    };
    let token = csrf_token(st, "login", &csrf_cookie);
    let mut resp = render(
        status,
        &LoginPage {
            csrf_token: &token,
            return_to,
            username,
            error,
        },
        &login_form_targets(return_to),
    );
    if fresh {
        resp.headers_mut()
            .append(header::SET_COOKIE, Cookie::Csrf.set(&st.app.cfg, &csrf_cookie, None));
    }
    resp
}

/// `GET /login`: the sign-in page.
#[utoipa::path(get, path = crate::paths::LOGIN, tag = "pages",
    params(("return_to" = Option<String>, Query, description = "A path of this server to go back to")),
    responses(crate::http::openapi::PageResponses))]
pub async fn login_page(State(st): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let return_to = safe_return_to(q.return_to.as_deref());
    login_form(&st, &headers, StatusCode::OK, &return_to, "", None)
}

/// `POST /login`: signs in (CSRF-checked form, rate-limited).
#[utoipa::path(post, path = crate::paths::LOGIN, tag = "pages",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(crate::http::openapi::PageResponses))]
pub async fn login(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024).await else {
        return error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            Some("request body is too large"),
        );
    };
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let return_to = safe_return_to(form.get("return_to").map(String::as_str));
    let username = form.get("username").map(String::as_str).unwrap_or("");
    let csrf_cookie = Cookie::Csrf.get(&st.app.cfg, &headers).unwrap_or_default();
    if csrf_cookie.is_empty() || !csrf_ok(&st, "login", &csrf_cookie, form.get("csrf_token").map(String::as_str)) {
        return login_form(
            &st,
            &headers,
            StatusCode::FORBIDDEN,
            &return_to,
            username,
            Some("Your sign-in form expired. Please try again."),
        );
    }
    let ip = super::body::client_ip(addr.ip(), &headers, st.app.cfg.http.forwarded_hops);
    let request = SignInRequest {
        ip,
        username,
        password: form.get("password").cloned().unwrap_or_default(),
        user_agent: user_agent(&headers),
    };
    let (status, message, retry_after) = match accounts::sign_in(&st.app, &st.limits, request).await {
        Ok(signed_in) => return signed_in_response(&st, return_to, &signed_in.token),
        Err(SignInRefused::Unavailable(e)) => return unavailable_page(e),
        Err(SignInRefused::Limited(retry_after)) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts. Wait a moment and try again.",
            retry_after,
        ),
        Err(SignInRefused::Busy(retry_after)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy. Try again in a moment.",
            retry_after,
        ),
        Err(SignInRefused::WrongCredentials) => (StatusCode::UNAUTHORIZED, "Wrong username or password.", None),
    };
    let page = login_form(&st, &headers, status, &return_to, username, Some(message));
    refused(page, retry_after)
}

/// After a sign-in: the session cookie, and on to `return_to`.
fn signed_in_response(st: &AppState, return_to: String, token: &str) -> Response {
    let ttl = st.app.cfg.session.ttl;
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, return_to)]).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        Cookie::Session.set(&st.app.cfg, token, Some(ttl.as_secs())),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A refused sign-in page with its `Retry-After`.
fn refused(mut resp: Response, retry_after: Option<u64>) -> Response {
    if let Some(s) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}

/// `POST /logout`: ends the sign-in session (CSRF-checked form).
#[utoipa::path(post, path = crate::paths::LOGOUT, tag = "pages",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(crate::http::openapi::PageResponses))]
pub async fn logout(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let csrf = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.into_owned());
    let Some((session, _)) = current(&st, &headers).await else {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, paths::LOGIN)]).into_response();
    };
    if !csrf_ok(&st, "logout", &session.id, csrf.as_deref()) {
        return error_page(
            StatusCode::FORBIDDEN,
            "invalid_request",
            Some("the sign-out form expired; reload the page"),
        );
    }
    if let Err(e) = st.app.store.end_session(&session.id, now_ms()).await {
        return unavailable_page(e);
    }
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, paths::LOGIN)]).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, Cookie::Session.clear(&st.app.cfg));
    resp
}

/// `GET /account`: the signed-in user's apps (grants) and consents.
#[utoipa::path(get, path = crate::paths::ACCOUNT, tag = "pages", responses(crate::http::openapi::PageResponses))]
pub async fn account(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some((session, user)) = current(&st, &headers).await else {
        return sign_in_for_account();
    };
    let families = match st.app.store.list_user_families(&user.id, crate::util::now_ms()).await {
        Ok(f) => f,
        Err(e) => return unavailable_page(e),
    };
    let now = now_ms();
    let mut apps: Vec<AccountApp> = Vec::new();
    for f in families.into_iter().filter(|f| f.is_active(now)) {
        let grant = AccountGrant {
            id: f.id.clone(),
            scope: f.scope.to_string(),
            first_used: utc(f.created_at_ms),
            last_used: utc(f.last_used_at_ms),
            user_agent: f.last_user_agent.clone(),
            ends: f.scheduled_end(now).map(utc),
        };
        match apps.iter_mut().find(|a| a.client_id == f.client_id) {
            Some(a) => a.grants.push(grant),
            None => {
                let name = st
                    .app
                    .store
                    .get_client(&f.client_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|c| c.name)
                    .unwrap_or_else(|| f.client_id.clone());
                apps.push(AccountApp {
                    client_id: f.client_id.clone(),
                    client_name: name,
                    grants: vec![grant],
                });
            }
        }
    }
    let sessions = st
        .app
        .store
        .list_user_sessions(&user.id)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|s| now < s.expires_at_ms)
        .map(|s| AccountSession {
            current: s.id == session.id,
            signed_in: utc(s.auth_time * 1000),
            user_agent: s.user_agent,
            id: s.id,
        })
        .collect();
    let csrf = csrf_token(&st, "account", &session.id);
    let logout = csrf_token(&st, "logout", &session.id);
    render(
        StatusCode::OK,
        &AccountPage {
            username: &user.username,
            csrf_token: &csrf,
            logout_token: &logout,
            apps,
            sessions,
        },
        &[],
    )
}

/// `POST /account/revoke`: ends one grant (`grant_id`) at once, or withdraws consent from a
/// client (`client_id`) and ends all its grants.
/// `POST /account/revoke`: ends one grant or withdraws a consent (CSRF-checked form).
#[utoipa::path(post, path = crate::paths::ACCOUNT_REVOKE, tag = "pages",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(crate::http::openapi::PageResponses))]
pub async fn account_revoke(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let form: std::collections::HashMap<String, String> = form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let Some((session, user)) = current(&st, &headers).await else {
        return sign_in_for_account();
    };
    if !csrf_ok(&st, "account", &session.id, form.get("csrf_token").map(String::as_str)) {
        return error_page(
            StatusCode::FORBIDDEN,
            "invalid_request",
            Some("the form expired; reload the page"),
        );
    }
    let now = now_ms();
    let store = &st.app.store;
    let done = match (form.get("grant_id"), form.get("client_id"), form.get("session_id")) {
        (Some(g), None, None) => store
            .revoke_user_family(&user.id, g, crate::domain::model::RevocationReason::RevokedByUser, now)
            .await
            .map(|ok| ok as u64),
        (None, Some(c), None) => store.revoke_consent(&user.id, c, now).await,
        // Only the user's own sessions; ending one revokes its session-bound grants.
        (None, None, Some(sid)) => match store.list_user_sessions(&user.id).await {
            Ok(list) if list.iter().any(|s| &s.id == sid) => store.end_session(sid, now).await,
            Ok(_) => Ok(0),
            Err(e) => Err(e),
        },
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("name one grant_id, client_id or session_id"),
            )
        }
    };
    match done {
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, paths::ACCOUNT)]).into_response(),
        Err(e) => unavailable_page(e),
    }
}
