//! Sources and their budgets: no one client address may take the whole of
//! a ceiling that all clients share.
//!
//! A source is an IPv4 address (or an IPv4 prefix, when the operator says
//! so) or an IPv6 prefix, a /64 by default: a host picks any address in its
//! /64 at will, so counting IPv6 addresses one by one would budget nothing.
//! Every shared ceiling (peers in a shard, peers in one torrent, open
//! connections of a socket worker, pending WebRTC offers) keeps a count per
//! source next to its total, and a source that has used its share is
//! refused alone while every other source goes on as before.
//!
//! A share is a percentage of the ceiling it lives in, so an operator who
//! lowers a ceiling lowers every source's share with it. Counts exist only
//! for sources that hold something (an entry is removed when its count
//! falls to zero), so the accounting costs at most one small entry per
//! thing counted, however many sources come and go.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

/// A source, as budgets count it: an IPv4 address or prefix in the low 32
/// bits, or the top 64 bits of an IPv6 address masked to its prefix. The
/// two never meet in one count except for IPv6 addresses in `::/32`
/// (reserved, not routed on the internet), which may share an IPv4
/// source's count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceKey(pub u64);

/// How addresses are grouped into sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePrefixes {
    /// 8 to 32 bits.
    pub ipv4: u8,
    /// 16 to 64 bits.
    pub ipv6: u8,
}

impl Default for SourcePrefixes {
    fn default() -> Self {
        Self { ipv4: 32, ipv6: 64 }
    }
}

impl SourcePrefixes {
    pub fn of(&self, ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(ip) => self.of_v4(ip),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => self.of_v4(v4),
                None => self.of_v6(ip),
            },
        }
    }

    pub fn of_v4(&self, ip: Ipv4Addr) -> SourceKey {
        let bits = u32::from(ip);
        let len = u32::from(self.ipv4.clamp(1, 32));
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        SourceKey(u64::from(bits & mask))
    }

    pub fn of_v6(&self, ip: Ipv6Addr) -> SourceKey {
        let top = (u128::from(ip) >> 64) as u64; // the top half: no loss
        let len = u32::from(self.ipv6.clamp(1, 64));
        let mask = u64::MAX.checked_shl(64 - len).unwrap_or(0);
        SourceKey(top & mask)
    }
}

/// `[source_budgets]`: how sources are told apart and how much of each
/// shared ceiling one may take. The same section in every daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceBudgetConfig {
    pub ipv4_prefix_length: u8,
    pub ipv6_prefix_length: u8,
    pub share_percent: u8,
    pub peers_per_torrent: usize,
}

impl Default for SourceBudgetConfig {
    fn default() -> Self {
        Self {
            ipv4_prefix_length: 32,
            ipv6_prefix_length: 64,
            share_percent: 5,
            peers_per_torrent: 64,
        }
    }
}

/// Most peers one source may be allowed in a torrent: its lookups walk
/// that many entries (see `peer_store`).
pub const MAX_PEERS_PER_TORRENT_PER_SOURCE: usize = 4096;

impl SourceBudgetConfig {
    pub fn prefixes(&self) -> SourcePrefixes {
        SourcePrefixes {
            ipv4: self.ipv4_prefix_length,
            ipv6: self.ipv6_prefix_length,
        }
    }

    /// One source's share of a ceiling: `share_percent` of it, at least 1
    /// (and never more than the ceiling).
    pub fn share_of(&self, ceiling: usize) -> usize {
        let share = (ceiling / 100)
            .saturating_mul(usize::from(self.share_percent))
            .saturating_add(ceiling % 100 * usize::from(self.share_percent) / 100);
        share.clamp(1.min(ceiling), ceiling)
    }

    /// Most peers one source may have in one torrent whose ceiling is
    /// `max_peers_per_torrent`; `usize::MAX` when `peers_per_torrent` is 0
    /// (no such budget).
    pub fn peers_per_torrent(&self, max_peers_per_torrent: usize) -> usize {
        if self.peers_per_torrent == 0 {
            return usize::MAX;
        }
        self.peers_per_torrent
            .min(self.share_of(max_peers_per_torrent))
            .max(1.min(max_peers_per_torrent))
    }

    /// The config errors, naming the field.
    pub fn checks(&self) -> [crate::validation::Check; 4] {
        [
            (
                !(8..=32).contains(&self.ipv4_prefix_length),
                "source_budgets.ipv4_prefix_length must be from 8 to 32",
            ),
            (
                !(16..=64).contains(&self.ipv6_prefix_length),
                "source_budgets.ipv6_prefix_length must be from 16 to 64",
            ),
            (
                !(1..=100).contains(&self.share_percent),
                "source_budgets.share_percent must be from 1 to 100",
            ),
            (
                self.peers_per_torrent > MAX_PEERS_PER_TORRENT_PER_SOURCE,
                "source_budgets.peers_per_torrent must be from 0 (off) to 4096",
            ),
        ]
    }
}

