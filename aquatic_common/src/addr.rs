//! Canonical socket addresses: an IPv4-mapped IPv6 address is IPv4.
//!
//! A dual-stack socket reports IPv4 clients as `::ffff:a.b.c.d`; swarms are
//! split by address family, so every address is canonicalised once, when it
//! comes off the socket, and the rest of the tracker never sees the mapped form.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    /// The version `ip` counts under: IPv4-mapped IPv6 is IPv4.
    pub fn of(ip: std::net::IpAddr) -> Self {
        if ip.to_canonical().is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            IpVersion::V4 => "ipv4",
            IpVersion::V6 => "ipv6",
        }
    }
}

/// A socket address with IPv4-mapped IPv6 turned into IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CanonicalSocketAddr(SocketAddr);

impl CanonicalSocketAddr {
    pub fn new(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => Self(SocketAddr::new(IpAddr::V4(v4), v6.port())),
                None => Self(addr),
            },
            SocketAddr::V4(_) => Self(addr),
        }
    }

    pub fn get(&self) -> SocketAddr {
        self.0
    }

    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    pub fn ip_version(&self) -> IpVersion {
        if self.0.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    /// The address to send to on a socket of the given family: an IPv4
    /// address must be mapped back when the socket is IPv6 (dual stack).
    pub fn for_socket(&self, socket_is_ipv6: bool) -> SocketAddr {
        match (self.0, socket_is_ipv6) {
            (SocketAddr::V4(v4), true) => {
                SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
            }
            (addr, _) => addr,
        }
    }
}

/// True for an IPv6 address that is really IPv4 (`::ffff:a.b.c.d`).
pub fn is_ipv4_mapped(ip: &Ipv6Addr) -> bool {
    ip.to_ipv4_mapped().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn mapped_becomes_v4_and_back() {
        let mapped: SocketAddr = "[::ffff:1.2.3.4]:80".parse().unwrap();
        let c = CanonicalSocketAddr::new(mapped);
        assert_eq!(c.ip(), IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(c.ip_version(), IpVersion::V4);
        assert_eq!(c.for_socket(true), mapped);
        assert_eq!(c.for_socket(false), "1.2.3.4:80".parse().unwrap());
    }

    #[test]
    fn real_v6_stays() {
        let a: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
        let c = CanonicalSocketAddr::new(a);
        assert_eq!(c.get(), a);
        assert_eq!(c.ip_version(), IpVersion::V6);
        assert!(!is_ipv4_mapped(&"::1".parse().unwrap()));
    }
}
