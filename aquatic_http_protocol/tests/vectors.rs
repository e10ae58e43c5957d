//! Byte-exact known requests and responses, written by hand from the BEPs
//! and from what real clients put on the wire (never produced by our own
//! writer). Requests are parsed and compared to the expected struct;
//! responses are written and compared to the expected bytes.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aquatic_http_protocol::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, InfoHash, MAX_HEADERS, ParseOptions,
    ParsedRequest, PeerFormat, PeerId, Request, RequestParseError, ResponsePeer, ScrapeRequest,
    ScrapeResponse, ScrapeStatistics, parse_request, write_failure, write_http_head,
};

const OPTIONS: ParseOptions<'static> = ParseOptions {
    max_scrape_torrents: 100,
    reverse_proxy_header: None,
    allowed_hosts: &[],
};

fn parse(bytes: &[u8]) -> Result<ParsedRequest, RequestParseError> {
    parse_request(bytes, &OPTIONS)
}

fn parse_announce(bytes: &[u8]) -> AnnounceRequest {
    match parse(bytes) {
        Ok(ParsedRequest {
            request: Request::Announce(announce),
            consumed,
            ..
        }) => {
            assert_eq!(consumed, bytes.len());
            announce
        }
        other => panic!("not an announce: {other:?}"),
    }
}

/// The failure reason of a query the tracker answers with a bencoded error.
fn invalid_reason(bytes: &[u8]) -> Cow<'static, str> {
    match parse(bytes) {
        Err(RequestParseError::Invalid {
            reason, consumed, ..
        }) => {
            assert_eq!(consumed, bytes.len());
            reason
        }
        other => panic!("not invalid: {other:?}"),
    }
}

/// Bytes as text, so that a mismatch shows where it is; non-printable bytes
/// as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// An announce request head with the given query.
fn announce_with_query(query: &str) -> Vec<u8> {
    format!("GET /announce?{query} HTTP/1.1\r\nHost: tracker.example.org\r\n\r\n").into_bytes()
}

/// A minimal valid query, to which a test appends or in which it replaces.
const MINIMAL_QUERY: &str = "info_hash=%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50V&peer_id=-TR4050-x7kq2m9zp4ab&port=51413";

// ---------------------------------------------------------------------------
// Known ids

/// The info hash all client vectors announce.
const INFO_HASH: [u8; 20] = [
    0xc9, 0xe1, 0x57, 0x63, 0xf7, 0x22, 0xf2, 0x3e, 0x98, 0xa2, 0x9d, 0xec, 0xdf, 0xae, 0x34, 0x1b,
    0x98, 0xd5, 0x30, 0x56,
];

fn info_hash() -> InfoHash {
    InfoHash(INFO_HASH)
}

fn peer_id(s: &[u8; 20]) -> PeerId {
    PeerId(*s)
}

// ---------------------------------------------------------------------------
// Real clients

/// libtorrent 2.0 (qBittorrent 4.6.3), first announce of a download.
/// libtorrent leaves unreserved characters (`A-Za-z0-9-_.!~*()`) raw and
/// escapes the rest in lower case; its peer id tail is drawn from that
/// unreserved set. It sends `Connection: close` on every tracker request.
const LIBTORRENT_STARTED: &[u8] = b"GET /announce?info_hash=%c9%e1Wc%f7%22%f2%3e%98%a2%9d%ec%df%ae4%1b%98%d50V\
&peer_id=-qB4630-k8Xz~2Qn(d1L&port=6881&uploaded=0&downloaded=0&left=16384&corrupt=0\
&key=5A1B7F3E&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0 HTTP/1.1\r\n\
Host: tracker.example.org:6969\r\n\
User-Agent: qBittorrent/4.6.3\r\n\
Accept-Encoding: gzip\r\n\
Connection: close\r\n\
\r\n";

#[test]
fn libtorrent_started() {
    let parsed = parse(LIBTORRENT_STARTED).unwrap();
    assert_eq!(
        parsed,
        ParsedRequest {
            request: Request::Announce(AnnounceRequest {
                info_hash: info_hash(),
                peer_id: peer_id(b"-qB4630-k8Xz~2Qn(d1L"),
                port: 6881,
                bytes_uploaded: 0,
                bytes_downloaded: 0,
                bytes_left: 16384,
                event: AnnounceEvent::Started,
                numwant: Some(200),
                compact: true,
                no_peer_id: true,
                key: Some("5A1B7F3E".into()),
            }),
            consumed: LIBTORRENT_STARTED.len(),
            keep_alive: false,
            keep_alive_asked: false,
            forwarded_ip: None,
        }
    );
}

/// libtorrent (qBittorrent 5) with an IPv6 listen address and a passkey in
/// the announce URL path: `ipv6` is an unknown key to us.
#[test]
fn libtorrent_passkey_path_and_ipv6_key() {
    let bytes = b"GET /3f9c0a71d2e84b56/announce?info_hash=%c9%e1Wc%f7%22%f2%3e%98%a2%9d%ec%df%ae4%1b%98%d50V\
&peer_id=-qB5010-(d1Lk8Xz~2Qn&port=6881&uploaded=1048576&downloaded=2097152&left=0&corrupt=0\
&key=5A1B7F3E&event=completed&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0\
&ipv6=2001%3adb8%3a%3a1 HTTP/1.1\r\n\
Host: tracker.example.org\r\n\
User-Agent: qBittorrent/5.0.1\r\n\
Accept-Encoding: gzip\r\n\
Connection: close\r\n\
\r\n";
    let announce = parse_announce(bytes);
    assert_eq!(announce.peer_id, peer_id(b"-qB5010-(d1Lk8Xz~2Qn"));
    assert_eq!(announce.bytes_uploaded, 1_048_576);
    assert_eq!(announce.bytes_downloaded, 2_097_152);
    assert_eq!(announce.bytes_left, 0);
    assert_eq!(announce.event, AnnounceEvent::Completed);
}

