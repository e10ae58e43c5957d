//! Requests: connect, announce (with BEP 41 options), scrape.

use std::net::Ipv4Addr;

use crate::reader::Reader;
use crate::{
    ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_SCRAPE, ConnectionId, InfoHash, PROTOCOL_IDENTIFIER,
    PeerId, TransactionId,
};

/// Length of an announce request before its BEP 41 options.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AnnounceEvent {
    /// A regular announce (wire 0, and every value above 3).
    #[default]
    None,
    Completed,
    Started,
    Stopped,
}

impl AnnounceEvent {
    pub fn from_i32(value: i32) -> Self {
        match value {
            1 => Self::Completed,
            2 => Self::Started,
            3 => Self::Stopped,
            // 0, and e.g. libtorrent's internal "paused" (4) leaking onto the wire
            _ => Self::None,
        }
    }

    pub fn to_i32(self) -> i32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub transaction_id: TransactionId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub bytes_downloaded: i64,
    pub bytes_left: i64,
    pub bytes_uploaded: i64,
    pub event: AnnounceEvent,
    /// The client's claimed address; a public tracker ignores it.
    pub ip_address: Option<Ipv4Addr>,
    pub key: u32,
    /// -1 (or 0) asks for the tracker's default.
    pub peers_wanted: i32,
    pub port: u16,
    /// BEP 41 URL data (path and query of the announce URL), concatenated;
    /// empty when the client sent none.
    pub url_data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    pub connection_id: ConnectionId,
    pub transaction_id: TransactionId,
    pub info_hashes: Vec<InfoHash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Connect(ConnectRequest),
    Announce(AnnounceRequest),
    Scrape(ScrapeRequest),
}

/// Why a packet is not a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestParseError {
    /// The header was readable: the tracker may answer with an error
    /// response, once it has checked the connection id.
    Sendable {
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        message: &'static str,
    },
    /// Not even a header (or a connect with the wrong magic): drop it.
    Unsendable { message: &'static str },
}

impl RequestParseError {
    pub fn message(&self) -> &'static str {
        match self {
            Self::Sendable { message, .. } | Self::Unsendable { message } => message,
        }
    }
}

impl Request {
    /// Parse a request packet. A scrape keeps at most `max_scrape_hashes`
    /// info hashes (the rest are not answered).
    pub fn parse(bytes: &[u8], max_scrape_hashes: usize) -> Result<Self, RequestParseError> {
        let mut r = Reader::new(bytes);
        let header = (|| Some((r.i64()?, r.i32()?, r.i32()?)))();
        let Some((connection_id, action, transaction_id)) = header else {
            return Err(RequestParseError::Unsendable {
                message: "packet shorter than a request header (16 bytes)",
            });
        };
        let transaction_id = TransactionId(transaction_id);
        let sendable = |message| RequestParseError::Sendable {
            connection_id: ConnectionId(connection_id),
            transaction_id,
            message,
        };
        match action {
            ACTION_CONNECT => {
                if connection_id == PROTOCOL_IDENTIFIER {
                    Ok(Request::Connect(ConnectRequest { transaction_id }))
                } else {
                    Err(RequestParseError::Unsendable {
                        message: "connect request with wrong protocol identifier",
                    })
                }
            }
            ACTION_ANNOUNCE => parse_announce(&mut r, ConnectionId(connection_id), transaction_id)
                .map(Request::Announce)
                .ok_or_else(|| sendable("announce request shorter than 98 bytes")),
            ACTION_SCRAPE => {
                let hashes = r.remaining();
                let count = (hashes.len() / 20).min(max_scrape_hashes);
                if count == 0 {
                    return Err(sendable("scrape request without info hashes"));
                }
                let info_hashes = hashes
                    .chunks_exact(20)
                    .take(count)
                    .filter_map(|chunk| chunk.try_into().ok().map(InfoHash))
                    .collect();
                Ok(Request::Scrape(ScrapeRequest {
                    connection_id: ConnectionId(connection_id),
                    transaction_id,
                    info_hashes,
                }))
            }
            _ => Err(sendable("unknown action")),
        }
    }

    /// Append the request's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect(c) => {
                out.extend_from_slice(&PROTOCOL_IDENTIFIER.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&c.transaction_id.0.to_be_bytes());
            }
            Request::Announce(a) => {
                out.extend_from_slice(&a.connection_id.0.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&a.transaction_id.0.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                out.extend_from_slice(&a.bytes_downloaded.to_be_bytes());
                out.extend_from_slice(&a.bytes_left.to_be_bytes());
                out.extend_from_slice(&a.bytes_uploaded.to_be_bytes());
                out.extend_from_slice(&a.event.to_i32().to_be_bytes());
                let ip = a.ip_address.map(u32::from).unwrap_or(0);
                out.extend_from_slice(&ip.to_be_bytes());
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.peers_wanted.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
                // BEP 41: URL data in options of at most 255 bytes each.
                if !a.url_data.is_empty() {
                    for chunk in a.url_data.chunks(255) {
                        out.push(0x2);
                        out.push(chunk.len() as u8); // chunks(255): fits in a u8
                        out.extend_from_slice(chunk);
                    }
                    out.push(0x0);
                }
            }
            Request::Scrape(s) => {
                out.extend_from_slice(&s.connection_id.0.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&s.transaction_id.0.to_be_bytes());
                for hash in &s.info_hashes {
                    out.extend_from_slice(&hash.0);
                }
            }
        }
    }
}

fn parse_announce(
    r: &mut Reader<'_>,
    connection_id: ConnectionId,
    transaction_id: TransactionId,
) -> Option<AnnounceRequest> {
    // Fields are read in the order written: the order of the packet.
    Some(AnnounceRequest {
        connection_id,
        transaction_id,
        info_hash: InfoHash(r.take()?),
        peer_id: PeerId(r.take()?),
        bytes_downloaded: r.i64()?,
        bytes_left: r.i64()?,
        bytes_uploaded: r.i64()?,
        event: AnnounceEvent::from_i32(r.i32()?),
        ip_address: Some(r.u32()?).filter(|&ip| ip != 0).map(Ipv4Addr::from),
        key: r.u32()?,
        peers_wanted: r.i32()?,
        port: r.u16()?,
        url_data: parse_bep41_options(r),
    })
}

/// Walk BEP 41 options: 0x0 ends, 0x1 is a one-byte no-op, 0x2 carries URL
/// data (concatenated when repeated), anything else has a length byte and is
/// skipped. A truncated option ends the walk; it never fails the announce.
fn parse_bep41_options(r: &mut Reader<'_>) -> Vec<u8> {
    let mut url_data = Vec::new();
    while let Some(option) = r.u8() {
        match option {
            0x0 => break,
            0x1 => continue,
            other => {
                let Some(len) = r.u8() else { break };
                let Some(data) = r.skip(usize::from(len)) else {
                    break;
                };
                if other == 0x2 {
                    url_data.extend_from_slice(data);
                }
            }
        }
    }
    url_data
}
