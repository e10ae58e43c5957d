//! aquatic_ws_protocol: the WebTorrent tracker protocol (JSON text messages
//! over WebSocket) as typed messages, without I/O.
//!
//! Clients send announces (with WebRTC offers for other peers), answers to
//! offers they received, and scrapes ([`InMessage`]); the tracker replies,
//! relays offers and answers, and reports failures ([`OutMessage`]).
//! Parsing uses simd-json through serde; the 20-byte ids travel as strings
//! of 20 characters U+0000..U+00FF, one per byte ([`id`]), and round-trip
//! byte-exactly. Anything malformed becomes a [`ParseError`] carrying the
//! failure reason to answer with, never a panic.

#![forbid(unsafe_code)]
#[macro_use]
mod visitor;
pub mod id;
mod request;
mod response;

use serde::Serialize;

pub use aquatic_wire::{InfoHash, PeerId};
pub use request::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, InMessage, Offer, ParseError, ScrapeRequest,
};
pub use response::{
    AnnounceResponse, AnswerMessage, ErrorResponse, OfferMessage, OutMessage, ScrapeResponse,
    ScrapeStatistics,
};
/// The JSON value of an offer's or answer's SDP, relayed unchanged.
pub use simd_json::OwnedValue as JsonValue;

/// The id a client gives each of its offers, echoed with the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OfferId(pub [u8; 20]);

/// A message's `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Announce,
    Scrape,
}