/// Transmission 4.0 (libcurl) announcing a magnet link without metadata:
/// `left` is INT64_MAX, escapes are upper case, and libcurl sends neither
/// `Connection` (HTTP/1.1 keep-alive) nor `no_peer_id`.
const TRANSMISSION_MAGNET: &[u8] =
    b"GET /announce?info_hash=%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50V\
&peer_id=-TR4050-x7kq2m9zp4ab&port=51413&uploaded=0&downloaded=0&left=9223372036854775807\
&numwant=80&key=1A2B3C4D&compact=1&supportcrypto=1&event=started HTTP/1.1\r\n\
Host: tracker.example.org:443\r\n\
User-Agent: Transmission/4.0.5\r\n\
Accept: */*\r\n\
Accept-Encoding: deflate, gzip, br, zstd\r\n\
\r\n";

#[test]
fn transmission_magnet() {
    let parsed = parse(TRANSMISSION_MAGNET).unwrap();
    assert_eq!(
        parsed,
        ParsedRequest {
            request: Request::Announce(AnnounceRequest {
                info_hash: info_hash(),
                peer_id: peer_id(b"-TR4050-x7kq2m9zp4ab"),
                port: 51413,
                bytes_uploaded: 0,
                bytes_downloaded: 0,
                bytes_left: 9_223_372_036_854_775_807,
                event: AnnounceEvent::Started,
                numwant: Some(80),
                compact: true,
                no_peer_id: false,
                key: Some("1A2B3C4D".into()),
            }),
            consumed: TRANSMISSION_MAGNET.len(),
            keep_alive: true,
            keep_alive_asked: false,
            forwarded_ip: None,
        }
    );
}

/// Transmission partial seed (BEP 21): `event=paused` on every announce.
#[test]
fn transmission_paused_is_a_regular_announce() {
    let bytes = b"GET /announce?info_hash=%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50V\
&peer_id=-TR4050-x7kq2m9zp4ab&port=51413&uploaded=52428800&downloaded=104857600&left=0\
&numwant=80&key=1A2B3C4D&compact=1&supportcrypto=1&event=paused HTTP/1.1\r\n\
Host: tracker.example.org\r\n\
User-Agent: Transmission/4.0.5\r\n\
Accept: */*\r\n\
Accept-Encoding: deflate, gzip, br, zstd\r\n\
\r\n";
    let announce = parse_announce(bytes);
    assert_eq!(announce.event, AnnounceEvent::None);
    assert_eq!(announce.bytes_uploaded, 52_428_800);
    assert_eq!(announce.bytes_downloaded, 104_857_600);
}

/// Older Transmission sent `left` as `(uint64_t)-1` for magnets.
#[test]
fn transmission_left_u64_max() {
    let announce = parse_announce(&announce_with_query(&format!(
        "{MINIMAL_QUERY}&uploaded=18446744073709551615&downloaded=18446744073709551615\
         &left=18446744073709551615"
    )));
    assert_eq!(announce.bytes_uploaded, u64::MAX);
    assert_eq!(announce.bytes_downloaded, u64::MAX);
    assert_eq!(announce.bytes_left, u64::MAX);
}

/// uTorrent 3.5.5: the peer id tail is binary (here including NUL, `%`,
/// `=`, `&`, `+` and a space, all escaped), `Connection: Close` in that case.
const UTORRENT_STOPPED: &[u8] =
    b"GET /announce?info_hash=%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50V\
&peer_id=-UT3550-%8A%1F%00%FFAb~%20%2B%25%3D%26&port=40959&uploaded=123456789&downloaded=987654321\
&left=0&corrupt=0&key=7C3A9E11&event=stopped&numwant=0&compact=1&no_peer_id=1 HTTP/1.1\r\n\
Host: tracker.example.org\r\n\
User-Agent: uTorrent/3550(46096)\r\n\
Accept-Encoding: gzip\r\n\
Connection: Close\r\n\
\r\n";

#[test]
fn utorrent_stopped() {
    let parsed = parse(UTORRENT_STOPPED).unwrap();
    assert_eq!(
        parsed,
        ParsedRequest {
            request: Request::Announce(AnnounceRequest {
                info_hash: info_hash(),
                peer_id: peer_id(b"-UT3550-\x8a\x1f\x00\xffAb~ +%=&"),
                port: 40959,
                bytes_uploaded: 123_456_789,
                bytes_downloaded: 987_654_321,
                bytes_left: 0,
                event: AnnounceEvent::Stopped,
                numwant: Some(0),
                compact: true,
                no_peer_id: true,
                key: Some("7C3A9E11".into()),
            }),
            consumed: UTORRENT_STOPPED.len(),
            keep_alive: false,
            keep_alive_asked: false,
            forwarded_ip: None,
        }
    );
}

