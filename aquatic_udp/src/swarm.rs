//! Swarm state of one request worker's shard, as plain data: announce,
//! scrape and clean take the current time as an argument, so unit tests can
//! drive a torrent through its life without sockets or sleeps.
//!
//! A peer is keyed by its source IP and announced port, so nobody can remove
//! or overwrite another address's entry. Seeders and leechers sit in separate
//! maps: counts are their lengths and always match what is stored, and a
//! seeder is answered with leechers only.

use std::fmt::Debug;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use aquatic_common::peer_selection::select_response_peers;
use aquatic_common::{InfoHash, SecondsSinceStart, ValidUntil};
use aquatic_udp_protocol::{
    AnnounceEvent, AnnounceResponse, ResponsePeer, TorrentScrapeStatistics, TransactionId,
};
use hashbrown::{DefaultHashBuilder, HashMap};
use indexmap::IndexMap;
use rand::Rng;

/// An address family's peer IP, with the most peers that fit in a response
/// of about 1200 bytes (20-byte header, 6 or 18 bytes a peer).
pub trait PeerIp: Copy + Eq + Hash + Debug + Send + 'static {
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
    pub peer_announce_interval: u32,
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
}

type PeerMap<I> = IndexMap<ResponsePeer<I>, ValidUntil, DefaultHashBuilder>;

#[derive(Debug)]
pub struct Torrent<I: PeerIp> {
    seeders: PeerMap<I>,
    leechers: PeerMap<I>,
    /// Announces with event "completed": the scrape's "downloaded".
    downloaded: u64,
}

impl<I: PeerIp> Default for Torrent<I> {
    fn default() -> Self {
        Self {
            seeders: PeerMap::default(),
            leechers: PeerMap::default(),
            downloaded: 0,
        }
    }
}

impl<I: PeerIp> Torrent<I> {
    fn is_empty(&self) -> bool {
        self.seeders.is_empty() && self.leechers.is_empty()
    }

