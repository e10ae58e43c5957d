//! The HTTP tracker protocol (BEP 3, with BEP 7 IPv6 peers, BEP 23 compact
//! peers and BEP 24 external ip) as plain data: a request head in, a typed
//! announce or scrape request out; a typed response in, bencode out.
//!
//! Both directions of requests are here, because the tracker parses them and
//! the load tester writes them (`request_write`); responses are only written (a client that
//! wants to read them can use any bencode decoder).
//!
//! ```text
//!   bytes from the socket ──parse_request──▶ ParsedRequest { request, consumed,
//!                                             keep_alive, keep_alive_asked,
//!                                             forwarded_ip }
//!                         (a request whose Host is not one of
//!                          `ParseOptions::allowed_hosts`: `WrongHost`, 421)
//!                         ◀─ write_http_head + AnnounceResponse / ScrapeResponse
//!                                             / write_failure ─ response
//! ```
//!
//! Parsing is tolerant where real clients need it to be: unknown query keys
//! are ignored, `event=paused` and `event=empty` read as a regular announce,
//! `left` takes the whole `u64` range, missing byte counters read as 0, and
//! the announce path may carry a prefix (`/<passkey>/announce`). It is strict
//! where laxness would cost the tracker: a request with a body, any method
//! but `GET`, or more than [`MAX_HEADERS`] headers is a `400`. It never panics,
//! and allocates nothing but a scrape's info hash list and an announce's
//! `key`, both bounded by the size of the input.
//!
//! Not here: sockets, buffering, TLS, timeouts, deciding whether a reverse
//! proxy header may be trusted (the daemon checks the peer address first),
//! gzip, full scrapes, or any swarm logic.

#![forbid(unsafe_code)]
mod percent;
pub mod request;
mod request_write;
pub mod response;

pub use aquatic_wire::{InfoHash, PeerId};
pub use request::{
    AnnounceEvent, AnnounceRequest, MAX_HEADERS, MAX_KEY_LEN, ParseOptions, ParsedRequest, Request,
    RequestParseError, ScrapeRequest, parse_request,
};
pub use response::{
    AnnounceResponse, PeerFormat, ResponsePeer, ScrapeResponse, ScrapeStatistics, write_failure,
    write_http_head,
};
