//! Byte-exact known packets, written by hand from BEP 15 / BEP 41 (never
//! produced by our own writer). Every vector is parsed and compared to the
//! expected struct and, where writing is defined, the struct is written and
//! compared to the bytes.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use aquatic_udp_protocol::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, ConnectRequest, ConnectResponse,
    ConnectionId, ErrorResponse, InfoHash, PeerId, Request, RequestParseError, Response,
    ResponsePeer, ScrapeRequest, ScrapeResponse, TorrentScrapeStatistics, TransactionId,
};
use common::{written_request, written_response};

/// Hex digits to bytes; whitespace and `_` are ignored so packets can be
/// laid out one field per group.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'_')
        .collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
    digits
        .chunks_exact(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).unwrap();
            u8::from_str_radix(text, 16).unwrap()
        })
        .collect()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Parse `bytes` to `expected`, and write `expected` back to `bytes`.
fn assert_request_vector(bytes: &[u8], expected: &Request) {
    assert_eq!(Request::parse(bytes, 100).as_ref(), Ok(expected));
    assert_eq!(hexdump(&written_request(expected)), hexdump(bytes));
}

fn assert_response_vector(bytes: &[u8], ipv6: bool, expected: &Response) {
    assert_eq!(Response::parse(bytes, ipv6).as_ref(), Ok(expected));
    assert_eq!(hexdump(&written_response(expected)), hexdump(bytes));
}

/// `packet(annotated)`, checked to be `len` bytes long, as a response
/// vector; returns the bytes.
fn assert_response_packet(annotated: &str, len: usize, ipv6: bool, expected: &Response) -> Vec<u8> {
    let bytes = packet(annotated);
    assert_eq!(bytes.len(), len);
    assert_response_vector(&bytes, ipv6, expected);
    bytes
}

/// The header fields and message of the `Sendable` error `bytes` must
/// parse to (anything else fails the test).
fn sendable_error(
    bytes: &[u8],
    max_scrape_hashes: usize,
) -> (ConnectionId, TransactionId, &'static str) {
    match Request::parse(bytes, max_scrape_hashes) {
        Err(RequestParseError::Sendable {
            connection_id,
            transaction_id,
            message,
        }) => (connection_id, transaction_id, message),
        other => panic!("{}: not a sendable error: {other:?}", hexdump(bytes)),
    }
}