/// How much each source holds of one ceiling. Only sources holding
/// something have an entry (16 bytes and a control byte in a hash table).
#[derive(Debug, Default)]
pub struct SourceCounts<S: Eq + Hash = SourceKey> {
    counts: HashMap<S, u32>,
}

impl<S: Copy + Eq + Hash> SourceCounts<S> {
    /// What `source` holds.
    pub fn get(&self, source: &S) -> usize {
        self.counts.get(source).map_or(0, |&n| n as usize)
    }

    /// Count one more for `source` if it holds less than `budget`; false
    /// (and nothing counted) when it has used its budget.
    pub fn try_acquire(&mut self, source: S, budget: usize) -> bool {
        if self.get(&source) >= budget {
            return false;
        }
        self.acquire(source);
        true
    }

    /// Count one more for `source`, whatever it holds.
    pub fn acquire(&mut self, source: S) {
        let count = self.counts.entry(source).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Count one less for `source`; its entry goes at zero.
    pub fn release(&mut self, source: &S) {
        if let Some(count) = self.counts.get_mut(source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(source);
            }
        }
    }

    /// Sources holding anything.
    pub fn sources(&self) -> usize {
        self.counts.len()
    }

    /// Bytes the table takes: an entry and a control byte per bucket.
    pub fn memory_bytes(&self) -> usize {
        self.counts.allocation_size()
    }

    pub fn clear(&mut self) {
        self.counts.clear();
    }

    /// Give memory back after many sources left (the table only grows
    /// otherwise).
    pub fn shrink(&mut self) {
        if self.counts.capacity() > 2 * self.counts.len().max(16) {
            self.counts.shrink_to_fit();
        }
    }
}

/// Open TCP connections against `max_connections` and each source's share
/// of it (both TCP daemons): a trusted reverse proxy speaks for many
/// clients, so its connections are not budgeted as one source.
pub struct ConnectionBudget {
    sources: SourceCounts,
    max_connections: usize,
    max_per_source: usize,
    prefixes: SourcePrefixes,
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// Whether a new connection may stay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Yes, counted under this source (none: a trusted proxy); give it
    /// back with [`ConnectionBudget::release`] when the connection closes.
    Admitted(Option<SourceKey>),
    /// `max_connections` are open.
    Full,
    /// Its source holds its share of `max_connections`.
    SourceShare,
}

