//! Property tests: every request and response survives write -> parse, and
//! parsing arbitrary bytes never panics (and is stable under re-writing).

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use aquatic_udp_protocol::{
    ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, ACTION_SCRAPE, AnnounceEvent, AnnounceRequest,
    AnnounceResponse, ConnectRequest, ConnectResponse, ConnectionId, ErrorResponse, InfoHash,
    PROTOCOL_IDENTIFIER, PeerId, Request, Response, ResponsePeer, ScrapeRequest, ScrapeResponse,
    TorrentScrapeStatistics, TransactionId,
};
use common::{written_request, written_response};
use proptest::collection::vec;
use proptest::prelude::*;

fn arb_transaction_id() -> impl Strategy<Value = TransactionId> {
    any::<i32>().prop_map(TransactionId)
}

fn arb_connection_id() -> impl Strategy<Value = ConnectionId> {
    any::<i64>().prop_map(ConnectionId)
}

fn arb_info_hash() -> impl Strategy<Value = InfoHash> {
    any::<[u8; 20]>().prop_map(InfoHash)
}

fn arb_event() -> impl Strategy<Value = AnnounceEvent> {
    prop_oneof![
        Just(AnnounceEvent::None),
        Just(AnnounceEvent::Completed),
        Just(AnnounceEvent::Started),
        Just(AnnounceEvent::Stopped),
    ]
}

fn arb_ip() -> impl Strategy<Value = Option<Ipv4Addr>> {
    // 0 on the wire means "none": Some(0.0.0.0) cannot round-trip.
    prop_oneof![
        Just(None),
        (1..=u32::MAX).prop_map(|ip| Some(Ipv4Addr::from(ip)))
    ]
}

prop_compose! {
    fn arb_announce_request()(
        connection_id in arb_connection_id(),
        transaction_id in arb_transaction_id(),
        info_hash in arb_info_hash(),
        peer_id in any::<[u8; 20]>().prop_map(PeerId),
        bytes_downloaded in any::<i64>(),
        bytes_left in any::<i64>(),
        bytes_uploaded in any::<i64>(),
        event in arb_event(),
        ip_address in arb_ip(),
        key in any::<u32>(),
        peers_wanted in any::<i32>(),
        port in any::<u16>(),
        url_data in vec(any::<u8>(), 0..=600),
    ) -> AnnounceRequest {
        AnnounceRequest {
            connection_id,
            transaction_id,
            info_hash,
            peer_id,
            bytes_downloaded,
            bytes_left,
            bytes_uploaded,
            event,
            ip_address,
            key,
            peers_wanted,
            port,
            url_data,
        }
    }
}

/// A request and a `max_scrape_hashes` at least its number of hashes.
fn arb_request() -> impl Strategy<Value = (Request, usize)> {
    let connect = arb_transaction_id()
        .prop_map(|transaction_id| Request::Connect(ConnectRequest { transaction_id }));
    let announce = arb_announce_request().prop_map(Request::Announce);
    let scrape = (
        arb_connection_id(),
        arb_transaction_id(),
        vec(arb_info_hash(), 1..=100),
    )
        .prop_map(|(connection_id, transaction_id, info_hashes)| {
            Request::Scrape(ScrapeRequest {
                connection_id,
                transaction_id,
                info_hashes,
            })
        });
    let request = prop_oneof![connect, announce, scrape];
    (
        request,
        prop_oneof![Just(0usize), 0usize..200, Just(usize::MAX - 100)],
    )
        .prop_map(|(request, extra)| {
            let count = match &request {
                Request::Scrape(s) => s.info_hashes.len(),
                _ => 0,
            };
            (request, count.saturating_add(extra))
        })
}

fn arb_announce_response<I: std::fmt::Debug>(
    ip: impl Strategy<Value = I>,
) -> impl Strategy<Value = AnnounceResponse<I>> {
    (
        arb_transaction_id(),
        any::<i32>(),
        any::<i32>(),
        any::<i32>(),
        vec(
            (ip, any::<u16>()).prop_map(|(ip_address, port)| ResponsePeer { ip_address, port }),
            0..300,
        ),
    )
        .prop_map(
            |(transaction_id, announce_interval, leechers, seeders, peers)| AnnounceResponse {
                transaction_id,
                announce_interval,
                leechers,
                seeders,
                peers,
            },
        )
}

fn arb_response() -> impl Strategy<Value = Response> {
    let connect =
        (arb_transaction_id(), arb_connection_id()).prop_map(|(transaction_id, connection_id)| {
            Response::Connect(ConnectResponse {
                transaction_id,
                connection_id,
            })
        });
    let announce_v4 = arb_announce_response(any::<u32>().prop_map(Ipv4Addr::from))
        .prop_map(Response::AnnounceIpv4);
    let announce_v6 = arb_announce_response(any::<u128>().prop_map(Ipv6Addr::from))
        .prop_map(Response::AnnounceIpv6);
    let scrape = (
        arb_transaction_id(),
        vec(
            (any::<i32>(), any::<i32>(), any::<i32>()).prop_map(
                |(seeders, completed, leechers)| TorrentScrapeStatistics {
                    seeders,
                    completed,
                    leechers,
                },
            ),
            0..200,
        ),
    )
        .prop_map(|(transaction_id, torrent_stats)| {
            Response::Scrape(ScrapeResponse {
                transaction_id,
                torrent_stats,
            })
        });
    let error = (arb_transaction_id(), any::<String>()).prop_map(|(transaction_id, message)| {
        Response::Error(ErrorResponse {
            transaction_id,
            message: Cow::Owned(message),
        })
    });
    prop_oneof![connect, announce_v4, announce_v6, scrape, error]
}