/// Hex text, so that a mismatch shows which byte differs.
fn hexdump(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Connect

const CONNECT_REQUEST: &str = "
    00000417_27101980 # protocol_id 0x41727101980
    00000000          # action connect
    fedcba98          # transaction_id (negative as i32)
";

/// `hex` with `# comments` stripped.
fn packet(annotated: &str) -> Vec<u8> {
    let stripped: String = annotated
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    hex(&stripped)
}

#[test]
fn connect_request() {
    let bytes = packet(CONNECT_REQUEST);
    assert_eq!(bytes.len(), 16);
    assert_request_vector(
        &bytes,
        &Request::Connect(ConnectRequest {
            transaction_id: TransactionId(0xfedc_ba98_u32 as i32),
        }),
    );
}

#[test]
fn connect_request_with_trailing_bytes_is_accepted() {
    let bytes = cat(&[&packet(CONNECT_REQUEST), &hex("00 01 02 03 ff")]);
    assert_eq!(
        Request::parse(&bytes, 100),
        Ok(Request::Connect(ConnectRequest {
            transaction_id: TransactionId(0xfedc_ba98_u32 as i32),
        }))
    );
}

#[test]
fn connect_request_with_wrong_protocol_id_is_unsendable() {
    for protocol_id in [
        "00000417_27101981",
        "00000000_00000000",
        "80271017_04000000",
        "ffffffff_ffffffff",
    ] {
        let bytes = hex(&format!("{protocol_id} 00000000 00000001"));
        assert!(
            matches!(
                Request::parse(&bytes, 100),
                Err(RequestParseError::Unsendable { .. })
            ),
            "{protocol_id}"
        );
    }
}

#[test]
fn connect_response() {
    let bytes = assert_response_packet(
        "
        00000000          # action connect
        fedcba98          # transaction_id
        01020304_05060708 # connection_id
        ",
        16,
        false,
        &Response::Connect(ConnectResponse {
            transaction_id: TransactionId(0xfedc_ba98_u32 as i32),
            connection_id: ConnectionId(0x0102_0304_0506_0708),
        }),
    );
    // The address family does not matter for a connect response.
    assert_eq!(
        Response::parse(&bytes, true),
        Response::parse(&bytes, false)
    );
}

#[test]
fn connect_response_negative_connection_id() {
    let bytes = hex("00000000 00000001 ffffffff_fffffffe");
    assert_response_vector(
        &bytes,
        false,
        &Response::Connect(ConnectResponse {
            transaction_id: TransactionId(1),
            connection_id: ConnectionId(-2),
        }),
    );
}

#[test]
fn short_connect_response_is_an_error() {
    for len in 8..16 {
        let bytes = &hex("00000000 00000001 01020304_05060708")[..len];
        assert!(Response::parse(bytes, false).is_err(), "{len} bytes");
    }
}

// ---------------------------------------------------------------------------
// Announce request

/// The 98 fixed bytes of an announce request; `event` and `ip` are 8 hex
/// digits each.
fn announce_bytes(event: &str, ip: &str) -> Vec<u8> {
    packet(&format!(
        "
        11223344_55667788 # connection_id
        00000001          # action announce
        0000002a          # transaction_id 42
        0102030405060708090a0b0c0d0e0f1011121314 # info_hash
        2d7142353031302d 6162636465666768696a6b6c # peer_id -qB5010-abcdefghijkl
        00000000_00001000 # downloaded 4096
        7fffffff_ffffffff # left i64::MAX (magnet, Transmission)
        00000001_00000000 # uploaded 2^32
        {event}           # event
        {ip}              # ip
        cafebabe          # key
        ffffffff          # num_want -1
        1ae1              # port 6881
        "
    ))
}

/// `announce_bytes("00000002", "00000000")` as a struct.
fn expected_announce() -> AnnounceRequest {
    AnnounceRequest {
        connection_id: ConnectionId(0x1122_3344_5566_7788),
        transaction_id: TransactionId(42),
        info_hash: InfoHash([
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        ]),
        peer_id: PeerId(*b"-qB5010-abcdefghijkl"),
        bytes_downloaded: 4096,
        bytes_left: i64::MAX,
        bytes_uploaded: 1 << 32,
        event: AnnounceEvent::Started,
        ip_address: None,
        key: 0xcafe_babe,
        peers_wanted: -1,
        port: 6881,
        url_data: Vec::new(),
    }
}

fn plain_announce() -> Vec<u8> {
    announce_bytes("00000002", "00000000")
}

/// Parse an announce (any error or other request type fails the test).
fn parse_announce(bytes: &[u8]) -> AnnounceRequest {
    match Request::parse(bytes, 100) {
        Ok(Request::Announce(a)) => a,
        other => panic!("expected an announce, got {other:?}"),
    }
}

#[test]
fn announce_request_plain_98_bytes() {
    let bytes = plain_announce();
    assert_eq!(bytes.len(), 98);
    assert_request_vector(&bytes, &Request::Announce(expected_announce()));
}

#[test]
fn announce_request_full_64_bit_counters() {
    let bytes = packet(
        "
        80000000_00000000 # connection_id i64::MIN
        00000001          # action announce
        7fffffff          # transaction_id i32::MAX
        ffffffffffffffffffffffffffffffffffffffff # info_hash
        0000000000000000000000000000000000000000 # peer_id
        7fffffff_ffffffff # downloaded i64::MAX
        80000000_00000000 # left i64::MIN
        ffffffff_ffffffff # uploaded -1
        00000003          # event stopped
        ffffffff          # ip 255.255.255.255
        ffffffff          # key u32::MAX
        000000c8          # num_want 200
        ffff              # port 65535
        ",
    );
    assert_eq!(bytes.len(), 98);
    assert_request_vector(
        &bytes,
        &Request::Announce(AnnounceRequest {
            connection_id: ConnectionId(i64::MIN),
            transaction_id: TransactionId(i32::MAX),
            info_hash: InfoHash([0xff; 20]),
            peer_id: PeerId([0; 20]),
            bytes_downloaded: i64::MAX,
            bytes_left: i64::MIN,
            bytes_uploaded: -1,
            event: AnnounceEvent::Stopped,
            ip_address: Some(Ipv4Addr::BROADCAST),
            key: u32::MAX,
            peers_wanted: 200,
            port: u16::MAX,
            url_data: Vec::new(),
        }),
    );
}

#[test]
fn announce_request_events_on_the_wire() {
    for (wire, event) in [
        ("00000000", AnnounceEvent::None),
        ("00000001", AnnounceEvent::Completed),
        ("00000002", AnnounceEvent::Started),
        ("00000003", AnnounceEvent::Stopped),
    ] {
        let bytes = announce_bytes(wire, "00000000");
        let expected = AnnounceRequest {
            event,
            ..expected_announce()
        };
        assert_request_vector(&bytes, &Request::Announce(expected));
    }
}

#[test]
fn announce_request_unknown_events_are_a_regular_announce() {
    // 4: libtorrent's internal "paused" leaking onto the wire.
    for wire in ["00000004", "00000005", "ffffffff", "7fffffff", "80000000"] {
        let bytes = announce_bytes(wire, "00000000");
        let parsed = parse_announce(&bytes);
        assert_eq!(parsed.event, AnnounceEvent::None, "event {wire}");
        assert_eq!(
            parsed,
            AnnounceRequest {
                event: AnnounceEvent::None,
                ..expected_announce()
            }
        );
        // Written back as 0, a regular announce.
        assert_eq!(
            hexdump(&written_request(&Request::Announce(parsed))),
            hexdump(&announce_bytes("00000000", "00000000"))
        );
    }
}

#[test]
fn announce_request_nonzero_ip_field() {
    for (wire, ip) in [
        ("c0a80001", Ipv4Addr::new(192, 168, 0, 1)),
        ("00000001", Ipv4Addr::new(0, 0, 0, 1)),
    ] {
        let bytes = announce_bytes("00000002", wire);
        let expected = AnnounceRequest {
            ip_address: Some(ip),
            ..expected_announce()
        };
        assert_request_vector(&bytes, &Request::Announce(expected));
    }
}

#[test]
fn announce_request_shorter_than_98_bytes_is_sendable_error() {
    let full = plain_announce();
    for len in 16..98 {
        let (connection_id, transaction_id, _) = sendable_error(&full[..len], 100);
        assert_eq!(connection_id, ConnectionId(0x1122_3344_5566_7788));
        assert_eq!(transaction_id, TransactionId(42));
    }
}

// BEP 41 options

#[test]
fn bep41_url_data_split_over_two_options_concatenates() {
    let bytes = cat(&[
        &plain_announce(),
        &[0x02, 9],
        b"/announce",
        &[0x02, 8],
        b"?k=v&x=1",
        &[0x00],
    ]);
    let expected = AnnounceRequest {
        url_data: b"/announce?k=v&x=1".to_vec(),
        ..expected_announce()
    };
    assert_eq!(parse_announce(&bytes), expected);
    // Written canonically: one option (up to 255 bytes) then the end option.
    let canonical = cat(&[
        &plain_announce(),
        &[0x02, 17],
        b"/announce?k=v&x=1",
        &[0x00],
    ]);
    assert_request_vector(&canonical, &Request::Announce(expected));
}

#[test]
fn bep41_example_from_the_spec() {
    // BEP 41: "/dir1/dir2/file.ext?a=b" as two URLData options, with NOPs.
    let bytes = cat(&[
        &plain_announce(),
        &[0x01, 0x02, 0x0e],
        b"/dir1/dir2/fil",
        &[0x01, 0x01, 0x02, 0x09],
        b"e.ext?a=b",
        &[0x00],
    ]);
    assert_eq!(parse_announce(&bytes).url_data, b"/dir1/dir2/file.ext?a=b");
}

#[test]
fn bep41_nops_and_end() {
    let bytes = cat(&[
        &plain_announce(),
        &[0x01, 0x01, 0x01, 0x02, 0x04],
        b"/ann",
        &[0x01, 0x00],
        // After the end option: ignored, even if it looks like URL data.
        &[0x02, 0x03],
        b"xyz",
    ]);
    assert_eq!(parse_announce(&bytes).url_data, b"/ann");
}

#[test]
fn bep41_only_nops_and_no_end() {
    let bytes = cat(&[&plain_announce(), &[0x01, 0x01, 0x01]]);
    assert_eq!(parse_announce(&bytes), expected_announce());
}

#[test]
fn bep41_unknown_option_types_are_skipped() {
    let bytes = cat(&[
        &plain_announce(),
        &[0x02, 0x04],
        b"/ann",
        // Unknown type 0x07, length 3, whose payload looks like options.
        &[0x07, 0x03, 0x02, 0x02, 0x00],
        // Unknown type 0xff, length 0.
        &[0xff, 0x00],
        &[0x02, 0x05],
        b"ounce",
        // Unknown type 0x80, length 2.
        &[0x80, 0x02, 0xaa, 0xbb],
        &[0x00],
    ]);
    let expected = AnnounceRequest {
        url_data: b"/announce".to_vec(),
        ..expected_announce()
    };
    assert_eq!(parse_announce(&bytes), expected);
}

#[test]
fn bep41_zero_length_url_data_option() {
    let bytes = cat(&[&plain_announce(), &[0x02, 0x00, 0x02, 0x01], b"/", &[0x00]]);
    assert_eq!(parse_announce(&bytes).url_data, b"/");
}

#[test]
fn bep41_truncated_options_do_not_fail_the_announce() {
    let cases: Vec<(Vec<u8>, &[u8])> = vec![
        // URL data whose length says 10 but only 3 bytes follow.
        (
            cat(&[&[0x02, 0x04], b"/abc", &[0x02, 0x0a], b"xyz"]),
            b"/abc",
        ),
        // URL data option without its length byte.
        (cat(&[&[0x02, 0x03], b"/ab", &[0x02]]), b"/ab"),
        // Unknown option without its length byte.
        (vec![0x05], b""),
        // Unknown option whose payload is cut short.
        (cat(&[&[0x02, 0x01], b"/", &[0x09, 0x20, 0x01]]), b"/"),
        // Length byte 255 with nothing after it.
        (vec![0x02, 0xff], b""),
    ];
    for (options, url_data) in cases {
        let bytes = cat(&[&plain_announce(), &options]);
        assert_eq!(
            parse_announce(&bytes),
            AnnounceRequest {
                url_data: url_data.to_vec(),
                ..expected_announce()
            },
            "options {options:02x?}"
        );
    }
}

#[test]
fn announce_request_trailing_garbage_is_accepted() {
    for garbage in [
        &hex("00 de ad be ef")[..],
        &hex("de ad be ef")[..],
        &hex("00")[..],
        &[0x42; 500][..],
    ] {
        let bytes = cat(&[&plain_announce(), garbage]);
        assert_eq!(parse_announce(&bytes), expected_announce());
    }
}

#[test]
fn bep41_long_url_data_is_written_in_255_byte_options() {
    let url: Vec<u8> = (0..600u32).map(|i| b'a' + (i % 26) as u8).collect();
    let bytes = cat(&[
        &plain_announce(),
        &[0x02, 0xff],
        &url[..255],
        &[0x02, 0xff],
        &url[255..510],
        &[0x02, 90],
        &url[510..],
        &[0x00],
    ]);
    assert_request_vector(
        &bytes,
        &Request::Announce(AnnounceRequest {
            url_data: url.clone(),
            ..expected_announce()
        }),
    );
    // Exactly 255 bytes: one full option.
    let bytes = cat(&[&plain_announce(), &[0x02, 0xff], &url[..255], &[0x00]]);
    assert_request_vector(
        &bytes,
        &Request::Announce(AnnounceRequest {
            url_data: url[..255].to_vec(),
            ..expected_announce()
        }),
    );
}

// ---------------------------------------------------------------------------
// Scrape request

const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HASH_B: &str = "0123456789abcdef0123456789abcdef01234567";
const HASH_C: &str = "ffeeddccbbaa99887766554433221100ffeeddcc";
const HASH_D: &str = "0000000000000000000000000000000000000001";
const HASH_E: &str = "8000000000000000000000000000000000000000";

fn scrape_header() -> &'static str {
    "
    0000000000000001 # connection_id 1
    00000002         # action scrape
    ffffffff         # transaction_id -1
    "
}

