//! `GET /oauth/authorize` (start: validate, sign in, consent or issue) and
//! `POST /oauth/authorize` (the consent decision, `approved=true|false`, CSRF-checked).

use super::body::MAX_BODY;
use super::pages::{describe_scope, error_page, form_target_source, render, secure_headers, ConsentPage};
use super::session::{csrf_ok, csrf_token, current};
use super::AppState;
use crate::domain::error::OAuthError;
use crate::domain::scope::Scope;
use crate::grants::authorize::{issue_code, validate, AuthorizeError, AuthorizeRequest};
use crate::params::Params;
use crate::util::now_ms;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut resp = (status, [(header::LOCATION, location.to_string())]).into_response();
    secure_headers(&mut resp, &[]);
    resp
}

fn page_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(status, e.error, e.description.as_deref())
}

fn authorize_error(st: &AppState, e: AuthorizeError, status: StatusCode) -> Response {
    match e {
        AuthorizeError::Page(e) => page_error(&e),
        AuthorizeError::Redirect {
            redirect_uri,
            error,
            state,
        } => redirect(
            status,
            &AuthorizeError::location(&redirect_uri, &error, state.as_deref(), &st.app.cfg.issuer),
        ),
    }
}

/// Sends the user to sign in, then back to this request. `prompt=login` is dropped from the
/// return path (it has been honoured); other prompt values (`consent`) stay.
fn to_login(p: &Params, req_prompt: &[String]) -> Response {
    let kept: Vec<&str> = req_prompt
        .iter()
        .map(String::as_str)
        .filter(|v| *v != "login")
        .collect();
    let mut back = p.without(&["prompt"]);
    if !kept.is_empty() {
        back = back.with("prompt", &kept.join(" "));
    }
    let return_to = format!("/oauth/authorize?{}", back.encode());
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &return_to)
        .finish();
    redirect(StatusCode::SEE_OTHER, &format!("/login?{q}"))
}

pub async fn get_authorize(State(st): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let p = match Params::from_form(q.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
    let req = match validate(&st.app, &p).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&st, e, StatusCode::FOUND),
    };
    let session = current(&st, &headers).await;
    let Some((session, user)) = session.filter(|_| !req.prompt("login")) else {
        if req.prompt("none") {
            return deny(
                &st,
                &req,
                OAuthError::new(400, "login_required", "the user is not signed in"),
                StatusCode::FOUND,
            );
        }
        return to_login(&p, &req.prompt);
    };
    let consented = match st.app.store.get_consent(&user.id, &req.client.id).await {
        Ok(c) => c
            .and_then(|s| Scope::parse(&s).ok())
            .is_some_and(|s| req.scope.is_subset_of(&s)),
        Err(_) => return page_error(&OAuthError::server_error()),
    };
    if consented && !req.prompt("consent") {
        return match issue_code(&st.app, &req, &session).await {
            Ok(loc) => redirect(StatusCode::FOUND, &loc),
            Err(e) => page_error(&e),
        };
    }
    if req.prompt("none") {
        return deny(
            &st,
            &req,
            OAuthError::new(400, "consent_required", "the user has not consented"),
            StatusCode::FOUND,
        );
    }
    let fields = p.without(&["csrf_token", "approved"]);
    let mut fields: Vec<(&str, &str)> = fields.strings().collect();
    fields.sort();
    let csrf = csrf_token(&st, "consent", &session.id);
    let scopes: Vec<(&str, &'static str)> = req.scope.iter().map(|s| (s, describe_scope(s))).collect();
    let host = url::Url::parse(&req.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| req.redirect_uri.clone());
    let targets: Vec<String> = form_target_source(&req.redirect_uri).into_iter().collect();
    render(
        StatusCode::OK,
        &ConsentPage {
            client_name: &req.client.name,
            username: &user.username,
            scopes,
            redirect_host: &host,
            fields,
            csrf_token: &csrf,
        },
        &targets,
    )
}

fn deny(st: &AppState, req: &AuthorizeRequest, error: OAuthError, status: StatusCode) -> Response {
    redirect(
        status,
        &AuthorizeError::location(&req.redirect_uri, &error, req.state.as_deref(), &st.app.cfg.issuer),
    )
}

pub async fn post_authorize(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !ct_ok {
        return page_error(&OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return page_error(&OAuthError::new(413, "invalid_request", "request body is too large"));
    };
    let all = match Params::from_form(&bytes) {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
    let p = all.without(&["csrf_token", "approved"]);
    let req = match validate(&st.app, &p).await {
        Ok(r) => r,
        Err(e) => return authorize_error(&st, e, StatusCode::SEE_OTHER),
    };
    let Some((session, user)) = current(&st, &headers).await else {
        return to_login(&p, &req.prompt);
    };
    if !csrf_ok(&st, "consent", &session.id, all.get("csrf_token").ok().flatten()) {
        return page_error(&OAuthError::new(
            403,
            "invalid_request",
            "the consent form expired or was not sent by this server",
        ));
    }
    match all.get("approved").ok().flatten() {
        Some("true") => {
            let existing = st.app.store.get_consent(&user.id, &req.client.id).await.ok().flatten();
            let mut granted: Vec<String> = existing
                .and_then(|s| Scope::parse(&s).ok())
                .map(|s| s.iter().map(str::to_owned).collect())
                .unwrap_or_default();
            granted.extend(req.scope.iter().map(str::to_owned));
            let merged = Scope::parse(&granted.join(" ")).unwrap_or_default();
            if st
                .app
                .store
                .save_consent(&user.id, &req.client.id, &merged.to_string(), now_ms())
                .await
                .is_err()
            {
                return page_error(&OAuthError::server_error());
            }
            match issue_code(&st.app, &req, &session).await {
                Ok(loc) => redirect(StatusCode::SEE_OTHER, &loc),
                Err(e) => page_error(&e),
            }
        }
        Some("false") => deny(
            &st,
            &req,
            OAuthError::new(400, "access_denied", "the user denied the request"),
            StatusCode::SEE_OTHER,
        ),
        _ => page_error(&OAuthError::invalid_request("approved must be true or false")),
    }
}
