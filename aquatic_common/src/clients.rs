//! Which BitTorrent client sent an announce, from its peer id: the
//! conventions clients follow (`-qB4520-...`: two letters naming the
//! client between dashes, then its version; `M7-4-0--`: mainline;
//! `A2-1-36-0-`: aria2). Counted per socket worker as announces arrive
//! (a few byte comparisons and one relaxed add), exported as
//! `announces_by_client_total{client}` and shown on the status page.
//!
//! Also counted over the peers stored, with versions (`qbittorrent 4.5.2`):
//! each stored peer keeps its [`ClientKey`] (two bytes: the family and a
//! major.minor.patch of up to 15 each; aquatic_http and aquatic_ws derive
//! it from the peer id they store anyway), and each shard's owner counts
//! them while it cleans ([`crate::torrent_map::SwarmSummary::clients`]),
//! exported as `peers_by_client{client,version}`.

use std::fmt;
use std::sync::atomic::AtomicU64;

use crate::PeerId;
use crate::metrics::{DescriptorEncoder, EncodeLabelSet, write_counters};
use crate::statistics::add;

crate::labelled! {
    /// The client families told apart; anything else is `Other`.
    pub enum Client {
        QBittorrent => "qbittorrent",
        Transmission => "transmission",
        /// libtorrent (rasterbar) itself, and programs built on it that keep
        /// its prefix.
        Libtorrent => "libtorrent",
        /// rtorrent (libtorrent by rakshasa, `-lt`).
        Rtorrent => "rtorrent",
        Deluge => "deluge",
        UTorrent => "utorrent",
        BitTorrent => "bittorrent",
        Vuze => "vuze",
        BiglyBt => "biglybt",
        BitComet => "bitcomet",
        KTorrent => "ktorrent",
        WebTorrent => "webtorrent",
        Aria2 => "aria2",
        Other => "other",
    }
}

impl Client {
    pub fn of(peer_id: &PeerId) -> Client {
        let id = &peer_id.0;
        match id {
            [b'-', a, b, _, _, _, _, b'-', ..] => match &[*a, *b] {
                b"qB" => Client::QBittorrent,
                b"TR" => Client::Transmission,
                b"LT" => Client::Libtorrent,
                b"lt" => Client::Rtorrent,
                b"DE" => Client::Deluge,
                b"UT" | b"UM" | b"UW" => Client::UTorrent,
                b"BT" => Client::BitTorrent,
                b"AZ" => Client::Vuze,
                b"BI" => Client::BiglyBt,
                b"BC" => Client::BitComet,
                b"KT" => Client::KTorrent,
                b"WW" | b"WD" => Client::WebTorrent,
                _ => Client::Other,
            },
            [b'M', d, b'-', ..] if d.is_ascii_digit() => Client::BitTorrent,
            [b'A', b'2', b'-', ..] => Client::Aria2,
            _ => Client::Other,
        }
    }
}

/// A stored peer's client and version, in two bytes: the [`Client`] in
/// the top 4 bits, then major, minor and patch, 4 bits each; a version
/// that does not fit (a part above 15, or a peer id that names none) is
/// all ones, "unknown".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(pub u16);

const NO_VERSION: u16 = 0x0fff;

impl ClientKey {
    /// An `other` client of unknown version (peers restored from a state
    /// file that keeps no client).
    pub const UNKNOWN: ClientKey = ClientKey(((Client::Other as u16) << 12) | NO_VERSION);

    pub fn of(peer_id: &PeerId) -> ClientKey {
        let client = Client::of(peer_id);
        let version = match (client, &peer_id.0) {
            (Client::WebTorrent, [_, _, _, a, b, c, d, ..]) => {
                // `-WW0107-`: two decimal digits of major, two of minor.
                let major = decimal(*a, *b);
                let minor = decimal(*c, *d);
                major.zip(minor).and_then(|(x, y)| pack(x, y, 0))
            }
            (Client::Other, _) => None,
            (_, [b'-', _, _, a, b, c, _, b'-', ..]) => pack_digits(digit(*a), digit(*b), digit(*c)),
            // `M7-4-0--`, `A2-1-37-0-`: numbers between dashes.
            (_, [_, rest @ ..]) => dashed_version(rest),
        };
        ClientKey(((client as u16) << 12) | version.unwrap_or(NO_VERSION))
    }

    pub fn client(self) -> Client {
        Client::ALL
            .get(usize::from(self.0 >> 12))
            .copied()
            .unwrap_or(Client::Other)
    }

    /// `"4.5.2"`, or `""` when unknown.
    pub fn version(self) -> String {
        let v = self.0 & NO_VERSION;
        if v == NO_VERSION {
            return String::new();
        }
        format!("{}.{}.{}", v >> 8, (v >> 4) & 15, v & 15)
    }
}

fn digit(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn decimal(a: u8, b: u8) -> Option<u8> {
    let (a, b) = (char::from(a).to_digit(10)?, char::from(b).to_digit(10)?);
    u8::try_from(a * 10 + b).ok()
}

fn pack_digits(a: Option<u8>, b: Option<u8>, c: Option<u8>) -> Option<u16> {
    pack(a?, b?, c?)
}

fn pack(major: u8, minor: u8, patch: u8) -> Option<u16> {
    (major < 16 && minor < 16 && patch < 16)
        .then(|| (u16::from(major) << 8) | (u16::from(minor) << 4) | u16::from(patch))
        .filter(|v| *v != NO_VERSION)
}

/// `7-4-0--...` (after the first letter of `M7-4-0--`) or `2-1-37-0-`
/// (after `A`, skipping `2-`): the first three numbers between dashes.
fn dashed_version(rest: &[u8]) -> Option<u16> {
    let rest = rest.strip_prefix(b"2-").unwrap_or(rest);
    let mut parts = rest.split(|&b| b == b'-').map(|part| {
        std::str::from_utf8(part)
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
    });
    let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next().flatten());
    pack(major, minor, patch.unwrap_or(0))
}

