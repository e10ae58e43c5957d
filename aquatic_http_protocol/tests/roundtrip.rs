//! Property tests: every request survives write -> parse; every response
//! written decodes, with an independent bencode implementation
//! (serde_bencode), to the fields it was written from, in canonical form;
//! and parsing arbitrary bytes never panics (and is stable under
//! re-writing).

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aquatic_http_protocol::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, InfoHash, MAX_KEY_LEN, ParseOptions,
    ParsedRequest, PeerFormat, PeerId, Request, RequestParseError, ResponsePeer, ScrapeRequest,
    ScrapeResponse, ScrapeStatistics, parse_request, write_failure,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::Deserialize;
use serde_bencode::value::Value;

fn arb_info_hash() -> impl Strategy<Value = InfoHash> {
    // Often from a small pool, so that scrapes repeat hashes.
    prop_oneof![
        any::<[u8; 20]>().prop_map(InfoHash),
        (0u8..4).prop_map(|n| InfoHash([n; 20])),
    ]
}

fn arb_event() -> impl Strategy<Value = AnnounceEvent> {
    prop_oneof![
        Just(AnnounceEvent::None),
        Just(AnnounceEvent::Started),
        Just(AnnounceEvent::Stopped),
        Just(AnnounceEvent::Completed),
    ]
}

/// Any text, cut to at most `MAX_KEY_LEN` bytes at a character boundary.
fn arb_key() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<String>().prop_map(|mut key| {
        while key.len() > MAX_KEY_LEN {
            key.pop();
        }
        key
    }))
}

fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), Just(0), Just(u64::MAX), Just(i64::MAX as u64)]
}

prop_compose! {
    fn arb_announce_request()(
        info_hash in arb_info_hash(),
        peer_id in any::<[u8; 20]>().prop_map(PeerId),
        port in 1..=u16::MAX,
        bytes_uploaded in arb_u64(),
        bytes_downloaded in arb_u64(),
        bytes_left in arb_u64(),
        event in arb_event(),
        numwant in proptest::option::of(any::<usize>()),
        compact in any::<bool>(),
        no_peer_id in any::<bool>(),
        key in arb_key(),
    ) -> AnnounceRequest {
        AnnounceRequest {
            info_hash,
            peer_id,
            port,
            bytes_uploaded,
            bytes_downloaded,
            bytes_left,
            event,
            numwant,
            compact,
            no_peer_id,
            key,
        }
    }
}

fn arb_path_prefix() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just("/3f9c0a71d2e84b56"), Just("/a/b")]
}

fn options(max_scrape_torrents: usize) -> ParseOptions<'static> {
    ParseOptions {
        max_scrape_torrents,
        reverse_proxy_header: Some("X-Forwarded-For"),
        allowed_hosts: &[],
    }
}

fn written_request(request: &Request, path_prefix: &str) -> Vec<u8> {
    let mut out = Vec::new();
    request.write(&mut out, path_prefix, "tracker.example.org:6969");
    out
}

/// Counts as bencode can carry them (serde_bencode reads i64).
fn arb_count() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..1000, 0..=(i64::MAX as usize)]
}

fn arb_ipv4_peer() -> impl Strategy<Value = ResponsePeer<Ipv4Addr>> {
    (any::<u32>(), any::<u16>(), any::<[u8; 20]>()).prop_map(|(ip, port, peer_id)| ResponsePeer {
        ip_address: Ipv4Addr::from(ip),
        port,
        peer_id: PeerId(peer_id),
    })
}

fn arb_ipv6_peer() -> impl Strategy<Value = ResponsePeer<Ipv6Addr>> {
    (any::<u128>(), any::<u16>(), any::<[u8; 20]>()).prop_map(|(ip, port, peer_id)| ResponsePeer {
        ip_address: Ipv6Addr::from(ip),
        port,
        peer_id: PeerId(peer_id),
    })
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|ip| IpAddr::V4(Ipv4Addr::from(ip))),
        any::<u128>().prop_map(|ip| IpAddr::V6(Ipv6Addr::from(ip))),
    ]
}

prop_compose! {
    fn arb_announce_response()(
        interval in any::<u32>(),
        min_interval in any::<u32>(),
        complete in arb_count(),
        incomplete in arb_count(),
        peers in vec(arb_ipv4_peer(), 0..20),
        peers6 in vec(arb_ipv6_peer(), 0..20),
        external_ip in proptest::option::of(arb_ip()),
        warning_message in proptest::option::of(any::<String>()),
    ) -> AnnounceResponse {
        AnnounceResponse {
            interval,
            min_interval,
            complete,
            incomplete,
            peers,
            peers6,
            external_ip,
            warning_message,
        }
    }
}

