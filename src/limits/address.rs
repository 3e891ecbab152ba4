//! The key of every address-keyed limit: an IPv4 address as it is, an IPv6 address reduced to
//! its /64 prefix (one subscriber usually holds a whole /64, so per-address budgets on full
//! IPv6 addresses would give one attacker 2^64 of them), and an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`, what a dual-stack socket reports for IPv4 peers) as the IPv4 address.

use std::net::{IpAddr, Ipv6Addr};

/// The rate-limit key of a client address (see the module doc).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::address_key;
    use std::net::IpAddr;

    fn key(s: &str) -> String {
        address_key(s.parse::<IpAddr>().unwrap()).to_string()
    }

    #[test]
    fn ipv4_is_kept_whole() {
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn ipv6_is_aggregated_by_64() {
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::1"), "::");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_ipv4() {
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_ne!(key("::ffff:192.0.2.7"), key("::ffff:192.0.2.8"));
    }
}