/// The scrape URL derived from an announce URL, with two hashes in reverse
/// byte order: parsed sorted.
#[test]
fn libtorrent_scrape_two_hashes() {
    let bytes =
        b"GET /scrape?info_hash=%ff%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%01\
&info_hash=%c9%e1Wc%f7%22%f2%3e%98%a2%9d%ec%df%ae4%1b%98%d50V HTTP/1.1\r\n\
Host: tracker.example.org\r\n\
User-Agent: qBittorrent/4.6.3\r\n\
Accept-Encoding: gzip\r\n\
Connection: close\r\n\
\r\n";
    let mut high = [0u8; 20];
    high[0] = 0xff;
    high[19] = 0x01;
    assert_eq!(
        parse(bytes).unwrap(),
        ParsedRequest {
            request: Request::Scrape(ScrapeRequest {
                info_hashes: vec![info_hash(), InfoHash(high)],
            }),
            consumed: bytes.len(),
            keep_alive: false,
            keep_alive_asked: false,
            forwarded_ip: None,
        }
    );
}

// ---------------------------------------------------------------------------
// Query details

#[test]
fn minimal_query_defaults() {
    let announce = parse_announce(&announce_with_query(MINIMAL_QUERY));
    assert_eq!(
        announce,
        AnnounceRequest {
            info_hash: info_hash(),
            peer_id: peer_id(b"-TR4050-x7kq2m9zp4ab"),
            port: 51413,
            bytes_uploaded: 0,
            bytes_downloaded: 0,
            bytes_left: 0,
            event: AnnounceEvent::None,
            numwant: None,
            compact: true,
            no_peer_id: false,
            key: None,
        }
    );
}

#[test]
fn events() {
    for (value, event) in [
        ("started", AnnounceEvent::Started),
        ("stopped", AnnounceEvent::Stopped),
        ("completed", AnnounceEvent::Completed),
        ("%73tarted", AnnounceEvent::Started),
        ("empty", AnnounceEvent::None),
        ("paused", AnnounceEvent::None),
        ("", AnnounceEvent::None),
        ("STARTED", AnnounceEvent::None),
        ("bogus", AnnounceEvent::None),
    ] {
        let announce = parse_announce(&announce_with_query(&format!(
            "{MINIMAL_QUERY}&event={value}"
        )));
        assert_eq!(announce.event, event, "event={value}");
    }
}

#[test]
fn numwant_compact_no_peer_id() {
    let parsed =
        |extra: &str| parse_announce(&announce_with_query(&format!("{MINIMAL_QUERY}{extra}")));
    assert_eq!(parsed("&numwant=-1").numwant, None);
    assert_eq!(parsed("&numwant=0").numwant, Some(0));
    assert_eq!(parsed("&numwant=50").numwant, Some(50));
    assert_eq!(
        parsed("&numwant=99999999999999999999999").numwant,
        Some(usize::MAX)
    );
    assert!(parsed("").compact);
    assert!(parsed("&compact=1").compact);
    assert!(!parsed("&compact=0").compact);
    assert!(!parsed("").no_peer_id);
    assert!(parsed("&no_peer_id=1").no_peer_id);
    assert!(!parsed("&no_peer_id=0").no_peer_id);
}

#[test]
fn last_value_of_a_repeated_key_counts() {
    let announce = parse_announce(&announce_with_query(&format!(
        "port=1&{MINIMAL_QUERY}&left=5&left=7"
    )));
    assert_eq!(announce.port, 51413);
    assert_eq!(announce.bytes_left, 7);
}

#[test]
fn raw_plus_is_a_byte_in_ids_and_a_space_in_text() {
    let announce = parse_announce(&announce_with_query(
        "info_hash=++++++++++++++++++++&peer_id=-XX0001-a+b%2Bc+d%20e+fg&port=1&key=a+b%2Bc",
    ));
    assert_eq!(announce.info_hash, InfoHash([b'+'; 20]));
    assert_eq!(announce.peer_id, peer_id(b"-XX0001-a+b+c+d e+fg"));
    assert_eq!(announce.key.as_deref(), Some("a b+c"));
}

#[test]
fn key_is_decoded_lossily_and_bounded() {
    let parsed = |key: &str| parse(&announce_with_query(&format!("{MINIMAL_QUERY}&key={key}")));
    let key_of = |key: &str| match parsed(key) {
        Ok(ParsedRequest {
            request: Request::Announce(a),
            ..
        }) => a.key,
        other => panic!("{other:?}"),
    };
    assert_eq!(key_of(""), Some(String::new()));
    assert_eq!(key_of("%c3%a9t%C3%A9"), Some("été".into()));
    assert_eq!(key_of("ab%FFcd"), Some("ab\u{FFFD}cd".into()));
    assert_eq!(key_of(&"k".repeat(100)), Some("k".repeat(100)));
    for too_long in ["k".repeat(101), "%FF".repeat(34)] {
        assert!(matches!(
            parsed(&too_long),
            Err(RequestParseError::Invalid { reason, .. }) if reason == "key must be at most 100 bytes"
        ));
    }
}

#[test]
fn prefixed_paths_are_accepted() {
    for path in ["/announce", "/abc123/announce", "/tracker/x/announce"] {
        let bytes = format!("GET {path}?{MINIMAL_QUERY} HTTP/1.1\r\n\r\n");
        assert!(
            matches!(
                parse(bytes.as_bytes()),
                Ok(ParsedRequest {
                    request: Request::Announce(_),
                    ..
                })
            ),
            "{path}"
        );
    }
    let bytes = b"GET /abc123/scrape?info_hash=%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50V HTTP/1.1\r\n\r\n";
    assert!(matches!(
        parse(bytes),
        Ok(ParsedRequest {
            request: Request::Scrape(_),
            ..
        })
    ));
}