fn info_hash(hex_text: &str) -> InfoHash {
    InfoHash(hex(hex_text).try_into().unwrap())
}

fn expected_scrape(hashes: &[&str]) -> Request {
    Request::Scrape(ScrapeRequest {
        connection_id: ConnectionId(1),
        transaction_id: TransactionId(-1),
        info_hashes: hashes.iter().map(|h| info_hash(h)).collect(),
    })
}

#[test]
fn scrape_request_one_hash() {
    let bytes = packet(&format!("{} {HASH_B}", scrape_header()));
    assert_eq!(bytes.len(), 36);
    assert_request_vector(&bytes, &expected_scrape(&[HASH_B]));
    assert_eq!(
        info_hash(HASH_B).0,
        [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef, 0x01, 0x23, 0x45, 0x67
        ]
    );
}

#[test]
fn scrape_request_several_hashes_in_order() {
    let bytes = packet(&format!("{} {HASH_A} {HASH_B} {HASH_C}", scrape_header()));
    assert_eq!(bytes.len(), 16 + 60);
    assert_request_vector(&bytes, &expected_scrape(&[HASH_A, HASH_B, HASH_C]));
}

#[test]
fn scrape_request_trailing_partial_hash_is_ignored() {
    for partial in 1..20 {
        let mut bytes = packet(&format!("{} {HASH_A} {HASH_B} {HASH_C}", scrape_header()));
        bytes.truncate(16 + 40 + partial);
        assert_eq!(
            Request::parse(&bytes, 100),
            Ok(expected_scrape(&[HASH_A, HASH_B])),
            "{partial} trailing bytes"
        );
    }
}