impl ConnectionBudget {
    pub fn new(
        max_connections: usize,
        budgets: &SourceBudgetConfig,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Self {
        Self {
            sources: SourceCounts::default(),
            max_connections,
            max_per_source: budgets.share_of(max_connections),
            prefixes: budgets.prefixes(),
            trusted_proxies,
        }
    }

    /// A connection from `ip` with `open` connections open already.
    pub fn admit(&mut self, open: usize, ip: IpAddr) -> Admission {
        if open >= self.max_connections {
            return Admission::Full;
        }
        let ip = ip.to_canonical();
        if self.trusted_proxies.iter().any(|net| net.contains(&ip)) {
            return Admission::Admitted(None);
        }
        let source = self.prefixes.of(ip);
        if self.sources.try_acquire(source, self.max_per_source) {
            Admission::Admitted(Some(source))
        } else {
            Admission::SourceShare
        }
    }

    /// A connection admitted as `counted` has closed.
    pub fn release(&mut self, counted: Option<SourceKey>) {
        if let Some(source) = counted {
            self.sources.release(&source);
        }
    }

    /// The trusted reverse proxies, for reading forwarded addresses.
    pub fn trusted_proxies(&self) -> &[ipnet::IpNet] {
        &self.trusted_proxies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_budget_counts_sources_but_not_trusted_proxies() {
        let budgets = SourceBudgetConfig {
            share_percent: 50,
            ..SourceBudgetConfig::default()
        };
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let mut budget = ConnectionBudget::new(4, &budgets, vec![proxy]);
        let (a, p): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "10.1.1.1".parse().unwrap());
        let first = budget.admit(0, a);
        assert!(matches!(first, Admission::Admitted(Some(_))));
        assert!(matches!(budget.admit(1, a), Admission::Admitted(Some(_))));
        // Half of 4 per source.
        assert_eq!(budget.admit(2, a), Admission::SourceShare);
        assert_eq!(budget.admit(2, p), Admission::Admitted(None));
        assert_eq!(budget.admit(4, p), Admission::Full);
        // A closed connection frees its place, IPv4-mapped counts as IPv4.
        if let Admission::Admitted(counted) = first {
            budget.release(counted);
        }
        assert!(matches!(
            budget.admit(3, "::ffff:192.0.2.1".parse().unwrap()),
            Admission::Admitted(Some(_))
        ));
    }

    #[test]
    fn prefixes_group_addresses() {
        let p = SourcePrefixes::default();
        let a: Ipv4Addr = "192.0.2.1".parse().unwrap();
        let b: Ipv4Addr = "192.0.2.2".parse().unwrap();
        assert_ne!(p.of_v4(a), p.of_v4(b));
        assert_eq!(p.of_v4(a), SourceKey(0xc000_0201));
        let p24 = SourcePrefixes { ipv4: 24, ipv6: 64 };
        assert_eq!(p24.of_v4(a), p24.of_v4(b));
        assert_eq!(p24.of_v4(a), SourceKey(0xc000_0200));

        let x: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let y: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(p.of_v6(x), p.of_v6(y));
        assert_ne!(p.of_v6(x), p.of_v6(z));
        assert_eq!(p.of_v6(x), SourceKey(0x2001_0db8_0001_0002));
        let p48 = SourcePrefixes { ipv4: 32, ipv6: 48 };
        assert_eq!(p48.of_v6(x), p48.of_v6(z));
        // A mapped address is its IPv4 source.
        let mapped = IpAddr::V6(a.to_ipv6_mapped());
        assert_eq!(p.of(mapped), p.of_v4(a));
        assert_eq!(p.of(IpAddr::V4(a)), p.of_v4(a));
        // Out-of-range lengths cannot panic (config checks refuse them).
        let odd = SourcePrefixes { ipv4: 0, ipv6: 200 };
        let _ = (odd.of_v4(a), odd.of_v6(x));
    }

    #[test]
    fn shares_scale_with_their_ceiling() {
        let config = SourceBudgetConfig::default();
        assert_eq!(config.share_of(20_000_000), 1_000_000);
        assert_eq!(config.share_of(20_000), 1000);
        assert_eq!(config.share_of(300), 15);
        assert_eq!(config.share_of(10), 1);
        assert_eq!(config.share_of(1), 1);
        assert_eq!(config.share_of(0), 0);
        assert_eq!(config.share_of(usize::MAX), usize::MAX / 100 * 5);
        assert_eq!(config.peers_per_torrent(250_000), 64);
        assert_eq!(config.peers_per_torrent(1000), 50);
        assert_eq!(config.peers_per_torrent(3), 1);
        let off = SourceBudgetConfig {
            peers_per_torrent: 0,
            ..config.clone()
        };
        assert_eq!(off.peers_per_torrent(1000), usize::MAX);
        let all = SourceBudgetConfig {
            share_percent: 100,
            ..config
        };
        assert_eq!(all.share_of(300), 300);
        for checks in [config.checks(), all.checks()] {
            assert!(checks.iter().all(|(failed, _)| !failed));
        }
        let bad = SourceBudgetConfig {
            ipv6_prefix_length: 128,
            ..SourceBudgetConfig::default()
        };
        assert!(
            bad.checks()
                .iter()
                .any(|(failed, m)| *failed && m.contains("ipv6"))
        );
    }

    /// The accounting's memory under millions of sources: at most about
    /// 40 bytes per source holding something, and given back when they go.
    #[test]
    fn memory_stays_bounded_under_millions_of_sources() {
        let mut counts = SourceCounts::default();
        let n = 2_000_000u64;
        for source in 0..n {
            assert!(counts.try_acquire(SourceKey(source.wrapping_mul(0x9e37_79b9_7f4a_7c15)), 1));
        }
        let per_source = counts.memory_bytes() as f64 / n as f64;
        assert!(
            (17.0..=40.0).contains(&per_source),
            "{per_source} bytes per source"
        );
        for source in 0..n - 1000 {
            counts.release(&SourceKey(source.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        }
        counts.shrink();
        assert_eq!(counts.sources(), 1000);
        assert!(
            counts.memory_bytes() < 1000 * 40,
            "{}",
            counts.memory_bytes()
        );
    }

    #[test]
    fn counts_refuse_at_the_budget_and_forget_empty_sources() {
        let mut counts = SourceCounts::default();
        let (a, b) = (SourceKey(1), SourceKey(2));
        assert!(counts.try_acquire(a, 2));
        assert!(counts.try_acquire(a, 2));
        assert!(!counts.try_acquire(a, 2));
        assert!(counts.try_acquire(b, 2));
        assert_eq!((counts.get(&a), counts.get(&b)), (2, 1));
        counts.release(&a);
        assert!(counts.try_acquire(a, 2));
        counts.release(&b);
        assert_eq!(counts.sources(), 1);
        counts.release(&b); // never below zero, never an entry
        assert_eq!(counts.sources(), 1);
        counts.release(&a);
        counts.release(&a);
        assert_eq!(counts.sources(), 0);
    }
}