#[test]
fn other_paths_are_not_found() {
    for target in [
        "/",
        "/favicon.ico",
        "/announce/",
        "/announces",
        "/xannounce",
        "announce",
        "/ANNOUNCE",
        "/scrape.php",
        "/stats?announce",
    ] {
        let bytes = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(
            parse(bytes.as_bytes()),
            Err(RequestParseError::NotFound {
                consumed: bytes.len(),
                keep_alive: true,
                keep_alive_asked: false,
            }),
            "{target}"
        );
    }
    let bytes = b"GET /favicon.ico HTTP/1.0\r\n\r\n";
    assert_eq!(
        parse(bytes),
        Err(RequestParseError::NotFound {
            consumed: bytes.len(),
            keep_alive: false,
            keep_alive_asked: false,
        })
    );
}

// ---------------------------------------------------------------------------
// Malformed queries: answered with a failure reason

#[test]
fn bad_percent_encoding_names_the_field() {
    let info_hash_19 = "%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50";
    for (query, reason) in [
        (
            format!("info_hash={info_hash_19}%G1&peer_id=-TR4050-x7kq2m9zp4ab&port=1"),
            "invalid percent-encoding in info_hash",
        ),
        (
            format!("info_hash={info_hash_19}%4&peer_id=-TR4050-x7kq2m9zp4ab&port=1"),
            "invalid percent-encoding in info_hash",
        ),
        (
            format!("info_hash={info_hash_19}V&peer_id=-TR4050-x7kq2m9zp4a%&port=1"),
            "invalid percent-encoding in peer_id",
        ),
        (
            format!("{MINIMAL_QUERY}&key=ab%zz"),
            "invalid percent-encoding in key",
        ),
        (
            format!("{MINIMAL_QUERY}&left=%"),
            "invalid percent-encoding in left",
        ),
        (
            format!("{MINIMAL_QUERY}&event=%x"),
            "invalid percent-encoding in event",
        ),
        (
            format!("{MINIMAL_QUERY}&numwant=%-1"),
            "invalid percent-encoding in numwant",
        ),
        (
            format!("{MINIMAL_QUERY}&compact=%0"),
            "invalid percent-encoding in compact",
        ),
    ] {
        assert_eq!(
            invalid_reason(&announce_with_query(&query)),
            reason,
            "{query}"
        );
    }
}

#[test]
fn unknown_keys_are_not_decoded() {
    parse_announce(&announce_with_query(&format!(
        "{MINIMAL_QUERY}&trackerid=%%%&ip=%zz"
    )));
}

#[test]
fn ids_must_be_20_bytes() {
    let hash_19 = "%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50";
    let hash_21 = "%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50VV";
    for (query, reason) in [
        (
            format!("info_hash={hash_19}&peer_id=-TR4050-x7kq2m9zp4ab&port=1"),
            "info_hash must be 20 bytes",
        ),
        (
            format!("info_hash={hash_21}&peer_id=-TR4050-x7kq2m9zp4ab&port=1"),
            "info_hash must be 20 bytes",
        ),
        (
            "info_hash=&peer_id=-TR4050-x7kq2m9zp4ab&port=1".to_string(),
            "info_hash must be 20 bytes",
        ),
        (
            format!("info_hash={hash_19}V&peer_id=-TR4050-x7kq2m9zp4a&port=1"),
            "peer_id must be 20 bytes",
        ),
        (
            format!("info_hash={hash_19}V&peer_id=-TR4050-x7kq2m9zp4abc&port=1"),
            "peer_id must be 20 bytes",
        ),
    ] {
        assert_eq!(
            invalid_reason(&announce_with_query(&query)),
            reason,
            "{query}"
        );
    }
    let scrape = format!("GET /scrape?info_hash={hash_21} HTTP/1.1\r\n\r\n");
    assert_eq!(
        invalid_reason(scrape.as_bytes()),
        "info_hash must be 20 bytes"
    );
}

#[test]
fn missing_required_fields() {
    let hash = "%C9%E1Wc%F7%22%F2%3E%98%A2%9D%EC%DF%AE4%1B%98%D50V";
    for (query, reason) in [
        (
            "peer_id=-TR4050-x7kq2m9zp4ab&port=1".to_string(),
            "missing info_hash",
        ),
        (format!("info_hash={hash}&port=1"), "missing peer_id"),
        (
            format!("info_hash={hash}&peer_id=-TR4050-x7kq2m9zp4ab"),
            "missing port",
        ),
        (String::new(), "missing info_hash"),
    ] {
        assert_eq!(
            invalid_reason(&announce_with_query(&query)),
            reason,
            "{query}"
        );
    }
    assert_eq!(
        invalid_reason(b"GET /announce HTTP/1.1\r\n\r\n"),
        "missing info_hash"
    );
}

