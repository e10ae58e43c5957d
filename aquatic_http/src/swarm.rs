//! HTTP announces and scrapes mapped onto the shared swarm rules
//! (`aquatic_common::torrent_map`). Peers are keyed by (IP, announced
//! port) and carry their peer id (for BEP 3 dictionary answers), which is
//! also what the state file keeps (`aquatic_common::state`): an answer
//! never lists one address twice, and a client that restarts with a new
//! peer id replaces its old entry instead of doubling it. Nobody can
//! remove or replace another address's entry. IPv4 and IPv6 swarms never
//! mix. Plain data with the time passed in, so tests need no sockets.

use std::net::IpAddr;

use aquatic_common::family_maps::IpFamilyMaps;
use aquatic_common::interval::AnnounceInterval;
use aquatic_common::torrent_map::{Announce, PeerData, SwarmEvent};
use aquatic_common::{InfoHash, PeerId, SecondsSinceStart, ValidUntil};
use aquatic_http_protocol::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, ResponsePeer, ScrapeStatistics,
};
use rand::Rng;

#[derive(Clone, Copy, Debug)]
pub struct SwarmConfig {
    pub max_response_peers: usize,
    /// With `min_announce_interval` as its floor.
    pub announce_interval: AnnounceInterval,
    pub min_announce_interval: u32,
    pub max_peer_age: u32,
}

/// One request worker's torrents, both address families.
pub type TorrentMaps = IpFamilyMaps<PeerId>;

/// Apply an announce from `ip` to its address family's torrents and build
/// its response.
pub fn announce<R: Rng>(
    maps: &mut TorrentMaps,
    rng: &mut R,
    config: &SwarmConfig,
    now: SecondsSinceStart,
    request: &AnnounceRequest,
    ip: IpAddr,
) -> AnnounceResponse {
    let event = match request.event {
        AnnounceEvent::None => SwarmEvent::None,
        AnnounceEvent::Started => SwarmEvent::Started,
        AnnounceEvent::Completed => SwarmEvent::Completed,
        AnnounceEvent::Stopped => SwarmEvent::Stopped,
    };
    // numwant=0 asks for no peers (libtorrent sends it with "stopped").
    let max_peers = request
        .numwant
        .unwrap_or(config.max_response_peers)
        .min(config.max_response_peers);
    let valid_until = ValidUntil::new(now, config.max_peer_age);
    let announce = Announce {
        info_hash: request.info_hash,
        key: (),
        extra: request.peer_id,
        event,
        left_is_zero: request.bytes_left == 0,
        valid_until,
        max_peers,
        spread_sources: false,
    };
    let mut response = AnnounceResponse {
        interval: config.announce_interval.pick(rng),
        min_interval: config.min_announce_interval,
        complete: 0,
        incomplete: 0,
        peers: Vec::new(),
        peers6: Vec::new(),
        external_ip: Some(ip),
        warning_message: None,
    };
    let counts = match ip {
        IpAddr::V4(ip) => {
            let announce = announce.with_key((ip, request.port));
            maps.ipv4
                .announce(rng, announce, &mut response.peers, response_peer)
        }
        IpAddr::V6(ip) => {
            let announce = announce.with_key((ip, request.port));
            maps.ipv6
                .announce(rng, announce, &mut response.peers6, response_peer)
        }
    };
    response.complete = counts.seeders;
    response.incomplete = counts.leechers;
    response
}

/// A stored peer as an answer lists it.
fn response_peer<I: Copy>(((ip, port), data): &((I, u16), PeerData<PeerId>)) -> ResponsePeer<I> {
    ResponsePeer {
        ip_address: *ip,
        port: *port,
        peer_id: data.extra,
    }
}

pub fn scrape(maps: &TorrentMaps, info_hash: &InfoHash, ip: IpAddr) -> ScrapeStatistics {
    let counts = match ip {
        IpAddr::V4(_) => maps.ipv4.scrape(info_hash),
        IpAddr::V6(_) => maps.ipv6.scrape(info_hash),
    };
    ScrapeStatistics {
        complete: counts.seeders,
        downloaded: counts.downloaded as usize,
        incomplete: counts.leechers,
    }
}

#[cfg(test)]
mod tests {
    use aquatic_common::peer_store::PeerKey;
    use aquatic_common::torrent_map::{Limits, TorrentMap};

    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const CONFIG: SwarmConfig = SwarmConfig {
        max_response_peers: 50,
        announce_interval: AnnounceInterval {
            base: 1800,
            jitter: 0,
            floor: 60,
        },
        min_announce_interval: 60,
        max_peer_age: 2000,
    };

