//! Messages from a WebTorrent client to the tracker.
//!
//! Parsing is two steps: simd-json reads the text into a loose struct with
//! every field optional (fast, no buffering, unknown fields skipped), then
//! [`InMessage::from_raw`] checks it and builds the typed message. So a
//! bad field gets a failure reason naming it, with the action and info
//! hash when those were readable.

use std::borrow::Cow;
use std::fmt;

use aquatic_wire::{InfoHash, PeerId};

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
use serde::{Deserialize, Serialize};
use simd_json::OwnedValue;

use crate::id::{self, IdText};
use crate::{Action, OfferId};

/// What a client can send.
#[derive(Clone, Debug, PartialEq)]
pub enum InMessage {
    Announce(AnnounceRequest),
    /// An announce carrying `answer`: relay it to the peer whose offer it
    /// answers. Nothing else happens (the sender's swarm status stays).
    Answer(AnswerRequest),
    Scrape(ScrapeRequest),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnnounceEvent {
    Started,
    Stopped,
    Completed,
    /// A regular announce: `update`, an empty or absent event, or one this
    /// tracker does not know (a client is better served than refused).
    #[default]
    Update,
}

impl AnnounceEvent {
    fn parse(text: &str) -> Self {
        match text {
            "started" => Self::Started,
            "stopped" => Self::Stopped,
            "completed" => Self::Completed,
            _ => Self::Update,
        }
    }

    fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Started => Some("started"),
            Self::Stopped => Some("stopped"),
            Self::Completed => Some("completed"),
            Self::Update => None,
        }
    }
}

/// One WebRTC offer: the SDP object, relayed to another peer unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    pub offer_id: OfferId,
    pub offer: OwnedValue,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub event: AnnounceEvent,
    /// Bytes left; `None` when unknown (a magnet link before its metadata:
    /// JavaScript sends `Infinity` as `null`).
    pub left: Option<u64>,
    pub numwant: Option<u64>,
    pub offers: Vec<Offer>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AnswerRequest {
    pub info_hash: InfoHash,
    /// The answering peer.
    pub peer_id: PeerId,
    /// The peer that made the offer.
    pub to_peer_id: PeerId,
    pub offer_id: OfferId,
    pub answer: OwnedValue,
}

/// Counts for the listed torrents (an empty list gets an empty answer:
/// there is no full scrape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    pub info_hashes: Vec<InfoHash>,
}

/// A message that could not be understood: the failure reason to answer
/// with, and what was known of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub reason: Cow<'static, str>,
    pub action: Option<Action>,
    pub info_hash: Option<InfoHash>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseError {}

impl InMessage {
    /// Parse one text message. simd-json works in place: `json` is
    /// scrambled afterwards.
    pub fn from_json(json: &mut [u8]) -> Result<Self, ParseError> {
        match simd_json::serde::from_slice::<RawMessage>(json) {
            Ok(RawMessage(raw)) => Self::from_raw(raw),
            Err(err) => Err(ParseError {
                reason: Cow::Owned(match err.error() {
                    simd_json::ErrorType::Serde(message) => format!("invalid message: {message}"),
                    other => format!("invalid JSON at byte {}: {other:?}", err.index()),
                }),
                action: None,
                info_hash: None,
            }),
        }
    }

