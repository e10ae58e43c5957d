//! Messages between socket workers and request workers, and the shared
//! statistics counters.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

use aquatic_common::InfoHash;
use aquatic_http_protocol::{AnnounceRequest, AnnounceResponse, PeerFormat, ScrapeStatistics};
use crossbeam_utils::CachePadded;

pub use aquatic_common::metrics::SwarmGauges;

/// Where an answer goes: a connection of a socket worker, and which of its
/// requests it answers. A connection closed (and its slot reused) or a
/// request abandoned meanwhile waits for another request id (or none), so
/// a late answer is dropped instead of reaching a stranger or the wrong
/// request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionMeta {
    pub socket_worker: usize,
    pub token: usize,
    /// Unique in its socket worker: the request this answers.
    pub request_id: u64,
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

pub use aquatic_common::request_loop::shard_of;

/// Counters kept by one socket worker; read by the statistics worker.
/// (On a cache line of its own: no false sharing with other workers.)
pub type SocketWorkerStats = CachePadded<Counters>;

#[derive(Default)]
pub struct Counters {
    /// Connections, bytes and clients, as both TCP daemons count them.
    pub tcp: aquatic_common::tcp_counters::TcpCounters,
    pub requests_announce: AtomicU64,
    pub requests_scrape: AtomicU64,
    pub responses_announce: AtomicU64,
    pub responses_scrape: AtomicU64,
    /// Failure reasons and 4xx answers.
    pub responses_error: AtomicU64,
    /// The same, by [`ErrorReason`] (indexed by `reason as usize`); only
    /// what [`Counters::count_error`] counted.
    pub responses_error_by_reason: [AtomicU64; ErrorReason::ALL.len()],
}

impl Counters {
    /// Count an error response (a failure reason or a 4xx status), in
    /// `responses_error` and under its reason.
    pub fn count_error(&self, reason: ErrorReason) {
        add(&self.responses_error, 1);
        if let Some(counter) = self.responses_error_by_reason.get(reason as usize) {
            add(counter, 1);
        }
    }
}

pub use aquatic_common::statistics::add;

/// The failure reasons the socket worker sends itself, besides those of
/// the request parser (which all count as [`ErrorReason::InvalidRequest`]).
pub const FAILURE_NOT_ALLOWED: &str = "info hash not allowed";
pub const FAILURE_OVERLOADED: &str = "tracker overloaded, try again later";
pub const FAILURE_PROXY_HEADER_MISSING: &str = "reverse proxy header missing";
pub use aquatic_common::defences::{FAILURE_ADDRESS_REFUSED, FAILURE_RATE_LIMITED};

aquatic_common::labelled! {
    /// Why an error response was sent: the `reason` label of
    /// `aquatic_http_error_responses_total`. The first six are bencoded
    /// failure reasons (status 200), the rest HTTP error statuses.
    pub enum ErrorReason {
        /// An announce or scrape with a missing or invalid parameter.
        InvalidRequest => "invalid_request",
        /// The access list refuses the info hash.
        InfoHashNotAllowed => "info_hash_not_allowed",
        /// A request worker's queue was full.
        Overloaded => "overloaded",
        /// From a trusted proxy, but without the client address header.
        ProxyHeaderMissing => "proxy_header_missing",
        /// Over its source's `[rate_limit]`.
        RateLimited => "rate_limited",
        /// From an address `[ip_filter]` refuses: forwarded by a trusted
        /// proxy, or on a connection opened before a reload refused it.
        AddressRefused => "address_refused",
        /// 400: not an HTTP/1.x request.
        BadRequest => "bad_request",
        /// 404: neither /announce nor /scrape.
        NotFound => "not_found",
        /// 431: request head over `network.max_request_head_size`.
        HeadTooLarge => "head_too_large",
        /// 421: a `Host` not in `network.allowed_hosts`.
        WrongHost => "wrong_host",
        /// Any other status.
        OtherStatus => "other_status",
    }
}

impl ErrorReason {
    /// The reason a failure response with this text counts under.
    pub fn of_failure(text: &str) -> Self {
        match text {
            FAILURE_NOT_ALLOWED => ErrorReason::InfoHashNotAllowed,
            FAILURE_OVERLOADED => ErrorReason::Overloaded,
            FAILURE_PROXY_HEADER_MISSING => ErrorReason::ProxyHeaderMissing,
            FAILURE_RATE_LIMITED => ErrorReason::RateLimited,
            FAILURE_ADDRESS_REFUSED => ErrorReason::AddressRefused,
            _ => ErrorReason::InvalidRequest,
        }
    }

    /// The reason an error status counts under.
    pub fn of_status(status: u16) -> Self {
        match status {
            400 => ErrorReason::BadRequest,
            404 => ErrorReason::NotFound,
            421 => ErrorReason::WrongHost,
            431 => ErrorReason::HeadTooLarge,
            _ => ErrorReason::OtherStatus,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn error_reasons_are_indexed_by_discriminant_and_labelled_once() {
        for (i, reason) in ErrorReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        let mut labels: Vec<&str> = ErrorReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), ErrorReason::ALL.len());

        let counters = Counters::default();
        counters.count_error(ErrorReason::of_failure(FAILURE_OVERLOADED));
        counters.count_error(ErrorReason::of_failure("missing info_hash"));
        counters.count_error(ErrorReason::of_status(404));
        let by_reason =
            |r: ErrorReason| counters.responses_error_by_reason[r as usize].load(Ordering::Relaxed);
        assert_eq!(counters.responses_error.load(Ordering::Relaxed), 3);
        assert_eq!(by_reason(ErrorReason::Overloaded), 1);
        assert_eq!(by_reason(ErrorReason::InvalidRequest), 1);
        assert_eq!(by_reason(ErrorReason::NotFound), 1);
        assert_eq!(by_reason(ErrorReason::HeadTooLarge), 0);
    }
}
