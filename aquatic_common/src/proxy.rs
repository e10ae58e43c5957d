//! Reverse proxies: the client's address from a header such as
//! `X-Forwarded-For`, believed only when the connection comes from a
//! configured trusted proxy (otherwise anyone could announce any address).

use std::net::IpAddr;

use ipnet::IpNet;

/// `network.trusted_proxies` entries (CIDR networks or single addresses)
/// parsed; an error names the entry.
pub fn parse_trusted_proxies(entries: &[String]) -> anyhow::Result<Vec<IpNet>> {
    entries
        .iter()
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "config: network.trusted_proxies entry {entry:?} is not an IP address or CIDR network (e.g. \"10.0.0.0/8\")"
                    )
                })
        })
        .collect()
}

pub use aquatic_wire::forwarded::forwarded_ip;

/// A connection from a trusted proxy without the address header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeaderMissing;

/// The client's address (canonical: IPv4-mapped IPv6 counts as IPv4):
/// the forwarded one when `direct` is a trusted proxy and a header name is
/// configured, else `direct`.
pub fn client_ip(
    direct: IpAddr,
    forwarded: Option<IpAddr>,
    header_configured: bool,
    trusted: &[IpNet],
) -> Result<IpAddr, ProxyHeaderMissing> {
    if header_configured && trusted.iter().any(|net| net.contains(&direct)) {
        forwarded
            .map(|ip| ip.to_canonical())
            .ok_or(ProxyHeaderMissing)
    } else {
        Ok(direct.to_canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_believed_only_from_trusted_proxies() {
        let trusted = parse_trusted_proxies(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        let claimed: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(client_ip(proxy, Some(claimed), true, &trusted), Ok(claimed));
        assert_eq!(
            client_ip(proxy, None, true, &trusted),
            Err(ProxyHeaderMissing)
        );
        assert_eq!(
            client_ip(stranger, Some(claimed), true, &trusted),
            Ok(stranger)
        );
        assert_eq!(client_ip(proxy, Some(claimed), false, &trusted), Ok(proxy));
        assert!(parse_trusted_proxies(&["nonsense".into()]).is_err());
    }
}