fn arb_scrape_statistics() -> impl Strategy<Value = ScrapeStatistics> {
    (arb_count(), arb_count(), arb_count()).prop_map(|(complete, downloaded, incomplete)| {
        ScrapeStatistics {
            complete,
            downloaded,
            incomplete,
        }
    })
}

/// Decode with serde_bencode, and check the bytes are canonical bencode
/// (sorted, unique keys; serde_bencode sorts when it encodes).
fn decode_canonical(bytes: &[u8]) -> Result<Value, TestCaseError> {
    let value: Value = serde_bencode::from_bytes(bytes)
        .map_err(|e| TestCaseError::fail(format!("not bencode: {e}")))?;
    let reencoded = serde_bencode::to_bytes(&value)
        .map_err(|e| TestCaseError::fail(format!("does not re-encode: {e}")))?;
    prop_assert_eq!(
        reencoded.escape_ascii().to_string(),
        bytes.escape_ascii().to_string()
    );
    Ok(value)
}

fn dict(value: &Value) -> Result<&HashMap<Vec<u8>, Value>, TestCaseError> {
    match value {
        Value::Dict(dict) => Ok(dict),
        other => Err(TestCaseError::fail(format!("not a dict: {other:?}"))),
    }
}

fn get<'a>(dict: &'a HashMap<Vec<u8>, Value>, key: &str) -> Option<&'a Value> {
    dict.get(key.as_bytes())
}

fn int(n: impl TryInto<i64>) -> Option<Value> {
    n.try_into().ok().map(Value::Int)
}

fn bytes(b: &[u8]) -> Option<Value> {
    Some(Value::Bytes(b.to_vec()))
}

fn compact_records<I>(peers: &[ResponsePeer<I>], octets: impl Fn(&I) -> Vec<u8>) -> Vec<u8> {
    peers
        .iter()
        .flat_map(|peer| {
            let mut record = octets(&peer.ip_address);
            record.extend_from_slice(&peer.port.to_be_bytes());
            record
        })
        .collect()
}

