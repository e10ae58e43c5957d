//! Messages exactly as the bittorrent-tracker JavaScript client (used by
//! webtorrent) writes them, and the tracker's replies as that client reads
//! them.
//!
//! The client builds an announce as `Object.assign({}, opts, {action,
//! info_hash, peer_id})`, so the announce options (numwant, uploaded,
//! downloaded, left, event) come before `action`; ids are binary strings
//! from `hex2bin`, serialised by `JSON.stringify` (see `common::js_string`).
//! `left` is `Math.max(length - downloaded, 0)`, which is `NaN`, written as
//! `null`, before a magnet link has its metadata.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use aquatic_ws_protocol::*;
use common::*;
use serde_json::json;

/// d2474e86c95b19b8bcfdb92bc12c9d44667cfa36: has a control character
/// (0x19), C1 controls (0x86, 0x9d) and Latin-1 letters.
const INFO_HASH: [u8; 20] = [
    0xd2, 0x47, 0x4e, 0x86, 0xc9, 0x5b, 0x19, 0xb8, 0xbc, 0xfd, 0xb9, 0x2b, 0xc1, 0x2c, 0x9d, 0x44,
    0x66, 0x7c, 0xfa, 0x36,
];
/// `INFO_HASH` as `JSON.stringify` writes it, by hand.
const INFO_HASH_JSON: &str = "\"ÒGN\u{86}É[\\u0019¸¼ý¹+Á,\u{9d}Df|ú6\"";
/// webtorrent's peer id: `-WW` + version + `-` + base64 of 9 random bytes.
const PEER_ID: &[u8; 20] = b"-WW0208-k2Hq9vQx/e+Z";
const OTHER_PEER_ID: &[u8; 20] = b"-WW0207-Tz0aL1mbn4s3";

fn offer_id(n: u8) -> [u8; 20] {
    // Random bytes in the client: include the awkward ones.
    std::array::from_fn(|i| [n, b'"', b'\\', 0x00, 0x7f, 0x80, 0xff, 0x0a, b'/'][i % 9])
}

#[test]
fn the_hand_written_info_hash_is_what_json_stringify_writes() {
    assert_eq!(js_string(&INFO_HASH), INFO_HASH_JSON);
}

fn started_announce(offers: usize) -> String {
    let offers: Vec<String> = (0..offers)
        .map(|n| {
            format!(
                r#"{{"offer":{},"offer_id":{}}}"#,
                sdp("offer", n as u64),
                js_string(&offer_id(n as u8))
            )
        })
        .collect();
    format!(
        r#"{{"numwant":{},"uploaded":0,"downloaded":0,"left":null,"event":"started","action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":{},"offers":[{}]}}"#,
        offers.len(),
        js_string(PEER_ID),
        offers.join(",")
    )
}

#[test]
fn started_announce_with_five_offers() {
    let text = started_announce(5);
    let Ok(InMessage::Announce(announce)) = parse_in(&text) else {
        panic!("not an announce: {:?}", parse_in(&text));
    };
    assert_eq!(announce.info_hash, InfoHash(INFO_HASH));
    assert_eq!(announce.peer_id, PeerId(*PEER_ID));
    assert_eq!(announce.event, AnnounceEvent::Started);
    assert_eq!(announce.left, None);
    assert_eq!(announce.numwant, Some(5));
    assert_eq!(announce.offers.len(), 5);
    for (n, offer) in announce.offers.iter().enumerate() {
        assert_eq!(offer.offer_id, OfferId(offer_id(n as u8)));
        assert_eq!(offer.offer, to_value(&sdp("offer", n as u64)));
    }
}

#[test]
fn started_announce_of_a_large_swarm_fits_the_message_limit() {
    // Ten offers of a few KiB each must parse (the daemon accepts 128 KiB).
    let mut text = started_announce(10);
    let padding = "a=candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host\\r\\n".repeat(40);
    text = text.replace("a=mid:0", &format!("{padding}a=mid:0"));
    assert!(text.len() > 30_000, "{}", text.len());
    let Ok(InMessage::Announce(announce)) = parse_in(&text) else {
        panic!("not an announce");
    };
    assert_eq!(announce.offers.len(), 10);
}

