//! Input a client should not send: each is a `ParseError` with a reason a
//! person can act on, carrying the action and info hash when those were
//! readable, and never a panic.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use aquatic_ws_protocol::*;
use common::*;

const HASH: &str = "\"hhhhhhhhhhhhhhhhhhhh\"";
const PEER: &str = "\"pppppppppppppppppppp\"";
const KNOWN_HASH: InfoHash = InfoHash(*b"hhhhhhhhhhhhhhhhhhhh");

/// Parse, expect a failure, and check its reason is one a client can be
/// sent (some text, and valid JSON when written as a failure reason).
fn fails(text: impl AsRef<[u8]>) -> ParseError {
    let text = text.as_ref();
    let error = match parse_in_bytes(text) {
        Ok(message) => panic!("{:?} parsed as {message:?}", String::from_utf8_lossy(text)),
        Err(error) => error,
    };
    assert!(!error.reason.is_empty());
    let written = OutMessage::Error(error.clone().into()).to_json();
    assert_eq!(
        js_parse(&written)["failure reason"].as_str(),
        Some(&*error.reason)
    );
    error
}

fn assert_announce_failure(text: &str, field: &str, info_hash: Option<InfoHash>) {
    let error = fails(text);
    assert!(
        error.reason.contains(field),
        "{text}: reason {:?} does not name {field}",
        error.reason
    );
    assert_eq!(error.action, Some(Action::Announce), "{text}");
    assert_eq!(error.info_hash, info_hash, "{text}");
}

fn id_of_length(n: usize) -> String {
    format!("\"{}\"", "i".repeat(n))
}

/// Ids that are not 20 characters U+0000..U+00FF, as JSON.
fn bad_ids() -> Vec<String> {
    let mut ids: Vec<String> = [0, 1, 19, 21, 40].into_iter().map(id_of_length).collect();
    ids.extend([
        // One character above U+00FF, raw and escaped, at each end.
        format!("\"{}\u{100}\"", "a".repeat(19)),
        format!("\"\u{100}{}\"", "a".repeat(19)),
        format!("\"{}\\u0100\"", "a".repeat(19)),
        format!("\"{}€\"", "a".repeat(19)),
        // An emoji (a surrogate pair in JavaScript) and its escape.
        format!("\"{}\u{1F600}\"", "a".repeat(19)),
        format!("\"{}\\ud83d\\ude00\"", "a".repeat(18)),
        // 20 bytes of UTF-8 but 10 characters, and 40 bytes as 20.
        format!("\"{}\"", "é".repeat(10)),
        format!("\"{}\"", "é".repeat(21)),
        // Wrong JSON types.
        "12345678901234567890".into(),
        "1.5".into(),
        "true".into(),
        "false".into(),
        "null".into(),
        "[]".into(),
        "[\"i\"]".into(),
        "{}".into(),
        format!("{{\"id\":{}}}", id_of_length(20)),
    ]);
    ids
}

#[test]
fn bad_info_hash_in_an_announce() {
    for id in bad_ids() {
        let text = format!(r#"{{"action":"announce","info_hash":{id},"peer_id":{PEER}}}"#);
        assert_announce_failure(&text, "info_hash", None);
    }
    // Absent.
    assert_announce_failure(
        &format!(r#"{{"action":"announce","peer_id":{PEER}}}"#),
        "info_hash",
        None,
    );
}

#[test]
fn bad_peer_ids_and_offer_ids_name_the_field_and_the_torrent() {
    for id in bad_ids() {
        let announce = format!(r#"{{"action":"announce","info_hash":{HASH},"peer_id":{id}}}"#);
        assert_announce_failure(&announce, "peer_id", Some(KNOWN_HASH));

        let offer = format!(
            r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"offers":[{{"offer":{{}},"offer_id":{}}},{{"offer":{{}},"offer_id":{id}}}]}}"#,
            id_of_length(20)
        );
        assert_announce_failure(&offer, "offer_id", Some(KNOWN_HASH));

        let to_peer = format!(
            r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"answer":{{}},"offer_id":{PEER},"to_peer_id":{id}}}"#
        );
        assert_announce_failure(&to_peer, "to_peer_id", Some(KNOWN_HASH));

        let answer_offer_id = format!(
            r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"answer":{{}},"to_peer_id":{PEER},"offer_id":{id}}}"#
        );
        assert_announce_failure(&answer_offer_id, "offer_id", Some(KNOWN_HASH));
    }
    // Absent.
    for (text, field) in [
        (
            format!(r#"{{"action":"announce","info_hash":{HASH}}}"#),
            "peer_id",
        ),
        (
            format!(
                r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"answer":{{}},"offer_id":{PEER}}}"#
            ),
            "to_peer_id",
        ),
        (
            format!(
                r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"answer":{{}},"to_peer_id":{PEER}}}"#
            ),
            "offer_id",
        ),
        (
            format!(
                r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"offers":[{{"offer":{{}}}}]}}"#
            ),
            "offer_id",
        ),
    ] {
        assert_announce_failure(&text, field, Some(KNOWN_HASH));
    }
}