/// Arbitrary bytes, or a plausible header followed by arbitrary bytes so
/// that the per-action paths are reached often.
fn arb_request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header = (
        prop_oneof![Just(PROTOCOL_IDENTIFIER), any::<i64>()],
        prop_oneof![
            Just(ACTION_CONNECT),
            Just(ACTION_ANNOUNCE),
            Just(ACTION_SCRAPE),
            any::<i32>()
        ],
        any::<i32>(),
        vec(any::<u8>(), 0..2000 - 16),
    )
        .prop_map(|(connection_id, action, transaction_id, tail)| {
            let mut bytes = Vec::with_capacity(16 + tail.len());
            bytes.extend_from_slice(&connection_id.to_be_bytes());
            bytes.extend_from_slice(&action.to_be_bytes());
            bytes.extend_from_slice(&transaction_id.to_be_bytes());
            bytes.extend_from_slice(&tail);
            bytes
        });
    prop_oneof![vec(any::<u8>(), 0..2000), header]
}

fn arb_response_bytes() -> impl Strategy<Value = Vec<u8>> {
    let header = (
        prop_oneof![
            Just(ACTION_CONNECT),
            Just(ACTION_ANNOUNCE),
            Just(ACTION_SCRAPE),
            Just(ACTION_ERROR),
            any::<i32>()
        ],
        vec(any::<u8>(), 0..2000 - 4),
    )
        .prop_map(|(action, tail)| {
            let mut bytes = action.to_be_bytes().to_vec();
            bytes.extend_from_slice(&tail);
            bytes
        });
    prop_oneof![vec(any::<u8>(), 0..2000), header]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn request_round_trip((request, max_scrape_hashes) in arb_request()) {
        let bytes = written_request(&request);
        prop_assert_eq!(Request::parse(&bytes, max_scrape_hashes), Ok(request));
    }

    #[test]
    fn announce_request_length((announce, trailing) in (arb_announce_request(), vec(any::<u8>(), 0..10))) {
        // 98 bytes, then (2 + chunk) per 255-byte chunk of URL data and an
        // end option; nothing at all without URL data.
        let url_len = announce.url_data.len();
        let mut bytes = written_request(&Request::Announce(announce.clone()));
        let expected_len = if url_len == 0 {
            98
        } else {
            98 + url_len + 2 * url_len.div_ceil(255) + 1
        };
        prop_assert_eq!(bytes.len(), expected_len);
        // Anything after the end option is ignored.
        if url_len > 0 {
            bytes.extend_from_slice(&trailing);
            prop_assert_eq!(Request::parse(&bytes, 1), Ok(Request::Announce(announce)));
        }
    }

    #[test]
    fn scrape_request_truncated_to_max(
        hashes in vec(arb_info_hash(), 1..=100),
        max in 1usize..=100,
        trailing in vec(any::<u8>(), 0..20),
    ) {
        let request = Request::Scrape(ScrapeRequest {
            connection_id: ConnectionId(5),
            transaction_id: TransactionId(6),
            info_hashes: hashes.clone(),
        });
        let mut bytes = written_request(&request);
        bytes.extend_from_slice(&trailing);
        let kept = hashes.len().min(max);
        prop_assert_eq!(
            Request::parse(&bytes, max),
            Ok(Request::Scrape(ScrapeRequest {
                connection_id: ConnectionId(5),
                transaction_id: TransactionId(6),
                info_hashes: hashes[..kept].to_vec(),
            }))
        );
    }

    #[test]
    fn response_round_trip(response in arb_response()) {
        let bytes = written_response(&response);
        let ipv6 = matches!(response, Response::AnnounceIpv6(_));
        prop_assert_eq!(Response::parse(&bytes, ipv6), Ok(response.clone()));
        // Only the announce peers depend on the address family.
        if !matches!(response, Response::AnnounceIpv4(_) | Response::AnnounceIpv6(_)) {
            prop_assert_eq!(Response::parse(&bytes, !ipv6), Ok(response));
        }
    }

    #[test]
    fn request_parse_never_panics(bytes in vec(any::<u8>(), 0..2000), max in 0usize..200) {
        let _ = Request::parse(&bytes, max);
        let _ = Request::parse(&bytes, usize::MAX);
    }

    #[test]
    fn response_parse_never_panics(bytes in vec(any::<u8>(), 0..2000)) {
        let _ = Response::parse(&bytes, false);
        let _ = Response::parse(&bytes, true);
    }

    /// What the fuzz target checks: a parsed request, re-written, parses
    /// to itself.
    #[test]
    fn parsed_request_is_stable(bytes in arb_request_bytes(), max in 0usize..200) {
        if let Ok(request) = Request::parse(&bytes, max) {
            let rewritten = written_request(&request);
            prop_assert!(rewritten.len() <= bytes.len() + 1);
            prop_assert_eq!(Request::parse(&rewritten, max), Ok(request));
        }
    }

    /// What the fuzz target checks for responses.
    #[test]
    fn parsed_response_is_stable(bytes in arb_response_bytes(), ipv6 in any::<bool>()) {
        if let Ok(response) = Response::parse(&bytes, ipv6) {
            let rewritten = written_response(&response);
            if !matches!(response, Response::Error(_)) {
                // Only whole entries are kept, so the rewrite is a prefix.
                prop_assert!(bytes.starts_with(&rewritten));
            }
            prop_assert_eq!(Response::parse(&rewritten, ipv6), Ok(response));
        }
    }
}