#[test]
fn non_numeric_numbers() {
    for (extra, reason) in [
        ("&port=abc", "port must be a number from 1 to 65535"),
        ("&port=65536", "port must be a number from 1 to 65535"),
        ("&port=", "port must be a number from 1 to 65535"),
        ("&port=-1", "port must be a number from 1 to 65535"),
        ("&port=+1", "port must be a number from 1 to 65535"),
        ("&port=0", "port must be a number from 1 to 65535"),
        ("&port=00", "port must be a number from 1 to 65535"),
        (
            "&uploaded=-1",
            "uploaded must be a number from 0 to 18446744073709551615",
        ),
        (
            "&downloaded=",
            "downloaded must be a number from 0 to 18446744073709551615",
        ),
        (
            "&left=1.5",
            "left must be a number from 0 to 18446744073709551615",
        ),
        (
            "&left=18446744073709551616",
            "left must be a number from 0 to 18446744073709551615",
        ),
        (
            "&left=0x10",
            "left must be a number from 0 to 18446744073709551615",
        ),
        ("&numwant=abc", "numwant must be a whole number"),
        ("&numwant=-", "numwant must be a whole number"),
    ] {
        assert_eq!(
            invalid_reason(&announce_with_query(&format!("{MINIMAL_QUERY}{extra}"))),
            reason,
            "{extra}"
        );
    }
    assert_eq!(
        parse_announce(&announce_with_query(&format!("{MINIMAL_QUERY}&port=01"))).port,
        1
    );
    assert_eq!(
        parse_announce(&announce_with_query(&format!(
            "{MINIMAL_QUERY}&port=065535"
        )))
        .port,
        65535
    );
}

#[test]
fn scrape_limits() {
    let hash = |n: u8| format!("%{n:02X}%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00");
    let scrape = |query: &str, max_scrape_torrents: usize| {
        let bytes = format!("GET /scrape?{query} HTTP/1.1\r\n\r\n");
        let options = ParseOptions {
            max_scrape_torrents,
            reverse_proxy_header: None,
            allowed_hosts: &[],
        };
        parse_request(bytes.as_bytes(), &options).map(|parsed| parsed.request)
    };
    let expected = |bytes: &[u8]| {
        Ok(Request::Scrape(ScrapeRequest {
            info_hashes: bytes
                .iter()
                .map(|&n| {
                    let mut hash = [0u8; 20];
                    hash[0] = n;
                    InfoHash(hash)
                })
                .collect(),
        }))
    };
    // Duplicates removed, sorted.
    let query = format!(
        "info_hash={}&info_hash={}&info_hash={}",
        hash(3),
        hash(1),
        hash(3)
    );
    assert_eq!(scrape(&query, 100), expected(&[1, 3]));
    // At most max kept; what follows is ignored, even when invalid.
    let query = format!(
        "info_hash={}&x=y&info_hash={}&info_hash=%zz",
        hash(3),
        hash(1)
    );
    assert_eq!(scrape(&query, 2), expected(&[1, 3]));
    assert_eq!(scrape(&query, 1), expected(&[3]));
    // No info hash: a full scrape is not offered.
    for query in ["", "x=y", "info_hashes=abc"] {
        assert!(matches!(
            scrape(query, 100),
            Err(RequestParseError::Invalid { reason, .. }) if reason == "scrape without info_hash"
        ));
    }
}

// ---------------------------------------------------------------------------
// Malformed HTTP: answered with 400

#[test]
fn raw_non_utf8_bytes_in_the_target_are_a_bad_request() {
    let mut bytes = b"GET /announce?info_hash=".to_vec();
    bytes.extend_from_slice(&INFO_HASH);
    bytes.extend_from_slice(b"&peer_id=-TR4050-x7kq2m9zp4ab&port=1 HTTP/1.1\r\n\r\n");
    assert_eq!(parse(&bytes), Err(RequestParseError::BadRequest));
}

#[test]
fn raw_utf8_bytes_in_ids_are_taken_as_bytes() {
    // 2 + 18 bytes: "é" is two bytes of UTF-8.
    let bytes = "GET /announce?info_hash=é012345678901234567&peer_id=-TR4050-x7kq2m9zp4ab&port=1 HTTP/1.1\r\n\r\n";
    assert_eq!(
        parse_announce(bytes.as_bytes()).info_hash,
        InfoHash(*b"\xc3\xa9012345678901234567")
    );
}

#[test]
fn methods_other_than_get_are_a_bad_request() {
    for method in ["POST", "HEAD", "PUT", "get", "OPTIONS"] {
        let bytes = announce_with_query(MINIMAL_QUERY);
        let bytes = [method.as_bytes(), &bytes[3..]].concat();
        assert_eq!(
            parse(&bytes),
            Err(RequestParseError::BadRequest),
            "{method}"
        );
    }
}

#[test]
fn a_body_is_a_bad_request() {
    let target = format!("GET /announce?{MINIMAL_QUERY} HTTP/1.1\r\n");
    for headers in [
        "Content-Length: 5\r\n\r\nhello",
        "Content-Length: 5\r\n\r\n",
        "content-length: 1\r\n\r\n",
        "Content-Length: x\r\n\r\n",
        "Content-Length: -1\r\n\r\n",
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding: identity\r\n\r\n",
    ] {
        let bytes = format!("{target}{headers}");
        assert_eq!(
            parse(bytes.as_bytes()),
            Err(RequestParseError::BadRequest),
            "{headers}"
        );
    }
    let bytes = format!("{target}Content-Length: 0\r\n\r\n");
    parse_announce(bytes.as_bytes());
}