/// The dictionary form, decoded by serde into types of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DictionaryBody {
    complete: i64,
    incomplete: i64,
    interval: u32,
    #[serde(rename = "min interval")]
    min_interval: u32,
    peers: Vec<DictionaryPeer>,
    #[serde(rename = "external ip")]
    external_ip: Option<Value>,
    #[serde(rename = "warning message")]
    warning_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DictionaryPeer {
    ip: String,
    #[serde(rename = "peer id")]
    peer_id: Option<Value>,
    port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureBody {
    #[serde(rename = "failure reason")]
    failure_reason: String,
}

/// Arbitrary bytes, or request-like heads assembled from pieces real
/// requests are made of, so that the query parser is reached often.
fn arb_request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("info_hash"),
        Just("peer_id"),
        Just("port"),
        Just("uploaded"),
        Just("downloaded"),
        Just("left"),
        Just("event"),
        Just("numwant"),
        Just("compact"),
        Just("no_peer_id"),
        Just("key"),
        Just("x"),
    ];
    let value = prop_oneof![
        any::<[u8; 20]>().prop_map(|id| id.iter().map(|b| format!("%{b:02x}")).collect()),
        "[ -~&&[^ #&]]{0,24}".prop_map(String::from),
        "[0-9+%-]{0,22}".prop_map(String::from),
        Just("started".to_string()),
        Just("-1".to_string()),
    ];
    // Often a valid announce to start from, which later pairs may spoil.
    let base = prop_oneof![
            1 => Just(String::new()),
            3 =>
    (any::<[u8; 20]>(), any::<[u8; 20]>(), any::<u16>()).prop_map(|(hash, id, port)| {
                let escape = |bytes: &[u8]| bytes.iter().map(|b| format!("%{b:02X}")).collect::<String>();
                format!("info_hash={}&peer_id={}&port={port}", escape(&hash), escape(&id))
            }),
        ];
    let query = (base, vec((key, value), 0..8)).prop_map(|(base, pairs)| {
        std::iter::once(base)
            .chain(pairs.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join("&")
    });
    let header = prop_oneof![
        Just("Host: t\r\n"),
        Just("Connection: close\r\n"),
        Just("Connection: keep-alive\r\n"),
        Just("X-Forwarded-For: 10.0.0.1, 2001:db8::1\r\n"),
        Just("X-Forwarded-For: garbage\r\n"),
        Just("Content-Length: 0\r\n"),
    ];
    let head = (
        prop_oneof![9 => Just("GET"), 1 => Just("POST")],
        prop_oneof![
            Just("/announce"),
            Just("/pk/announce"),
            Just("/scrape"),
            Just("/x")
        ],
        query,
        prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0")],
        vec(header, 0..4),
        vec(any::<u8>(), 0..40),
        0usize..400,
    )
        .prop_map(|(method, path, query, version, headers, tail, cut)| {
            let mut bytes = format!(
                "{method} {path}?{query} {version}\r\n{}\r\n",
                headers.concat()
            )
            .into_bytes();
            bytes.extend_from_slice(&tail);
            // Sometimes a truncated head.
            if cut < bytes.len() && cut % 3 == 0 {
                bytes.truncate(cut);
            }
            bytes
        });
    prop_oneof![1 => vec(any::<u8>(), 0..2000), 3 => head]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn announce_request_round_trip(
        announce in arb_announce_request(),
        prefix in arb_path_prefix(),
        tail in vec(any::<u8>(), 0..20),
    ) {
        let request = Request::Announce(announce);
        let mut bytes = written_request(&request, prefix);
        let len = bytes.len();
        // A pipelined next request must not change anything.
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(
            parse_request(&bytes, &options(100)),
            Ok(ParsedRequest {
                request,
                consumed: len,
                keep_alive: true,
                keep_alive_asked: false,
                forwarded_ip: None,
            })
        );
    }

    #[test]
    fn scrape_request_round_trip(
        info_hashes in vec(arb_info_hash(), 0..60),
        max in 1usize..80,
        prefix in arb_path_prefix(),
    ) {
        let bytes = written_request(
            &Request::Scrape(ScrapeRequest { info_hashes: info_hashes.clone() }),
            prefix,
        );
        // What the format carries: the first `max`, sorted, deduplicated.
        let mut expected: Vec<InfoHash> = info_hashes.iter().copied().take(max).collect();
        expected.sort();
        expected.dedup();
        let parsed = parse_request(&bytes, &options(max));
        if expected.is_empty() {
            prop_assert_eq!(
                parsed,
                Err(RequestParseError::Invalid {
                    reason: "scrape without info_hash".into(),
                    consumed: bytes.len(),
                    keep_alive: true,
                    keep_alive_asked: false,
                })
            );
        } else {
            prop_assert_eq!(
                parsed.map(|parsed| parsed.request),
                Ok(Request::Scrape(ScrapeRequest { info_hashes: expected }))
            );
        }
    }

    #[test]
    fn key_longer_than_max_is_invalid(
        mut announce in arb_announce_request(),
        key in (any::<String>(), 0usize..40).prop_map(|(mut key, extra)| {
            while key.len() <= MAX_KEY_LEN + extra {
                key.push('\u{e9}');
            }
            key
        }),
    ) {
        announce.key = Some(key);
        let bytes = written_request(&Request::Announce(announce), "");
        let is_key_too_long = matches!(
            parse_request(&bytes, &options(1)),
            Err(RequestParseError::Invalid { reason, .. }) if reason == "key must be at most 100 bytes"
        );
        prop_assert!(is_key_too_long);
    }

    #[test]
    fn compact_announce_response_decodes(response in arb_announce_response()) {
        let mut out = Vec::new();
        response.write(&mut out, PeerFormat::Compact);
        let value = decode_canonical(&out)?;
        let dict = dict(&value)?;
        prop_assert_eq!(get(dict, "complete").cloned(), int(response.complete));
        prop_assert_eq!(get(dict, "incomplete").cloned(), int(response.incomplete));
        prop_assert_eq!(get(dict, "interval").cloned(), int(response.interval));
        prop_assert_eq!(get(dict, "min interval").cloned(), int(response.min_interval));
        prop_assert_eq!(
            get(dict, "peers").cloned(),
            bytes(&compact_records(&response.peers, |ip| ip.octets().to_vec()))
        );
        let peers6 = compact_records(&response.peers6, |ip| ip.octets().to_vec());
        prop_assert_eq!(
            get(dict, "peers6").cloned(),
            if peers6.is_empty() { None } else { bytes(&peers6) }
        );
        let external_ip = response.external_ip.map(|ip| match ip {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        });
        prop_assert_eq!(get(dict, "external ip").cloned(), external_ip.map(Value::Bytes));
        prop_assert_eq!(
            get(dict, "warning message").cloned(),
            response.warning_message.as_ref().map(|m| Value::Bytes(m.as_bytes().to_vec()))
        );
        let expected_keys = 5
            + usize::from(!peers6.is_empty())
            + usize::from(response.external_ip.is_some())
            + usize::from(response.warning_message.is_some());
        prop_assert_eq!(dict.len(), expected_keys);
    }

    #[test]
    fn dictionary_announce_response_decodes(
        response in arb_announce_response(),
        include_peer_id in any::<bool>(),
    ) {
        let mut out = Vec::new();
        response.write(&mut out, PeerFormat::Dictionary { include_peer_id });
        decode_canonical(&out)?;
        let body: DictionaryBody = serde_bencode::from_bytes(&out)
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(Some(body.complete), i64::try_from(response.complete).ok());
        prop_assert_eq!(Some(body.incomplete), i64::try_from(response.incomplete).ok());
        prop_assert_eq!(body.interval, response.interval);
        prop_assert_eq!(body.min_interval, response.min_interval);
        prop_assert_eq!(body.warning_message, response.warning_message.clone());
        prop_assert_eq!(body.external_ip.is_some(), response.external_ip.is_some());
        let expected: Vec<(IpAddr, u16, PeerId)> = response
            .peers
            .iter()
            .map(|p| (IpAddr::V4(p.ip_address), p.port, p.peer_id))
            .chain(response.peers6.iter().map(|p| (IpAddr::V6(p.ip_address), p.port, p.peer_id)))
            .collect();
        prop_assert_eq!(body.peers.len(), expected.len());
        for (peer, (ip, port, peer_id)) in body.peers.iter().zip(expected) {
            prop_assert_eq!(peer.ip.parse::<IpAddr>().ok(), Some(ip));
            prop_assert_eq!(peer.port, port);
            let expected_id = include_peer_id.then(|| Value::Bytes(peer_id.0.to_vec()));
            prop_assert_eq!(peer.peer_id.clone(), expected_id);
        }
    }

    #[test]
    fn scrape_response_decodes(
        files in vec((arb_info_hash(), arb_scrape_statistics()), 0..30),
    ) {
        let mut out = Vec::new();
        ScrapeResponse { files: files.clone() }.write(&mut out);
        let value = decode_canonical(&out)?;
        let top = dict(&value)?;
        prop_assert_eq!(top.len(), 1);
        let decoded = dict(get(top, "files").unwrap_or(&Value::Int(0)))?;
        // Of a repeated hash, the first entry is written.
        let mut expected: HashMap<Vec<u8>, ScrapeStatistics> = HashMap::new();
        for (info_hash, statistics) in &files {
            expected.entry(info_hash.0.to_vec()).or_insert(*statistics);
        }
        prop_assert_eq!(decoded.len(), expected.len());
        for (info_hash, statistics) in expected {
            let file = dict(decoded.get(&info_hash).unwrap_or(&Value::Int(0)))?;
            prop_assert_eq!(file.len(), 3);
            prop_assert_eq!(get(file, "complete").cloned(), int(statistics.complete));
            prop_assert_eq!(get(file, "downloaded").cloned(), int(statistics.downloaded));
            prop_assert_eq!(get(file, "incomplete").cloned(), int(statistics.incomplete));
        }
    }

    #[test]
    fn failure_decodes(reason in any::<String>()) {
        let mut out = Vec::new();
        write_failure(&mut out, &reason);
        decode_canonical(&out)?;
        let body: FailureBody = serde_bencode::from_bytes(&out)
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(body.failure_reason, reason);
    }

    #[test]
    fn parse_never_panics(bytes in vec(any::<u8>(), 0..2000), max in 0usize..200) {
        let _ = parse_request(&bytes, &options(max));
        let _ = parse_request(&bytes, &ParseOptions { max_scrape_torrents: usize::MAX, reverse_proxy_header: None, allowed_hosts: &[] });
    }

    /// What the fuzz target checks: a parsed request, re-written, parses to
    /// itself, and never claims more bytes than it was given.
    #[test]
    fn parsed_request_is_stable(bytes in arb_request_bytes(), max in 1usize..50) {
        match parse_request(&bytes, &options(max)) {
            Ok(parsed) => {
                prop_assert!(parsed.consumed <= bytes.len());
                let rewritten = written_request(&parsed.request, "");
                let reparsed = parse_request(&rewritten, &options(max)).map(|p| p.request);
                prop_assert_eq!(reparsed, Ok(parsed.request));
            }
            Err(
                RequestParseError::NotFound { consumed, .. }
                | RequestParseError::WrongHost { consumed, .. }
                | RequestParseError::Invalid { consumed, .. },
            ) => prop_assert!(consumed <= bytes.len()),
            Err(RequestParseError::NeedMoreData | RequestParseError::BadRequest) => {}
        }
    }
}