    fn from_raw(raw: RawIn<'_>) -> Result<Self, ParseError> {
        let action = match &raw.action {
            Some(RawText::Text(text)) if text == "announce" => Action::Announce,
            Some(RawText::Text(text)) if text == "scrape" => Action::Scrape,
            Some(_) => return Err(failure("unknown action", None, None)),
            None => return Err(failure("missing action", None, None)),
        };
        if action == Action::Scrape {
            let info_hashes = match raw.info_hash {
                None => Vec::new(),
                Some(RawIds::One(text)) => vec![scrape_hash(Some(&text))?],
                Some(RawIds::Many(list)) => list
                    .iter()
                    .map(|text| scrape_hash(text.as_str()))
                    .collect::<Result<_, _>>()?,
                Some(RawIds::Other) => vec![scrape_hash(None)?],
            };
            return Ok(InMessage::Scrape(ScrapeRequest { info_hashes }));
        }

        let info_hash = match &raw.info_hash {
            Some(RawIds::One(text)) => id::decode(text).map(InfoHash),
            _ => None,
        }
        .ok_or_else(|| invalid("info_hash", None))?;
        let known = Some(info_hash);
        let announce_failure = |reason| failure(reason, Some(Action::Announce), known);
        let peer_id = required_id(raw.peer_id.as_ref(), "peer_id", known).map(PeerId)?;

        if let Some(answer) = raw.answer {
            return Ok(InMessage::Answer(AnswerRequest {
                info_hash,
                peer_id,
                to_peer_id: required_id(raw.to_peer_id.as_ref(), "to_peer_id", known)
                    .map(PeerId)?,
                offer_id: required_id(raw.offer_id.as_ref(), "offer_id", known).map(OfferId)?,
                answer,
            }));
        }

        let offers = match raw.offers {
            None => Vec::new(),
            Some(RawOffers::List(list)) => list
                .into_iter()
                .map(|o| {
                    let o = o.ok_or_else(|| announce_failure(INVALID_OFFERS))?;
                    Ok(Offer {
                        offer_id: required_id(o.offer_id.as_ref(), "offer_id", known)
                            .map(OfferId)?,
                        offer: o
                            .offer
                            .ok_or_else(|| announce_failure("an offer without its \"offer\""))?,
                    })
                })
                .collect::<Result<_, ParseError>>()?,
            Some(RawOffers::Other) => return Err(announce_failure(INVALID_OFFERS)),
        };
        let event = match &raw.event {
            None => AnnounceEvent::default(),
            Some(RawText::Text(text)) => AnnounceEvent::parse(text),
            Some(RawText::Other) => return Err(announce_failure("event must be a string")),
        };
        let number = |n: Option<RawNumber>, reason| match n {
            None | Some(RawNumber::Unknown) => Ok(None),
            Some(RawNumber::Known(n)) => Ok(Some(n)),
            Some(RawNumber::Invalid) => Err(announce_failure(reason)),
        };
        Ok(InMessage::Announce(AnnounceRequest {
            info_hash,
            peer_id,
            event,
            left: number(raw.left, "left must be a number or null")?,
            numwant: number(raw.numwant, "numwant must be a number or null")?,
            offers,
        }))
    }

    /// The message as a client sends it.
    pub fn to_json(&self) -> Vec<u8> {
        let result = match self {
            InMessage::Announce(r) => simd_json::to_vec(&AnnounceJson {
                action: "announce",
                info_hash: IdText(&r.info_hash.0),
                peer_id: IdText(&r.peer_id.0),
                event: r.event.as_str(),
                left: r.left,
                numwant: r.numwant,
                offers: r
                    .offers
                    .iter()
                    .map(|o| OfferJson {
                        offer: &o.offer,
                        offer_id: IdText(&o.offer_id.0),
                    })
                    .collect(),
            }),
            InMessage::Answer(r) => simd_json::to_vec(&AnswerJson {
                action: "announce",
                info_hash: IdText(&r.info_hash.0),
                peer_id: IdText(&r.peer_id.0),
                to_peer_id: IdText(&r.to_peer_id.0),
                offer_id: IdText(&r.offer_id.0),
                answer: &r.answer,
            }),
            InMessage::Scrape(r) => simd_json::to_vec(&ScrapeJson {
                action: "scrape",
                info_hash: r.info_hashes.iter().map(|h| id::encode(&h.0)).collect(),
            }),
        };
        // Serializing these types cannot fail (string keys, no floats).
        result.unwrap_or_default()
    }
}

const INVALID_OFFERS: &str = "offers must be an array of objects with \"offer\" and \"offer_id\"";

fn failure(
    reason: &'static str,
    action: Option<Action>,
    info_hash: Option<InfoHash>,
) -> ParseError {
    ParseError {
        reason: Cow::Borrowed(reason),
        action,
        info_hash,
    }
}

fn invalid(field: &str, info_hash: Option<InfoHash>) -> ParseError {
    ParseError {
        reason: Cow::Owned(format!("{field} {}", id::INVALID_ID)),
        action: Some(Action::Announce),
        info_hash,
    }
}

fn required_id(
    text: Option<&RawText>,
    field: &str,
    info_hash: Option<InfoHash>,
) -> Result<[u8; 20], ParseError> {
    text.and_then(RawText::as_str)
        .and_then(id::decode)
        .ok_or_else(|| invalid(field, info_hash))
}

fn scrape_hash(text: Option<&str>) -> Result<InfoHash, ParseError> {
    text.and_then(id::decode)
        .map(InfoHash)
        .ok_or_else(|| ParseError {
            action: Some(Action::Scrape),
            ..invalid("info_hash", None)
        })
}

// The raw message. Every field is optional and accepts any JSON value, so
// that a field of the wrong type is reported by name, with the action and
// info hash, by `from_raw` rather than failing the whole message with
// neither (a JavaScript client drops a failure without `action`). Only
// invalid JSON, a message that is not an object and duplicate fields fail
// in serde.

/// The top level: an object (serde would also take an array as a struct).
struct RawMessage<'a>(RawIn<'a>);

deserialize_with_visitor!(RawMessage<'a>, deserialize_map, "a JSON object", {
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        RawIn::deserialize(MapAccessDeserializer::new(map)).map(RawMessage)
    }
});

