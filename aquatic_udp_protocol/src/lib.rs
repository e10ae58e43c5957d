//! The UDP tracker protocol (BEP 15, with BEP 41 announce options) as plain
//! data: bytes in, typed requests and responses out, and back.
//!
//! Both directions of every packet are here, because the tracker parses
//! requests and writes responses while the load tester does the opposite.
//! Parsing is tolerant where real clients need it to be: trailing bytes are
//! accepted, BEP 41 options are walked (unknown types skipped), and event
//! values above 3 read as a regular announce. It never panics and never
//! allocates more than the packet's own size.
//!
//! Not here: sockets, connection id validation, or any swarm logic.

#![forbid(unsafe_code)]
mod reader;
pub mod request;
pub mod response;

pub use aquatic_wire::{InfoHash, PeerId};
pub use request::{
    AnnounceEvent, AnnounceRequest, ConnectRequest, Request, RequestParseError, ScrapeRequest,
};
pub use response::{
    AnnounceResponse, ConnectResponse, ErrorResponse, Response, ResponseParseError, ResponsePeer,
    ScrapeResponse, TorrentScrapeStatistics,
};

/// The magic constant opening every connect request.
pub const PROTOCOL_IDENTIFIER: i64 = 0x0417_2710_1980;

/// Chosen by the tracker in a connect response, echoed by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnectionId(pub i64);

/// Chosen by the client, echoed by the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub i32);

pub const ACTION_CONNECT: i32 = 0;
pub const ACTION_ANNOUNCE: i32 = 1;
pub const ACTION_SCRAPE: i32 = 2;
pub const ACTION_ERROR: i32 = 3;
