//! Swarm state of one request worker's shard, as plain data: announce,
//! scrape and clean take the current time as an argument, so unit tests can
//! drive a torrent through its life without sockets or sleeps. The rules
//! shared with the other trackers are in `aquatic_common::torrent_map`;
//! this module maps BEP 15 requests onto them.
//!
//! A peer is keyed by its source IP and announced port, so nobody can remove
//! or overwrite another address's entry. The same key is what the state
//! file keeps (`aquatic_common::state`), with no extra data. Seeders and leechers sit in separate
//! runs of one `PeerStore`: counts are their lengths and always match what
//! is stored, and a seeder is answered with leechers only.

use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr};

use aquatic_common::clients::ClientKey;
use aquatic_common::family_maps::IpFamilyMaps;
use aquatic_common::interval::AnnounceInterval;
use aquatic_common::peer_store::PeerAddr;
use aquatic_common::state::StateCodec;
use aquatic_common::torrent_map::{Announce, SwarmEvent, TorrentMap};
use aquatic_common::{InfoHash, SecondsSinceStart, ValidUntil};
use aquatic_udp_protocol::{
    AnnounceEvent, AnnounceResponse, ResponsePeer, TorrentScrapeStatistics, TransactionId,
};
use rand::Rng;

/// An address family's peer IP, with the most peers that fit in a response
/// of about 1200 bytes (20-byte header, 6 or 18 bytes a peer).
pub trait PeerIp: PeerAddr + Debug + Send + StateCodec + 'static {
    const MAX_UNFRAGMENTED_PEERS: usize;
}

impl PeerIp for Ipv4Addr {
    const MAX_UNFRAGMENTED_PEERS: usize = (1200 - 20) / 6;
}

impl PeerIp for Ipv6Addr {
    const MAX_UNFRAGMENTED_PEERS: usize = (1200 - 20) / 18;
}

#[derive(Clone, Copy, Debug)]
pub struct SwarmConfig {
    pub max_response_peers: usize,
    pub announce_interval: AnnounceInterval,
    pub max_peer_age: u32,
}

/// What a request worker needs of an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub transaction_id: TransactionId,
    pub info_hash: InfoHash,
    pub event: AnnounceEvent,
    pub bytes_left: i64,
    pub peers_wanted: i32,
    pub port: u16,
    /// From the peer id (which is not stored).
    pub client: ClientKey,
}

/// A peer's key: its source IP and announced port.
type PeerKey<I> = (I, u16);

/// The torrents of one shard and one address family. Each peer keeps its
/// client ([`ClientKey`], two bytes) for the status page's client mix.
pub type Torrents<I> = TorrentMap<PeerKey<I>, ClientKey>;

/// Both address families of a shard: IPv4 and IPv6 swarms never mix.
pub type TorrentMaps = IpFamilyMaps<ClientKey>;

/// Apply an announce from `ip` to `map` and build its response.
pub fn announce<I: PeerIp, R: Rng>(
    map: &mut Torrents<I>,
    rng: &mut R,
    config: &SwarmConfig,
    now: SecondsSinceStart,
    query: &AnnounceQuery,
    ip: I,
) -> AnnounceResponse<I> {
    let event = match query.event {
        AnnounceEvent::None => SwarmEvent::None,
        AnnounceEvent::Started => SwarmEvent::Started,
        AnnounceEvent::Completed => SwarmEvent::Completed,
        AnnounceEvent::Stopped => SwarmEvent::Stopped,
    };
    let announce = Announce {
        info_hash: query.info_hash,
        key: (ip, query.port),
        extra: query.client,
        event,
        left_is_zero: query.bytes_left == 0,
        valid_until: ValidUntil::new(now, config.max_peer_age),
        max_peers: response_peer_limit::<I>(config.max_response_peers, query.peers_wanted),
        spread_sources: false,
    };
    let mut peers = Vec::new();
    let counts = map.announce(rng, announce, &mut peers, |((ip_address, port), _)| {
        ResponsePeer {
            ip_address: *ip_address,
            port: *port,
        }
    });
    AnnounceResponse {
        transaction_id: query.transaction_id,
        announce_interval: saturating_i32(config.announce_interval.pick(rng)),
        leechers: saturating_i32(counts.leechers),
        seeders: saturating_i32(counts.seeders),
        peers,
    }
}

