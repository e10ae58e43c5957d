//! Messages from the tracker to a WebTorrent client.

use std::borrow::Cow;

use aquatic_wire::{InfoHash, PeerId};
use serde::de::MapAccess;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use simd_json::OwnedValue;

use crate::id::{self, IdText};
use crate::request::ParseError;
use crate::{Action, OfferId};

/// What the tracker sends.
#[derive(Clone, Debug, PartialEq)]
pub enum OutMessage {
    /// The reply to an announce.
    AnnounceResponse(AnnounceResponse),
    /// Another peer's offer, relayed.
    Offer(OfferMessage),
    /// The answer to one of this peer's offers, relayed.
    Answer(AnswerMessage),
    ScrapeResponse(ScrapeResponse),
    Error(ErrorResponse),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceResponse {
    pub info_hash: InfoHash,
    /// Seeders.
    pub complete: usize,
    /// Leechers.
    pub incomplete: usize,
    /// Seconds until the next announce.
    pub interval: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OfferMessage {
    pub info_hash: InfoHash,
    /// The peer that made the offer.
    pub peer_id: PeerId,
    pub offer_id: OfferId,
    pub offer: OwnedValue,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AnswerMessage {
    pub info_hash: InfoHash,
    /// The peer that answered.
    pub peer_id: PeerId,
    pub offer_id: OfferId,
    pub answer: OwnedValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScrapeStatistics {
    pub complete: usize,
    pub incomplete: usize,
    pub downloaded: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// At most one entry per info hash.
    pub files: Vec<(InfoHash, ScrapeStatistics)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    pub failure_reason: Cow<'static, str>,
    pub action: Option<Action>,
    pub info_hash: Option<InfoHash>,
}

impl From<ParseError> for ErrorResponse {
    fn from(e: ParseError) -> Self {
        Self {
            failure_reason: e.reason,
            action: e.action,
            info_hash: e.info_hash,
        }
    }
}

impl OutMessage {
    /// Append the message's JSON text to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let result = match self {
            OutMessage::AnnounceResponse(r) => simd_json::to_writer(
                &mut *out,
                &AnnounceResponseJson {
                    action: Action::Announce,
                    info_hash: IdText(&r.info_hash.0),
                    complete: r.complete,
                    incomplete: r.incomplete,
                    interval: r.interval,
                },
            ),
            OutMessage::Offer(m) => simd_json::to_writer(
                &mut *out,
                &RelayJson {
                    action: Action::Announce,
                    info_hash: IdText(&m.info_hash.0),
                    peer_id: IdText(&m.peer_id.0),
                    offer_id: IdText(&m.offer_id.0),
                    offer: Some(&m.offer),
                    answer: None,
                },
            ),
            OutMessage::Answer(m) => simd_json::to_writer(
                &mut *out,
                &RelayJson {
                    action: Action::Announce,
                    info_hash: IdText(&m.info_hash.0),
                    peer_id: IdText(&m.peer_id.0),
                    offer_id: IdText(&m.offer_id.0),
                    offer: None,
                    answer: Some(&m.answer),
                },
            ),
            OutMessage::ScrapeResponse(r) => simd_json::to_writer(
                &mut *out,
                &ScrapeResponseJson {
                    action: Action::Scrape,
                    files: FilesJson(&r.files),
                },
            ),
            OutMessage::Error(e) => simd_json::to_writer(
                &mut *out,
                &ErrorJson {
                    failure_reason: &e.failure_reason,
                    action: e.action,
                    info_hash: e.info_hash.as_ref().map(|h| id::encode(&h.0)),
                },
            ),
        };
        // Cannot fail: string keys, integers, a Vec as the writer.
        debug_assert!(result.is_ok());
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }

    /// Parse a tracker message, as a client does (load tester, tests).
    /// `json` is scrambled afterwards.
    pub fn from_json(json: &mut [u8]) -> Result<Self, String> {
        let raw: RawOut = simd_json::serde::from_slice(json).map_err(|e| e.to_string())?;
        let hash = |text: Option<&str>| {
            text.and_then(id::decode)
                .map(InfoHash)
                .ok_or("invalid or missing info_hash")
        };
        if let Some(reason) = raw.failure_reason {
            return Ok(OutMessage::Error(ErrorResponse {
                failure_reason: Cow::Owned(reason.into_owned()),
                action: match raw.action.as_deref() {
                    Some("announce") => Some(Action::Announce),
                    Some("scrape") => Some(Action::Scrape),
                    _ => None,
                },
                info_hash: raw.info_hash.as_deref().and_then(id::decode).map(InfoHash),
            }));
        }
        match raw.action.as_deref() {
            Some("announce") => {
                let info_hash = hash(raw.info_hash.as_deref())?;
                let relay_ids = || -> Result<(PeerId, OfferId), String> {
                    let peer_id = raw.peer_id.as_deref().and_then(id::decode);
                    let offer_id = raw.offer_id.as_deref().and_then(id::decode);
                    match (peer_id, offer_id) {
                        (Some(p), Some(o)) => Ok((PeerId(p), OfferId(o))),
                        _ => Err("invalid or missing peer_id or offer_id".into()),
                    }
                };
                if let Some(offer) = raw.offer.clone() {
                    let (peer_id, offer_id) = relay_ids()?;
                    Ok(OutMessage::Offer(OfferMessage {
                        info_hash,
                        peer_id,
                        offer_id,
                        offer,
                    }))
                } else if let Some(answer) = raw.answer.clone() {
                    let (peer_id, offer_id) = relay_ids()?;
                    Ok(OutMessage::Answer(AnswerMessage {
                        info_hash,
                        peer_id,
                        offer_id,
                        answer,
                    }))
                } else {
                    Ok(OutMessage::AnnounceResponse(AnnounceResponse {
                        info_hash,
                        complete: raw.complete.ok_or("missing complete")?,
                        incomplete: raw.incomplete.ok_or("missing incomplete")?,
                        interval: raw.interval.ok_or("missing interval")?,
                    }))
                }
            }
            Some("scrape") => {
                let files = raw
                    .files
                    .map(|files| files.0)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| Ok((hash(Some(&k))?, v)))
                    .collect::<Result<_, String>>()?;
                Ok(OutMessage::ScrapeResponse(ScrapeResponse { files }))
            }
            _ => Err("unknown or missing action".into()),
        }
    }
}

#[derive(Serialize)]
struct AnnounceResponseJson<'a> {
    action: Action,
    info_hash: IdText<'a>,
    complete: usize,
    incomplete: usize,
    interval: u32,
}

