//! Messages between socket workers and request workers, and the shared
//! per-worker statistics counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicU64;

use aquatic_common::{CanonicalSocketAddr, InfoHash, IpVersion};
use aquatic_udp_protocol::{AnnounceResponse, TorrentScrapeStatistics};
use crossbeam_utils::CachePadded;

pub use aquatic_common::metrics::SwarmGauges;

use crate::swarm::AnnounceQuery;

/// Part of a scrape that falls in one request worker's shard. The `usize`
/// paired with each hash in `info_hashes` is its position in the client's
/// request.
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

pub use aquatic_common::request_loop::shard_of;

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
    /// Announces with a valid connection id, by client.
    pub clients: aquatic_common::clients::ClientCounts,
}

pub use aquatic_common::statistics::add;
