//! Tracker messages built from fuzz bytes (ids with any bytes, counts of
//! any size, failure reasons and SDP values with any text, nested JSON
//! values with every kind of number), written and read back as a client
//! reads them: each must come back unchanged. Only a top-level `null`
//! offer or answer is left out: on the wire it means "none".

#![no_main]

use std::collections::HashMap;

use aquatic_ws_protocol::{
    Action, AnnounceResponse, AnswerMessage, ErrorResponse, InfoHash, JsonValue, OfferId,
    OfferMessage, OutMessage, PeerId, ScrapeResponse, ScrapeStatistics,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn value(u: &mut Unstructured, depth: u32) -> Result<JsonValue> {
    let kinds = if depth == 0 { 6 } else { 8 };
    Ok(match u.int_in_range(0..=kinds - 1)? {
        0 => JsonValue::from(u.arbitrary::<String>()?),
        1 => JsonValue::from(u.arbitrary::<i64>()?),
        2 => JsonValue::from(u.arbitrary::<u64>()?),
        3 => JsonValue::from(u.arbitrary::<bool>()?),
        4 => {
            let f = u.arbitrary::<f64>()?;
            JsonValue::from(if f.is_finite() { f } else { 0.5 })
        }
        5 => JsonValue::from(()),
        6 => {
            let mut list = Vec::new();
            for _ in 0..u.int_in_range(0..=4)? {
                list.push(value(u, depth - 1)?);
            }
            JsonValue::from(list)
        }
        _ => {
            let mut object = HashMap::new();
            for _ in 0..u.int_in_range(0..=4)? {
                object.insert(u.arbitrary::<String>()?, value(u, depth - 1)?);
            }
            JsonValue::from(object)
        }
    })
}

/// An offer or answer: usually an SDP-like object, sometimes any value
/// but `null`.
fn signal(u: &mut Unstructured) -> Result<JsonValue> {
    if u.ratio(3, 4)? {
        let mut object = HashMap::new();
        object.insert(
            "type".to_string(),
            JsonValue::from(u.arbitrary::<String>()?),
        );
        object.insert("sdp".to_string(), JsonValue::from(u.arbitrary::<String>()?));
        return Ok(JsonValue::from(object));
    }
    let v = value(u, 3)?;
    Ok(if v == JsonValue::from(()) {
        JsonValue::from(false)
    } else {
        v
    })
}

fn message(u: &mut Unstructured) -> Result<OutMessage> {
    Ok(match u.int_in_range(0..=4)? {
        0 => OutMessage::AnnounceResponse(AnnounceResponse {
            info_hash: InfoHash(u.arbitrary()?),
            complete: u.arbitrary()?,
            incomplete: u.arbitrary()?,
            interval: u.arbitrary()?,
        }),
        1 => OutMessage::Offer(OfferMessage {
            info_hash: InfoHash(u.arbitrary()?),
            peer_id: PeerId(u.arbitrary()?),
            offer_id: OfferId(u.arbitrary()?),
            offer: signal(u)?,
        }),
        2 => OutMessage::Answer(AnswerMessage {
            info_hash: InfoHash(u.arbitrary()?),
            peer_id: PeerId(u.arbitrary()?),
            offer_id: OfferId(u.arbitrary()?),
            answer: signal(u)?,
        }),
        3 => {
            // At most one entry per info hash, as the tracker writes it.
            let mut files: Vec<(InfoHash, ScrapeStatistics)> = Vec::new();
            for _ in 0..u.int_in_range(0..=16)? {
                let hash = InfoHash(u.arbitrary()?);
                if files.iter().all(|(h, _)| *h != hash) {
                    files.push((
                        hash,
                        ScrapeStatistics {
                            complete: u.arbitrary()?,
                            incomplete: u.arbitrary()?,
                            downloaded: u.arbitrary()?,
                        },
                    ));
                }
            }
            OutMessage::ScrapeResponse(ScrapeResponse { files })
        }
        _ => OutMessage::Error(ErrorResponse {
            failure_reason: u.arbitrary::<String>()?.into(),
            action: match u.int_in_range(0..=2)? {
                0 => None,
                1 => Some(Action::Announce),
                _ => Some(Action::Scrape),
            },
            info_hash: if u.arbitrary()? {
                Some(InfoHash(u.arbitrary()?))
            } else {
                None
            },
        }),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(message) = message(&mut Unstructured::new(data)) else {
        return;
    };
    let mut json = Vec::new();
    message.write_json(&mut json);
    assert!(std::str::from_utf8(&json).is_ok());
    match OutMessage::from_json(&mut json) {
        Ok(read) => assert_eq!(read, message),
        Err(error) => panic!("written {message:?} does not parse: {error}"),
    }
});
