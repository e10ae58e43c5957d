//! Scrapes a socket worker has split over the shards and waits to answer
//! whole: each scrape's info hashes go to the shards that own them, and
//! the answer is sent once every part is back (or dropped after
//! [`LIFETIME`] seconds, or at once when a part could not be queued).

use std::net::IpAddr;

use aquatic_common::{CanonicalSocketAddr, InfoHash, SecondsSinceStart, ValidUntil};
use aquatic_udp_protocol::{ScrapeRequest, ScrapeResponse, TorrentScrapeStatistics, TransactionId};
use hashbrown::HashMap;

use crate::common::{ScrapePart, shard_of};

/// Seconds a split scrape waits for its parts.
pub const LIFETIME: u32 = 30;

struct Pending {
    transaction_id: TransactionId,
    dst: CanonicalSocketAddr,
    local: Option<IpAddr>,
    stats: Vec<TorrentScrapeStatistics>,
    parts_left: usize,
    valid_until: ValidUntil,
}

#[derive(Default)]
pub struct PendingScrapes {
    pending: HashMap<u64, Pending>,
    next_id: u64,
}

impl PendingScrapes {
    /// Split `request` over `shards`: one part per shard that owns some of
    /// its info hashes, each with the hashes' positions in the request.
    pub fn split(
        &mut self,
        request: ScrapeRequest,
        shards: usize,
        dst: CanonicalSocketAddr,
        local: Option<IpAddr>,
        now: SecondsSinceStart,
    ) -> Vec<(usize, ScrapePart)> {
        let pending_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut by_shard: Vec<Vec<(usize, InfoHash)>> = (0..shards).map(|_| Vec::new()).collect();
        for (i, hash) in request.info_hashes.iter().enumerate() {
            if let Some(part) = by_shard.get_mut(shard_of(hash, shards)) {
                part.push((i, *hash));
            }
        }
        let parts: Vec<(usize, ScrapePart)> = by_shard
            .into_iter()
            .enumerate()
            .filter(|(_, info_hashes)| !info_hashes.is_empty())
            .map(|(shard, info_hashes)| {
                let part = ScrapePart {
                    pending_id,
                    info_hashes,
                };
                (shard, part)
            })
            .collect();
        self.pending.insert(
            pending_id,
            Pending {
                transaction_id: request.transaction_id,
                dst,
                local,
                stats: vec![TorrentScrapeStatistics::default(); request.info_hashes.len()],
                parts_left: parts.len(),
                valid_until: ValidUntil::new(now, LIFETIME),
            },
        );
        parts
    }

    /// A part's answer: the whole response and where it goes once it was
    /// the last part.
    pub fn complete(
        &mut self,
        pending_id: u64,
        stats: Vec<(usize, TorrentScrapeStatistics)>,
    ) -> Option<(ScrapeResponse, CanonicalSocketAddr, Option<IpAddr>)> {
        let pending = self.pending.get_mut(&pending_id)?;
        for (i, s) in stats {
            if let Some(slot) = pending.stats.get_mut(i) {
                *slot = s;
            }
        }
        pending.parts_left = pending.parts_left.saturating_sub(1);
        if pending.parts_left > 0 {
            return None;
        }
        let done = self.pending.remove(&pending_id)?;
        let response = ScrapeResponse {
            transaction_id: done.transaction_id,
            torrent_stats: done.stats,
        };
        Some((response, done.dst, done.local))
    }

    /// A part could not be queued: the scrape cannot be answered whole.
    pub fn abandon(&mut self, pending_id: u64) {
        self.pending.remove(&pending_id);
    }

    /// Drop the scrapes whose parts did not all come back in time.
    pub fn expire(&mut self, now: SecondsSinceStart) {
        self.pending.retain(|_, p| p.valid_until.is_valid_at(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_when_the_last_part_is_back() {
        let mut scrapes = PendingScrapes::default();
        let request = ScrapeRequest {
            connection_id: aquatic_udp_protocol::ConnectionId(1),
            transaction_id: TransactionId(9),
            info_hashes: (0..8u8).map(|n| InfoHash([n; 20])).collect(),
        };
        let dst = CanonicalSocketAddr::new("127.0.0.1:1".parse().unwrap());
        let parts = scrapes.split(request, 4, dst, None, SecondsSinceStart(0));
        assert!(parts.len() > 1);
        assert_eq!(
            parts
                .iter()
                .map(|(_, p)| p.info_hashes.len())
                .sum::<usize>(),
            8
        );
        let n = parts.len();
        for (k, (_, part)) in parts.into_iter().enumerate() {
            let stats = part
                .info_hashes
                .iter()
                .map(|(i, _)| {
                    let seeders = i32::try_from(*i).unwrap();
                    (
                        *i,
                        TorrentScrapeStatistics {
                            seeders,
                            completed: 0,
                            leechers: 0,
                        },
                    )
                })
                .collect();
            let done = scrapes.complete(part.pending_id, stats);
            assert_eq!(done.is_some(), k + 1 == n);
            if let Some((response, _, _)) = done {
                assert_eq!(response.transaction_id, TransactionId(9));
                let seeders: Vec<i32> = response.torrent_stats.iter().map(|s| s.seeders).collect();
                assert_eq!(seeders, (0..8).collect::<Vec<_>>());
            }
        }
        // Expired and abandoned scrapes are forgotten.
        let request = ScrapeRequest {
            connection_id: aquatic_udp_protocol::ConnectionId(1),
            transaction_id: TransactionId(10),
            info_hashes: vec![InfoHash([1; 20])],
        };
        let parts = scrapes.split(request, 1, dst, None, SecondsSinceStart(0));
        scrapes.expire(SecondsSinceStart(LIFETIME + 10));
        assert!(
            scrapes
                .complete(parts[0].1.pending_id, Vec::new())
                .is_none()
        );
    }
}
