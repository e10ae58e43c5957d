//! What the status page shows of the swarms beyond their totals: how many
//! torrents have how many peers (power-of-two buckets), the largest
//! swarms and the stored peers by client and version. Made by the shard's owner while it cleans (it visits every
//! torrent then anyway), so nothing locks the swarms and the hot path
//! pays nothing.

use hashbrown::HashMap;

use super::SwarmCounts;
use crate::InfoHash;
use crate::clients::ClientKey;

/// Buckets of [`SwarmSummary::by_size`]: 1 peer, 2-3, 4-7, ..., and the
/// last for 2^19 peers or more.
pub const SIZE_BUCKETS: usize = 20;

/// The `peers` label of each bucket.
pub const SIZE_BUCKET_LABELS: [&str; SIZE_BUCKETS] = [
    "1",
    "2-3",
    "4-7",
    "8-15",
    "16-31",
    "32-63",
    "64-127",
    "128-255",
    "256-511",
    "512-1023",
    "1024-2047",
    "2048-4095",
    "4096-8191",
    "8192-16383",
    "16384-32767",
    "32768-65535",
    "65536-131071",
    "131072-262143",
    "262144-524287",
    "524288+",
];

/// How many of the largest swarms are kept.
pub const LARGEST_SWARMS: usize = 10;

/// The swarms as of the last cleaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwarmSummary {
    /// Torrents by peers (seeders and leechers), in [`SIZE_BUCKETS`].
    pub by_size: [u64; SIZE_BUCKETS],
    /// The largest swarms, most peers first, at most [`LARGEST_SWARMS`].
    pub largest: Vec<(InfoHash, SwarmCounts)>,
    /// Stored peers by client and version (at most 2^16 keys).
    pub clients: HashMap<ClientKey, u64>,
}

impl SwarmSummary {
    /// Count one torrent.
    pub fn add(&mut self, info_hash: &InfoHash, counts: SwarmCounts) {
        let peers = counts.seeders + counts.leechers;
        if peers == 0 {
            return;
        }
        let bucket = (usize::BITS - 1 - peers.leading_zeros()) as usize;
        if let Some(n) = self.by_size.get_mut(bucket.min(SIZE_BUCKETS - 1)) {
            *n += 1;
        }
        self.consider(info_hash, counts);
    }

    /// Count one stored peer's client (the shards count into an array
    /// while cleaning; the metrics tests build summaries with this).
    #[cfg(test)]
    pub fn add_peer(&mut self, client: ClientKey) {
        *self.clients.entry(client).or_default() += 1;
    }

    /// Add another shard's summary.
    pub fn merge(&mut self, other: &SwarmSummary) {
        for (client, n) in &other.clients {
            *self.clients.entry(*client).or_default() += n;
        }
        for (sum, n) in self.by_size.iter_mut().zip(other.by_size) {
            *sum += n;
        }
        for (info_hash, counts) in &other.largest {
            self.consider(info_hash, *counts);
        }
    }

    /// Keep this swarm among the largest if it is one of them.
    fn consider(&mut self, info_hash: &InfoHash, counts: SwarmCounts) {
        let peers = counts.seeders + counts.leechers;
        let smallest = self
            .largest
            .last()
            .map_or(0, |(_, c)| c.seeders + c.leechers);
        if self.largest.len() < LARGEST_SWARMS || peers > smallest {
            let at = self
                .largest
                .partition_point(|(_, c)| c.seeders + c.leechers >= peers);
            self.largest.insert(at, (*info_hash, counts));
            self.largest.truncate(LARGEST_SWARMS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(seeders: usize, leechers: usize) -> SwarmCounts {
        SwarmCounts {
            seeders,
            leechers,
            downloaded: 0,
        }
    }

    #[test]
    fn buckets_and_the_largest_swarms() {
        let mut summary = SwarmSummary::default();
        for peers in 1..=40usize {
            let mut hash = [0u8; 20];
            hash[0] = peers as u8;
            summary.add(&InfoHash(hash), counts(peers, 0));
        }
        summary.add(&InfoHash([99; 20]), counts(0, 0));
        summary.add(&InfoHash([98; 20]), counts(1 << 20, 5));
        assert_eq!(&summary.by_size[..7], &[1, 2, 4, 8, 16, 9, 0]);
        assert_eq!(summary.by_size[SIZE_BUCKETS - 1], 1);
        assert_eq!(summary.largest.len(), LARGEST_SWARMS);
        let peers: Vec<usize> = summary
            .largest
            .iter()
            .map(|(_, c)| c.seeders + c.leechers)
            .collect();
        assert_eq!(peers, [(1 << 20) + 5, 40, 39, 38, 37, 36, 35, 34, 33, 32]);

        let mut other = SwarmSummary::default();
        other.add(&InfoHash([7; 20]), counts(100, 100));
        let mut merged = SwarmSummary::default();
        merged.merge(&summary);
        merged.merge(&other);
        assert_eq!(merged.by_size[7], 1);
        assert_eq!(merged.largest[1].0, InfoHash([7; 20]));
        assert_eq!(merged.largest.len(), LARGEST_SWARMS);
    }
}