#[test]
fn too_many_headers_are_a_bad_request() {
    let head = |count: usize| {
        let mut bytes = format!("GET /announce?{MINIMAL_QUERY} HTTP/1.1\r\n");
        for i in 0..count {
            bytes.push_str(&format!("X-Header-{i}: {i}\r\n"));
        }
        bytes.push_str("\r\n");
        bytes.into_bytes()
    };
    parse_announce(&head(MAX_HEADERS));
    assert_eq!(
        parse(&head(MAX_HEADERS + 1)),
        Err(RequestParseError::BadRequest)
    );
}

#[test]
fn not_http_is_a_bad_request() {
    for bytes in [
        &b"GET /announce HTTP/2.0\r\n\r\n"[..],
        b"GET /announce FTP/1.1\r\n\r\n",
        b"GET  HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
        b"GET /announce HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        assert_eq!(
            parse(bytes),
            Err(RequestParseError::BadRequest),
            "{}",
            escaped(bytes)
        );
    }
}

// ---------------------------------------------------------------------------
// Connection handling

#[test]
fn keep_alive_semantics() {
    let target = format!("GET /announce?{MINIMAL_QUERY}");
    for (version_and_headers, keep_alive, asked) in [
        ("HTTP/1.1\r\n", true, false),
        ("HTTP/1.1\r\nConnection: close\r\n", false, false),
        ("HTTP/1.1\r\nConnection: Keep-Alive\r\n", true, true),
        ("HTTP/1.1\r\nconnection: TE, close\r\n", false, false),
        ("HTTP/1.1\r\nConnection: TE\r\n", true, false),
        ("HTTP/1.0\r\n", false, false),
        ("HTTP/1.0\r\nConnection: keep-alive\r\n", true, true),
        ("HTTP/1.0\r\nConnection: Keep-Alive\r\n", true, true),
        (
            "HTTP/1.0\r\nConnection: keep-alive, close\r\n",
            false,
            false,
        ),
        ("HTTP/1.0\r\nConnection: close\r\n", false, false),
    ] {
        let bytes = format!("{target} {version_and_headers}\r\n");
        let parsed = parse(bytes.as_bytes()).unwrap();
        assert_eq!(parsed.keep_alive, keep_alive, "{version_and_headers:?}");
        assert_eq!(parsed.keep_alive_asked, asked, "{version_and_headers:?}");
    }
    // Carried by the errors the tracker answers too.
    let invalid = b"GET /announce?port=x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert!(matches!(
        parse(invalid),
        Err(RequestParseError::Invalid { keep_alive: true, consumed, .. }) if consumed == invalid.len()
    ));
}

#[test]
fn pipelined_requests() {
    let both = [TRANSMISSION_MAGNET, LIBTORRENT_STARTED, b"GET /ann"].concat();
    let first = parse(&both).unwrap();
    assert_eq!(first.consumed, TRANSMISSION_MAGNET.len());
    assert!(first.keep_alive);
    let rest = &both[first.consumed..];
    let second = parse(rest).unwrap();
    assert_eq!(second.consumed, LIBTORRENT_STARTED.len());
    assert_eq!(second, parse(LIBTORRENT_STARTED).unwrap());
    assert_eq!(
        parse(&rest[second.consumed..]),
        Err(RequestParseError::NeedMoreData)
    );
}

#[test]
fn every_prefix_of_a_request_needs_more_data() {
    for request in [LIBTORRENT_STARTED, TRANSMISSION_MAGNET, UTORRENT_STOPPED] {
        for end in 0..request.len() {
            assert_eq!(
                parse(&request[..end]),
                Err(RequestParseError::NeedMoreData),
                "{}",
                escaped(&request[..end])
            );
        }
        assert!(parse(request).is_ok());
    }
}

// ---------------------------------------------------------------------------
// Reverse proxy header

#[test]
fn reverse_proxy_header_rightmost_address() {
    let with_headers = |headers: &str| {
        format!("GET /announce?{MINIMAL_QUERY} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").into_bytes()
    };
    let forwarded = |header: Option<&str>, headers: &str| {
        let options = ParseOptions {
            max_scrape_torrents: 100,
            reverse_proxy_header: header,
            allowed_hosts: &[],
        };
        parse_request(&with_headers(headers), &options)
            .unwrap()
            .forwarded_ip
    };
    let v4 = |a, b, c, d| Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
    let xff = Some("X-Forwarded-For");
    // A client-supplied entry first, the one our proxy appended last.
    assert_eq!(
        forwarded(xff, "X-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n"),
        v4(203, 0, 113, 9)
    );
    assert_eq!(
        forwarded(xff, "x-forwarded-for:203.0.113.9\r\n"),
        v4(203, 0, 113, 9)
    );
    // Repeated header lines: the last line's last entry.
    assert_eq!(
        forwarded(
            xff,
            "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.7, 203.0.113.9\r\n"
        ),
        v4(203, 0, 113, 9)
    );
    // Unparsable entries are skipped.
    assert_eq!(
        forwarded(xff, "X-Forwarded-For: 203.0.113.9, unknown, \r\n"),
        v4(203, 0, 113, 9)
    );
    assert_eq!(
        forwarded(xff, "X-Forwarded-For: 6.6.6.6, 2001:db8::7 \r\n"),
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)))
    );
    for entry in ["203.0.113.9:4711", "[2001:db8::7]", "[2001:db8::7]:4711"] {
        assert!(
            forwarded(xff, &format!("X-Forwarded-For: 6.6.6.6, {entry}\r\n"))
                .is_some_and(|ip| ip != IpAddr::V4(Ipv4Addr::new(6, 6, 6, 6))),
            "{entry}"
        );
    }
    assert_eq!(
        forwarded(
            Some("X-Real-IP"),
            "X-Forwarded-For: 6.6.6.6\r\nX-Real-Ip: 198.51.100.1\r\n"
        ),
        v4(198, 51, 100, 1)
    );
    // Absent, all unparsable, or not asked for.
    assert_eq!(forwarded(xff, ""), None);
    assert_eq!(forwarded(xff, "X-Forwarded-For: unknown, \r\n"), None);
    assert_eq!(forwarded(xff, "X-Forwarded-For:\r\n"), None);
    assert_eq!(forwarded(None, "X-Forwarded-For: 203.0.113.9\r\n"), None);
}

