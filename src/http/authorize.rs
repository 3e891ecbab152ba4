//! `GET /oauth/authorize` (start: validate, sign in, consent or issue) and
//! `POST /oauth/authorize` (the consent decision, `approved=true|false`, CSRF-checked). A
//! `request_uri` from PAR stands for its pushed parameters and is single-use.

use super::body::MAX_BODY;
use super::pages::{
    describe_scope, error_page, form_target_source, image_source, render_with_images, secure_headers, ConsentPage,
};
use super::session::{csrf_ok, csrf_token, current};
use super::AppState;
use crate::domain::error::OAuthError;
use crate::domain::model::Session;
use crate::domain::rar;
use crate::domain::scope::Scope;
use crate::grants::authorize::{issue_code, validate, AuthorizeError, AuthorizeRequest};
use crate::grants::par;
use crate::params::Params;
use crate::util::now_ms;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut resp = (status, [(header::LOCATION, location.to_string())]).into_response();
    secure_headers(&mut resp, &[], &[]);
    resp
}

fn page_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(status, e.code.as_str(), e.description.as_deref())
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
    let return_to = format!("{}?{}", crate::paths::AUTHORIZE, back.encode());
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &return_to)
        .finish();
    redirect(StatusCode::SEE_OTHER, &format!("{}?{q}", crate::paths::LOGIN))
}

/// The request's effective parameters: the query itself, or for `request_uri` (PAR) the pushed
/// parameters, with the key that marks the pushed request used once a response goes out.
async fn effective(st: &AppState, raw: &Params) -> Result<(Params, Option<[u8; 32]>), Response> {
    let Some(request_uri) = raw.get("request_uri").map_err(|e| page_error(&e))? else {
        return Ok((raw.clone(), None));
    };
    let client_id = raw
        .get("client_id")
        .map_err(|e| page_error(&e))?
        .ok_or_else(|| page_error(&OAuthError::invalid_request("missing required parameter `client_id`")))?;
    let (p, hash) = par::resolve(&st.app, client_id, request_uri)
        .await
        .map_err(|e| page_error(&e))?;
    Ok((p, Some(hash)))
}

/// Sends an authorization response; a pushed request is marked used first, and a second
/// response for the same `request_uri` is refused (RFC 9126 §4, SPEC §5).
async fn respond(st: &AppState, par_hash: Option<[u8; 32]>, status: StatusCode, location: &str) -> Response {
    if let Some(h) = par_hash {
        match st.app.store.mark_par_used(h, now_ms()).await {
            Ok(true) => {}
            Ok(false) => return page_error(&par::invalid_request_uri()),
            Err(e) => return page_error(&OAuthError::from(e)),
        }
    }
    redirect(status, location)
}

async fn authorize_failed(
    st: &AppState,
    par_hash: Option<[u8; 32]>,
    e: AuthorizeError,
    status: StatusCode,
) -> Response {
    match e {
        AuthorizeError::Page(e) => page_error(&e),
        AuthorizeError::Redirect {
            redirect_uri,
            error,
            state,
        } => {
            let loc = AuthorizeError::location(&redirect_uri, &error, state.as_deref(), &st.app.cfg.issuer);
            respond(st, par_hash, status, &loc).await
        }
    }
}

async fn deny(
    st: &AppState,
    par_hash: Option<[u8; 32]>,
    req: &AuthorizeRequest,
    error: OAuthError,
    status: StatusCode,
) -> Response {
    let loc = AuthorizeError::location(&req.redirect_uri, &error, req.state.as_deref(), &st.app.cfg.issuer);
    respond(st, par_hash, status, &loc).await
}

async fn issue(
    st: &AppState,
    par_hash: Option<[u8; 32]>,
    req: &AuthorizeRequest,
    session: &Session,
    status: StatusCode,
) -> Response {
    match issue_code(&st.app, req, session).await {
        Ok(loc) => respond(st, par_hash, status, &loc).await,
        Err(e) => page_error(&e),
    }
}

/// `GET /oauth/authorize` (RFC 6749 §4.1.1): signs in, asks consent, answers with a redirect.
#[utoipa::path(get, path = crate::paths::AUTHORIZE, tag = "pages", params(
        ("client_id" = Option<String>, Query), ("response_type" = Option<String>, Query, description = "`code`"),
        ("redirect_uri" = Option<String>, Query), ("scope" = Option<String>, Query), ("state" = Option<String>, Query),
        ("nonce" = Option<String>, Query), ("code_challenge" = Option<String>, Query),
        ("code_challenge_method" = Option<String>, Query, description = "`S256`"),
        ("request_uri" = Option<String>, Query, description = "From PAR (RFC 9126)"),
        ("prompt" = Option<String>, Query), ("max_age" = Option<String>, Query),
        ("authorization_details" = Option<String>, Query, description = "RAR (RFC 9396), a JSON array"),
    ),
    responses(crate::http::openapi::PageResponses))]