#[test]
fn scrape_request_more_hashes_than_max_are_truncated() {
    let bytes = packet(&format!(
        "{} {HASH_A} {HASH_B} {HASH_C} {HASH_D} {HASH_E}",
        scrape_header()
    ));
    assert_eq!(
        Request::parse(&bytes, 3),
        Ok(expected_scrape(&[HASH_A, HASH_B, HASH_C]))
    );
    assert_eq!(Request::parse(&bytes, 1), Ok(expected_scrape(&[HASH_A])));
    assert_eq!(
        Request::parse(&bytes, 5),
        Ok(expected_scrape(&[HASH_A, HASH_B, HASH_C, HASH_D, HASH_E]))
    );
    assert_eq!(
        Request::parse(&bytes, usize::MAX),
        Ok(expected_scrape(&[HASH_A, HASH_B, HASH_C, HASH_D, HASH_E]))
    );
}

#[test]
fn scrape_request_many_hashes() {
    // 74 hashes: what fits a typical MTU.
    let hashes: Vec<String> = (0..74u8).map(|i| format!("{i:02x}").repeat(20)).collect();
    let hash_refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    let bytes = packet(&format!("{} {}", scrape_header(), hashes.join(" ")));
    assert_eq!(bytes.len(), 16 + 74 * 20);
    assert_request_vector(&bytes, &expected_scrape(&hash_refs));
    assert_eq!(
        Request::parse(&bytes, 10),
        Ok(expected_scrape(&hash_refs[..10]))
    );
}

