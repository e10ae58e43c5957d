//! Reverse proxies: the client's address from a header such as
//! `X-Forwarded-For`, believed only when the connection comes from a
//! configured trusted proxy (otherwise anyone could announce any address).

use std::net::{IpAddr, SocketAddr};

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

/// The address the last proxy put in header `name`: the last entry of the
/// last such header that is an address (`1.2.3.4`, `1.2.3.4:5`, `::1`,
/// `[::1]`, `[::1]:5`). Headers are (name, value) pairs.
pub fn forwarded_ip<'a>(
    headers: impl DoubleEndedIterator<Item = (&'a str, &'a [u8])>,
    name: &str,
) -> Option<IpAddr> {
    headers
        .rev()
        .filter(|(header, _)| header.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.rsplit(|&b| b == b','))
        .find_map(parse_forwarded_entry)
}

fn parse_forwarded_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(address) = entry.parse::<SocketAddr>() {
        return Some(address.ip());
    }
    let bracketed = entry.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

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

    #[test]
    fn last_entry_of_last_header_wins() {
        let headers = [
            ("X-Forwarded-For", &b"1.1.1.1"[..]),
            ("x-forwarded-for", &b"2.2.2.2, [2001:db8::1]:80"[..]),
            ("Other", &b"3.3.3.3"[..]),
        ];
        assert_eq!(
            forwarded_ip(headers.iter().copied(), "X-Forwarded-For"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(forwarded_ip(headers.iter().copied(), "X-Real-IP"), None);
    }
}
