//! The IP filter: which client addresses a tracker answers at all.
//!
//! `[ip_filter]` names a file of IPv4 and IPv6 addresses and CIDR ranges,
//! one per line, `#` starting a comment (`192.0.2.7`, `198.51.100.0/24`,
//! `2001:db8::/32`; IPv4-mapped IPv6 entries such as `::ffff:192.0.2.0/120`
//! count as IPv4; an IPv6 range wider than a /96 that spans them, such as
//! `::/0`, covers IPv6 addresses only: IPv4 clients are looked up among
//! the IPv4 entries). In `deny` mode listed addresses are refused, in `allow`
//! mode every other address is: a refused client gets nothing over UDP and
//! its TCP connection is closed as it is accepted, both counted.
//!
//! The file becomes two sorted lists of disjoint ranges (overlapping and
//! adjacent entries merged), one per address family, so a lookup is a
//! binary search: about 17 comparisons for 100,000 entries, no hashing, no
//! allocation. Loading and reloading on SIGUSR1 are
//! [`crate::list_file`]'s, as for the access list.

use std::net::IpAddr;

use crate::list_file::{self, ListCache, ListFile, Lists};

pub use crate::list_file::{ListConfig as IpFilterConfig, ListMode as IpFilterMode};

/// A parsed IP filter file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpFilter {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    /// Lines read (entries before merging), for the log.
    entries: usize,
}

impl ListFile for IpFilter {
    type Key = IpAddr;
    const SECTION: &'static str = "ip_filter";
    const NAME: &'static str = "IP filter";
    const ENTRIES: &'static str = "addresses and ranges";

    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut entries = 0;
        for (number, line) in list_file::entries(text) {
            match parse_entry(line) {
                Some(Range::V4(start, end)) => v4.push((start, end)),
                Some(Range::V6(start, end)) => v6.push((start, end)),
                None => anyhow::bail!(
                    "line {number}: expected an IPv4 or IPv6 address or CIDR range (192.0.2.0/24, 2001:db8::/32), found {:?}",
                    list_file::truncate_for_message(line)
                ),
            }
            entries += 1;
        }
        Ok(Self {
            v4: merged(v4),
            v6: merged(v6),
            entries,
        })
    }

    fn len(&self) -> usize {
        self.entries
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        match canonical(*ip) {
            IpAddr::V4(ip) => in_ranges(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => in_ranges(&self.v6, u128::from(ip)),
        }
    }
}

/// A socket worker's view of the IP filter.
pub type IpFilterCache = ListCache<IpFilter>;
/// The daemon's IP filter, loaded at start and reloaded on SIGUSR1.
pub type IpFilters = Lists<IpFilter>;

enum Range {
    V4(u32, u32),
    V6(u128, u128),
}

