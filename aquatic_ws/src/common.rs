//! Messages between socket workers and request workers, and the shared
//! statistics counters.

use std::sync::atomic::{AtomicU64, AtomicUsize};

use aquatic_common::source::SourceKey;
use aquatic_common::{InfoHash, IpVersion, PeerId};
use aquatic_ws_protocol::{AnnounceRequest, AnswerRequest, OutMessage, ScrapeStatistics};
use crossbeam_utils::CachePadded;

pub use aquatic_common::metrics::SwarmGauges;

/// A connection of a socket worker: where a peer's messages go. A
/// connection closed meanwhile (its slot possibly reused) has another
/// generation, so a late message is dropped instead of reaching a stranger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionRef {
    pub socket_worker: u32,
    pub token: u32,
    /// Unique per socket worker over its lifetime.
    pub generation: u64,
}

/// A stored peer's client, from the peer id in its key.
impl
    aquatic_common::clients::PeerClient<(aquatic_common::source::SourceKey, aquatic_common::PeerId)>
    for ConnectionRef
{
    fn client(
        &self,
        key: &(aquatic_common::source::SourceKey, aquatic_common::PeerId),
    ) -> aquatic_common::clients::ClientKey {
        aquatic_common::clients::ClientKey::of(&key.1)
    }
}

#[derive(Debug)]
pub enum SwarmRequest {
    Announce(AnnounceRequest),
    Answer(AnswerRequest),
    /// One shard's part of a scrape: `scrape_id` identifies the scrape on
    /// its connection.
    Scrape {
        scrape_id: u32,
        info_hashes: Vec<InfoHash>,
    },
    /// The connection is gone: its peers leave these swarms.
    ConnectionClosed {
        peers: Vec<(InfoHash, PeerId)>,
    },
}

#[derive(Debug)]
pub struct RequestMessage {
    pub from: ConnectionRef,
    pub ip_version: IpVersion,
    /// The source the connection's client counts under (`[source_budgets]`).
    pub source: SourceKey,
    pub request: SwarmRequest,
}

#[derive(Debug)]
pub enum SwarmResponse {
    /// An announce reply, a relayed offer or answer, or a failure reason.
    Message(OutMessage),
    ScrapePart {
        scrape_id: u32,
        files: Vec<(InfoHash, ScrapeStatistics)>,
    },
}

#[derive(Debug)]
pub struct ResponseMessage {
    pub to: ConnectionRef,
    pub response: SwarmResponse,
}

pub use aquatic_common::request_loop::shard_of;

/// The failure reasons sent to clients.
pub const FAILURE_NOT_ALLOWED: &str = "info hash not allowed";
pub const FAILURE_OVERLOADED: &str = "tracker overloaded, try again later";
pub const FAILURE_TOO_MANY_TORRENTS: &str = "too many torrents on this connection";
pub const FAILURE_TOO_MANY_SCRAPE_HASHES: &str = "too many info hashes in scrape";
pub const FAILURE_TOO_MANY_SCRAPES: &str = "too many scrapes in flight on this connection";
pub const FAILURE_PEER_ID_TAKEN: &str = "peer id in use by another connection";
pub const FAILURE_UNKNOWN_OFFER: &str = "answer to an offer this peer was not sent";
pub const FAILURE_BINARY: &str = "binary messages are not supported";
pub use aquatic_common::defences::{FAILURE_ADDRESS_REFUSED, FAILURE_RATE_LIMITED};

aquatic_common::labelled! {
    /// Why a failure reason was sent: the `reason` label of
    /// `aquatic_ws_error_responses_total`.
    pub enum ErrorReason {
        /// Invalid JSON, a missing or invalid field.
        InvalidMessage => "invalid_message",
        InfoHashNotAllowed => "info_hash_not_allowed",
        /// A request worker's queue was full.
        Overloaded => "overloaded",
        /// Over `max_torrents_per_connection`, `max_scrape_torrents` or the
        /// scrapes one connection may have in flight.
        OverLimit => "over_limit",
        PeerIdTaken => "peer_id_taken",
        UnknownOffer => "unknown_offer",
        BinaryMessage => "binary_message",
        /// Over its source's `[rate_limit]`.
        RateLimited => "rate_limited",
        /// From an address `[ip_filter]` refuses (a filter reloaded while the
        /// connection was open).
        AddressRefused => "address_refused",
    }
}

impl ErrorReason {
    /// The reason a failure response with this text counts under.
    pub fn of_failure(text: &str) -> Self {
        match text {
            FAILURE_NOT_ALLOWED => ErrorReason::InfoHashNotAllowed,
            FAILURE_OVERLOADED => ErrorReason::Overloaded,
            FAILURE_TOO_MANY_TORRENTS
            | FAILURE_TOO_MANY_SCRAPE_HASHES
            | FAILURE_TOO_MANY_SCRAPES => ErrorReason::OverLimit,
            FAILURE_PEER_ID_TAKEN => ErrorReason::PeerIdTaken,
            FAILURE_UNKNOWN_OFFER => ErrorReason::UnknownOffer,
            FAILURE_BINARY => ErrorReason::BinaryMessage,
            FAILURE_RATE_LIMITED => ErrorReason::RateLimited,
            FAILURE_ADDRESS_REFUSED => ErrorReason::AddressRefused,
            _ => ErrorReason::InvalidMessage,
        }
    }
}

