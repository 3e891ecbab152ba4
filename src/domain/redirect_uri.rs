//! Which URIs a client may register as `redirect_uris` and `post_logout_redirect_uris`
//! (RFC 9700 §2.1 and §4.11.2, RFC 8252 §7–8): the server sends browsers there, so only
//! targets that cannot become an open redirector or a script are accepted.
//!
//! - `https://` on any host;
//! - `http://` only on a loopback IP literal (`127.0.0.0/8`, `[::1]`), any port: native apps
//!   listening on the user's own machine (RFC 8252 §7.3). `localhost` is refused (RFC 8252
//!   §8.3: NOT RECOMMENDED; a name can resolve elsewhere or be answered by another listener);
//! - private-use schemes in reverse-domain form, i.e. with a dot (`com.example.app:/cb`,
//!   RFC 8252 §7.1), for any client: they hand the response to an app on the device, never to a
//!   web page, so they cannot serve as an open redirect. Schemes without a dot are refused: that
//!   also excludes every browser-dangerous scheme (`javascript`, `data`, `vbscript`, `file`,
//!   `about`, `blob`, …) and OS handlers such as `ms-msdt` or `tel`.
//!
//! Always refused: relative URIs, fragments (RFC 6749 §3.1.2), user information
//! (`https://user@host/`, which misleads people reading the URI), more than 2048 bytes.

/// Schemes that a browser would run or resolve locally instead of navigating to a site. Named
/// here so that a refusal says why, and so that a URI stored before these rules existed is never
/// redirected to (see [`never_redirected`]).
const DANGEROUS: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "about",
    "blob",
    "filesystem",
    "view-source",
    "chrome",
    "resource",
    "jar",
    "ws",
    "wss",
];

const MAX_LEN: usize = 2048;

/// Checks a URI a client wants the server to redirect to. The error is a precise description
/// for `invalid_redirect_uri` / `invalid_client_metadata` (or the CLI).
pub fn check(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_LEN {
        return Err(format!("a redirect URI may be at most {MAX_LEN} bytes"));
    }
    let u = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URI ({e})"))?;
    if uri.contains('#') {
        return Err(format!("`{uri}` has a fragment (RFC 6749 §3.1.2)"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("`{uri}` carries user information (user@host)"));
    }
    let scheme = u.scheme();
    if DANGEROUS.contains(&scheme) {
        return Err(format!("`{uri}`: the {scheme} scheme is not allowed"));
    }
    match scheme {
        "https" => Ok(()),
        "http" => match u.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") => Err(
                format!("`{uri}`: use http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 §8.3)"),
            ),
            _ => Err(format!(
                "`{uri}` must use https (http only on a loopback IP, 127.0.0.1 or [::1], RFC 8252 §7.3)"
            )),
        },
        s if s.contains('.') => Ok(()),
        s => Err(format!(
            "`{uri}`: the {s} scheme is not allowed (use https, http on a loopback IP, or a private-use scheme in reverse-domain form such as com.example.app:/cb)"
        )),
    }
}

/// A URI whose scheme a browser would execute or resolve locally: never redirected to, even
/// when it was registered before [`check`] existed.
pub fn never_redirected(uri: &str) -> bool {
    let scheme = uri.split_once(':').map_or("", |(s, _)| s).trim();
    DANGEROUS.iter().any(|d| d.eq_ignore_ascii_case(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_loopback_http_and_private_use_schemes() {
        for ok in [
            "https://app.example/cb",
            "https://app.example:8443/cb?x=1",
            "http://127.0.0.1:9/cb",
            "http://127.0.0.1/cb",
            "http://127.1.2.3:5000/",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app:cb",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_open_redirect_material() {
        for (bad, says) in [
            ("http://evil.example/cb", "must use https"),
            ("http://10.0.0.1/cb", "must use https"),
            ("http://localhost:9/cb", "localhost"),
            ("http://app.localhost/cb", "localhost"),
            ("javascript://x/%0aalert(1)", "javascript scheme"),
            ("javascript:alert(1)", "javascript scheme"),
            ("JavaScript:alert(1)", "javascript scheme"),
            ("data:text/html,hi", "data scheme"),
            ("vbscript:msgbox", "vbscript scheme"),
            ("file:///etc/passwd", "file scheme"),
            ("about:blank", "about scheme"),
            ("blob:https://a.example/x", "blob scheme"),
            ("ms-msdt:/id", "ms-msdt scheme"),
            ("myapp://cb", "myapp scheme"),
            ("https://app.example/cb#x", "fragment"),
            ("https://app.example/cb#", "fragment"),
            ("https://user@app.example/cb", "user information"),
            ("https://user:pw@app.example/cb", "user information"),
            ("/cb", "not an absolute URI"),
            ("", "not an absolute URI"),
        ] {
            let e = check(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(check(&format!("https://a.example/{}", "x".repeat(2048))).is_err());
    }

    #[test]
    fn never_redirected_schemes() {
        assert!(never_redirected("javascript://x/%0aalert(1)"));
        assert!(never_redirected("DATA:text/html,x"));
        assert!(!never_redirected("https://app.example/cb"));
        assert!(!never_redirected("com.example.app:/cb"));
    }
}
