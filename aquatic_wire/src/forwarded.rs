//! A client's address as a reverse proxy states it in a header such as
//! `X-Forwarded-For`. Whether to believe it is the daemon's decision
//! (`aquatic_common::proxy`: only from a configured trusted proxy).

use std::net::{IpAddr, SocketAddr};

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

#[cfg(test)]
mod tests {
    use super::*;

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