aquatic_common::labelled! {
    /// Why a connection was closed: the `reason` label of
    /// `aquatic_ws_closed_connections_total`.
    pub enum CloseReason {
        /// The client closed it (WebSocket close, end of stream, reset).
        Client => "client",
        /// No message or pong within `connection_idle_timeout`.
        IdleTimeout => "idle_timeout",
        /// Not a WebSocket upgrade, an invalid frame, invalid UTF-8, a TLS error.
        ProtocolError => "protocol_error",
        /// A frame, message or request head over its limit.
        OverLimit => "over_limit",
        /// The client does not read: `max_write_buffer_size` reached.
        WriteBufferFull => "write_buffer_full",
        /// A plain HTTP request answered (`GET /health`).
        HttpAnswered => "http_answered",
    }
}

aquatic_common::labelled! {
    /// Messages not delivered: the `reason` label of
    /// `aquatic_ws_dropped_messages_total`.
    pub enum DropReason {
        /// For a connection that closed meanwhile.
        ConnectionGone => "connection_gone",
        /// An answer, or a closed connection's notice, on a full request queue.
        Overloaded => "overloaded",
    }
}

/// Counters kept by one socket worker; read by the statistics worker.
/// (On a cache line of its own: no false sharing with other workers.)
pub type SocketWorkerStats = CachePadded<Counters>;

#[derive(Default)]
pub struct Counters {
    /// Connections, bytes and clients, as both TCP daemons count them.
    pub tcp: aquatic_common::tcp_counters::TcpCounters,
    pub closed_by_reason: [AtomicU64; CloseReason::ALL.len()],
    pub requests_announce: AtomicU64,
    pub requests_answer: AtomicU64,
    pub requests_scrape: AtomicU64,
    pub responses_announce: AtomicU64,
    pub responses_scrape: AtomicU64,
    /// Offers and answers written to their recipients.
    pub offers_relayed: AtomicU64,
    pub answers_relayed: AtomicU64,
    pub responses_error: AtomicU64,
    pub responses_error_by_reason: [AtomicU64; ErrorReason::ALL.len()],
    pub dropped_by_reason: [AtomicU64; DropReason::ALL.len()],
    pub health_checks: AtomicU64,
}

impl Counters {
    pub fn count_error(&self, reason: ErrorReason) {
        add(&self.responses_error, 1);
        add_at(&self.responses_error_by_reason, reason as usize, 1);
    }

    pub fn count_close(&self, reason: CloseReason) {
        add_at(&self.closed_by_reason, reason as usize, 1);
    }

    pub fn count_drop(&self, reason: DropReason, n: u64) {
        add_at(&self.dropped_by_reason, reason as usize, n);
    }
}

/// Kept by one request worker besides its swarm gauges.
#[derive(Default)]
pub struct ShardStats {
    /// Offers not relayed: the pending-offer map was full.
    pub offers_not_relayed: AtomicU64,
    /// Offers not relayed: the offerer's source held its share of it.
    pub offers_not_relayed_source: AtomicU64,
    /// Offers not relayed: another connection's offer was pending under
    /// the same key (info hash, offer id, answerer).
    pub offers_not_relayed_taken: AtomicU64,
    /// Answers to offers no longer pending (answered already, expired,
    /// their offerer's connection closed): dropped.
    pub answers_not_relayed: AtomicU64,
    /// Offers relayed and not yet answered or expired.
    pub pending_offers: AtomicUsize,
}

pub use aquatic_common::statistics::add;

fn add_at(counters: &[AtomicU64], index: usize, n: u64) {
    if let Some(counter) = counters.get(index) {
        add(counter, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_indexed_by_discriminant_and_labelled_once() {
        fn check<T: Copy>(
            all: &[T],
            index: impl Fn(T) -> usize,
            label: impl Fn(T) -> &'static str,
        ) {
            let mut labels = Vec::new();
            for (i, r) in all.iter().enumerate() {
                assert_eq!(index(*r), i);
                labels.push(label(*r));
            }
            labels.sort();
            labels.dedup();
            assert_eq!(labels.len(), all.len());
        }
        check(&ErrorReason::ALL, |r| r as usize, ErrorReason::label);
        check(&CloseReason::ALL, |r| r as usize, CloseReason::label);
        check(&DropReason::ALL, |r| r as usize, DropReason::label);
        assert_eq!(
            ErrorReason::of_failure(FAILURE_TOO_MANY_SCRAPES),
            ErrorReason::OverLimit
        );
        assert_eq!(
            ErrorReason::of_failure("info_hash must be ..."),
            ErrorReason::InvalidMessage
        );
    }
}
