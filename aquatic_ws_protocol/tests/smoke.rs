use aquatic_ws_protocol::*;

#[test]
fn announce_with_offer_and_awkward_ids_round_trips() {
    let hash: [u8; 20] = std::array::from_fn(|i| [0u8, b'"', b'\\', 0x7f, 0x80, 0xff, b'\n'][i % 7]);
    let msg = InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash(hash),
        peer_id: PeerId([0xfe; 20]),
        event: AnnounceEvent::Started,
        left: None,
        numwant: Some(10),
        offers: vec![Offer {
            offer_id: OfferId([1; 20]),
            offer: simd_json::json!({"type": "offer", "sdp": "v=0\r\n"}).into(),
        }],
    });
    let mut json = msg.to_json();
    let text = String::from_utf8(json.clone()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["info_hash"].as_str().unwrap().chars().count(), 20);
    assert_eq!(InMessage::from_json(&mut json).unwrap(), msg);

    let out = OutMessage::Error(ErrorResponse {
        failure_reason: "x".into(),
        action: Some(Action::Announce),
        info_hash: Some(InfoHash(hash)),
    });
    let mut json = out.to_json();
    assert_eq!(OutMessage::from_json(&mut json).unwrap(), out);
}