#[test]
fn periodic_announce_without_offers() {
    // A seeder's interval announce: no event, numwant 0 gives `offers: []`.
    let text = format!(
        r#"{{"numwant":0,"uploaded":1048576,"downloaded":0,"left":0,"action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":{},"offers":[]}}"#,
        js_string(PEER_ID)
    );
    let expected = InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash(INFO_HASH),
        peer_id: PeerId(*PEER_ID),
        event: AnnounceEvent::Update,
        left: Some(0),
        numwant: Some(0),
        offers: vec![],
    });
    assert_eq!(parse_in(&text), Ok(expected.clone()));

    // Without `offers` at all, and with `event: "update"` or `""`.
    for extra in [
        "",
        r#","event":"update""#,
        r#","event":"""#,
        r#","event":"paused""#,
    ] {
        let text = format!(
            r#"{{"action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":{},"numwant":0,"left":0{extra}}}"#,
            js_string(PEER_ID)
        );
        assert_eq!(parse_in(&text), Ok(expected.clone()), "{text}");
    }
}

#[test]
fn leecher_announce_with_a_known_length() {
    // 2^53 - 1, the largest integer JavaScript writes exactly.
    let text = format!(
        r#"{{"numwant":5,"uploaded":0,"downloaded":16384,"left":9007199254740991,"action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":{},"offers":[]}}"#,
        js_string(PEER_ID)
    );
    let Ok(InMessage::Announce(announce)) = parse_in(&text) else {
        panic!("not an announce");
    };
    assert_eq!(announce.left, Some(9_007_199_254_740_991));
    assert_eq!(announce.event, AnnounceEvent::Update);
}

#[test]
fn completed_and_stopped_announces_carry_no_offers() {
    for (event, expected) in [
        ("completed", AnnounceEvent::Completed),
        ("stopped", AnnounceEvent::Stopped),
    ] {
        // numwant is the client default (50), sent although no offers are.
        let text = format!(
            r#"{{"numwant":50,"uploaded":5242880,"downloaded":5242880,"left":0,"event":"{event}","action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":{}}}"#,
            js_string(PEER_ID)
        );
        assert_eq!(
            parse_in(&text),
            Ok(InMessage::Announce(AnnounceRequest {
                info_hash: InfoHash(INFO_HASH),
                peer_id: PeerId(*PEER_ID),
                event: expected,
                left: Some(0),
                numwant: Some(50),
                offers: vec![],
            }))
        );
    }
}

