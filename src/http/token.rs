//! `POST /oauth/token` (RFC 6749 §3.2: form body, RFC status codes) and `POST /oauth/refresh`
//! (SPEC §4: JSON or form, `invalid_grant` as 401). Both run `grants::refresh`.

use super::body::{client_ip, credentials, read_params, user_agent, Accept};
use super::error::{no_store, ApiError};
use super::AppState;
use crate::domain::error::OAuthError;
use crate::grants::authorization_code::{exchange, CodeInput};
use crate::grants::client_auth::authenticate;
use crate::grants::refresh::{refresh as refresh_grant, RefreshInput};
use crate::grants::TokenResponse;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

fn respond(r: Result<TokenResponse, OAuthError>) -> Response {
    match r {
        Ok(t) => {
            let mut resp = axum::Json(t).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn token(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(token_inner(&st, addr, &headers, body).await)
}

async fn token_inner(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    let p = read_params(headers, body, Accept::Form).await?;
    let creds = credentials(headers, &p)?;
    st.limits.check_token(
        creds.claimed_id(),
        client_ip(addr.ip(), headers, st.app.cfg.http.forwarded_hops),
    )?;
    let grant_type = p.required("grant_type")?;
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type `{grant_type}` is not supported"
        )));
    }
    let client = authenticate(&st.app, &creds).await?;
    let ua = user_agent(headers);
    match grant_type {
        "authorization_code" => {
            let input = CodeInput {
                code: p.required("code")?,
                redirect_uri: p.get("redirect_uri")?,
                code_verifier: p.get("code_verifier")?,
                user_agent: ua,
            };
            exchange(&st.app, &client, input).await
        }
        _ => {
            let input = RefreshInput {
                refresh_token: p.required("refresh_token")?,
                scope: p.get("scope")?,
                user_agent: ua,
            };
            refresh_grant(&st.app, &client, input).await
        }
    }
}

pub async fn refresh(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = refresh_inner(&st, addr, &headers, body).await.map_err(|mut e| {
        // The reference API's deliberate deviation (SPEC §4): invalid_grant is 401 here.
        if e.error == "invalid_grant" {
            e.status = 401;
        }
        e
    });
    respond(r)
}

async fn refresh_inner(
    st: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    let p = read_params(headers, body, Accept::FormOrJson).await?;
    if let Some(gt) = p.get("grant_type")? {
        if gt != "refresh_token" {
            return Err(OAuthError::invalid_request(
                "grant_type must be refresh_token (or absent) here",
            ));
        }
    }
    let refresh_token = p.required("refresh_token")?;
    let creds = credentials(headers, &p)?;
    if creds.claimed_id().is_none() {
        return Err(OAuthError::invalid_request("missing required parameter `client_id`"));
    }
    st.limits.check_token(
        creds.claimed_id(),
        client_ip(addr.ip(), headers, st.app.cfg.http.forwarded_hops),
    )?;
    let client = authenticate(&st.app, &creds).await?;
    let input = RefreshInput {
        refresh_token,
        scope: p.get("scope")?,
        user_agent: user_agent(headers),
    };
    refresh_grant(&st.app, &client, input).await
}
