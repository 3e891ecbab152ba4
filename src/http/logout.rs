//! RP-Initiated Logout (OpenID Connect RP-Initiated Logout 1.0) at `GET/POST /oauth/logout`:
//! with a valid `id_token_hint` for the signed-in session the user is signed out at once,
//! otherwise after one confirmation (CSRF-checked). `post_logout_redirect_uri` needs a valid
//! `id_token_hint` and must match one that client registered exactly; `state` is passed back. Ending the session revokes its
//! session-bound families (SPEC §4 rule 10); `offline_access` families survive.

use super::body::MAX_BODY;
use super::cookies::Cookie;
use super::pages::{error_page, form_target_source, render, unavailable_page, LogoutPage};
use super::session::{csrf_ok, csrf_token, current};
use super::AppState;
use crate::grants::authorize::redirect_with;
use crate::jose::jwt::verify_id_token_hint;
use crate::params::Params;
use crate::util::now_ms;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

struct Request {
    /// Where to send the user afterwards (validated), with `state`.
    redirect: Option<String>,
    client_name: Option<String>,
    /// The hint names this session (`sid`) or user (`sub`): no confirmation needed.
    hint_matches: bool,
}

fn bad(d: &'static str) -> Response {
    error_page(StatusCode::BAD_REQUEST, "invalid_request", Some(d))
}

#[allow(clippy::result_large_err)]
async fn validate(st: &AppState, p: &Params, session: Option<(&str, &str)>) -> Result<Request, Response> {
    let get = |k: &str| {
        p.get(k)
            .map_err(|e| error_page(StatusCode::BAD_REQUEST, e.code.as_str(), e.description.as_deref()))
    };
    let hint = match get("id_token_hint")? {
        Some(t) => Some(
            verify_id_token_hint(&st.app.keys.get(), t, &st.app.cfg.issuer)
                .map_err(|_| bad("id_token_hint is not an ID token issued here"))?,
        ),
        None => None,
    };
    let client_id = match (get("client_id")?, &hint) {
        (Some(c), Some(h)) if c != h.aud => return Err(bad("client_id does not match the id_token_hint")),
        (Some(c), _) => Some(c.to_string()),
        (None, Some(h)) => Some(h.aud.clone()),
        (None, None) => None,
    };
    let client = match &client_id {
        Some(id) => Some(
            st.app
                .store
                .get_client(id)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| bad("unknown client"))?,
        ),
        None => None,
    };
    let redirect = match get("post_logout_redirect_uri")? {
        Some(uri) => {
            // Only a client named by a valid id_token_hint gets the user sent back, and only to
            // a URI it registered: without the hint (client_id alone, which anybody can write)
            // the endpoint would redirect anywhere a client registered, signed in or not
            // (RFC 9700 §4.11.2).
            let (Some(c), Some(_)) = (&client, &hint) else {
                return Err(bad("post_logout_redirect_uri needs a valid id_token_hint"));
            };
            if !c.post_logout_redirect_uris.iter().any(|u| u == uri) {
                return Err(bad("post_logout_redirect_uri is not registered for this client"));
            }
            if crate::domain::redirect_uri::never_redirected(uri) {
                return Err(bad(
                    "post_logout_redirect_uri uses a scheme this server never redirects to",
                ));
            }
            Some(match get("state")? {
                Some(s) => redirect_with(uri, &[("state", s)]),
                None => uri.to_string(),
            })
        }
        None => None,
    };
    let hint_matches = match (&hint, session) {
        (Some(h), Some((sid, sub))) => h.sid.as_deref() == Some(sid) || h.sub == sub,
        _ => false,
    };
    Ok(Request {
        redirect,
        client_name: client.map(|c| c.name),
        hint_matches,
    })
}

async fn sign_out(st: &AppState, session_id: Option<&str>, redirect: Option<&str>) -> Response {
    if let Some(id) = session_id {
        if let Err(e) = st.app.store.end_session(id, now_ms()).await {
            return unavailable_page(e);
        }
    }
    let mut resp = match redirect {
        Some(uri) => (StatusCode::SEE_OTHER, [(header::LOCATION, uri.to_string())]).into_response(),
        None => render(
            StatusCode::OK,
            &LogoutPage {
                signed_out: true,
                client_name: None,
                username: "",
                fields: vec![],
                csrf_token: "",
            },
            &[],
        ),
    };
    resp.headers_mut()
        .append(header::SET_COOKIE, Cookie::Session.clear(&st.app.cfg));
    resp
}

/// `GET` or `POST /oauth/logout`: RP-initiated logout (OIDC RP-Initiated Logout 1.0).
#[utoipa::path(method(get, post), path = crate::paths::END_SESSION, tag = "pages",
    params(
        ("id_token_hint" = Option<String>, Query), ("post_logout_redirect_uri" = Option<String>, Query),
        ("state" = Option<String>, Query), ("client_id" = Option<String>, Query),
    ),
    responses(crate::http::openapi::PageResponses))]
pub async fn logout(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    let all = if method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return bad("request body is too large");
        };
        Params::from_form(&bytes)
    } else {
        Params::from_form(q.unwrap_or_default().as_bytes())
    };
    let all = match all {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, e.code.as_str(), e.description.as_deref()),
    };
    let p = all.without(&["csrf_token", "confirm"]);
    let current = current(&st, &headers).await;
    let session = current.as_ref().map(|(s, u)| (s.id.as_str(), u.id.as_str()));
    let req = match validate(&st, &p, session).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some((s, user)) = &current else {
        // Already signed out: nothing to end.
        return sign_out(&st, None, req.redirect.as_deref()).await;
    };
    let confirmed = method == Method::POST
        && all.get("confirm").ok().flatten() == Some("yes")
        && csrf_ok(&st, "rp-logout", &s.id, all.get("csrf_token").ok().flatten());
    if req.hint_matches || confirmed {
        return sign_out(&st, Some(&s.id), req.redirect.as_deref()).await;
    }
    let csrf = csrf_token(&st, "rp-logout", &s.id);
    let mut fields: Vec<(&str, &str)> = p.strings().collect();
    fields.sort();
    let targets: Vec<String> = req
        .redirect
        .as_deref()
        .and_then(form_target_source)
        .into_iter()
        .collect();
    render(
        StatusCode::OK,
        &LogoutPage {
            signed_out: false,
            client_name: req.client_name.as_deref(),
            username: &user.username,
            fields,
            csrf_token: &csrf,
        },
        &targets,
    )
}