#[test]
fn bad_scrape_hashes() {
    for id in bad_ids() {
        // Alone (an array id is a list of hashes: check it apart), and in
        // a list among good ones.
        for text in [
            format!(r#"{{"action":"scrape","info_hash":{id}}}"#),
            format!(r#"{{"action":"scrape","info_hash":[{HASH},{id}]}}"#),
        ] {
            if text.ends_with("\"info_hash\":[]}") || text.ends_with("\"info_hash\":null}") {
                continue; // no hashes: a valid scrape
            }
            let error = fails(&text);
            assert!(error.reason.contains("info_hash"), "{text}: {error:?}");
            assert_eq!(error.action, Some(Action::Scrape), "{text}");
            assert_eq!(error.info_hash, None);
        }
    }
}

#[test]
fn bad_offers_event_and_numbers() {
    let base = format!(r#""action":"announce","info_hash":{HASH},"peer_id":{PEER}"#);
    for offers in [
        "{}",
        "\"x\"",
        "1",
        "true",
        "[1]",
        "[\"offer\"]",
        "[[]]",
        "[null]",
    ] {
        let text = format!(r#"{{{base},"offers":{offers}}}"#);
        assert_announce_failure(&text, "offers", Some(KNOWN_HASH));
    }
    // An offer object without its SDP.
    for offer in ["", r#""offer":null,"#] {
        let text = format!(r#"{{{base},"offers":[{{{offer}"offer_id":{PEER}}}]}}"#);
        assert_announce_failure(&text, "offer", Some(KNOWN_HASH));
    }
    for event in ["1", "true", "[]", "{}"] {
        let text = format!(r#"{{{base},"event":{event}}}"#);
        assert_announce_failure(&text, "event", Some(KNOWN_HASH));
    }
    for field in ["left", "numwant"] {
        for value in ["\"5\"", "true", "[]", "{}", "[5]"] {
            let text = format!(r#"{{{base},"{field}":{value}}}"#);
            assert_announce_failure(&text, field, Some(KNOWN_HASH));
        }
    }
}

#[test]
fn numbers_javascript_may_send_are_taken_loosely() {
    let parse = |field: &str, value: &str| {
        let text = format!(
            r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"{field}":{value}}}"#
        );
        match parse_in(&text) {
            Ok(InMessage::Announce(a)) => (a.left, a.numwant),
            other => panic!("{text}: {other:?}"),
        }
    };
    for (value, expected) in [
        ("0", Some(0)),
        ("-0", Some(0)),
        ("-1", Some(0)),
        ("-9223372036854775808", Some(0)),
        ("-1.5", Some(0)),
        ("1.9", Some(1)),
        ("1e3", Some(1000)),
        ("1E+2", Some(100)),
        ("2.5e-3", Some(0)),
        ("18446744073709551615", Some(u64::MAX)),
        ("1e19", Some(10_000_000_000_000_000_000)),
        ("2e19", None), // past u64::MAX: unknown
        ("1.7976931348623157e308", None),
        ("null", None),
    ] {
        assert_eq!(parse("left", value).0, expected, "left {value}");
        assert_eq!(parse("numwant", value).1, expected, "numwant {value}");
    }
}

#[test]
fn numbers_beyond_what_json_readers_represent_are_refused() {
    // simd-json refuses integers past 64 bits and floats past f64; so does
    // the message, with a reason, whatever field they are in.
    for value in [
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "1e400",
        "-1e400",
    ] {
        for field in ["left", "numwant", "uploaded", "answer"] {
            let text = format!(
                r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"{field}":{value}}}"#
            );
            let error = fails(&text);
            assert!(error.reason.contains("invalid JSON"), "{error:?}");
        }
    }
}

#[test]
fn missing_and_unknown_actions() {
    for text in [
        format!(r#"{{"info_hash":{HASH},"peer_id":{PEER}}}"#),
        r#"{"action":null}"#.to_string(),
        "{}".to_string(),
    ] {
        let error = fails(&text);
        assert_eq!(error.reason, "missing action", "{text}");
        assert_eq!((error.action, error.info_hash), (None, None));
    }
    for action in [
        "\"connect\"",
        "\"\"",
        "\"Announce\"",
        "\"announce \"",
        "\"scrape\\u0000\"",
        "1",
        "true",
        "[\"announce\"]",
        "{\"announce\":1}",
    ] {
        let text = format!(r#"{{"action":{action},"info_hash":{HASH},"peer_id":{PEER}}}"#);
        let error = fails(&text);
        assert_eq!(error.reason, "unknown action", "{text}");
        assert_eq!((error.action, error.info_hash), (None, None));
    }
}

#[test]
fn invalid_json() {
    for text in [
        "",
        " ",
        "{",
        "}",
        "{\"action\"}",
        "{\"action\":}",
        "{\"action\":\"scrape\",}",
        "{'action':'scrape'}",
        "{action:\"scrape\"}",
        "{\"action\":\"scrape\"} {}",
        "{\"action\":\"scrape\"}x",
        "{\"action\":\"scrape\",\"info_hash\":[\"a\",]}",
        "{\"action\":\"scrape\" /* comment */}",
        "{\"action\":\"scrape\",\"x\":NaN}",
        "{\"action\":\"scrape\",\"x\":Infinity}",
        "{\"action\":\"scrape\",\"x\":01}",
        "{\"action\":\"scrape\",\"x\":.5}",
        "{\"action\":\"scrape\",\"x\":1.}",
        "{\"action\":\"scr\\ape\"}",
        "{\"action\":\"scrape\\u12\"}",
        "{\"action\":\"scrape\u{1}\"}",
        "{\"action\":\"scrape\",\"x\":\"\n\"}",
        "\u{feff}{\"action\":\"scrape\"}",
    ] {
        let error = fails(text);
        assert_eq!((error.action, error.info_hash), (None, None), "{text:?}");
    }
}

#[test]
fn not_an_object() {
    for text in [
        "[]",
        "[\"announce\",\"hhhhhhhhhhhhhhhhhhhh\",\"pppppppppppppppppppp\",null,null,null,null,null,null,null]",
        "\"announce\"",
        "1",
        "null",
        "true",
    ] {
        let error = fails(text);
        assert!(
            error.reason.contains("object") || error.reason.contains("JSON"),
            "{text}: {error:?}"
        );
    }
}

#[test]
fn duplicate_fields() {
    // Two values for one field: refused, not resolved one way or the other.
    for text in [
        r#"{"action":"scrape","action":"announce"}"#.to_string(),
        format!(r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"peer_id":{PEER}}}"#),
    ] {
        let error = fails(&text);
        assert!(error.reason.contains("duplicate"), "{error:?}");
    }
}

#[test]
fn non_utf8_bytes() {
    let base = format!(r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"x":"#);
    for bad in [
        &[0xff][..],
        &[0xe9],                   // Latin-1 é, not UTF-8
        &[0xc3],                   // a lead byte alone
        &[0xc3, 0x28],             // a lead byte without its continuation
        &[0x80],                   // a continuation byte alone
        &[0xc0, 0x80],             // overlong NUL
        &[0xe0, 0x80, 0xaf],       // overlong /
        &[0xed, 0xa0, 0x80],       // a UTF-16 surrogate
        &[0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    ] {
        // In a string value, in an id, in a key and outside any string.
        let mut in_value = base.clone().into_bytes();
        in_value.push(b'"');
        in_value.extend_from_slice(bad);
        in_value.extend_from_slice(b"\"}");

        let mut in_id =
            br#"{"action":"announce","peer_id":"pppppppppppppppppppp","info_hash":""#.to_vec();
        in_id.extend_from_slice(&[b'h'; 19]);
        in_id.extend_from_slice(bad);
        in_id.extend_from_slice(b"\"}");

        let mut in_key = b"{\"".to_vec();
        in_key.extend_from_slice(bad);
        in_key.extend_from_slice(b"\":1,\"action\":\"scrape\"}");

        let mut bare = base.clone().into_bytes();
        bare.extend_from_slice(bad);
        bare.push(b'}');

        for text in [in_value, in_id, in_key, bare] {
            let error = fails(&text);
            assert_eq!((error.action, error.info_hash), (None, None), "{text:?}");
        }
    }
}

#[test]
fn truncated_at_every_byte() {
    let offer = sdp("offer", 1);
    let messages = [
        format!(
            r#"{{"numwant":5,"uploaded":0,"downloaded":0,"left":null,"event":"started","action":"announce","info_hash":{},"peer_id":{PEER},"offers":[{{"offer":{offer},"offer_id":{}}}]}}"#,
            js_string(&[0x00, b'"', b'\\', 0xe9, 0x7f, 0x0a, 0xff, 0x80, b'a', b'b'].repeat(2)),
            escaped_string(&[0xe9; 20], false),
        ),
        format!(
            r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"to_peer_id":{PEER},"answer":{},"offer_id":{PEER}}}"#,
            sdp("answer", 2)
        ),
        format!(r#"{{"action":"scrape","info_hash":[{HASH},{HASH}]}}"#),
    ];
    for text in messages {
        let bytes = text.as_bytes();
        assert!(parse_in_bytes(bytes).is_ok(), "{text}");
        // Cut anywhere, also inside a UTF-8 sequence.
        for end in 0..bytes.len() {
            fails(&bytes[..end]);
        }
    }
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    // Run where the stack is small (a worker thread's default is 2 MiB).
    let run = |depth: usize| {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let open = "[".repeat(depth);
                let close = "]".repeat(depth);
                let objects = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
                [
                    format!(r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"to_peer_id":{PEER},"offer_id":{PEER},"answer":{open}{close}}}"#),
                    format!(r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"offers":[{{"offer_id":{PEER},"offer":{objects}}}]}}"#),
                    format!(r#"{{"action":"announce","info_hash":{HASH},"peer_id":{PEER},"ignored":{open}{close}}}"#),
                    format!(r#"{{"action":"scrape","info_hash":{open}{close}}}"#),
                    format!("{open}{close}"),
                ]
                .map(|text| parse_in(&text).map(|_| ()))
            })
            .unwrap()
            .join()
            .expect("parsing must not overflow the stack")
    };
    // Deep but plausible: accepted where the field takes any value.
    let shallow = run(20);
    assert!(shallow[0].is_ok() && shallow[1].is_ok() && shallow[2].is_ok());
    // Past the limit: refused everywhere.
    for depth in [2_000, 100_000] {
        for result in run(depth) {
            let error = result.unwrap_err();
            assert!(error.reason.contains("invalid JSON"), "{error:?}");
        }
    }
}

#[test]
fn large_messages_and_many_hashes_are_parsed_or_refused_cleanly() {
    // A long string in an ignored field and many scrape hashes: no panic.
    let long = format!(
        r#"{{"action":"scrape","junk":"{}","info_hash":[{}]}}"#,
        "x".repeat(1 << 20),
        vec![HASH; 5000].join(",")
    );
    match parse_in(&long) {
        Ok(InMessage::Scrape(scrape)) => assert_eq!(scrape.info_hashes.len(), 5000),
        other => panic!("{other:?}"),
    }
}