/// A relayed offer or answer.
#[derive(Serialize)]
struct RelayJson<'a> {
    action: Action,
    info_hash: IdText<'a>,
    peer_id: IdText<'a>,
    offer_id: IdText<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offer: Option<&'a OwnedValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<&'a OwnedValue>,
}

#[derive(Serialize)]
struct ScrapeResponseJson<'a> {
    action: Action,
    files: FilesJson<'a>,
}

struct FilesJson<'a>(&'a [(InfoHash, ScrapeStatistics)]);

impl Serialize for FilesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (hash, stats) in self.0 {
            map.serialize_entry(&id::encode(&hash.0), stats)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "failure reason")]
    failure_reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    info_hash: Option<String>,
}

#[derive(Deserialize)]
struct RawOut<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "failure reason")]
    failure_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    info_hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    peer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    offer_id: Option<Cow<'a, str>>,
    offer: Option<OwnedValue>,
    answer: Option<OwnedValue>,
    complete: Option<usize>,
    incomplete: Option<usize>,
    interval: Option<u32>,
    files: Option<FilesIn>,
}

/// `files` in the order written, so a scrape reply reads back as it was
/// built (a map would shuffle it).
struct FilesIn(Vec<(String, ScrapeStatistics)>);

deserialize_with_visitor!(
    FilesIn,
    deserialize_map,
    "an object of info hashes to statistics",
    {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut files = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
            while let Some(entry) = map.next_entry()? {
                files.push(entry);
            }
            Ok(FilesIn(files))
        }
    }
);
