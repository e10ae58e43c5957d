//! Messages between socket workers and request workers, and the shared
//! statistics counters.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use aquatic_common::InfoHash;
use aquatic_http_protocol::{AnnounceRequest, AnnounceResponse, PeerFormat, ScrapeStatistics};
use crossbeam_utils::CachePadded;

/// Where an answer goes: a connection of a socket worker, and which of its
/// requests it answers. A connection closed (and its slot reused) or a
/// request abandoned meanwhile has another generation, so a late answer is
/// dropped instead of reaching a stranger or the wrong request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionMeta {
    pub socket_worker: usize,
    pub token: usize,
    pub generation: u64,
    /// The client's address as the swarm sees it (canonical; from the
    /// reverse proxy header when the connection comes from a trusted proxy).
    pub peer_ip: IpAddr,
}

#[derive(Debug)]
pub enum SwarmRequest {
    Announce(AnnounceRequest),
    Scrape(Vec<InfoHash>),
}

#[derive(Debug)]
pub struct RequestMessage {
    pub request: SwarmRequest,
    pub meta: ConnectionMeta,
}

#[derive(Debug)]
pub enum SwarmResponse {
    Announce(AnnounceResponse, PeerFormat),
    Scrape(Vec<(InfoHash, ScrapeStatistics)>),
}

#[derive(Debug)]
pub struct ResponseMessage {
    pub response: SwarmResponse,
    pub meta: ConnectionMeta,
}

/// Which request worker owns an info hash.
pub fn shard_of(info_hash: &InfoHash, request_workers: usize) -> usize {
    let [a, b, c, d, ..] = info_hash.0;
    (u32::from_le_bytes([a, b, c, d]) as usize) % request_workers.max(1)
}

/// Counters kept by one socket worker; read by the statistics worker.
#[derive(Default)]
pub struct SocketWorkerStats(pub CachePadded<Counters>);

#[derive(Default)]
pub struct Counters {
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_open: AtomicUsize,
    pub requests_announce: AtomicU64,
    pub requests_scrape: AtomicU64,
    pub responses_announce: AtomicU64,
    pub responses_scrape: AtomicU64,
    /// Failure reasons and 4xx answers.
    pub responses_error: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Gauges published by one request worker, per IP version.
#[derive(Default)]
pub struct SwarmGauges {
    pub by_ip_version: [CachePadded<SwarmCounts>; 2],
}

#[derive(Default)]
pub struct SwarmCounts {
    pub torrents: AtomicUsize,
    pub seeders: AtomicUsize,
    pub leechers: AtomicUsize,
}

impl SwarmCounts {
    pub fn set(&self, torrents: usize, seeders: usize, leechers: usize) {
        self.torrents.store(torrents, Ordering::Relaxed);
        self.seeders.store(seeders, Ordering::Relaxed);
        self.leechers.store(leechers, Ordering::Relaxed);
    }
}