pub async fn get_authorize(State(st): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let raw = match Params::from_form(q.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
    let (p, par_hash) = match effective(&st, &raw).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let req = match validate(&st.app, &p, par_hash.is_some()).await {
        Ok(r) => r,
        Err(e) => return authorize_failed(&st, par_hash, e, StatusCode::FOUND).await,
    };
    let session = current(&st, &headers).await;
    let Some((session, user)) = session.filter(|_| !req.prompt("login")) else {
        if req.prompt("none") {
            let e = OAuthError::new(
                400,
                crate::domain::error::ErrorCode::LoginRequired,
                "the user is not signed in",
            );
            return deny(&st, par_hash, &req, e, StatusCode::FOUND).await;
        }
        return to_login(&raw, &req.prompt);
    };
    // Remembered consent covers scopes; RAR details are per transaction and always asked.
    let consented = req.details.is_none()
        && match st.app.store.get_consent(&user.id, &req.client.id).await {
            Ok(c) => c
                .and_then(|s| Scope::parse(&s).ok())
                .is_some_and(|s| req.scope.is_subset_of(&s)),
            Err(e) => return page_error(&OAuthError::from(e)),
        };
    if consented && !req.prompt("consent") {
        return issue(&st, par_hash, &req, &session, StatusCode::FOUND).await;
    }
    if req.prompt("none") {
        let e = OAuthError::new(
            400,
            crate::domain::error::ErrorCode::ConsentRequired,
            "the user has not consented",
        );
        return deny(&st, par_hash, &req, e, StatusCode::FOUND).await;
    }
    // The form carries the request as received (for PAR: client_id and request_uri).
    let fields = raw.without(&["csrf_token", "approved"]);
    let mut fields: Vec<(&str, &str)> = fields.strings().collect();
    fields.sort();
    let csrf = csrf_token(&st, "consent", &session.id);
    let scopes: Vec<(&str, &'static str)> = req.scope.iter().map(|s| (s, describe_scope(s))).collect();
    let details = req.details.as_deref().map(rar::describe).unwrap_or_default();
    let host = url::Url::parse(&req.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| req.redirect_uri.clone());
    let targets: Vec<String> = form_target_source(&req.redirect_uri).into_iter().collect();
    let shown = &req.client.display;
    let logo = shown.logo_uri.as_deref().filter(|u| image_source(u).is_some());
    let images: Vec<String> = logo.and_then(image_source).into_iter().collect();
    render_with_images(
        StatusCode::OK,
        &ConsentPage {
            client_name: &req.client.name,
            logo_uri: logo,
            client_uri: shown.client_uri.as_deref(),
            policy_uri: shown.policy_uri.as_deref(),
            tos_uri: shown.tos_uri.as_deref(),
            username: &user.username,
            scopes,
            details,
            redirect_host: &host,
            fields,
            csrf_token: &csrf,
        },
        &targets,
        &images,
    )
}

/// `POST /oauth/authorize`: the consent form's decision (`approved=true|false`, CSRF token).
#[utoipa::path(post, path = crate::paths::AUTHORIZE, tag = "pages",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded"),
    responses(crate::http::openapi::PageResponses))]
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
        return page_error(&OAuthError::new(
            413,
            crate::domain::error::ErrorCode::InvalidRequest,
            "request body is too large",
        ));
    };
    let all = match Params::from_form(&bytes) {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
    let raw = all.without(&["csrf_token", "approved"]);
    let (p, par_hash) = match effective(&st, &raw).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let req = match validate(&st.app, &p, par_hash.is_some()).await {
        Ok(r) => r,
        Err(e) => return authorize_failed(&st, par_hash, e, StatusCode::SEE_OTHER).await,
    };
    let Some((session, user)) = current(&st, &headers).await else {
        return to_login(&raw, &req.prompt);
    };
    if !csrf_ok(&st, "consent", &session.id, all.get("csrf_token").ok().flatten()) {
        return page_error(&OAuthError::new(
            403,
            crate::domain::error::ErrorCode::InvalidRequest,
            "the consent form expired or was not sent by this server",
        ));
    }
    match all.get("approved").ok().flatten() {
        Some("true") => {
            let existing = match st.app.store.get_consent(&user.id, &req.client.id).await {
                Ok(c) => c,
                Err(e) => return page_error(&OAuthError::from(e)),
            };
            let mut granted: Vec<String> = existing
                .and_then(|s| Scope::parse(&s).ok())
                .map(|s| s.iter().map(str::to_owned).collect())
                .unwrap_or_default();
            granted.extend(req.scope.iter().map(str::to_owned));
            let merged = Scope::parse(&granted.join(" ")).unwrap_or_default();
            if let Err(e) = st
                .app
                .store
                .save_consent(&user.id, &req.client.id, &merged.to_string(), now_ms())
                .await
            {
                return page_error(&OAuthError::from(e));
            }
            issue(&st, par_hash, &req, &session, StatusCode::SEE_OTHER).await
        }
        Some("false") => {
            let e = OAuthError::new(
                400,
                crate::domain::error::ErrorCode::AccessDenied,
                "the user denied the request",
            );
            deny(&st, par_hash, &req, e, StatusCode::SEE_OTHER).await
        }
        _ => page_error(&OAuthError::invalid_request("approved must be true or false")),
    }
}
