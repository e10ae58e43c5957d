//! Property tests: every message we write reads back as itself, client
//! messages (`InMessage::to_json` -> `from_json`) and tracker messages
//! (`OutMessage::write_json` -> `OutMessage::from_json`) alike.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;

use aquatic_ws_protocol::*;
use common::js_parse;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = [u8; 20]> {
    prop_oneof![
        any::<[u8; 20]>(),
        // Mostly the awkward bytes, so they meet each other.
        proptest::array::uniform20(prop::sample::select(vec![
            0x00u8, 0x01, 0x08, 0x0a, 0x1f, b' ', b'"', b'/', b'\\', 0x7f, 0x80, 0x9f, 0xa0, 0xe9,
            0xff,
        ])),
    ]
}

/// Any text, control characters and astral-plane ones included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\"\\\\\u{7f}-\u{ff}\u{2028}\u{2029}\u{fffd}\u{1F600}a]{0,12}",
    ]
}

/// A JSON value; `null` only inside containers (a top-level `null` offer
/// or answer is the same as none on the wire).
fn value() -> impl Strategy<Value = JsonValue> {
    let leaf = prop_oneof![
        text().prop_map(JsonValue::from),
        any::<i64>().prop_map(JsonValue::from),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(JsonValue::from),
        any::<bool>().prop_map(JsonValue::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
            .prop_map(JsonValue::from),
    ];
    let nested = leaf.prop_recursive(4, 32, 6, |inner| {
        let inner = prop_oneof![inner, Just(JsonValue::from(()))];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(JsonValue::from),
            prop::collection::hash_map(text(), inner, 0..6).prop_map(JsonValue::from),
        ]
    });
    prop_oneof![
        3 => sdp_like(),
        1 => nested,
    ]
}

/// What simple-peer signals: an object of strings.
fn sdp_like() -> impl Strategy<Value = JsonValue> {
    (
        prop::sample::select(vec!["offer", "answer", "pranswer"]),
        text(),
        prop::collection::hash_map(text(), text(), 0..3),
    )
        .prop_map(|(kind, sdp, extra)| {
            let mut object: HashMap<String, JsonValue> = extra
                .into_iter()
                .map(|(k, v)| (k, JsonValue::from(v)))
                .collect();
            object.insert("type".into(), kind.into());
            object.insert("sdp".into(), sdp.into());
            JsonValue::from(object)
        })
}

fn event() -> impl Strategy<Value = AnnounceEvent> {
    prop::sample::select(vec![
        AnnounceEvent::Started,
        AnnounceEvent::Stopped,
        AnnounceEvent::Completed,
        AnnounceEvent::Update,
    ])
}