#[test]
fn answer_to_a_relayed_offer() {
    let answer = sdp("answer", 77);
    let text = format!(
        r#"{{"action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":{},"to_peer_id":{},"answer":{answer},"offer_id":{}}}"#,
        js_string(PEER_ID),
        js_string(OTHER_PEER_ID),
        js_string(&offer_id(3))
    );
    let expected = InMessage::Answer(AnswerRequest {
        info_hash: InfoHash(INFO_HASH),
        peer_id: PeerId(*PEER_ID),
        to_peer_id: PeerId(*OTHER_PEER_ID),
        offer_id: OfferId(offer_id(3)),
        answer: to_value(&answer),
    });
    assert_eq!(parse_in(&text), Ok(expected.clone()));

    // With the tracker id the client echoes once a tracker sent one.
    let with_tracker_id = text.replacen('{', r#"{"trackerid":"abc","#, 1);
    assert_eq!(parse_in(&with_tracker_id), Ok(expected));
}

#[test]
fn ignored_fields_of_any_type() {
    let text = format!(
        r#"{{"trackerid":"t1","uploaded":12.5,"downloaded":-1,"key":null,"extra":{{"a":[1,{{"b":"c"}},null,true]}},"action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":{}}}"#,
        js_string(PEER_ID)
    );
    assert!(matches!(parse_in(&text), Ok(InMessage::Announce(_))));
}

#[test]
fn scrape_with_one_hash_with_an_array_and_without() {
    assert_eq!(
        parse_in(&format!(
            r#"{{"action":"scrape","info_hash":{INFO_HASH_JSON}}}"#
        )),
        Ok(InMessage::Scrape(ScrapeRequest {
            info_hashes: vec![InfoHash(INFO_HASH)]
        }))
    );

    let other = [0x00, 0x22, 0x5c, 0xff, 0x7f]
        .into_iter()
        .cycle()
        .take(20)
        .collect::<Vec<u8>>();
    assert_eq!(
        parse_in(&format!(
            r#"{{"action":"scrape","info_hash":[{INFO_HASH_JSON},{}]}}"#,
            js_string(&other)
        )),
        Ok(InMessage::Scrape(ScrapeRequest {
            info_hashes: vec![InfoHash(INFO_HASH), InfoHash(other.try_into().unwrap())]
        }))
    );

    for text in [
        r#"{"action":"scrape"}"#,
        r#"{"action":"scrape","info_hash":[]}"#,
        r#"{"action":"scrape","info_hash":null}"#,
    ] {
        assert_eq!(
            parse_in(text),
            Ok(InMessage::Scrape(ScrapeRequest {
                info_hashes: vec![]
            })),
            "{text}"
        );
    }
}

#[test]
fn our_client_messages_read_like_the_javascript_ones() {
    // What `InMessage::to_json` writes (the load tester's messages) must
    // mean the same to a JSON reader as the JavaScript client's text.
    let Ok(message) = parse_in(&started_announce(2)) else {
        panic!()
    };
    let ours = js_parse(&message.to_json());
    let theirs: serde_json::Value = serde_json::from_str(&started_announce(2)).unwrap();
    for key in [
        "action",
        "info_hash",
        "peer_id",
        "event",
        "left",
        "numwant",
        "offers",
    ] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
}

// Replies, as `websocket-tracker.js` reads them: it needs `action`, drops a
// message whose `info_hash` is not its own binary string, ignores offers
// and answers whose `peer_id` is its own, takes `complete != null` as an
// announce reply, `offer && peer_id` as an offer and `answer && peer_id`
// (looked up by `offer_id`) as an answer.

#[test]
fn announce_reply() {
    let reply = OutMessage::AnnounceResponse(AnnounceResponse {
        info_hash: InfoHash(INFO_HASH),
        complete: 3,
        incomplete: 7,
        interval: 120,
    });
    let value = js_parse(&reply.to_json());
    assert_eq!(value["action"], "announce");
    assert_eq!(js_bytes(&value["info_hash"]), INFO_HASH);
    assert_eq!(value["complete"], 3);
    assert_eq!(value["incomplete"], 7);
    assert_eq!(value["interval"], 120);
    for absent in ["peer_id", "offer", "answer", "failure reason"] {
        assert!(value.get(absent).is_none(), "{absent}");
    }

    let reply = OutMessage::AnnounceResponse(AnnounceResponse {
        info_hash: InfoHash(*b"aaaaaaaaaaaaaaaaaaaa"),
        complete: 0,
        incomplete: 1,
        interval: 120,
    });
    assert_eq!(
        String::from_utf8(reply.to_json()).unwrap(),
        r#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","complete":0,"incomplete":1,"interval":120}"#
    );
}

#[test]
fn relayed_offer_carries_the_offerers_peer_id() {
    // The client's own announce, relayed to another peer.
    let Ok(InMessage::Announce(announce)) = parse_in(&started_announce(3)) else {
        panic!()
    };
    for (n, offer) in announce.offers.iter().enumerate() {
        let relayed = OutMessage::Offer(OfferMessage {
            info_hash: announce.info_hash,
            peer_id: announce.peer_id,
            offer_id: offer.offer_id,
            offer: offer.offer.clone(),
        });
        let value = js_parse(&relayed.to_json());
        assert_eq!(value["action"], "announce");
        assert_eq!(js_bytes(&value["info_hash"]), INFO_HASH);
        assert_eq!(js_bytes(&value["peer_id"]), *PEER_ID);
        assert_eq!(js_bytes(&value["offer_id"]), offer_id(n as u8));
        assert_eq!(value["offer"], sdp("offer", n as u64));
        for absent in ["answer", "complete", "incomplete", "to_peer_id"] {
            assert!(value.get(absent).is_none(), "{absent}");
        }
    }
}

#[test]
fn relayed_answer_carries_the_answerers_peer_id() {
    let relayed = OutMessage::Answer(AnswerMessage {
        info_hash: InfoHash(INFO_HASH),
        peer_id: PeerId(*OTHER_PEER_ID),
        offer_id: OfferId(offer_id(4)),
        answer: to_value(&sdp("answer", 4)),
    });
    let value = js_parse(&relayed.to_json());
    assert_eq!(value["action"], "announce");
    assert_eq!(js_bytes(&value["info_hash"]), INFO_HASH);
    assert_eq!(js_bytes(&value["peer_id"]), *OTHER_PEER_ID);
    assert_eq!(js_bytes(&value["offer_id"]), offer_id(4));
    assert_eq!(value["answer"], sdp("answer", 4));
    for absent in ["offer", "complete", "incomplete", "to_peer_id"] {
        assert!(value.get(absent).is_none(), "{absent}");
    }
}

#[test]
fn scrape_reply_files_map() {
    let other = [0xffu8; 20];
    let reply = OutMessage::ScrapeResponse(ScrapeResponse {
        files: vec![
            (
                InfoHash(INFO_HASH),
                ScrapeStatistics {
                    complete: 2,
                    incomplete: 5,
                    downloaded: 11,
                },
            ),
            (InfoHash(other), ScrapeStatistics::default()),
        ],
    });
    let value = js_parse(&reply.to_json());
    assert_eq!(value["action"], "scrape");
    let files = value["files"].as_object().unwrap();
    assert_eq!(files.len(), 2);
    let key: String = INFO_HASH.iter().map(|&b| char::from(b)).collect();
    assert_eq!(
        files[&key],
        json!({"complete": 2, "incomplete": 5, "downloaded": 11})
    );
    let key: String = other.iter().map(|&b| char::from(b)).collect();
    assert_eq!(
        files[&key],
        json!({"complete": 0, "incomplete": 0, "downloaded": 0})
    );

    let empty = OutMessage::ScrapeResponse(ScrapeResponse { files: vec![] });
    assert_eq!(
        js_parse(&empty.to_json()),
        json!({"action": "scrape", "files": {}})
    );
}

#[test]
fn failure_reason_with_action_and_info_hash() {
    let reply = OutMessage::Error(ErrorResponse {
        failure_reason: "info hash not allowed".into(),
        action: Some(Action::Announce),
        info_hash: Some(InfoHash(INFO_HASH)),
    });
    let value = js_parse(&reply.to_json());
    assert_eq!(value["failure reason"], "info hash not allowed");
    assert_eq!(value["action"], "announce");
    assert_eq!(js_bytes(&value["info_hash"]), INFO_HASH);

    let bare = OutMessage::Error(ErrorResponse {
        failure_reason: "invalid message".into(),
        action: None,
        info_hash: None,
    });
    assert_eq!(
        js_parse(&bare.to_json()),
        json!({"failure reason": "invalid message"})
    );
}

#[test]
fn a_bad_announce_is_answered_so_the_client_sees_it() {
    // A failure the client can match to its torrent: action and info_hash.
    let text = format!(r#"{{"action":"announce","info_hash":{INFO_HASH_JSON},"peer_id":"short"}}"#);
    let error = parse_in(&text).unwrap_err();
    let value = js_parse(&OutMessage::Error(error.into()).to_json());
    assert_eq!(value["action"], "announce");
    assert_eq!(js_bytes(&value["info_hash"]), INFO_HASH);
    assert!(
        value["failure reason"]
            .as_str()
            .unwrap()
            .contains("peer_id"),
        "{value}"
    );
}

#[test]
fn replies_written_by_the_javascript_tracker_are_read() {
    // bittorrent-tracker's server puts fields in another order and adds
    // some; OutMessage::from_json (the load tester) must not mind.
    let reply = format!(
        r#"{{"action":"announce","interval":120,"info_hash":{INFO_HASH_JSON},"complete":1,"incomplete":0,"min interval":60}}"#
    );
    assert_eq!(
        parse_out(reply.as_bytes()),
        Ok(OutMessage::AnnounceResponse(AnnounceResponse {
            info_hash: InfoHash(INFO_HASH),
            complete: 1,
            incomplete: 0,
            interval: 120,
        }))
    );
    let offer = format!(
        r#"{{"action":"announce","offer":{},"offer_id":{},"peer_id":{},"info_hash":{INFO_HASH_JSON}}}"#,
        sdp("offer", 1),
        js_string(&offer_id(1)),
        js_string(OTHER_PEER_ID)
    );
    assert_eq!(
        parse_out(offer.as_bytes()),
        Ok(OutMessage::Offer(OfferMessage {
            info_hash: InfoHash(INFO_HASH),
            peer_id: PeerId(*OTHER_PEER_ID),
            offer_id: OfferId(offer_id(1)),
            offer: to_value(&sdp("offer", 1)),
        }))
    );
}
