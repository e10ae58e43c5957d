//! The 20-byte ids on the wire: every byte value in every position, through
//! our writer, through JSON written by hand with every kind of escape, and
//! as a JavaScript client (here serde_json) reads our output.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use aquatic_ws_protocol::*;
use common::*;

/// Ids that together put every byte value in every position, plus the
/// awkward ones side by side.
fn awkward_ids() -> Vec<[u8; 20]> {
    let mut ids: Vec<[u8; 20]> = (0..=255u8)
        .map(|start| std::array::from_fn(|i| start.wrapping_add(i as u8)))
        .collect();
    // Each value alone, surrounded by plain letters, at every position.
    for value in 0..=255u8 {
        for position in [0, 1, 10, 19] {
            let mut id = [b'a'; 20];
            id[position] = value;
            ids.push(id);
        }
    }
    for value in [0x00, b'"', b'\\', b'\n', 0x1f, 0x7f, 0x80, 0xe9, 0xff] {
        ids.push([value; 20]);
    }
    ids.push(*b"\"\\\"\\\\\"/\x00\x7f\x80\xff\x08\x0c\n\r\t\x01\x1f \x7e");
    ids
}

fn announce(info_hash: [u8; 20], peer_id: [u8; 20]) -> InMessage {
    InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash(info_hash),
        peer_id: PeerId(peer_id),
        event: AnnounceEvent::Started,
        left: Some(1),
        numwant: Some(1),
        offers: vec![],
    })
}

#[test]
fn every_byte_value_round_trips_through_our_writer() {
    for id in awkward_ids() {
        let message = announce(id, id);
        let json = message.to_json();
        assert_eq!(parse_in_bytes(&json), Ok(message), "{id:?}");
    }
}

#[test]
fn every_byte_value_in_json_written_by_hand() {
    for id in awkward_ids() {
        for (peer_id, style) in [
            (js_string(&id), "JSON.stringify"),
            (escaped_string(&id, false), "\\u00xx"),
            (escaped_string(&id, true), "\\u00XX"),
        ] {
            let text = format!(
                r#"{{"action":"announce","info_hash":{},"peer_id":{peer_id},"left":1,"numwant":1,"event":"started"}}"#,
                js_string(&id)
            );
            assert_eq!(parse_in(&text), Ok(announce(id, id)), "{style}: {text}");
        }
    }
}

#[test]
fn escapes_and_raw_utf8_by_hand() {
    // One byte per line: JSON text for the character, the byte it means.
    let cases: &[(&str, u8)] = &[
        (r"\u0000", 0x00),
        (r"\u001f", 0x1f),
        (r"\b", 0x08),
        (r"\f", 0x0c),
        (r"\n", 0x0a),
        (r"\r", 0x0d),
        (r"\t", 0x09),
        (r#"\""#, b'"'),
        (r"\\", b'\\'),
        (r"\/", b'/'),
        ("/", b'/'),
        ("\x7f", 0x7f),
        (r"\u007F", 0x7f),
        ("\u{80}", 0x80),
        (r"\u0080", 0x80),
        ("é", 0xe9),
        (r"\u00e9", 0xe9),
        (r"\u00E9", 0xe9),
        ("ÿ", 0xff),
        (r"\u00ff", 0xff),
        (r"\u00FF", 0xff),
    ];
    for &(json, byte) in cases {
        let id_text = json.repeat(20);
        let text = format!(
            r#"{{"action":"scrape","info_hash":["{id_text}","{}{id_text}"]}}"#,
            ""
        );
        assert_eq!(
            parse_in(&text),
            Ok(InMessage::Scrape(ScrapeRequest {
                info_hashes: vec![InfoHash([byte; 20]); 2]
            })),
            "{text}"
        );
        // Mixed with plain characters on both sides.
        let mixed = format!("a{}b", json.repeat(18));
        let mut expected = [byte; 20];
        expected[0] = b'a';
        expected[19] = b'b';
        let text = format!(r#"{{"action":"scrape","info_hash":"{mixed}"}}"#);
        assert_eq!(
            parse_in(&text),
            Ok(InMessage::Scrape(ScrapeRequest {
                info_hashes: vec![InfoHash(expected)]
            })),
            "{text}"
        );
    }
}

#[test]
fn a_javascript_reader_sees_the_same_code_units() {
    let sdp = to_value(&sdp("offer", 1));
    for id in awkward_ids() {
        let messages = [
            OutMessage::AnnounceResponse(AnnounceResponse {
                info_hash: InfoHash(id),
                complete: 1,
                incomplete: 2,
                interval: 3,
            }),
            OutMessage::Offer(OfferMessage {
                info_hash: InfoHash(id),
                peer_id: PeerId(id),
                offer_id: OfferId(id),
                offer: sdp.clone(),
            }),
            OutMessage::Error(ErrorResponse {
                failure_reason: "x".into(),
                action: Some(Action::Announce),
                info_hash: Some(InfoHash(id)),
            }),
        ];
        for message in messages {
            let json = message.to_json();
            let value = js_parse(&json);
            for key in ["info_hash", "peer_id", "offer_id"] {
                if let Some(field) = value.get(key) {
                    assert_eq!(js_bytes(field), id, "{key} in {value}");
                }
            }
            assert_eq!(parse_out(&json), Ok(message));
        }
        let scrape = OutMessage::ScrapeResponse(ScrapeResponse {
            files: vec![(InfoHash(id), ScrapeStatistics::default())],
        });
        let value = js_parse(&scrape.to_json());
        let files = value["files"].as_object().unwrap();
        assert_eq!(files.len(), 1);
        let key = files.keys().next().unwrap();
        assert_eq!(js_bytes(&serde_json::Value::from(key.as_str())), id);

        let client = announce(id, id).to_json();
        let value = js_parse(&client);
        assert_eq!(js_bytes(&value["info_hash"]), id);
        assert_eq!(js_bytes(&value["peer_id"]), id);
    }
}

#[test]
fn our_output_is_json_stringify_compatible() {
    // serde_json, reading our text and writing it again, must give text we
    // read back to the same message: no escape of ours is one only we know.
    for id in awkward_ids() {
        let message = OutMessage::Answer(AnswerMessage {
            info_hash: InfoHash(id),
            peer_id: PeerId(id),
            offer_id: OfferId(id),
            answer: to_value(&sdp("answer", 2)),
        });
        let rewritten = serde_json::to_vec(&js_parse(&message.to_json())).unwrap();
        assert_eq!(parse_out(&rewritten), Ok(message));
    }
}