#[test]
fn scrape_request_without_hashes_is_sendable_error() {
    let header = packet(scrape_header());
    for bytes in [
        header.clone(),
        // A partial hash is no hash.
        cat(&[&header, &[0xaa; 19]]),
    ] {
        let (connection_id, transaction_id, message) = sendable_error(&bytes, 100);
        assert_eq!(connection_id, ConnectionId(1));
        assert_eq!(transaction_id, TransactionId(-1));
        assert!(!message.is_empty());
    }
    // max_scrape_hashes == 0 keeps none: also an error.
    let bytes = packet(&format!("{} {HASH_A}", scrape_header()));
    assert!(matches!(
        Request::parse(&bytes, 0),
        Err(RequestParseError::Sendable { .. })
    ));
}

// ---------------------------------------------------------------------------
// Malformed requests

#[test]
fn unknown_action_is_sendable_error() {
    for action in ["00000003", "00000004", "ffffffff", "7fffffff", "80000000"] {
        let bytes = hex(&format!("0102030405060708 {action} 00000007 {HASH_A}"));
        let (connection_id, transaction_id, message) = sendable_error(&bytes, 100);
        assert_eq!(connection_id, ConnectionId(0x0102_0304_0506_0708));
        assert_eq!(transaction_id, TransactionId(7));
        assert!(!message.is_empty());
    }
}

