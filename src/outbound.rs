//! Outbound HTTP requests to URLs that clients choose (`jwks_uri`, fetched; event receivers such
//! as `backchannel_logout_uri`, posted to), with an address policy against SSRF and hard bounds
//! on what one request may cost. Each use has its own [`Outbound`] (policy, limits).
//!
//! - Address policy: a URL's host is resolved, and only addresses that are publicly routable
//!   (see [`is_public`]) or allowed by the operator (`client_auth.jwks_fetch_allow`: host names,
//!   addresses, CIDRs) are kept. The connection goes to a vetted address only: the filtering
//!   happens inside the HTTP client's resolver, so there is no second lookup that DNS rebinding
//!   could answer differently; IP-literal hosts (which the client does not resolve) are checked
//!   before the request. Redirects are not followed and proxies from the environment are ignored
//!   (a proxy would resolve the name itself).
//! - Cost: a global cap on concurrent requests (at saturation a request fails at once with
//!   [`FetchError::Busy`]), a connect timeout, a total timeout that covers the body, and a byte
//!   cap: a `Content-Length` above it is refused before reading, and a streamed body is read
//!   chunk by chunk and dropped the moment it passes the cap.
//!
//! Design note: `docs/design/jwks-fetch.md`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Why an outbound request did not produce a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// Every outbound slot is in use; nothing was sent.
    Busy,
    /// The URL is not fetchable (scheme, host) or its host has no permitted address.
    Refused(String),
    /// The response or its body broke a limit (status, size, content).
    BadResponse(String),
    /// Network failure: DNS, connect, timeout, reset.
    Unreachable(String),
}

impl FetchError {
    /// Whether the failure is transient on our side or the network's (worth a retry later),
    /// rather than a property of the URL or of what it serves.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Busy | FetchError::Unreachable(_))
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Busy => f.write_str("too many outbound requests in progress"),
            FetchError::Refused(m) => write!(f, "refused: {m}"),
            FetchError::BadResponse(m) => write!(f, "bad response: {m}"),
            FetchError::Unreachable(m) => write!(f, "unreachable: {m}"),
        }
    }
}

/// Whether `ip` is a publicly routable unicast address. Refused: unspecified, loopback,
/// private (RFC 1918), CGNAT (100.64/10), link-local, unique-local (fc00::/7), site-local,
/// multicast, broadcast, documentation, benchmarking and other IANA special-purpose ranges, and
/// everything outside IPv6 global unicast (2000::/3). IPv4-mapped (`::ffff:a.b.c.d`), NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged by the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", 0.0.0.0
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // CGNAT
        || a == 127
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF assignments, TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // NAT64 well-known prefix: reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(v4(s[6], s[7]));
    }
    // Only global unicast; this excludes ::/8 (unspecified, loopback, IPv4-compatible),
    // 64:ff9b:1::/48, 100::/64, fc00::/7, fe80::/10, fec0::/10 and ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    if s[0] == 0x2002 {
        return is_public_v4(v4(s[1], s[2])); // 6to4
    }
    // 2001::/23 (IETF assignments: Teredo, ORCHID, benchmarking), 2001:db8::/32 and
    // 3fff::/20 (documentation).
    let special = (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8)) || (s[0] == 0x3fff && s[1] < 0x1000);
    !special
}

/// One allow-list entry's network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Which destinations outbound requests may reach.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    /// Host names (lowercase) whose addresses are all permitted, private or not.
    hosts: Vec<String>,
    /// Networks permitted even when not public.
    nets: Vec<Net>,
}

impl AddressPolicy {
    /// From `client_auth.jwks_fetch_allow`: each entry a CIDR, an address or a host name.
    pub fn parse(entries: &[String]) -> Result<AddressPolicy, String> {
        let mut p = AddressPolicy::default();
        for e in entries {
            let e = e.trim();
            let bare = e.trim_start_matches('[').trim_end_matches(']');
            if let Some(n) = Net::parse(bare) {
                p.nets.push(n);
            } else if is_host_name(e) {
                p.hosts.push(e.to_ascii_lowercase());
            } else {
                return Err(format!("`{e}` is neither a CIDR, an address nor a host name"));
            }
        }
        Ok(p)
    }

