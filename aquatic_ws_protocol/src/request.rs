//! Messages from a WebTorrent client to the tracker.
//!
//! Parsing is two steps: simd-json reads the text into a loose struct with
//! every field optional (fast, no buffering, unknown fields skipped), then
//! [`InMessage::from_raw`] checks it and builds the typed message. So a
//! bad field gets a failure reason naming it, with the action and info
//! hash when those were readable.

use std::borrow::Cow;
use std::fmt;

use aquatic_common::{InfoHash, PeerId};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use simd_json::OwnedValue;

use crate::id;
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
        match simd_json::serde::from_slice::<RawIn>(json) {
            Ok(raw) => Self::from_raw(raw),
            Err(err) => Err(ParseError {
                reason: Cow::Owned(format!("invalid message: {err}")),
                action: None,
                info_hash: None,
            }),
        }
    }

    fn from_raw(raw: RawIn<'_>) -> Result<Self, ParseError> {
        let action = match raw.action.as_deref() {
            Some("announce") => Action::Announce,
            Some("scrape") => Action::Scrape,
            Some(_) => return Err(failure("unknown action", None, None)),
            None => return Err(failure("missing action", None, None)),
        };
        if action == Action::Scrape {
            let info_hashes = match raw.info_hash {
                None => Vec::new(),
                Some(RawIds::One(text)) => vec![scrape_hash(&text)?],
                Some(RawIds::Many(list)) => list
                    .iter()
                    .map(|text| scrape_hash(text))
                    .collect::<Result<_, _>>()?,
            };
            return Ok(InMessage::Scrape(ScrapeRequest { info_hashes }));
        }

        let info_hash = match &raw.info_hash {
            Some(RawIds::One(text)) => id::decode(text).map(InfoHash),
            _ => None,
        }
        .ok_or_else(|| invalid("info_hash", None))?;
        let known = Some(info_hash);
        let peer_id = required_id(raw.peer_id.as_deref(), "peer_id", known).map(PeerId)?;

        if let Some(answer) = raw.answer {
            return Ok(InMessage::Answer(AnswerRequest {
                info_hash,
                peer_id,
                to_peer_id: required_id(raw.to_peer_id.as_deref(), "to_peer_id", known)
                    .map(PeerId)?,
                offer_id: required_id(raw.offer_id.as_deref(), "offer_id", known).map(OfferId)?,
                answer,
            }));
        }

        let offers = raw
            .offers
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                Ok(Offer {
                    offer_id: required_id(o.offer_id.as_deref(), "offer_id", known)
                        .map(OfferId)?,
                    offer: o.offer.ok_or_else(|| {
                        failure("an offer without its \"offer\"", Some(Action::Announce), known)
                    })?,
                })
            })
            .collect::<Result<_, ParseError>>()?;
        Ok(InMessage::Announce(AnnounceRequest {
            info_hash,
            peer_id,
            event: raw
                .event
                .as_deref()
                .map(AnnounceEvent::parse)
                .unwrap_or_default(),
            left: raw.left.and_then(|n| n.0),
            numwant: raw.numwant.and_then(|n| n.0),
            offers,
        }))
    }

    /// The message as a client sends it.
    pub fn to_json(&self) -> Vec<u8> {
        let result = match self {
            InMessage::Announce(r) => simd_json::to_vec(&AnnounceJson {
                action: "announce",
                info_hash: &r.info_hash.0,
                peer_id: &r.peer_id.0,
                event: r.event.as_str(),
                left: r.left,
                numwant: r.numwant,
                offers: r
                    .offers
                    .iter()
                    .map(|o| OfferJson {
                        offer: &o.offer,
                        offer_id: &o.offer_id.0,
                    })
                    .collect(),
            }),
            InMessage::Answer(r) => simd_json::to_vec(&AnswerJson {
                action: "announce",
                info_hash: &r.info_hash.0,
                peer_id: &r.peer_id.0,
                to_peer_id: &r.to_peer_id.0,
                offer_id: &r.offer_id.0,
                answer: &r.answer,
            }),
            InMessage::Scrape(r) => simd_json::to_vec(&ScrapeJson {
                action: "scrape",
                info_hash: r
                    .info_hashes
                    .iter()
                    .map(|h| id::encode(&h.0))
                    .collect(),
            }),
        };
        // Serializing these types cannot fail (string keys, no floats).
        result.unwrap_or_default()
    }
}

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
    text: Option<&str>,
    field: &str,
    info_hash: Option<InfoHash>,
) -> Result<[u8; 20], ParseError> {
    text.and_then(id::decode)
        .ok_or_else(|| invalid(field, info_hash))
}

fn scrape_hash(text: &str) -> Result<InfoHash, ParseError> {
    id::decode(text).map(InfoHash).ok_or_else(|| ParseError {
        action: Some(Action::Scrape),
        ..invalid("info_hash", None)
    })
}

/// Every field a client message may have, none required.
#[derive(Deserialize)]
struct RawIn<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    info_hash: Option<RawIds<'a>>,
    #[serde(borrow)]
    peer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    left: Option<LooseNumber>,
    numwant: Option<LooseNumber>,
    #[serde(borrow)]
    offers: Option<Vec<RawOffer<'a>>>,
    answer: Option<OwnedValue>,
    #[serde(borrow)]
    to_peer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    offer_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawOffer<'a> {
    offer: Option<OwnedValue>,
    #[serde(borrow)]
    offer_id: Option<Cow<'a, str>>,
}

/// `info_hash`: a string, or for a scrape also an array of strings.
enum RawIds<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawIds<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawIds<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawIds::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawIds::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(text) = seq.next_element::<Cow<'de, str>>()? {
                    list.push(text);
                }
                Ok(RawIds::Many(list))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A count from JavaScript: any JSON number; negatives count as 0,
/// fractions are cut, `null` (how `Infinity` and `NaN` are sent) and
/// anything past `u64::MAX` as unknown.
struct LooseNumber(Option<u64>);

impl<'de> Deserialize<'de> for LooseNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LooseNumber;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LooseNumber(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LooseNumber(Some(u64::try_from(v).unwrap_or(0))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // `as` saturates: negatives -> 0; too large is unknown.
                Ok(LooseNumber(
                    (v.is_finite() && v < u64::MAX as f64).then_some(v as u64),
                ))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LooseNumber(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Serialize)]
struct AnnounceJson<'a> {
    action: &'static str,
    #[serde(serialize_with = "id::serialize")]
    info_hash: &'a [u8; 20],
    #[serde(serialize_with = "id::serialize")]
    peer_id: &'a [u8; 20],
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
    #[serde(serialize_with = "id::serialize")]
    offer_id: &'a [u8; 20],
}

#[derive(Serialize)]
struct AnswerJson<'a> {
    action: &'static str,
    #[serde(serialize_with = "id::serialize")]
    info_hash: &'a [u8; 20],
    #[serde(serialize_with = "id::serialize")]
    peer_id: &'a [u8; 20],
    #[serde(serialize_with = "id::serialize")]
    to_peer_id: &'a [u8; 20],
    #[serde(serialize_with = "id::serialize")]
    offer_id: &'a [u8; 20],
    answer: &'a OwnedValue,
}

#[derive(Serialize)]
struct ScrapeJson {
    action: &'static str,
    info_hash: Vec<String>,
}