fn in_message() -> impl Strategy<Value = InMessage> {
    let offer = (id(), value()).prop_map(|(offer_id, offer)| Offer {
        offer_id: OfferId(offer_id),
        offer,
    });
    prop_oneof![
        (
            id(),
            id(),
            event(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            prop::collection::vec(offer, 0..4),
        )
            .prop_map(|(info_hash, peer_id, event, left, numwant, offers)| {
                InMessage::Announce(AnnounceRequest {
                    info_hash: InfoHash(info_hash),
                    peer_id: PeerId(peer_id),
                    event,
                    left,
                    numwant,
                    offers,
                })
            }),
        (id(), id(), id(), id(), value()).prop_map(
            |(info_hash, peer_id, to_peer_id, offer_id, answer)| {
                InMessage::Answer(AnswerRequest {
                    info_hash: InfoHash(info_hash),
                    peer_id: PeerId(peer_id),
                    to_peer_id: PeerId(to_peer_id),
                    offer_id: OfferId(offer_id),
                    answer,
                })
            }
        ),
        prop::collection::vec(id(), 0..8).prop_map(|hashes| InMessage::Scrape(ScrapeRequest {
            info_hashes: hashes.into_iter().map(InfoHash).collect(),
        })),
    ]
}

fn statistics() -> impl Strategy<Value = ScrapeStatistics> {
    (any::<usize>(), any::<usize>(), any::<u64>()).prop_map(|(complete, incomplete, downloaded)| {
        ScrapeStatistics {
            complete,
            incomplete,
            downloaded,
        }
    })
}

fn out_message() -> impl Strategy<Value = OutMessage> {
    prop_oneof![
        (id(), any::<usize>(), any::<usize>(), any::<u32>()).prop_map(
            |(info_hash, complete, incomplete, interval)| {
                OutMessage::AnnounceResponse(AnnounceResponse {
                    info_hash: InfoHash(info_hash),
                    complete,
                    incomplete,
                    interval,
                })
            }
        ),
        (id(), id(), id(), value()).prop_map(|(info_hash, peer_id, offer_id, offer)| {
            OutMessage::Offer(OfferMessage {
                info_hash: InfoHash(info_hash),
                peer_id: PeerId(peer_id),
                offer_id: OfferId(offer_id),
                offer,
            })
        }),
        (id(), id(), id(), value()).prop_map(|(info_hash, peer_id, offer_id, answer)| {
            OutMessage::Answer(AnswerMessage {
                info_hash: InfoHash(info_hash),
                peer_id: PeerId(peer_id),
                offer_id: OfferId(offer_id),
                answer,
            })
        }),
        // At most one entry per info hash, in any order.
        prop::collection::hash_map(id(), statistics(), 0..8).prop_map(|files| {
            OutMessage::ScrapeResponse(ScrapeResponse {
                files: files.into_iter().map(|(h, s)| (InfoHash(h), s)).collect(),
            })
        }),
        (
            text(),
            prop::option::of(prop::sample::select(vec![Action::Announce, Action::Scrape])),
            prop::option::of(id()),
        )
            .prop_map(|(reason, action, info_hash)| {
                OutMessage::Error(ErrorResponse {
                    failure_reason: reason.into(),
                    action,
                    info_hash: info_hash.map(InfoHash),
                })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn in_message_round_trips(message in in_message()) {
        let mut json = message.to_json();
        // Valid JSON for any reader, not only for simd-json.
        js_parse(&json);
        prop_assert_eq!(InMessage::from_json(&mut json), Ok(message));
    }

    #[test]
    fn out_message_round_trips(message in out_message()) {
        let mut json = Vec::new();
        message.write_json(&mut json);
        js_parse(&json);
        prop_assert_eq!(OutMessage::from_json(&mut json), Ok(message));
    }

    #[test]
    fn write_json_appends(message in out_message(), prefix in any::<Vec<u8>>()) {
        let mut out = prefix.clone();
        message.write_json(&mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &message.to_json()[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in any::<Vec<u8>>()) {
        let _ = InMessage::from_json(&mut bytes.clone());
        let _ = OutMessage::from_json(&mut bytes);
    }

    #[test]
    fn a_parsed_message_is_a_fixed_point(message in in_message(), noise in any::<Vec<(usize, u8)>>()) {
        // Flip bytes of a valid message: whatever still parses must write
        // back to text that parses to the same message.
        let mut json = message.to_json();
        for (at, byte) in noise.into_iter().take(4) {
            if !json.is_empty() {
                let at = at % json.len();
                json[at] = byte;
            }
        }
        if let Ok(parsed) = InMessage::from_json(&mut json) {
            prop_assert_eq!(InMessage::from_json(&mut parsed.to_json()), Ok(parsed));
        }
    }
}

/// Found by `out_message_round_trips`: `OutMessage::from_json` read
/// `files` into a map and lost the order the tracker wrote.
#[test]
fn scrape_reply_keeps_its_order() {
    let message = OutMessage::ScrapeResponse(ScrapeResponse {
        files: (0..16u8)
            .rev()
            .map(|n| (InfoHash([n; 20]), ScrapeStatistics::default()))
            .collect(),
    });
    assert_eq!(OutMessage::from_json(&mut message.to_json()), Ok(message));
}