/// Which client a stored peer runs: from its extra data, or its key.
pub trait PeerClient<K> {
    fn client(&self, key: &K) -> ClientKey;
}

impl<K> PeerClient<K> for ClientKey {
    fn client(&self, _: &K) -> ClientKey {
        *self
    }
}

impl<K> PeerClient<K> for PeerId {
    fn client(&self, _: &K) -> ClientKey {
        ClientKey::of(self)
    }
}

impl<K> PeerClient<K> for () {
    fn client(&self, _: &K) -> ClientKey {
        ClientKey::UNKNOWN
    }
}

/// Announces by client, one counter per [`Client`].
#[derive(Debug, Default)]
pub struct ClientCounts(pub [AtomicU64; Client::ALL.len()]);

impl ClientCounts {
    pub fn count(&self, peer_id: &PeerId) {
        self.count_client(Client::of(peer_id));
    }

    pub fn count_client(&self, client: Client) {
        if let Some(counter) = self.0.get(client as usize) {
            add(counter, 1);
        }
    }

    /// `(label, counter)` for each client, for a metrics collector.
    pub fn samples(&self) -> impl Iterator<Item = (&'static str, &AtomicU64)> {
        Client::ALL.iter().map(|c| c.label()).zip(self.0.iter())
    }
}

/// Write the `announces_by_client` counter family (`note` ends its help).
pub fn write_metric<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    note: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let help = format!(
        "Announces by the client their peer id names (qbittorrent, transmission, libtorrent, rtorrent, deluge, utorrent, bittorrent, vuze, biglybt, bitcomet, ktorrent, webtorrent, aria2, other).{note}"
    );
    write_counters(encoder, "announces_by_client", &help, None, samples)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn id(prefix: &[u8]) -> PeerId {
        let mut id = [b'x'; 20];
        id[..prefix.len()].copy_from_slice(prefix);
        PeerId(id)
    }

    #[test]
    fn real_clients_peer_ids() {
        for (prefix, client) in [
            (&b"-qB4520-"[..], Client::QBittorrent),
            (b"-TR4060-", Client::Transmission),
            (b"-LT2090-", Client::Libtorrent),
            (b"-lt0D80-", Client::Rtorrent),
            (b"-DE211s-", Client::Deluge),
            (b"-UT355W-", Client::UTorrent),
            (b"-UM1870-", Client::UTorrent),
            (b"-BT7a5S-", Client::BitTorrent),
            (b"M7-4-0--", Client::BitTorrent),
            (b"-AZ5770-", Client::Vuze),
            (b"-BI3500-", Client::BiglyBt),
            (b"-BC0200-", Client::BitComet),
            (b"-KT5100-", Client::KTorrent),
            (b"-WW0107-", Client::WebTorrent),
            (b"A2-1-37-0-", Client::Aria2),
            (b"-XX1000-", Client::Other),
            (b"-qB4520x", Client::Other),
            (b"\x00\x00\x00\x00", Client::Other),
            (b"", Client::Other),
        ] {
            assert_eq!(Client::of(&id(prefix)), client, "{prefix:?}");
        }
        // Every variant is in ALL, at its own index.
        for (i, c) in Client::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn versions_fit_in_two_bytes() {
        for (prefix, client, version) in [
            (&b"-qB4520-"[..], "qbittorrent", "4.5.2"),
            (b"-qB5010-", "qbittorrent", "5.0.1"),
            (b"-TR4060-", "transmission", "4.0.6"),
            (b"-LT2090-", "libtorrent", "2.0.9"),
            (b"-lt0D80-", "rtorrent", "0.13.8"),
            (b"-DE13F0-", "deluge", "1.3.15"),
            (b"-UT355W-", "utorrent", "3.5.5"),
            (b"-BI3500-", "biglybt", "3.5.0"),
            (b"-WW0107-", "webtorrent", "1.7.0"),
            (b"-WW0120-", "webtorrent", ""),
            (b"M7-4-0--", "bittorrent", "7.4.0"),
            (b"A2-1-15-2-", "aria2", "1.15.2"),
            (b"A2-1-37-0-", "aria2", ""),
            (b"-DE211s-", "deluge", "2.1.1"),
            (b"-XX1000-", "other", ""),
            (b"", "other", ""),
        ] {
            let key = ClientKey::of(&id(prefix));
            assert_eq!(
                (key.client().label(), key.version().as_str()),
                (client, version),
                "{prefix:?}"
            );
        }
        assert_eq!(ClientKey::UNKNOWN.client(), Client::Other);
        assert_eq!(ClientKey::UNKNOWN.version(), "");
    }

    #[test]
    fn counts_by_client() {
        let counts = ClientCounts::default();
        counts.count(&id(b"-qB4520-"));
        counts.count(&id(b"-qB5000-"));
        counts.count(&id(b"garbage"));
        let got: Vec<(&str, u64)> = counts
            .samples()
            .map(|(l, c)| (l, c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(got, [("qbittorrent", 2), ("other", 1)]);
    }
}
