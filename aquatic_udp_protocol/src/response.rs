//! Responses: connect, announce (IPv4 and IPv6 peers), scrape, error.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::reader::Reader;
use crate::{
    ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, ACTION_SCRAPE, ConnectionId, TransactionId,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub transaction_id: TransactionId,
    pub connection_id: ConnectionId,
}

/// A peer in an announce response: 6 bytes for IPv4, 18 for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponsePeer<I> {
    pub ip_address: I,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse<I> {
    pub transaction_id: TransactionId,
    /// Seconds until the client should announce again.
    pub announce_interval: i32,
    pub leechers: i32,
    pub seeders: i32,
    pub peers: Vec<ResponsePeer<I>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TorrentScrapeStatistics {
    pub seeders: i32,
    pub completed: i32,
    pub leechers: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResponse {
    pub transaction_id: TransactionId,
    /// One entry per requested info hash, in request order.
    pub torrent_stats: Vec<TorrentScrapeStatistics>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    pub transaction_id: TransactionId,
    pub message: Cow<'static, str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Connect(ConnectResponse),
    AnnounceIpv4(AnnounceResponse<Ipv4Addr>),
    AnnounceIpv6(AnnounceResponse<Ipv6Addr>),
    Scrape(ScrapeResponse),
    Error(ErrorResponse),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseParseError(pub &'static str);

impl Response {
    /// Append the response's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect(r) => {
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
                out.extend_from_slice(&r.connection_id.0.to_be_bytes());
            }
            Response::AnnounceIpv4(r) => write_announce(out, r, Ipv4Addr::octets),
            Response::AnnounceIpv6(r) => write_announce(out, r, Ipv6Addr::octets),
            Response::Scrape(r) => {
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
                for s in &r.torrent_stats {
                    out.extend_from_slice(&s.seeders.to_be_bytes());
                    out.extend_from_slice(&s.completed.to_be_bytes());
                    out.extend_from_slice(&s.leechers.to_be_bytes());
                }
            }
            Response::Error(r) => {
                out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
                out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
                out.extend_from_slice(r.message.as_bytes());
            }
        }
    }

    /// Parse a response packet. Announce peers are read as IPv6 (18 bytes)
    /// when `ipv6` is set, as the packet's address family decides.
    pub fn parse(bytes: &[u8], ipv6: bool) -> Result<Self, ResponseParseError> {
        let mut r = Reader::new(bytes);
        let (Some(action), Some(transaction_id)) = (r.i32(), r.i32()) else {
            return Err(ResponseParseError("response shorter than 8 bytes"));
        };
        let transaction_id = TransactionId(transaction_id);
        match action {
            ACTION_CONNECT => {
                let connection_id = r
                    .i64()
                    .ok_or(ResponseParseError("connect response shorter than 16 bytes"))?;
                Ok(Response::Connect(ConnectResponse {
                    transaction_id,
                    connection_id: ConnectionId(connection_id),
                }))
            }
            ACTION_ANNOUNCE if ipv6 => {
                parse_announce::<_, 16>(&mut r, transaction_id).map(Response::AnnounceIpv6)
            }
            ACTION_ANNOUNCE => {
                parse_announce::<_, 4>(&mut r, transaction_id).map(Response::AnnounceIpv4)
            }
            ACTION_SCRAPE => {
                let mut torrent_stats = Vec::with_capacity(r.remaining().len() / 12);
                while let (Some(seeders), Some(completed), Some(leechers)) =
                    (r.i32(), r.i32(), r.i32())
                {
                    torrent_stats.push(TorrentScrapeStatistics {
                        seeders,
                        completed,
                        leechers,
                    });
                }
                Ok(Response::Scrape(ScrapeResponse {
                    transaction_id,
                    torrent_stats,
                }))
            }
            ACTION_ERROR => Ok(Response::Error(ErrorResponse {
                transaction_id,
                message: Cow::Owned(String::from_utf8_lossy(r.remaining()).into_owned()),
            })),
            _ => Err(ResponseParseError("unknown action")),
        }
    }
}

/// An announce response of either address family: the header, then one
/// record of the address bytes (`octets`) and the port per peer.
fn write_announce<I, const N: usize>(
    out: &mut Vec<u8>,
    r: &AnnounceResponse<I>,
    octets: fn(&I) -> [u8; N],
) {
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&r.transaction_id.0.to_be_bytes());
    out.extend_from_slice(&r.announce_interval.to_be_bytes());
    out.extend_from_slice(&r.leechers.to_be_bytes());
    out.extend_from_slice(&r.seeders.to_be_bytes());
    for peer in &r.peers {
        out.extend_from_slice(&octets(&peer.ip_address));
        out.extend_from_slice(&peer.port.to_be_bytes());
    }
}

/// The rest of an announce response after action and transaction id: the
/// counts, then whole peer records of `N` address bytes and the port (a
/// partial record at the end is ignored).
fn parse_announce<I: From<[u8; N]>, const N: usize>(
    r: &mut Reader<'_>,
    transaction_id: TransactionId,
) -> Result<AnnounceResponse<I>, ResponseParseError> {
    let (Some(announce_interval), Some(leechers), Some(seeders)) = (r.i32(), r.i32(), r.i32())
    else {
        return Err(ResponseParseError(
            "announce response shorter than 20 bytes",
        ));
    };
    let mut peers = Vec::with_capacity(r.remaining().len() / (N + 2));
    while let (Some(ip), Some(port)) = (r.take::<N>(), r.u16()) {
        peers.push(ResponsePeer {
            ip_address: I::from(ip),
            port,
        });
    }
    Ok(AnnounceResponse {
        transaction_id,
        announce_interval,
        leechers,
        seeders,
        peers,
    })
}