// ---------------------------------------------------------------------------
// Request writer

#[test]
fn written_announce_is_byte_exact() {
    let request = Request::Announce(AnnounceRequest {
        info_hash: info_hash(),
        peer_id: peer_id(b"-qB4630-k8Xz~2Qn(d1L"),
        port: 6881,
        bytes_uploaded: 1,
        bytes_downloaded: 2,
        bytes_left: u64::MAX,
        event: AnnounceEvent::Completed,
        numwant: Some(200),
        compact: true,
        no_peer_id: true,
        key: Some("a b/ü".into()),
    });
    let mut out = Vec::new();
    request.write(&mut out, "/pk", "tracker.example.org:6969");
    let expected =
        b"GET /pk/announce?info_hash=%C9%E1%57%63%F7%22%F2%3E%98%A2%9D%EC%DF%AE%34%1B%98%D5%30%56\
&peer_id=%2D%71%42%34%36%33%30%2D%6B%38%58%7A%7E%32%51%6E%28%64%31%4C&port=6881\
&uploaded=1&downloaded=2&left=18446744073709551615&key=a%20b%2F%C3%BC&event=completed&numwant=200\
&compact=1&no_peer_id=1 HTTP/1.1\r\nHost: tracker.example.org:6969\r\n\r\n";
    assert_eq!(escaped(&out), escaped(expected));
    assert_eq!(parse(&out).unwrap().request, request);
}

#[test]
fn written_regular_announce_and_scrape_are_byte_exact() {
    let request = Request::Announce(AnnounceRequest {
        info_hash: InfoHash([0; 20]),
        peer_id: PeerId([0xff; 20]),
        port: 0,
        bytes_uploaded: 0,
        bytes_downloaded: 0,
        bytes_left: 0,
        event: AnnounceEvent::None,
        numwant: None,
        compact: false,
        no_peer_id: false,
        key: None,
    });
    let mut out = Vec::new();
    request.write(&mut out, "", "t");
    let expected = format!(
        "GET /announce?info_hash={}&peer_id={}&port=0&uploaded=0&downloaded=0&left=0&compact=0 HTTP/1.1\r\nHost: t\r\n\r\n",
        "%00".repeat(20),
        "%FF".repeat(20)
    );
    assert_eq!(escaped(&out), escaped(expected.as_bytes()));

    let request = Request::Scrape(ScrapeRequest {
        info_hashes: vec![InfoHash([0; 20]), InfoHash([0xab; 20])],
    });
    out.clear();
    request.write(&mut out, "", "t");
    let expected = format!(
        "GET /scrape?info_hash={}&info_hash={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "%00".repeat(20),
        "%AB".repeat(20)
    );
    assert_eq!(escaped(&out), escaped(expected.as_bytes()));
}

// ---------------------------------------------------------------------------
// Responses

fn announce_response() -> AnnounceResponse {
    AnnounceResponse {
        interval: 1800,
        min_interval: 30,
        complete: 5,
        incomplete: 2,
        peers: vec![
            ResponsePeer {
                ip_address: Ipv4Addr::new(1, 2, 3, 4),
                port: 6881,
                peer_id: PeerId(*b"-qB4630-k8Xz~2Qn(d1L"),
            },
            ResponsePeer {
                ip_address: Ipv4Addr::new(10, 0, 0, 2),
                port: 51413,
                peer_id: PeerId(*b"-TR4050-x7kq2m9zp4ab"),
            },
        ],
        peers6: vec![],
        external_ip: None,
        warning_message: None,
    }
}

fn v6_peer() -> ResponsePeer<Ipv6Addr> {
    ResponsePeer {
        ip_address: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        port: 6881,
        peer_id: PeerId(*b"-UT3550-abcdefghijkl"),
    }
}

fn written(response: &AnnounceResponse, format: PeerFormat) -> String {
    let mut out = Vec::new();
    response.write(&mut out, format);
    escaped(&out)
}

#[test]
fn compact_ipv4_peers() {
    // BEP 23: 4 address bytes then the port, both big-endian.
    let expected = b"d8:completei5e10:incompletei2e8:intervali1800e12:min intervali30e\
5:peers12:\x01\x02\x03\x04\x1a\xe1\x0a\x00\x00\x02\xc8\xd5e";
    assert_eq!(
        written(&announce_response(), PeerFormat::Compact),
        escaped(expected)
    );
}

#[test]
fn compact_without_peers_writes_an_empty_peers_string() {
    let response = AnnounceResponse {
        peers: vec![],
        complete: 0,
        incomplete: 0,
        ..announce_response()
    };
    let expected = b"d8:completei0e10:incompletei0e8:intervali1800e12:min intervali30e5:peers0:e";
    assert_eq!(written(&response, PeerFormat::Compact), escaped(expected));
}

