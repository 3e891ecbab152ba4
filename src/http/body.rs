//! Reading protocol request bodies: size limit, content type, form or JSON into [`Params`],
//! and client credentials from `Authorization: Basic` and the body.

use crate::domain::error::OAuthError;
use crate::grants::client_auth::ClientCredentials;
use crate::params::Params;
use axum::body::Body;
use axum::http::{header, HeaderMap};

/// Largest body a protocol endpoint reads.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Form,
    FormOrJson,
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Reads and parses the body. Oversized → 413 `invalid_request`; not complete within
/// `http.body_timeout` → 408; wrong content type or malformed body → 400 `invalid_request`.
pub async fn read_params(headers: &HeaderMap, body: Body, accept: Accept) -> Result<Params, OAuthError> {
    let mt = media_type(headers);
    let json = match mt.as_deref() {
        Some("application/x-www-form-urlencoded") => false,
        Some("application/json") if accept == Accept::FormOrJson => true,
        _ => {
            let expected = if accept == Accept::Form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json or application/x-www-form-urlencoded"
            };
            return Err(OAuthError::invalid_request(format!("Content-Type must be {expected}")));
        }
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        if crate::listener::is_body_timeout(&e) {
            OAuthError::new(
                408,
                crate::domain::error::ErrorCode::InvalidRequest,
                "the request body did not arrive in time",
            )
        } else {
            OAuthError::new(
                413,
                crate::domain::error::ErrorCode::InvalidRequest,
                "request body is too large",
            )
        }
    })?;
    if json {
        Params::from_json(&bytes)
    } else {
        Params::from_form(&bytes)
    }
}

/// Client credentials from the Basic header (RFC 6749 §2.3.1: both parts form-encoded) and the
/// body's `client_id` / `client_secret`.
pub fn credentials(headers: &HeaderMap, p: &Params) -> Result<ClientCredentials, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
            let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_request(
                    "Authorization header must use the Basic scheme",
                ));
            }
            let decoded = crate::util::b64_decode(rest.trim())
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_request("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_request("malformed Basic credentials"))?;
            let dec = |s: &str| -> Result<String, OAuthError> {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| OAuthError::invalid_request("malformed Basic credentials"))
            };
            let (id, secret) = (dec(id)?, dec(secret)?);
            if id.is_empty() {
                return Err(OAuthError::invalid_request("malformed Basic credentials"));
            }
            Some((id, secret))
        }
    };
    let assertion = p.get("client_assertion")?.map(str::to_owned);
    Ok(ClientCredentials {
        basic,
        client_id: p.get("client_id")?.map(str::to_owned),
        client_secret: p.get("client_secret")?.map(str::to_owned),
        client_assertion_type: p.get("client_assertion_type")?.map(str::to_owned),
        assertion_subject: assertion
            .as_deref()
            .and_then(crate::grants::client_auth::assertion_subject),
        client_assertion: assertion,
        path: "",
    })
}

/// The client's address: the TCP peer, or with `http.forwarded_hops = N` the N-th entry from the
/// right of `X-Forwarded-For` (entries further left are client-controlled and never trusted).
pub fn client_ip(peer: std::net::IpAddr, headers: &HeaderMap, hops: u32) -> std::net::IpAddr {
    if hops == 0 {
        return peer;
    }
    let chain: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    chain
        .len()
        .checked_sub(hops as usize)
        .and_then(|i| chain.get(i).copied())
        .unwrap_or(peer)
}

pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok())
}