#[test]
fn short_packets_are_unsendable() {
    let prefixes = [
        packet(CONNECT_REQUEST),
        plain_announce(),
        packet(&format!("{} {HASH_A}", scrape_header())),
        vec![0xff; 16],
        vec![0; 16],
    ];
    for prefix in prefixes {
        for len in 0..16 {
            match Request::parse(&prefix[..len], 100) {
                Err(RequestParseError::Unsendable { message }) => assert!(!message.is_empty()),
                other => panic!("{len} bytes of {prefix:02x?}: {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Announce response

#[test]
fn announce_response_ipv4() {
    assert_response_packet(
        "
        00000001     # action announce
        0000002a     # transaction_id 42
        00000708     # interval 1800
        00000005     # leechers
        00000003     # seeders
        c0a80001 1ae1 # 192.168.0.1:6881
        0a000002 c8d5 # 10.0.0.2:51413
        ffffffff 0000 # 255.255.255.255:0
        ",
        20 + 3 * 6,
        false,
        &Response::AnnounceIpv4(AnnounceResponse {
            transaction_id: TransactionId(42),
            announce_interval: 1800,
            leechers: 5,
            seeders: 3,
            peers: vec![
                ResponsePeer {
                    ip_address: Ipv4Addr::new(192, 168, 0, 1),
                    port: 6881,
                },
                ResponsePeer {
                    ip_address: Ipv4Addr::new(10, 0, 0, 2),
                    port: 51413,
                },
                ResponsePeer {
                    ip_address: Ipv4Addr::BROADCAST,
                    port: 0,
                },
            ],
        }),
    );
}

#[test]
fn announce_response_ipv6() {
    assert_response_packet(
        "
        00000001     # action announce
        80000000     # transaction_id i32::MIN
        ffffffff     # interval -1
        00000000     # leechers
        7fffffff     # seeders
        20010db8000000000000000000000001 1ae1 # [2001:db8::1]:6881
        00000000000000000000ffff01020304 ffff # [::ffff:1.2.3.4]:65535
        ",
        20 + 2 * 18,
        true,
        &Response::AnnounceIpv6(AnnounceResponse {
            transaction_id: TransactionId(i32::MIN),
            announce_interval: -1,
            leechers: 0,
            seeders: i32::MAX,
            peers: vec![
                ResponsePeer {
                    ip_address: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                    port: 6881,
                },
                ResponsePeer {
                    ip_address: Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped(),
                    port: 65535,
                },
            ],
        }),
    );
}

#[test]
fn announce_response_without_peers() {
    let bytes = hex("00000001 00000001 00000384 00000000 00000001");
    let v4 = AnnounceResponse {
        transaction_id: TransactionId(1),
        announce_interval: 900,
        leechers: 0,
        seeders: 1,
        peers: Vec::new(),
    };
    let v6 = AnnounceResponse {
        transaction_id: v4.transaction_id,
        announce_interval: v4.announce_interval,
        leechers: v4.leechers,
        seeders: v4.seeders,
        peers: Vec::new(),
    };
    assert_response_vector(&bytes, false, &Response::AnnounceIpv4(v4));
    assert_response_vector(&bytes, true, &Response::AnnounceIpv6(v6));
}

#[test]
fn announce_response_peer_width_follows_the_flag() {
    // 38 bytes after the header: six IPv4 peers or two IPv6 peers, plus 2
    // trailing bytes.
    let peers = "0102030405060708090a0b0c0d0e0f10 1112131415161718191a1b1c1d1e1f20 212223242526";
    let bytes = hex(&format!(
        "00000001 00000001 00000384 00000000 00000001 {peers}"
    ));
    assert_eq!(bytes.len(), 20 + 36 + 2);
    match Response::parse(&bytes, false) {
        Ok(Response::AnnounceIpv4(r)) => {
            assert_eq!(r.peers.len(), 6);
            assert_eq!(r.peers[0].ip_address, Ipv4Addr::new(1, 2, 3, 4));
            assert_eq!(r.peers[0].port, 0x0506);
            assert_eq!(r.peers[5].ip_address, Ipv4Addr::new(0x1f, 0x20, 0x21, 0x22));
            assert_eq!(r.peers[5].port, 0x2324);
        }
        other => panic!("{other:?}"),
    }
    match Response::parse(&bytes, true) {
        Ok(Response::AnnounceIpv6(r)) => {
            assert_eq!(r.peers.len(), 2);
            assert_eq!(
                r.peers[0].ip_address,
                Ipv6Addr::from(u128::from_be_bytes(
                    hex("0102030405060708090a0b0c0d0e0f10").try_into().unwrap()
                ))
            );
            assert_eq!(r.peers[0].port, 0x1112);
            assert_eq!(r.peers[1].port, 0x2324);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn announce_response_trailing_partial_peer_is_ignored() {
    let full_v4 = hex("00000001 00000001 00000384 00000000 00000001 c0a80001 1ae1");
    for extra in 1..6 {
        let bytes = cat(&[&full_v4, &hex("0a0000021ae1")[..extra]]);
        match Response::parse(&bytes, false) {
            Ok(Response::AnnounceIpv4(r)) => assert_eq!(r.peers.len(), 1, "{extra}"),
            other => panic!("{other:?}"),
        }
    }
    let full_v6 =
        hex("00000001 00000001 00000384 00000000 00000001 20010db8000000000000000000000001 1ae1");
    for extra in 1..18 {
        let bytes = cat(&[&full_v6, &[0x77; 17][..extra]]);
        match Response::parse(&bytes, true) {
            Ok(Response::AnnounceIpv6(r)) => assert_eq!(r.peers.len(), 1, "{extra}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn short_announce_response_is_an_error() {
    let bytes = hex("00000001 00000001 00000384 00000000 00000001");
    for len in 8..20 {
        assert!(Response::parse(&bytes[..len], false).is_err(), "{len}");
        assert!(Response::parse(&bytes[..len], true).is_err(), "{len}");
    }
}

// ---------------------------------------------------------------------------
// Scrape response

#[test]
fn scrape_response() {
    let bytes = assert_response_packet(
        "
        00000002                   # action scrape
        00000007                   # transaction_id
        0000000a 00000014 0000001e # seeders 10, completed 20, leechers 30
        00000000 00000000 00000000 # an unknown torrent
        7fffffff ffffffff 80000000 # extremes
        ",
        8 + 3 * 12,
        false,
        &Response::Scrape(ScrapeResponse {
            transaction_id: TransactionId(7),
            torrent_stats: vec![
                TorrentScrapeStatistics {
                    seeders: 10,
                    completed: 20,
                    leechers: 30,
                },
                TorrentScrapeStatistics::default(),
                TorrentScrapeStatistics {
                    seeders: i32::MAX,
                    completed: -1,
                    leechers: i32::MIN,
                },
            ],
        }),
    );
    assert_eq!(
        Response::parse(&bytes, true),
        Response::parse(&bytes, false)
    );
}

#[test]
fn scrape_response_empty_and_trailing_partial_entry() {
    let empty = Response::Scrape(ScrapeResponse {
        transaction_id: TransactionId(7),
        torrent_stats: Vec::new(),
    });
    assert_response_vector(&hex("00000002 00000007"), false, &empty);
    let one = Response::Scrape(ScrapeResponse {
        transaction_id: TransactionId(7),
        torrent_stats: vec![TorrentScrapeStatistics {
            seeders: 1,
            completed: 2,
            leechers: 3,
        }],
    });
    let full = hex("00000002 00000007 00000001 00000002 00000003");
    for extra in 1..12 {
        let bytes = cat(&[&full, &[0x55; 11][..extra]]);
        assert_eq!(Response::parse(&bytes, false), Ok(one.clone()), "{extra}");
    }
}

// ---------------------------------------------------------------------------
// Error response

#[test]
fn error_response() {
    let bytes = cat(&[&hex("00000003 0000beef"), b"Connection ID missmatch."]);
    assert_response_vector(
        &bytes,
        false,
        &Response::Error(ErrorResponse {
            transaction_id: TransactionId(0xbeef),
            message: Cow::Borrowed("Connection ID missmatch."),
        }),
    );
}

#[test]
fn error_response_empty_and_utf8_messages() {
    assert_response_vector(
        &hex("00000003 00000001"),
        true,
        &Response::Error(ErrorResponse {
            transaction_id: TransactionId(1),
            message: Cow::Borrowed(""),
        }),
    );
    // "Größe" in UTF-8.
    assert_response_vector(
        &hex("00000003 00000001 47 72 c3 b6 c3 9f 65"),
        false,
        &Response::Error(ErrorResponse {
            transaction_id: TransactionId(1),
            message: Cow::Owned("Größe".to_string()),
        }),
    );
}

#[test]
fn error_response_invalid_utf8_is_read_lossily() {
    let bytes = hex("00000003 00000001 61 ff 62 c3");
    assert_eq!(
        Response::parse(&bytes, false),
        Ok(Response::Error(ErrorResponse {
            transaction_id: TransactionId(1),
            message: Cow::Borrowed("a\u{fffd}b\u{fffd}"),
        }))
    );
}

// ---------------------------------------------------------------------------
// Malformed responses

#[test]
fn short_or_unknown_responses_are_errors() {
    for len in 0..8 {
        let bytes = &hex("00000003 00000001")[..len];
        assert!(Response::parse(bytes, false).is_err(), "{len}");
        assert!(Response::parse(bytes, true).is_err(), "{len}");
    }
    for action in ["00000004", "ffffffff", "80000000"] {
        let bytes = hex(&format!("{action} 00000001 0000000000000000"));
        assert!(Response::parse(&bytes, false).is_err(), "{action}");
    }
}

// ---------------------------------------------------------------------------
// Writing appends

#[test]
fn write_appends_to_the_buffer() {
    let mut out = vec![0xaa, 0xbb];
    Request::Connect(ConnectRequest {
        transaction_id: TransactionId(0xfedc_ba98_u32 as i32),
    })
    .write(&mut out);
    assert_eq!(out, cat(&[&[0xaa, 0xbb], &packet(CONNECT_REQUEST)]));

    let mut out = vec![0x01];
    Response::Connect(ConnectResponse {
        transaction_id: TransactionId(1),
        connection_id: ConnectionId(2),
    })
    .write(&mut out);
    assert_eq!(out, hex("01 00000000 00000001 0000000000000002"));
}
