//! The server's two cookies, read and written in one place: the sign-in session and the login
//! form's CSRF binding. With an https issuer they carry the `__Host-` prefix (RFC 6265bis §4.1.3.2:
//! Secure, `Path=/`, no `Domain`), so that neither a sibling subdomain nor a plain-http response
//! can plant or overwrite them. A name sent more than once in a request counts as absent: with
//! two candidates the server cannot tell which one it set, and taking the first would let a
//! planted cookie (longer path, another domain) win. See `docs/design/sessions-and-cookies.md`.

use crate::config::Config;
use axum::http::{header, HeaderMap, HeaderValue};

/// Which cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cookie {
    Session,
    Csrf,
}

impl Cookie {
    /// The cookie's name: `__Host-` prefixed when the issuer is https.
    pub fn name(self, cfg: &Config) -> &'static str {
        match (self, cfg.is_https()) {
            (Cookie::Session, false) => "autional_session",
            (Cookie::Session, true) => "__Host-autional_session",
            (Cookie::Csrf, false) => "autional_csrf",
            (Cookie::Csrf, true) => "__Host-autional_csrf",
        }
    }

    /// The value of this cookie in the request; `None` when it is missing or sent more than
    /// once (in one `Cookie` header or several).
    pub fn get(self, cfg: &Config, headers: &HeaderMap) -> Option<String> {
        only(headers, self.name(cfg)).map(str::to_owned)
    }

    /// `Set-Cookie` for `value` (HttpOnly, SameSite=Lax, `Path=/`, no `Domain`; Secure with an
    /// https issuer); `max_age` in seconds, none for a browser-session cookie.
    pub fn set(self, cfg: &Config, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut c = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", self.name(cfg));
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        if cfg.is_https() {
            c.push_str("; Secure");
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` that deletes it.
    pub fn clear(self, cfg: &Config) -> HeaderValue {
        self.set(cfg, "", Some(0))
    }
}

/// The value of the one cookie named `name`; `None` when absent or duplicated.
fn only<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for kv in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
    {
        let Some((k, v)) = kv.trim().split_once('=') else {
            continue;
        };
        if k.trim() == name {
            if found.is_some() {
                return None;
            }
            found = Some(v.trim());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn https() -> Config {
        Config {
            issuer: "https://login.example.com".into(),
            ..Config::default()
        }
    }

    /// Found by fuzzing (fuzz/regressions/cookies/ows-before-value): whitespace after `=` is
    /// not part of the value (RFC 6265 §5.2 trims it); the value read is `*`.
    #[test]
    fn whitespace_around_a_value_is_not_part_of_it() {
        let cfg = Config::default();
        let h = headers(&[" autional_session= *"]);
        assert_eq!(Cookie::Session.get(&cfg, &h).as_deref(), Some("*"));
    }

    #[test]
    fn one_cookie_is_read_a_duplicate_is_not() {
        let cfg = Config::default();
        let get = |v: &[&str]| Cookie::Session.get(&cfg, &headers(v));
        assert_eq!(get(&["a=1; autional_session=s1; b=2"]).as_deref(), Some("s1"));
        assert_eq!(get(&["autional_session=s1; autional_session=s2"]), None);
        assert_eq!(get(&["autional_session=s1", "autional_session=s2"]), None);
        assert_eq!(get(&["autional_session=s1", "autional_session=s1"]), None);
        assert_eq!(get(&["autional_sessionx=s1; xautional_session=s2"]), None);
        assert_eq!(get(&[]), None);
    }

    #[test]
    fn https_issuer_uses_host_prefixed_secure_cookies() {
        let cfg = https();
        let set = Cookie::Session.set(&cfg, "v", Some(60));
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-autional_session=v;"), "{set}");
        assert!(set.contains("; Secure") && set.contains("; Path=/;") && !set.contains("Domain"));
        assert!(Cookie::Csrf
            .clear(&cfg)
            .to_str()
            .unwrap()
            .starts_with("__Host-autional_csrf=;"));
        // The unprefixed name is not read under https (it could have been planted).
        assert_eq!(Cookie::Session.get(&cfg, &headers(&["autional_session=s1"])), None);
        assert_eq!(
            Cookie::Session
                .get(&cfg, &headers(&["__Host-autional_session=s1"]))
                .as_deref(),
            Some("s1")
        );
        let plain = Cookie::Session.set(&Config::default(), "v", None);
        assert_eq!(
            plain.to_str().unwrap(),
            "autional_session=v; Path=/; HttpOnly; SameSite=Lax"
        );
    }
}
