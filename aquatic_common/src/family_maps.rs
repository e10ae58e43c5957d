//! One shard's torrents in both address families: IPv4 and IPv6 swarms
//! never mix, and cleaning, the swarm gauges, the scrape export and the
//! state file see both. Peers are keyed by `K4` and `K6` (aquatic_udp and
//! aquatic_http: (IP, announced port), [`IpFamilyMaps`]; aquatic_ws: the
//! same key in both, its connection's source and peer id); what a peer
//! carries besides its key (`V`: its client, its peer id, its connection)
//! is the daemon's. [`MapsShard`] is aquatic_udp's and aquatic_http's
//! request-worker shard: the daemon adds only how it answers requests.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rand::rngs::SmallRng;

use crate::clients::PeerClient;
use crate::metrics::SwarmGauges;
use crate::peer_store::PeerKey;
use crate::request_loop::Housekeeping;
use crate::state::{self, PeerRecords, StateCodec, StateError, TorrentRecord};
use crate::torrent_map::{Limits, TorrentMap};
use crate::{IpVersion, SecondsSinceStart, scrape_export};

pub struct FamilyMaps<K4, K6, V> {
    pub ipv4: TorrentMap<K4, V>,
    pub ipv6: TorrentMap<K6, V>,
}

/// Both families' peers keyed by (IP, announced port).
pub type IpFamilyMaps<V> = FamilyMaps<(Ipv4Addr, u16), (Ipv6Addr, u16), V>;

impl<K4, K6, V> Default for FamilyMaps<K4, K6, V> {
    fn default() -> Self {
        Self {
            ipv4: TorrentMap::default(),
            ipv6: TorrentMap::default(),
        }
    }
}

impl<K4, K6, V> FamilyMaps<K4, K6, V>
where
    K4: PeerKey,
    K6: PeerKey,
    V: PeerClient<K4> + PeerClient<K6>,
{
    /// Each address family gets `limits` of its own.
    pub fn new(limits: Limits) -> Self {
        Self {
            ipv4: TorrentMap::with_limits(limits),
            ipv6: TorrentMap::with_limits(limits),
        }
    }

    pub fn clean(&mut self, now: SecondsSinceStart) {
        self.ipv4.clean(now);
        self.ipv6.clean(now);
    }

    /// Publish sizes and refusals for the statistics and metrics.
    pub fn publish(&self, gauges: &SwarmGauges) {
        let [v4, v6] = &gauges.by_ip_version;
        v4.set_from(&self.ipv4);
        v6.set_from(&self.ipv6);
    }

    /// This shard's lines of the scrape export.
    pub fn write_scrape_export(&self, out: &mut dyn Write) -> io::Result<()> {
        scrape_export::write_torrents(out, &self.ipv4, &self.ipv6)
    }
}

impl<K4, K6, V> FamilyMaps<K4, K6, V>
where
    K4: PeerKey + StateCodec,
    K6: PeerKey + StateCodec,
    V: StateCodec,
{
    /// This shard's records of the state file: peers valid at `now`.
    pub fn write_state(&self, now: SecondsSinceStart, out: &mut dyn Write) -> io::Result<()> {
        state::write_torrents(out, IpVersion::V4, &self.ipv4, now)?;
        state::write_torrents(out, IpVersion::V6, &self.ipv6, now)
    }

    /// Read a torrent record of the state file into its address family.
    pub fn restore(
        &mut self,
        record: &TorrentRecord,
        peers: &mut PeerRecords,
    ) -> Result<(), StateError> {
        match record.family {
            IpVersion::V4 => peers.restore_into(&mut self.ipv4),
            IpVersion::V6 => peers.restore_into(&mut self.ipv6),
        }
    }
}

impl<K, V> FamilyMaps<K, K, V> {
    /// The torrents of `ip_version`'s family, when both key peers alike.
    pub fn of(&self, ip_version: IpVersion) -> &TorrentMap<K, V> {
        match ip_version {
            IpVersion::V4 => &self.ipv4,
            IpVersion::V6 => &self.ipv6,
        }
    }

    /// The torrents of `ip_version`'s family, to change.
    pub fn of_mut(&mut self, ip_version: IpVersion) -> &mut TorrentMap<K, V> {
        match ip_version {
            IpVersion::V4 => &mut self.ipv4,
            IpVersion::V6 => &mut self.ipv6,
        }
    }
}

/// A request worker's shard of a tracker with [`IpFamilyMaps`]: its swarm
/// rules (`C`), both families' torrents, its random source and its
/// gauges. The daemon implements `Shard::handle` for it.
pub struct MapsShard<C, V> {
    pub config: C,
    pub maps: IpFamilyMaps<V>,
    pub rng: SmallRng,
    pub gauges: Arc<SwarmGauges>,
}

impl<C, V> Housekeeping for MapsShard<C, V>
where
    V: StateCodec + PeerClient<(Ipv4Addr, u16)> + PeerClient<(Ipv6Addr, u16)>,
{
    fn clean(&mut self, now: SecondsSinceStart) {
        self.maps.clean(now);
    }

    fn publish(&self) {
        self.maps.publish(&self.gauges);
    }

    fn write_state(&self, now: SecondsSinceStart, out: &mut dyn Write) -> io::Result<()> {
        self.maps.write_state(now, out)
    }

    fn write_scrape_export(&self, out: &mut dyn Write) -> io::Result<()> {
        self.maps.write_scrape_export(out)
    }
}