pub fn scrape<I: PeerIp>(map: &Torrents<I>, info_hash: &InfoHash) -> TorrentScrapeStatistics {
    let counts = map.scrape(info_hash);
    TorrentScrapeStatistics {
        seeders: saturating_i32(counts.seeders),
        completed: saturating_i32(counts.downloaded),
        leechers: saturating_i32(counts.leechers),
    }
}

/// Peers to return: -1 or 0 asks for the default; never more than the
/// configured maximum or what fits unfragmented.
fn response_peer_limit<I: PeerIp>(max_response_peers: usize, peers_wanted: i32) -> usize {
    let wanted = usize::try_from(peers_wanted)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(max_response_peers);
    wanted
        .min(max_response_peers)
        .min(I::MAX_UNFRAGMENTED_PEERS)
}

fn saturating_i32<T: TryInto<i32>>(n: T) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use aquatic_common::metrics::SwarmSizes;

    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const CONFIG: SwarmConfig = SwarmConfig {
        max_response_peers: 50,
        announce_interval: AnnounceInterval::new(1800, 0),
        max_peer_age: 2000,
    };

    fn query(hash: u8, port: u16, event: AnnounceEvent, left: i64) -> AnnounceQuery {
        AnnounceQuery {
            transaction_id: TransactionId(7),
            info_hash: InfoHash([hash; 20]),
            event,
            bytes_left: left,
            peers_wanted: -1,
            port,
            client: ClientKey::UNKNOWN,
        }
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    /// One IPv4 map under test, with its random source and config.
    struct Swarm {
        map: Torrents<Ipv4Addr>,
        rng: SmallRng,
        config: SwarmConfig,
    }

    impl Swarm {
        fn new() -> Self {
            let rng = SmallRng::seed_from_u64(0);
            Self {
                map: TorrentMap::default(),
                rng,
                config: CONFIG,
            }
        }

        /// `query` announced from 10.0.0.`n` at `now`.
        fn announce(
            &mut self,
            now: u32,
            query: AnnounceQuery,
            n: u8,
        ) -> AnnounceResponse<Ipv4Addr> {
            let now = SecondsSinceStart(now);
            let (map, rng) = (&mut self.map, &mut self.rng);
            announce(map, rng, &self.config, now, &query, ip(n))
        }

        /// Torrents, seeders and leechers in the map.
        fn counts(&self) -> (usize, usize, usize) {
            let m = &self.map;
            (m.num_torrents(), m.num_seeders(), m.num_leechers())
        }
    }

    #[test]
    fn cleaning_counts_the_stored_peers_by_client() {
        let mut t = Swarm::new();
        let mut peer_id = [b'x'; 20];
        peer_id[..8].copy_from_slice(b"-qB4520-");
        let qbittorrent = ClientKey::of(&aquatic_udp_protocol::PeerId(peer_id));
        for (n, client) in [(1, qbittorrent), (2, qbittorrent), (3, ClientKey::UNKNOWN)] {
            let q = AnnounceQuery {
                client,
                ..query(1, 1000, AnnounceEvent::Started, 0)
            };
            t.announce(0, q, n);
        }
        t.map.clean(SecondsSinceStart(1));
        let sizes = SwarmSizes::default();
        sizes.set_from(&t.map);
        let clients = sizes.summary().clients;
        assert_eq!(clients.get(&qbittorrent), Some(&2));
        assert_eq!(clients.get(&ClientKey::UNKNOWN), Some(&1));
        assert_eq!(qbittorrent.version(), "4.5.2");
    }

    #[test]
    fn announce_counts_and_never_returns_announcer() {
        let mut t = Swarm::new();
        let now = 0;
        let r = t.announce(now, query(1, 1000, AnnounceEvent::Started, 0), 1);
        assert_eq!((r.seeders, r.leechers), (1, 0));
        assert!(r.peers.is_empty());
        assert_eq!(r.announce_interval, 1800);
        assert_eq!(r.transaction_id, TransactionId(7));

        for n in 2..=5 {
            let r = t.announce(now, query(1, 1000, AnnounceEvent::Started, 100), n);
            assert_eq!(r.seeders, 1);
            assert_eq!(r.leechers, i32::from(n) - 1);
            assert_eq!(r.peers.len(), usize::from(n) - 1);
            assert!(r.peers.iter().all(|p| p.ip_address != ip(n)));
        }
        assert_eq!((t.map.num_seeders(), t.map.num_leechers()), (1, 4));

        // Re-announcing does not duplicate.
        let r = t.announce(now, query(1, 1000, AnnounceEvent::None, 100), 2);
        assert_eq!((r.seeders, r.leechers), (1, 4));
        assert!(r.peers.iter().all(|p| p.ip_address != ip(2)));
    }

    #[test]
    fn seeder_gets_only_leechers() {
        let mut t = Swarm::new();
        let now = 0;
        for n in 1..=3 {
            t.announce(now, query(1, 1, AnnounceEvent::None, 0), n);
        }
        t.announce(now, query(1, 1, AnnounceEvent::None, 5), 9);
        let r = t.announce(now, query(1, 1, AnnounceEvent::None, 0), 1);
        assert_eq!(
            r.peers,
            vec![ResponsePeer {
                ip_address: ip(9),
                port: 1
            }]
        );
    }

    #[test]
    fn completed_counts_once_and_moves_to_seeders() {
        let mut t = Swarm::new();
        let now = 0;
        t.announce(now, query(1, 1, AnnounceEvent::Started, 10), 1);
        let r = t.announce(now, query(1, 1, AnnounceEvent::Completed, 0), 1);
        assert_eq!((r.seeders, r.leechers), (1, 0));
        t.announce(now, query(1, 1, AnnounceEvent::Completed, 0), 1);
        let s = scrape(&t.map, &InfoHash([1; 20]));
        assert_eq!((s.seeders, s.completed, s.leechers), (1, 1, 0));
    }

    #[test]
    fn stopped_removes_only_own_entry() {
        let mut t = Swarm::new();
        let now = 0;
        t.announce(now, query(1, 1, AnnounceEvent::Started, 10), 1);
        t.announce(now, query(1, 1, AnnounceEvent::Started, 0), 2);
        // Same port, other address: cannot remove ip(1)'s entry.
        let r = t.announce(now, query(1, 1, AnnounceEvent::Stopped, 10), 3);
        assert_eq!((r.seeders, r.leechers), (1, 1));
        let r = t.announce(now, query(1, 1, AnnounceEvent::Stopped, 10), 1);
        assert_eq!((r.seeders, r.leechers), (1, 0));
        assert!(r.peers.is_empty());
        assert_eq!((t.map.num_seeders(), t.map.num_leechers()), (1, 0));
        // Stopped for an unknown torrent creates nothing.
        t.announce(now, query(2, 1, AnnounceEvent::Stopped, 10), 1);
        assert_eq!(t.map.num_torrents(), 1);
    }

    #[test]
    fn expiry_and_cleaning() {
        let mut t = Swarm::new();
        t.announce(0, query(1, 1, AnnounceEvent::None, 10), 1);
        t.announce(1000, query(1, 1, AnnounceEvent::None, 0), 2);
        t.announce(0, query(2, 1, AnnounceEvent::None, 0), 3);
        t.map.clean(SecondsSinceStart(2000));
        assert_eq!(t.counts(), (2, 2, 1));
        // Peers expire at the end of their 4-second tick.
        t.map.clean(SecondsSinceStart(2004));
        assert_eq!(t.counts(), (1, 1, 0));
        t.map.clean(SecondsSinceStart(3004));
        assert_eq!(t.map.num_torrents(), 0);
    }

    #[test]
    fn swarm_grows_past_small_limit_and_shrinks_back() {
        let mut t = Swarm::new();
        t.config.max_response_peers = 1000;
        let n = 100u16;
        for port in 0..n {
            // One 4-second tick apart: peers expire one by one.
            let now = u32::from(port) * 4;
            let left = i64::from(port % 3);
            let r = t.announce(now, query(1, port, AnnounceEvent::None, left), 1);
            let expected_seeders = (0..=port).filter(|p| p % 3 == 0).count() as i32;
            assert_eq!(r.seeders, expected_seeders);
            assert_eq!(r.seeders + r.leechers, i32::from(port) + 1);
            let available = if left == 0 {
                r.leechers as usize
            } else {
                usize::from(port)
            };
            assert_eq!(r.peers.len(), available.min(196));
            assert!(r.peers.iter().all(|p| p.port != port));
            assert_eq!(
                t.map.num_seeders() + t.map.num_leechers(),
                usize::from(port) + 1
            );
        }
        // Seeder in a large swarm: only leechers.
        let r = t.announce(0, query(1, 0, AnnounceEvent::None, 0), 1);
        assert!(r.peers.iter().all(|p| p.port % 3 != 0));
        // Expire all but the youngest few: back to a small swarm, counts exact.
        let keep = 5u32;
        t.map.clean(SecondsSinceStart(
            (u32::from(n) - keep) * 4 + t.config.max_peer_age,
        ));
        let s = scrape(&t.map, &InfoHash([1; 20]));
        assert_eq!(s.seeders + s.leechers, keep as i32);
        assert_eq!(t.map.num_seeders() + t.map.num_leechers(), keep as usize);
        // A stopped peer leaves the small swarm.
        let last = n - 1;
        let r = t.announce(0, query(1, last, AnnounceEvent::Stopped, 1), 1);
        assert_eq!(r.seeders + r.leechers, keep as i32 - 1);
    }

    #[test]
    fn seeder_in_small_swarm_gets_only_leechers() {
        let mut t = Swarm::new();
        let now = 0;
        for port in 0..10 {
            t.announce(
                now,
                query(1, port, AnnounceEvent::None, i64::from(port % 2)),
                1,
            );
        }
        for _ in 0..20 {
            let r = t.announce(now, query(1, 0, AnnounceEvent::None, 0), 1);
            let mut ports: Vec<u16> = r.peers.iter().map(|p| p.port).collect();
            ports.sort();
            assert_eq!(ports, vec![1, 3, 5, 7, 9]);
        }
    }

    #[test]
    fn response_peer_limits() {
        assert_eq!(response_peer_limit::<Ipv4Addr>(50, -1), 50);
        assert_eq!(response_peer_limit::<Ipv4Addr>(50, 0), 50);
        assert_eq!(response_peer_limit::<Ipv4Addr>(50, 10), 10);
        assert_eq!(response_peer_limit::<Ipv4Addr>(50, i32::MAX), 50);
        assert_eq!(response_peer_limit::<Ipv4Addr>(1000, i32::MAX), 196);
        assert_eq!(response_peer_limit::<Ipv6Addr>(1000, 500), 65);
        assert_eq!(response_peer_limit::<Ipv4Addr>(50, i32::MIN), 50);
    }

    #[test]
    fn large_swarm_response_is_capped_and_unique() {
        let mut t = Swarm::new();
        let now = 0;
        t.config.max_response_peers = 1000;
        for port in 0..500u16 {
            t.announce(
                now,
                query(1, port, AnnounceEvent::None, (port % 2).into()),
                1,
            );
        }
        let mut q = query(1, 9999, AnnounceEvent::None, 1);
        q.peers_wanted = 1000;
        let r = t.announce(now, q, 2);
        assert_eq!(r.peers.len(), 196);
        let unique: std::collections::HashSet<_> = r.peers.iter().collect();
        assert_eq!(unique.len(), 196);
    }
}