#[derive(Deserialize)]
struct RawIn<'a> {
    #[serde(borrow)]
    action: Option<RawText<'a>>,
    #[serde(borrow)]
    info_hash: Option<RawIds<'a>>,
    #[serde(borrow)]
    peer_id: Option<RawText<'a>>,
    #[serde(borrow)]
    event: Option<RawText<'a>>,
    left: Option<RawNumber>,
    numwant: Option<RawNumber>,
    #[serde(borrow)]
    offers: Option<RawOffers<'a>>,
    answer: Option<OwnedValue>,
    #[serde(borrow)]
    to_peer_id: Option<RawText<'a>>,
    #[serde(borrow)]
    offer_id: Option<RawText<'a>>,
}

/// The visitor methods for the JSON types a field does not expect: they
/// skip the value and give `$other`.
macro_rules! anything_else_is {
    ($other:expr; $($kind:ident),*) => { $(anything_else_is!(@$kind $other);)* };
    (@scalars $other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($other) }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($other) }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($other) }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($other) }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok($other) }
    };
    (@str $other:expr) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($other) }
    };
    (@seq $other:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
    (@map $other:expr) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
}

/// A field expected to be a string.
enum RawText<'a> {
    Text(Cow<'a, str>),
    Other,
}

impl RawText<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            RawText::Text(text) => Some(text),
            RawText::Other => None,
        }
    }
}

deserialize_with_visitor!(RawText<'a>, deserialize_any, "any JSON value", {
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(RawText::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawText::Text(Cow::Owned(v.to_owned())))
    }
    anything_else_is!(RawText::Other; scalars, seq, map);
});

/// `info_hash`: a string, or for a scrape also an array of strings.
enum RawIds<'a> {
    One(Cow<'a, str>),
    Many(Vec<RawText<'a>>),
    Other,
}

deserialize_with_visitor!(RawIds<'a>, deserialize_any, "any JSON value", {
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(RawIds::One(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawIds::One(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(text) = seq.next_element::<RawText<'de>>()? {
            list.push(text);
        }
        Ok(RawIds::Many(list))
    }
    anything_else_is!(RawIds::Other; scalars, map);
});

/// `offers`: an array of objects; `None` for an element of another type.
enum RawOffers<'a> {
    List(Vec<Option<RawOffer<'a>>>),
    Other,
}

#[derive(Deserialize)]
struct RawOffer<'a> {
    offer: Option<OwnedValue>,
    #[serde(borrow)]
    offer_id: Option<RawText<'a>>,
}

/// One element of `offers`: an object, or anything else as `None`.
struct OfferElement<'a>(Option<RawOffer<'a>>);

deserialize_with_visitor!(OfferElement<'a>, deserialize_any, "any JSON value", {
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        RawOffer::deserialize(MapAccessDeserializer::new(map)).map(|o| OfferElement(Some(o)))
    }
    anything_else_is!(OfferElement(None); scalars, str, seq);
});

deserialize_with_visitor!(RawOffers<'a>, deserialize_any, "any JSON value", {
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(OfferElement(offer)) = seq.next_element::<OfferElement<'de>>()? {
            list.push(offer);
        }
        Ok(RawOffers::List(list))
    }
    anything_else_is!(RawOffers::Other; scalars, str, map);
});

/// A count from JavaScript: any JSON number; negatives count as 0,
/// fractions are cut, `null` (how `Infinity` and `NaN` are sent) and
/// anything past `u64::MAX` as unknown; other types are invalid.
enum RawNumber {
    Known(u64),
    Unknown,
    Invalid,
}

deserialize_with_visitor!(RawNumber, deserialize_any, "any JSON value", {
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(RawNumber::Known(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(RawNumber::Known(u64::try_from(v).unwrap_or(0)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `as` saturates: negatives -> 0; too large is unknown.
        Ok(if v.is_finite() && v < u64::MAX as f64 {
            RawNumber::Known(v as u64)
        } else {
            RawNumber::Unknown
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawNumber::Unknown)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(RawNumber::Invalid)
    }
    anything_else_is!(RawNumber::Invalid; str, seq, map);
});

#[derive(Serialize)]
struct AnnounceJson<'a> {
    action: &'static str,
    info_hash: IdText<'a>,
    peer_id: IdText<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    left: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    numwant: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    offers: Vec<OfferJson<'a>>,
}

#[derive(Serialize)]
struct OfferJson<'a> {
    offer: &'a OwnedValue,
    offer_id: IdText<'a>,
}

#[derive(Serialize)]
struct AnswerJson<'a> {
    action: &'static str,
    info_hash: IdText<'a>,
    peer_id: IdText<'a>,
    to_peer_id: IdText<'a>,
    offer_id: IdText<'a>,
    answer: &'a OwnedValue,
}

#[derive(Serialize)]
struct ScrapeJson {
    action: &'static str,
    info_hash: Vec<String>,
}