/// An address or a CIDR range, as the first and last address it covers.
fn parse_entry(line: &str) -> Option<Range> {
    let (ip, prefix) = match line.split_once('/') {
        Some((ip, prefix)) => (ip.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
        None => (line.parse::<IpAddr>().ok()?, None),
    };
    match ip {
        IpAddr::V4(ip) => {
            let (start, end) = span_u32(u32::from(ip), prefix.unwrap_or(32))?;
            Some(Range::V4(start, end))
        }
        IpAddr::V6(ip) => {
            let prefix = prefix.unwrap_or(128);
            if prefix >= 96
                && let Some(v4) = ip.to_ipv4_mapped()
            {
                let (start, end) = span_u32(u32::from(v4), prefix - 96)?;
                return Some(Range::V4(start, end));
            }
            let bits = u128::from(ip);
            if prefix > 128 {
                return None;
            }
            let host_bits = u32::from(128 - prefix);
            let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
            Some(Range::V6(bits & mask, (bits & mask) | !mask))
        }
    }
}

fn span_u32(bits: u32, prefix: u8) -> Option<(u32, u32)> {
    if prefix > 32 {
        return None;
    }
    let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
    Some((bits & mask, (bits & mask) | !mask))
}

/// Sorted, with overlapping and adjacent ranges joined.
fn merged<T: Copy + Ord + num_like::Successor>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if last.1.successor().is_none_or(|next| start <= next) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

fn in_ranges<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    // The ranges are disjoint and sorted: only the last one starting at or
    // before x can hold it.
    let after = ranges.partition_point(|(start, _)| *start <= x);
    after
        .checked_sub(1)
        .and_then(|i| ranges.get(i))
        .is_some_and(|(_, end)| x <= *end)
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's IPv4 clients) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

mod num_like {
    /// The next integer, if any.
    pub trait Successor: Sized {
        fn successor(self) -> Option<Self>;
    }
    impl Successor for u32 {
        fn successor(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
    impl Successor for u128 {
        fn successor(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::list_file::ListMode;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_ranges_comments_and_mapped_entries() {
        let text = "# banned\n192.0.2.7\n198.51.100.0/24  # a whole net\n\n2001:db8::/32\n::ffff:203.0.113.0/120\n::1\n";
        let filter = IpFilter::parse(text).unwrap();
        assert_eq!(filter.len(), 5);
        for hit in [
            "192.0.2.7",
            "198.51.100.0",
            "198.51.100.255",
            "2001:db8:ffff::1",
            "203.0.113.9",
            "::ffff:192.0.2.7",
            "::ffff:203.0.113.200",
            "::1",
        ] {
            assert!(filter.contains(&ip(hit)), "{hit}");
        }
        for miss in [
            "192.0.2.6",
            "192.0.2.8",
            "198.51.101.0",
            "2001:db9::",
            "::2",
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(!filter.contains(&ip(miss)), "{miss}");
        }
    }

    #[test]
    fn everything_and_nothing() {
        let all = IpFilter::parse("0.0.0.0/0\n::/0\n").unwrap();
        assert!(all.contains(&ip("255.255.255.255")));
        assert!(all.contains(&ip("ffff::")));
        let none = IpFilter::parse("# nothing\n").unwrap();
        assert!(!none.contains(&ip("10.0.0.1")));
        assert!(none.passes(ListMode::Deny, &ip("10.0.0.1")));
        assert!(!none.passes(ListMode::Allow, &ip("10.0.0.1")));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let filter =
            IpFilter::parse("10.0.0.0/24\n10.0.1.0/24\n10.0.0.128/25\n10.0.3.0/24\n").unwrap();
        assert_eq!(filter.v4.len(), 2);
        assert!(filter.contains(&ip("10.0.1.255")));
        assert!(!filter.contains(&ip("10.0.2.0")));
        assert!(filter.contains(&ip("10.0.3.0")));
    }

    #[test]
    fn errors_name_the_line() {
        for bad in [
            "10.0.0.1/33",
            "10.0.0",
            "2001:db8::/129",
            "example.com",
            "1.2.3.4/x",
        ] {
            let err = format!(
                "{:#}",
                IpFilter::parse(&format!("10.0.0.1\n{bad}\n")).unwrap_err()
            );
            assert!(err.contains("line 2"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_broken_file_at_reload_keeps_the_old_filter() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "192.0.2.0/24").unwrap();
        let config = IpFilterConfig {
            mode: ListMode::Deny,
            path: file.path().to_owned(),
        };
        let filters = IpFilters::load(&config).unwrap();
        let mut cache = filters.cache();
        assert!(!cache.passes(&ip("192.0.2.1")));
        std::fs::write(file.path(), "192.0.2.0/24\nnonsense\n").unwrap();
        filters.reload_and_log();
        assert!(!cache.passes(&ip("192.0.2.1")));
        std::fs::write(file.path(), "198.51.100.1\n").unwrap();
        filters.reload_and_log();
        assert!(cache.passes(&ip("192.0.2.1")));
        assert!(!cache.passes(&ip("198.51.100.1")));
    }

    #[test]
    fn matches_a_naive_lookup() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let nets: Vec<(u32, u8)> = (0..300)
            .map(|_| (rng.random::<u32>() & 0x0fff_ffff, rng.random_range(8..=32)))
            .collect();
        let text: String = nets
            .iter()
            .map(|(bits, len)| format!("{}/{len}\n", std::net::Ipv4Addr::from(*bits)))
            .collect();
        let filter = IpFilter::parse(&text).unwrap();
        for _ in 0..20_000 {
            let x = rng.random::<u32>() & 0x0fff_ffff;
            let naive = nets.iter().any(|(bits, len)| {
                let (start, end) = span_u32(*bits, *len).unwrap();
                start <= x && x <= end
            });
            assert_eq!(
                filter.contains(&IpAddr::from(x.to_be_bytes())),
                naive,
                "{x}"
            );
        }
    }
}