    /// Whether `ip`, an address of `host`, may be connected to.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip)
            || self.nets.iter().any(|n| n.contains(ip))
            || self
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host.trim_end_matches('.')))
    }
}

fn is_host_name(s: &str) -> bool {
    // A last label of digits only is a mistyped address, not a name.
    !s.is_empty()
        && s.len() <= 253
        && !s.rsplit('.').next().unwrap_or("").bytes().all(|b| b.is_ascii_digit())
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// The error a refused resolution carries through the HTTP client (found again by downcasting).
#[derive(Debug)]
struct NoPermittedAddress(String);

impl std::fmt::Display for NoPermittedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} has no permitted address", self.0)
    }
}

impl std::error::Error for NoPermittedAddress {}

/// The HTTP client's resolver: the system's resolution, filtered by the policy. The client
/// connects only to what this returns.
struct PolicyResolver(Arc<AddressPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = all.into_iter().filter(|a| policy.permits(&host, a.ip())).collect();
            if kept.is_empty() {
                return Err(Box::new(NoPermittedAddress(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Limits of one outbound request.
#[derive(Clone, Debug)]
pub struct Limits {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_bytes: usize,
    /// Requests in progress at once, over the whole process.
    pub concurrency: usize,
}

/// The process's outbound HTTP client.
pub struct Outbound {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    slots: tokio::sync::Semaphore,
    limits: Limits,
}

impl Outbound {
    pub fn new(policy: AddressPolicy, limits: Limits) -> anyhow::Result<Outbound> {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(PolicyResolver(policy.clone()))
            .user_agent(concat!("autional/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outbound {
            http,
            policy,
            slots: tokio::sync::Semaphore::new(limits.concurrency),
            limits,
        })
    }

    /// GETs `url` and returns its body: a 200 response of at most `max_bytes`.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let u = self.vet(url)?;
        let _slot = self.slots.try_acquire().map_err(|_| FetchError::Busy)?;
        // The client's timeout covers the body too; this one also bounds the loop below.
        tokio::time::timeout(self.limits.timeout, self.get_capped(u))
            .await
            .unwrap_or_else(|_| Err(FetchError::Unreachable("timed out".into())))
    }

    /// POSTs `body` as `content_type` (with `Accept: accept` when given) to exactly `url` (a
    /// redirect is an answer like any other, never followed) and returns the answer's status and
    /// at most `max_bytes` of its body, whatever the status: what it means is the caller's
    /// decision (`domain::events::answer`).
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        accept: Option<&str>,
        body: String,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        let u = self.vet(url)?;
        let _slot = self.slots.try_acquire().map_err(|_| FetchError::Busy)?;
        let send = async {
            let mut req = self.http.post(u).header(reqwest::header::CONTENT_TYPE, content_type);
            if let Some(a) = accept {
                req = req.header(reqwest::header::ACCEPT, a);
            }
            let mut resp = req.body(body).send().await.map_err(classify)?;
            let status = resp.status().as_u16();
            let mut got = Vec::new();
            while got.len() < self.limits.max_bytes {
                match resp.chunk().await {
                    Ok(Some(c)) => got.extend_from_slice(&c[..c.len().min(self.limits.max_bytes - got.len())]),
                    _ => break,
                }
            }
            Ok((status, got))
        };
        tokio::time::timeout(self.limits.timeout, send)
            .await
            .unwrap_or_else(|_| Err(FetchError::Unreachable("timed out".into())))
    }

    /// The URL, if it may be requested: http(s), with a host; an IP-literal host (which the
    /// client does not resolve) must be permitted by the policy.
    fn vet(&self, url: &str) -> Result<url::Url, FetchError> {
        let u = url::Url::parse(url).map_err(|_| FetchError::Refused("not a URL".into()))?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(FetchError::Refused("only http(s) URLs are fetched".into()));
        }
        let literal = match u.host() {
            Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(FetchError::Refused("the URL has no host".into())),
        };
        if let Some(ip) = literal {
            // The HTTP client does not resolve IP literals, so the policy is applied here.
            if !self.policy.permits(&ip.to_string(), ip) {
                return Err(FetchError::Refused(format!("{ip} is not a permitted address")));
            }
        }
        Ok(u)
    }

    async fn get_capped(&self, u: url::Url) -> Result<Vec<u8>, FetchError> {
        let max = self.limits.max_bytes;
        let mut resp = self
            .http
            .get(u)
            .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(classify)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(FetchError::BadResponse(format!("status {}", resp.status().as_u16())));
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::BadResponse(format!("larger than {max} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > max {
                // Dropping the response closes the connection: nothing more is read.
                return Err(FetchError::BadResponse(format!("larger than {max} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A transport error: refused when the resolver found no permitted address, else unreachable
/// (DNS, connect, TLS, reset, timeout). Status, size and content problems are found above.
fn classify(e: reqwest::Error) -> FetchError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut text = String::new();
    while let Some(s) = src {
        if let Some(n) = s.downcast_ref::<NoPermittedAddress>() {
            return FetchError::Refused(n.to_string());
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s.to_string());
        src = s.source();
    }
    if e.is_timeout() {
        FetchError::Unreachable("timed out".into())
    } else {
        FetchError::Unreachable(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_special_ranges_are_not_public() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip(a)), "{a} must be refused");
        }
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(is_public(ip(a)), "{a} is public");
        }
    }

    #[test]
    fn ipv6_special_ranges_are_not_public() {
        for a in [
            "::",
            "::1",
            "::127.0.0.1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "64:ff9b:1::1",
            "2001:db8::1",
            "2001::1",
            "2001:10::1",
            "3fff::1",
            "4000::1",
        ] {
            assert!(!is_public(ip(a)), "{a} must be refused");
        }
        for a in ["2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450::1"] {
            assert!(is_public(ip(a)), "{a} is public");
        }
    }

    #[test]
    fn embedded_ipv4_decides_for_mapped_nat64_and_6to4() {
        for a in [
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
            "2002:7f00:1::1",
        ] {
            assert!(!is_public(ip(a)), "{a} must be refused");
        }
        for a in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:0808:0808::1"] {
            assert!(is_public(ip(a)), "{a} is public");
        }
    }

    #[test]
    fn allow_list_takes_cidrs_addresses_and_hosts() {
        let p = AddressPolicy::parse(&[
            "127.0.0.0/8".into(),
            "fd00::/8".into(),
            "10.1.2.3".into(),
            "[::1]".into(),
            "Keys.Internal".into(),
        ])
        .unwrap();
        assert!(p.permits("x", ip("127.0.0.1")));
        assert!(p.permits("x", ip("::ffff:127.9.9.9")), "mapped IPv4 matches IPv4 nets");
        assert!(p.permits("x", ip("fd12::1")));
        assert!(p.permits("x", ip("10.1.2.3")));
        assert!(!p.permits("x", ip("10.1.2.4")));
        assert!(p.permits("x", ip("::1")));
        assert!(p.permits("keys.internal", ip("192.168.0.5")));
        assert!(p.permits("KEYS.internal.", ip("192.168.0.5")));
        assert!(!p.permits("other.internal", ip("192.168.0.5")));
        assert!(!p.permits("x", ip("169.254.169.254")));
        assert!(p.permits("x", ip("8.8.8.8")));
        assert!(!AddressPolicy::default().permits("localhost", ip("127.0.0.1")));
        assert!(AddressPolicy::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(AddressPolicy::parse(&["http://x".into()]).is_err());
        assert!(AddressPolicy::parse(&["10.1.2.300".into()]).is_err());
        assert!(AddressPolicy::parse(&["0.0.0.0/0".into()])
            .unwrap()
            .permits("x", ip("10.0.0.1")));
    }
}
