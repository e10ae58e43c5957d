//! Messages between socket workers and request workers, and the shared
//! per-worker statistics counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use aquatic_common::{CanonicalSocketAddr, InfoHash, IpVersion};
use aquatic_udp_protocol::{AnnounceResponse, TorrentScrapeStatistics};
use crossbeam_utils::CachePadded;

pub use aquatic_common::metrics::SwarmGauges;

use crate::swarm::AnnounceQuery;

/// Part of a scrape that falls in one request worker's shard. `indices`
/// are the positions of the hashes in the client's request.
#[derive(Debug)]
pub struct ScrapePart {
    pub pending_id: u64,
    pub info_hashes: Vec<(usize, InfoHash)>,
}

#[derive(Debug)]
pub enum SwarmRequest {
    Announce(AnnounceQuery),
    Scrape(ScrapePart),
}

/// A request on its way to a request worker, with where its answer goes.
#[derive(Debug)]
pub struct RequestMessage {
    pub request: SwarmRequest,
    pub src: CanonicalSocketAddr,
    /// The local address the request was sent to: its answer leaves from
    /// it (none when the kernel did not say).
    pub local: Option<IpAddr>,
    pub socket_worker: usize,
}

#[derive(Debug)]
pub enum SwarmResponse {
    AnnounceIpv4(AnnounceResponse<Ipv4Addr>),
    AnnounceIpv6(AnnounceResponse<Ipv6Addr>),
    Scrape {
        pending_id: u64,
        stats: Vec<(usize, TorrentScrapeStatistics)>,
    },
}

#[derive(Debug)]
pub struct ResponseMessage {
    pub response: SwarmResponse,
    pub dst: CanonicalSocketAddr,
    /// The address to answer from: the request's local address.
    pub local: Option<IpAddr>,
}

/// Which request worker owns an info hash.
pub fn shard_of(info_hash: &InfoHash, request_workers: usize) -> usize {
    let [a, b, c, d, ..] = info_hash.0;
    (u32::from_le_bytes([a, b, c, d]) as usize) % request_workers.max(1)
}

/// Counters kept by one socket worker, per IP version; read by the
/// statistics worker. Relaxed atomics on a cache line of their own: no
/// contention on the hot path.
#[derive(Default)]
pub struct SocketWorkerStats {
    pub by_ip_version: [CachePadded<IpCounters>; 2],
}

impl SocketWorkerStats {
    pub fn get(&self, v: IpVersion) -> &IpCounters {
        let [v4, v6] = &self.by_ip_version;
        match v {
            IpVersion::V4 => v4,
            IpVersion::V6 => v6,
        }
    }
}

pub fn ip_index(v: IpVersion) -> usize {
    match v {
        IpVersion::V4 => 0,
        IpVersion::V6 => 1,
    }
}

#[derive(Default)]
pub struct IpCounters {
    pub requests_connect: AtomicU64,
    pub requests_announce: AtomicU64,
    pub requests_scrape: AtomicU64,
    pub responses_connect: AtomicU64,
    pub responses_announce: AtomicU64,
    pub responses_scrape: AtomicU64,
    pub responses_error: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Requests without a valid connection id: dropped, never answered.
    pub dropped_bad_connection_id: AtomicU64,
    /// Packets that are not requests and cannot be answered.
    pub dropped_malformed: AtomicU64,
    /// Requests dropped because a request worker's channel was full.
    pub dropped_overload: AtomicU64,
    /// Responses dropped because the socket's send buffer stayed full.
    pub dropped_send: AtomicU64,
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_range() {
        for n in 1..8 {
            for b in 0..=255u8 {
                assert!(shard_of(&InfoHash([b; 20]), n) < n);
            }
        }
        assert_eq!(shard_of(&InfoHash([3; 20]), 0), 0);
    }
}