    fn request(peer: u8, port: u16, left: u64, event: AnnounceEvent) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([peer; 20]),
            port,
            bytes_uploaded: 0,
            bytes_downloaded: 0,
            bytes_left: left,
            event,
            numwant: None,
            compact: true,
            no_peer_id: false,
            key: None,
        }
    }

    /// A request worker's maps under test, with its random source and
    /// config; every announce at time 0.
    struct Shard {
        maps: TorrentMaps,
        rng: SmallRng,
        config: SwarmConfig,
    }

    impl Shard {
        fn new(maps: TorrentMaps, seed: u64) -> Self {
            let rng = SmallRng::seed_from_u64(seed);
            let config = CONFIG;
            Self { maps, rng, config }
        }

        fn announce(&mut self, request: &AnnounceRequest, ip: IpAddr) -> AnnounceResponse {
            let (maps, rng, now) = (&mut self.maps, &mut self.rng, SecondsSinceStart(0));
            announce(maps, rng, &self.config, now, request, ip)
        }

        /// (torrents, seeders, leechers) for IPv4 and IPv6.
        fn counts(&self) -> [(usize, usize, usize); 2] {
            [sizes(&self.maps.ipv4), sizes(&self.maps.ipv6)]
        }
    }

    fn sizes<K: PeerKey>(map: &TorrentMap<K, PeerId>) -> (usize, usize, usize) {
        (map.num_torrents(), map.num_seeders(), map.num_leechers())
    }

    #[test]
    fn announce_counts_peers_and_families() {
        let mut t = Shard::new(TorrentMaps::default(), 0);
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let r = t.announce(&request(1, 6881, 0, AnnounceEvent::Started), v4);
        assert_eq!((r.complete, r.incomplete, r.peers.len()), (1, 0, 0));
        assert_eq!(r.external_ip, Some(v4));
        assert_eq!((r.interval, r.min_interval), (1800, 60));
        // Same IP, other peer id: another peer (e.g. two clients behind NAT).
        let r = t.announce(&request(2, 6882, 10, AnnounceEvent::Started), v4);
        assert_eq!((r.complete, r.incomplete), (1, 1));
        assert_eq!(
            r.peers,
            vec![ResponsePeer {
                ip_address: "10.0.0.1".parse().unwrap(),
                port: 6881,
                peer_id: PeerId([1; 20])
            }]
        );
        // IPv6 swarm is separate.
        let r = t.announce(&request(3, 6883, 10, AnnounceEvent::Started), v6);
        assert_eq!(
            (r.complete, r.incomplete, r.peers.len(), r.peers6.len()),
            (0, 1, 0, 0)
        );
        // Completed counts in the scrape; stopped removes.
        t.announce(&request(2, 6882, 0, AnnounceEvent::Completed), v4);
        let s = scrape(&t.maps, &InfoHash([1; 20]), v4);
        assert_eq!((s.complete, s.downloaded, s.incomplete), (2, 1, 0));
        let mut stop = request(2, 6882, 0, AnnounceEvent::Stopped);
        stop.numwant = Some(0);
        let r = t.announce(&stop, v4);
        assert_eq!((r.complete, r.incomplete, r.peers.len()), (1, 0, 0));
        assert_eq!(t.counts(), [(1, 1, 0), (1, 0, 1)]);
    }

    #[test]
    fn numwant_is_capped() {
        let mut t = Shard::new(TorrentMaps::default(), 1);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for peer in 0..100 {
            let ip = IpAddr::from([10, 0, 1, peer]);
            t.announce(&request(peer, 1, 1, AnnounceEvent::None), ip);
        }
        let mut r = request(200, 1, 1, AnnounceEvent::None);
        r.numwant = Some(10_000);
        assert_eq!(t.announce(&r, ip).peers.len(), 50);
        r.numwant = Some(5);
        assert_eq!(t.announce(&r, ip).peers.len(), 5);
    }

    #[test]
    fn one_address_is_listed_once_and_cannot_fill_a_torrent() {
        let limits = Limits::with_shares(
            1000,
            1_000_000,
            &aquatic_common::source::SourceBudgetConfig::default(),
        );
        let mut t = Shard::new(TorrentMaps::new(limits), 2);
        let attacker: IpAddr = "10.0.0.4".parse().unwrap();
        // 1000 peer ids from one address and port: one peer.
        for peer in 0..1000u32 {
            let mut r = request(0, 6881, 1, AnnounceEvent::Started);
            r.peer_id = PeerId([(peer % 251) as u8; 20]);
            r.peer_id.0[0..4].copy_from_slice(&peer.to_be_bytes());
            t.announce(&r, attacker);
        }
        assert_eq!(t.counts()[0], (1, 0, 1));
        // 1000 ports from one address: its share of the torrent (5 % of
        // 1000 = 50), then refused.
        for port in 1..=1000u16 {
            t.announce(&request(1, port, 1, AnnounceEvent::Started), attacker);
        }
        assert_eq!(t.counts()[0], (1, 0, 50));
        // Honest peers on other addresses are stored and find each other.
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.5".parse().unwrap(), "10.0.0.6".parse().unwrap());
        t.announce(&request(7, 7000, 1, AnnounceEvent::Started), a);
        let mut r = request(8, 8000, 1, AnnounceEvent::Started);
        r.numwant = Some(200);
        t.config.max_response_peers = 200;
        let answer = t.announce(&r, b);
        assert_eq!(answer.incomplete, 52);
        assert!(answer.peers.iter().any(|p| p.ip_address == a));
        let mut addresses: Vec<_> = answer
            .peers
            .iter()
            .map(|p| (p.ip_address, p.port))
            .collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), answer.peers.len());
    }
}