#[test]
fn compact_ipv6_peers() {
    // BEP 7: `peers6`, 16 address bytes then the port.
    let response = AnnounceResponse {
        peers: vec![],
        peers6: vec![v6_peer()],
        ..announce_response()
    };
    let expected = b"d8:completei5e10:incompletei2e8:intervali1800e12:min intervali30e5:peers0:\
6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1e";
    assert_eq!(written(&response, PeerFormat::Compact), escaped(expected));
}

#[test]
fn external_ip_and_warning_message() {
    // BEP 24: the raw address bytes; keys stay in byte order.
    let response = AnnounceResponse {
        peers: vec![],
        external_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        warning_message: Some("tracker is tired".into()),
        ..announce_response()
    };
    let expected =
        b"d8:completei5e11:external ip4:\xc0\x00\x02\x0710:incompletei2e8:intervali1800e\
12:min intervali30e5:peers0:15:warning message16:tracker is tirede";
    assert_eq!(written(&response, PeerFormat::Compact), escaped(expected));

    let response = AnnounceResponse {
        peers: vec![],
        external_ip: Some(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xff,
        ))),
        ..announce_response()
    };
    let expected = b"d8:completei5e11:external ip16:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\
10:incompletei2e8:intervali1800e12:min intervali30e5:peers0:e";
    assert_eq!(written(&response, PeerFormat::Compact), escaped(expected));
}

#[test]
fn dictionary_peers_with_peer_id() {
    // BEP 3: one list, IPv4 then IPv6 peers, keys ip < peer id < port.
    let response = AnnounceResponse {
        peers: announce_response().peers[..1].to_vec(),
        peers6: vec![v6_peer()],
        ..announce_response()
    };
    let expected = b"d8:completei5e10:incompletei2e8:intervali1800e12:min intervali30e5:peersl\
d2:ip7:1.2.3.47:peer id20:-qB4630-k8Xz~2Qn(d1L4:porti6881ee\
d2:ip11:2001:db8::17:peer id20:-UT3550-abcdefghijkl4:porti6881ee\
ee";
    assert_eq!(
        written(
            &response,
            PeerFormat::Dictionary {
                include_peer_id: true
            }
        ),
        escaped(expected)
    );
}

#[test]
fn dictionary_peers_without_peer_id() {
    let expected = b"d8:completei5e10:incompletei2e8:intervali1800e12:min intervali30e5:peersl\
d2:ip7:1.2.3.44:porti6881ee\
d2:ip8:10.0.0.24:porti51413ee\
ee";
    assert_eq!(
        written(
            &announce_response(),
            PeerFormat::Dictionary {
                include_peer_id: false
            }
        ),
        escaped(expected)
    );
    let empty = AnnounceResponse {
        peers: vec![],
        ..announce_response()
    };
    let expected = b"d8:completei5e10:incompletei2e8:intervali1800e12:min intervali30e5:peerslee";
    assert_eq!(
        written(
            &empty,
            PeerFormat::Dictionary {
                include_peer_id: false
            }
        ),
        escaped(expected)
    );
}

#[test]
fn scrape_two_hashes_sorted() {
    let low = InfoHash([0x01; 20]);
    let high = InfoHash([0xfe; 20]);
    let response = ScrapeResponse {
        files: vec![
            (
                high,
                ScrapeStatistics {
                    complete: 10,
                    downloaded: 200,
                    incomplete: 3,
                },
            ),
            (
                low,
                ScrapeStatistics {
                    complete: 0,
                    downloaded: 0,
                    incomplete: 1,
                },
            ),
        ],
    };
    let mut out = Vec::new();
    response.write(&mut out);
    let mut expected = b"d5:filesd20:".to_vec();
    expected.extend_from_slice(&[0x01; 20]);
    expected.extend_from_slice(b"d8:completei0e10:downloadedi0e10:incompletei1ee20:");
    expected.extend_from_slice(&[0xfe; 20]);
    expected.extend_from_slice(b"d8:completei10e10:downloadedi200e10:incompletei3eeee");
    assert_eq!(escaped(&out), escaped(&expected));
}

#[test]
fn empty_scrape() {
    let mut out = Vec::new();
    ScrapeResponse { files: vec![] }.write(&mut out);
    assert_eq!(out, b"d5:filesdee");
}

#[test]
fn failure() {
    let mut out = Vec::new();
    write_failure(&mut out, "info_hash must be 20 bytes");
    assert_eq!(
        escaped(&out),
        escaped(b"d14:failure reason26:info_hash must be 20 bytese")
    );
    out.clear();
    write_failure(&mut out, "");
    assert_eq!(out, b"d14:failure reason0:e");
}

#[test]
fn http_heads() {
    let mut out = b"left over".to_vec();
    write_http_head(&mut out, 200, "OK", 123, true);
    assert_eq!(
        escaped(&out),
        escaped(b"left overHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 123\r\nConnection: keep-alive\r\n\r\n")
    );
    out.clear();
    write_http_head(&mut out, 404, "Not Found", 0, false);
    assert_eq!(
        escaped(&out),
        escaped(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    );
}

#[test]
fn responses_append_to_existing_bytes() {
    let mut out = b"HEAD".to_vec();
    announce_response().write(&mut out, PeerFormat::Compact);
    assert!(out.starts_with(b"HEADd8:complete"));
}
