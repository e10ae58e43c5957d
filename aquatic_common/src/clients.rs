//! Which BitTorrent client sent an announce, from its peer id: the
//! conventions clients follow (`-qB4520-...`: two letters naming the
//! client between dashes, then its version; `M7-4-0--`: mainline;
//! `A2-1-36-0-`: aria2). Counted per socket worker as announces arrive
//! (a few byte comparisons and one relaxed add), exported as
//! `announces_by_client_total{client}` and shown on the status page.
//!
//! Counted over announces, not over stored peers: aquatic_udp stores no
//! peer id. A client announces about once per interval, so the shares of
//! announces over an hour are close to the shares of peers.

use std::fmt;
use std::sync::atomic::AtomicU64;

use crate::PeerId;
use crate::metrics::{DescriptorEncoder, EncodeLabelSet, write_counters};
use crate::statistics::add;

/// The client families told apart; anything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    QBittorrent,
    Transmission,
    /// libtorrent (rasterbar) itself, and programs built on it that keep
    /// its prefix.
    Libtorrent,
    /// rtorrent (libtorrent by rakshasa, `-lt`).
    Rtorrent,
    Deluge,
    UTorrent,
    BitTorrent,
    Vuze,
    BiglyBt,
    BitComet,
    KTorrent,
    WebTorrent,
    Aria2,
    Other,
}

impl Client {
    pub const ALL: [Client; 14] = [
        Client::QBittorrent,
        Client::Transmission,
        Client::Libtorrent,
        Client::Rtorrent,
        Client::Deluge,
        Client::UTorrent,
        Client::BitTorrent,
        Client::Vuze,
        Client::BiglyBt,
        Client::BitComet,
        Client::KTorrent,
        Client::WebTorrent,
        Client::Aria2,
        Client::Other,
    ];

    /// The `client` label value.
    pub fn label(self) -> &'static str {
        match self {
            Client::QBittorrent => "qbittorrent",
            Client::Transmission => "transmission",
            Client::Libtorrent => "libtorrent",
            Client::Rtorrent => "rtorrent",
            Client::Deluge => "deluge",
            Client::UTorrent => "utorrent",
            Client::BitTorrent => "bittorrent",
            Client::Vuze => "vuze",
            Client::BiglyBt => "biglybt",
            Client::BitComet => "bitcomet",
            Client::KTorrent => "ktorrent",
            Client::WebTorrent => "webtorrent",
            Client::Aria2 => "aria2",
            Client::Other => "other",
        }
    }

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

/// Announces by client, one counter per [`Client`].
#[derive(Debug, Default)]
pub struct ClientCounts(pub [AtomicU64; Client::ALL.len()]);

impl ClientCounts {
    pub fn count(&self, peer_id: &PeerId) {
        if let Some(counter) = self.0.get(Client::of(peer_id) as usize) {
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