    fn stats(&self) -> TorrentScrapeStatistics {
        TorrentScrapeStatistics {
            seeders: saturating_i32(self.seeders.len()),
            completed: saturating_i32(self.downloaded),
            leechers: saturating_i32(self.leechers.len()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerStatus {
    Seeder,
    Leecher,
}

/// The torrents of one shard and one address family.
#[derive(Debug)]
pub struct TorrentMap<I: PeerIp> {
    torrents: HashMap<InfoHash, Torrent<I>>,
    num_seeders: usize,
    num_leechers: usize,
}

impl<I: PeerIp> Default for TorrentMap<I> {
    fn default() -> Self {
        Self {
            torrents: HashMap::new(),
            num_seeders: 0,
            num_leechers: 0,
        }
    }
}

impl<I: PeerIp> TorrentMap<I> {
    /// Apply an announce from `ip` and build its response.
    pub fn announce<R: Rng>(
        &mut self,
        rng: &mut R,
        config: &SwarmConfig,
        now: SecondsSinceStart,
        query: &AnnounceQuery,
        ip: I,
    ) -> AnnounceResponse<I> {
        let key = ResponsePeer {
            ip_address: ip,
            port: query.port,
        };
        let mut peers = Vec::new();

        let torrent = if query.event == AnnounceEvent::Stopped {
            // Never create a torrent for a peer that is leaving.
            match self.torrents.get_mut(&query.info_hash) {
                Some(torrent) => {
                    if torrent.seeders.swap_remove(&key).is_some() {
                        self.num_seeders -= 1;
                    } else if torrent.leechers.swap_remove(&key).is_some() {
                        self.num_leechers -= 1;
                    }
                    Some(&*torrent)
                }
                None => None,
            }
        } else {
            let torrent = self.torrents.entry(query.info_hash).or_default();
            let status = if query.bytes_left == 0 || query.event == AnnounceEvent::Completed {
                PeerStatus::Seeder
            } else {
                PeerStatus::Leecher
            };
            let valid_until = ValidUntil::new(now, config.max_peer_age);
            let previous = if let Some(v) = torrent.seeders.get_mut(&key) {
                *v = valid_until;
                Some(PeerStatus::Seeder)
            } else if let Some(v) = torrent.leechers.get_mut(&key) {
                *v = valid_until;
                Some(PeerStatus::Leecher)
            } else {
                None
            };
            if previous != Some(status) {
                match previous {
                    Some(PeerStatus::Seeder) => {
                        torrent.seeders.swap_remove(&key);
                        self.num_seeders -= 1;
                    }
                    Some(PeerStatus::Leecher) => {
                        torrent.leechers.swap_remove(&key);
                        self.num_leechers -= 1;
                    }
                    None => {}
                }
                match status {
                    PeerStatus::Seeder => {
                        torrent.seeders.insert(key, valid_until);
                        self.num_seeders += 1;
                    }
                    PeerStatus::Leecher => {
                        torrent.leechers.insert(key, valid_until);
                        self.num_leechers += 1;
                    }
                }
            }
            if query.event == AnnounceEvent::Completed && previous != Some(PeerStatus::Seeder) {
                torrent.downloaded = torrent.downloaded.saturating_add(1);
            }

            let max = response_peer_limit::<I>(config.max_response_peers, query.peers_wanted);
            select_response_peers(
                rng,
                &torrent.seeders,
                &torrent.leechers,
                status == PeerStatus::Seeder,
                Some(&key),
                max,
                &mut peers,
                |peer, _| *peer,
            );
            Some(&*torrent)
        };

        let (seeders, leechers) = torrent
            .map(|t| (t.seeders.len(), t.leechers.len()))
            .unwrap_or((0, 0));
        AnnounceResponse {
            transaction_id: query.transaction_id,
            announce_interval: saturating_i32(config.peer_announce_interval),
            leechers: saturating_i32(leechers),
            seeders: saturating_i32(seeders),
            peers,
        }
    }

    pub fn scrape(&self, info_hash: &InfoHash) -> TorrentScrapeStatistics {
        self.torrents
            .get(info_hash)
            .map(Torrent::stats)
            .unwrap_or_default()
    }

    /// Drop peers not seen since their `ValidUntil`, then empty torrents.
    pub fn clean(&mut self, now: SecondsSinceStart) {
        let (mut seeders, mut leechers) = (0, 0);
        self.torrents.retain(|_, torrent| {
            torrent.seeders.retain(|_, v| v.is_valid_at(now));
            torrent.leechers.retain(|_, v| v.is_valid_at(now));
            seeders += torrent.seeders.len();
            leechers += torrent.leechers.len();
            !torrent.is_empty()
        });
        self.torrents.shrink_to_fit();
        self.num_seeders = seeders;
        self.num_leechers = leechers;
    }

    pub fn num_torrents(&self) -> usize {
        self.torrents.len()
    }

    pub fn num_seeders(&self) -> usize {
        self.num_seeders
    }

    pub fn num_leechers(&self) -> usize {
        self.num_leechers
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

/// Both address families of a shard: IPv4 and IPv6 swarms never mix.
#[derive(Debug, Default)]
pub struct TorrentMaps {
    pub ipv4: TorrentMap<Ipv4Addr>,
    pub ipv6: TorrentMap<Ipv6Addr>,
}

impl TorrentMaps {
    pub fn clean(&mut self, now: SecondsSinceStart) {
        self.ipv4.clean(now);
        self.ipv6.clean(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const CONFIG: SwarmConfig = SwarmConfig {
        max_response_peers: 50,
        peer_announce_interval: 1800,
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
        }
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    fn setup() -> (TorrentMap<Ipv4Addr>, SmallRng) {
        (TorrentMap::default(), SmallRng::seed_from_u64(0))
    }

    #[test]
    fn announce_counts_and_never_returns_announcer() {
        let (mut map, mut rng) = setup();
        let now = SecondsSinceStart(0);
        let r = map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1000, AnnounceEvent::Started, 0),
            ip(1),
        );
        assert_eq!((r.seeders, r.leechers), (1, 0));
        assert!(r.peers.is_empty());
        assert_eq!(r.announce_interval, 1800);
        assert_eq!(r.transaction_id, TransactionId(7));

        for n in 2..=5 {
            let r = map.announce(
                &mut rng,
                &CONFIG,
                now,
                &query(1, 1000, AnnounceEvent::Started, 100),
                ip(n),
            );
            assert_eq!(r.seeders, 1);
            assert_eq!(r.leechers, i32::from(n) - 1);
            assert_eq!(r.peers.len(), usize::from(n) - 1);
            assert!(r.peers.iter().all(|p| p.ip_address != ip(n)));
        }
        assert_eq!((map.num_seeders(), map.num_leechers()), (1, 4));

        // Re-announcing does not duplicate.
        let r = map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1000, AnnounceEvent::None, 100),
            ip(2),
        );
        assert_eq!((r.seeders, r.leechers), (1, 4));
        assert!(r.peers.iter().all(|p| p.ip_address != ip(2)));
    }

    #[test]
    fn seeder_gets_only_leechers() {
        let (mut map, mut rng) = setup();
        let now = SecondsSinceStart(0);
        for n in 1..=3 {
            map.announce(
                &mut rng,
                &CONFIG,
                now,
                &query(1, 1, AnnounceEvent::None, 0),
                ip(n),
            );
        }
        map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::None, 5),
            ip(9),
        );
        let r = map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::None, 0),
            ip(1),
        );
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
        let (mut map, mut rng) = setup();
        let now = SecondsSinceStart(0);
        map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::Started, 10),
            ip(1),
        );
        let r = map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::Completed, 0),
            ip(1),
        );
        assert_eq!((r.seeders, r.leechers), (1, 0));
        map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::Completed, 0),
            ip(1),
        );
        let s = map.scrape(&InfoHash([1; 20]));
        assert_eq!((s.seeders, s.completed, s.leechers), (1, 1, 0));
    }

    #[test]
    fn stopped_removes_only_own_entry() {
        let (mut map, mut rng) = setup();
        let now = SecondsSinceStart(0);
        map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::Started, 10),
            ip(1),
        );
        map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::Started, 0),
            ip(2),
        );
        // Same port, other address: cannot remove ip(1)'s entry.
        let r = map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::Stopped, 10),
            ip(3),
        );
        assert_eq!((r.seeders, r.leechers), (1, 1));
        let r = map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(1, 1, AnnounceEvent::Stopped, 10),
            ip(1),
        );
        assert_eq!((r.seeders, r.leechers), (1, 0));
        assert!(r.peers.is_empty());
        assert_eq!((map.num_seeders(), map.num_leechers()), (1, 0));
        // Stopped for an unknown torrent creates nothing.
        map.announce(
            &mut rng,
            &CONFIG,
            now,
            &query(2, 1, AnnounceEvent::Stopped, 10),
            ip(1),
        );
        assert_eq!(map.num_torrents(), 1);
    }

    #[test]
    fn expiry_and_cleaning() {
        let (mut map, mut rng) = setup();
        map.announce(
            &mut rng,
            &CONFIG,
            SecondsSinceStart(0),
            &query(1, 1, AnnounceEvent::None, 10),
            ip(1),
        );
        map.announce(
            &mut rng,
            &CONFIG,
            SecondsSinceStart(1000),
            &query(1, 1, AnnounceEvent::None, 0),
            ip(2),
        );
        map.announce(
            &mut rng,
            &CONFIG,
            SecondsSinceStart(0),
            &query(2, 1, AnnounceEvent::None, 0),
            ip(3),
        );
        map.clean(SecondsSinceStart(2000));
        assert_eq!(
            (map.num_torrents(), map.num_seeders(), map.num_leechers()),
            (2, 2, 1)
        );
        map.clean(SecondsSinceStart(2001));
        assert_eq!(
            (map.num_torrents(), map.num_seeders(), map.num_leechers()),
            (1, 1, 0)
        );
        map.clean(SecondsSinceStart(u32::MAX));
        assert_eq!(map.num_torrents(), 0);
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
        let (mut map, mut rng) = setup();
        let now = SecondsSinceStart(0);
        let config = SwarmConfig {
            max_response_peers: 1000,
            ..CONFIG
        };
        for port in 0..500u16 {
            map.announce(
                &mut rng,
                &config,
                now,
                &query(1, port, AnnounceEvent::None, (port % 2).into()),
                ip(1),
            );
        }
        let mut q = query(1, 9999, AnnounceEvent::None, 1);
        q.peers_wanted = 1000;
        let r = map.announce(&mut rng, &config, now, &q, ip(2));
        assert_eq!(r.peers.len(), 196);
        let unique: std::collections::HashSet<_> = r.peers.iter().collect();
        assert_eq!(unique.len(), 196);
    }
}
