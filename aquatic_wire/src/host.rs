//! The `Host` header against the names a tracker answers to
//! (`[network] allowed_hosts` of the HTTP and WebSocket trackers): other
//! people's domains pointed at a tracker get 421 Misdirected Request.

/// Whether a request with this `Host` header value (`None`: no header)
/// may be served. An empty `allowed` list allows everything. Otherwise the
/// host, without its port and any trailing dot, must equal one of
/// `allowed` ignoring ASCII case (IPv6 literals in brackets:
/// `[2001:db8::1]:8080` matches `[2001:db8::1]` and `2001:db8::1`).
/// Entries of `allowed` are expected lowercase, without port.
pub fn host_allowed(value: Option<&[u8]>, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(host) = value.map(<[u8]>::trim_ascii).and_then(host_without_port) else {
        return false;
    };
    allowed.iter().any(|name| {
        let name = name.as_bytes();
        let name = name.strip_suffix(b".").unwrap_or(name);
        host.eq_ignore_ascii_case(name)
            || name
                .strip_prefix(b"[")
                .and_then(|n| n.strip_suffix(b"]"))
                .is_some_and(|n| host.eq_ignore_ascii_case(n))
    })
}

/// Whether `entry` can be an `allowed_hosts` entry: a host name or IPv4
/// address, an IPv6 address (bare or in brackets), without a port, spaces
/// or a path. An entry with a port would never match (ports are ignored
/// in requests): every request would get 421.
pub fn valid_entry(entry: &str) -> bool {
    let bare_ipv6 = entry.contains(':') && entry.parse::<std::net::Ipv6Addr>().is_ok();
    let bracketed = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .is_some_and(|e| e.parse::<std::net::Ipv6Addr>().is_ok());
    let name = !entry.is_empty()
        && entry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    bare_ipv6 || bracketed || name
}

/// `example.com:80` -> `example.com`, `[::1]:80` -> `::1`; a trailing dot
/// dropped; `None` for an empty host.
fn host_without_port(value: &[u8]) -> Option<&[u8]> {
    let host = if let Some(rest) = value.strip_prefix(b"[") {
        let end = rest.iter().position(|&b| b == b']')?;
        rest.get(..end)?
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => value.get(..colon)?,
            None => value,
        }
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn config_entries_without_ports() {
        for ok in [
            "tracker.example.org",
            "192.0.2.1",
            "[2001:db8::1]",
            "2001:db8::1",
            "localhost",
            "t_1",
        ] {
            assert!(valid_entry(ok), "{ok}");
        }
        for bad in [
            "tracker.example.org:443",
            "192.0.2.1:80",
            "[2001:db8::1]:80",
            "",
            " t",
            "a/b",
            "http://t",
        ] {
            assert!(!valid_entry(bad), "{bad}");
        }
    }

    #[test]
    fn names_ports_case_dots_and_ipv6() {
        let list = allowed(&["tracker.example.org", "[2001:db8::1]", "192.0.2.1"]);
        for ok in [
            "tracker.example.org",
            "Tracker.Example.ORG:6969",
            "tracker.example.org.",
            " tracker.example.org:80 ",
            "[2001:db8::1]:443",
            "[2001:DB8::1]",
            "192.0.2.1:8080",
        ] {
            assert!(host_allowed(Some(ok.as_bytes()), &list), "{ok}");
        }
        for refused in [
            "evil.example.com",
            "example.org",
            "tracker.example.org.evil.com",
            "",
            ":80",
            "[2001:db8::2]",
            "[2001:db8::1",
            "192.0.2.10",
        ] {
            assert!(!host_allowed(Some(refused.as_bytes()), &list), "{refused}");
        }
        assert!(!host_allowed(None, &list));
        assert!(host_allowed(None, &[]));
        assert!(host_allowed(Some(b"anything"), &[]));
        // Unbracketed IPv6 is not a valid Host: read as host "2001", port "db8::1".
        assert!(!host_allowed(
            Some(b"2001:db8::1"),
            &allowed(&["2001:db8::1"])
        ));
        assert!(host_allowed(
            Some(b"[2001:db8::1]:80"),
            &allowed(&["2001:db8::1"])
        ));
    }
}
