//! Responses: announce, scrape and failure bodies in bencode, and the HTTP
//! head in front of them.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{InfoHash, PeerId};

/// A peer in an announce response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponsePeer<I> {
    pub ip_address: I,
    pub port: u16,
    /// Written only in the dictionary format, and there only when the
    /// client did not send `no_peer_id=1`.
    pub peer_id: PeerId,
}

/// How `peers` is written: what the client asked for with `compact` and
/// `no_peer_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFormat {
    /// BEP 23 / BEP 7: `peers` of 6-byte and `peers6` of 18-byte records.
    Compact,
    /// BEP 3: `peers` as a list of `{ip, peer id, port}` dictionaries.
    Dictionary { include_peer_id: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// Seconds until the client should announce again.
    pub interval: u32,
    /// Seconds the client must wait before announcing again.
    pub min_interval: u32,
    /// Seeders.
    pub complete: usize,
    /// Leechers.
    pub incomplete: usize,
    pub peers: Vec<ResponsePeer<Ipv4Addr>>,
    pub peers6: Vec<ResponsePeer<Ipv6Addr>>,
    /// BEP 24: the requester's address as the tracker saw it.
    pub external_ip: Option<IpAddr>,
    pub warning_message: Option<String>,
}

impl AnnounceResponse {
    /// Append the bencoded body to `out`.
    ///
    /// Compact: `peers` is always written (an empty string when there are
    /// no IPv4 peers), `peers6` only when there are IPv6 peers. Dictionary:
    /// one `peers` list holding the IPv4 then the IPv6 peers, no `peers6`.
    pub fn write(&self, out: &mut Vec<u8>, format: PeerFormat) {
        // Keys in the byte order bencode requires.
        out.push(b'd');
        write_int_entry(out, b"complete", self.complete);
        if let Some(ip) = self.external_ip {
            write_str(out, b"external ip");
            match ip {
                IpAddr::V4(ip) => write_str(out, &ip.octets()),
                IpAddr::V6(ip) => write_str(out, &ip.octets()),
            }
        }
        write_int_entry(out, b"incomplete", self.incomplete);
        write_int_entry(out, b"interval", self.interval);
        write_int_entry(out, b"min interval", self.min_interval);
        write_str(out, b"peers");
        match format {
            PeerFormat::Compact => {
                write_len_prefix(out, self.peers.len().saturating_mul(6));
                for peer in &self.peers {
                    out.extend_from_slice(&peer.ip_address.octets());
                    out.extend_from_slice(&peer.port.to_be_bytes());
                }
                if !self.peers6.is_empty() {
                    write_str(out, b"peers6");
                    write_len_prefix(out, self.peers6.len().saturating_mul(18));
                    for peer in &self.peers6 {
                        out.extend_from_slice(&peer.ip_address.octets());
                        out.extend_from_slice(&peer.port.to_be_bytes());
                    }
                }
            }
            PeerFormat::Dictionary { include_peer_id } => {
                out.push(b'l');
                for peer in &self.peers {
                    write_peer_dict(out, IpAddr::V4(peer.ip_address), peer, include_peer_id);
                }
                for peer in &self.peers6 {
                    write_peer_dict(out, IpAddr::V6(peer.ip_address), peer, include_peer_id);
                }
                out.push(b'e');
            }
        }
        if let Some(message) = &self.warning_message {
            write_str(out, b"warning message");
            write_str(out, message.as_bytes());
        }
        out.push(b'e');
    }
}

fn write_peer_dict<I>(
    out: &mut Vec<u8>,
    ip: IpAddr,
    peer: &ResponsePeer<I>,
    include_peer_id: bool,
) {
    out.push(b'd');
    write_str(out, b"ip");
    let mut text = IpText::default();
    if write!(text, "{ip}").is_ok() {
        write_str(out, text.as_bytes());
    } else {
        // Unreachable (an address is at most 45 characters), but never panic.
        write_str(out, ip.to_string().as_bytes());
    }
    if include_peer_id {
        write_str(out, b"peer id");
        write_str(out, &peer.peer_id.0);
    }
    write_int_entry(out, b"port", peer.port);
    out.push(b'e');
}

/// A stack buffer for an address in text form (at most 45 characters).
struct IpText {
    bytes: [u8; 64],
    len: usize,
}

impl Default for IpText {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl IpText {
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ScrapeStatistics {
    /// Seeders.
    pub complete: usize,
    /// Completed downloads ever reported.
    pub downloaded: usize,
    /// Leechers.
    pub incomplete: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResponse {
    /// In any order; written sorted by info hash, and for a repeated hash
    /// only the first entry.
    pub files: Vec<(InfoHash, ScrapeStatistics)>,
}

impl ScrapeResponse {
    /// Append the bencoded body to `out`:
    /// `d5:filesd<20 bytes>d8:complete..10:downloaded..10:incomplete..eee`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"d5:filesd");
        // Already sorted (as parse_request leaves a scrape): no allocation.
        if self.files.is_sorted_by(|a, b| a.0 < b.0) {
            for (info_hash, statistics) in &self.files {
                write_scrape_file(out, info_hash, statistics);
            }
        } else {
            let mut sorted: Vec<&(InfoHash, ScrapeStatistics)> = self.files.iter().collect();
            // Stable: of a repeated hash the first entry stays first.
            sorted.sort_by_key(|(info_hash, _)| *info_hash);
            sorted.dedup_by_key(|(info_hash, _)| *info_hash);
            for (info_hash, statistics) in sorted {
                write_scrape_file(out, info_hash, statistics);
            }
        }
        out.extend_from_slice(b"ee");
    }
}

fn write_scrape_file(out: &mut Vec<u8>, info_hash: &InfoHash, statistics: &ScrapeStatistics) {
    write_str(out, &info_hash.0);
    out.push(b'd');
    write_int_entry(out, b"complete", statistics.complete);
    write_int_entry(out, b"downloaded", statistics.downloaded);
    write_int_entry(out, b"incomplete", statistics.incomplete);
    out.push(b'e');
}

/// Append `d14:failure reason<len>:<reason>e`: the whole body of a failed
/// announce or scrape.
pub fn write_failure(out: &mut Vec<u8>, reason: &str) {
    out.extend_from_slice(b"d14:failure reason");
    write_str(out, reason.as_bytes());
    out.push(b'e');
}

/// Append an HTTP/1.1 response head for a body of `content_length` bytes:
/// `HTTP/1.1 {status} {reason_phrase}`, `Content-Type: text/plain`,
/// `Content-Length` and `Connection: keep-alive` or `close`.
pub fn write_http_head(
    out: &mut Vec<u8>,
    status: u16,
    reason_phrase: &str,
    content_length: usize,
    keep_alive: bool,
) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(number.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(number.format(content_length).as_bytes());
    out.extend_from_slice(if keep_alive {
        b"\r\nConnection: keep-alive\r\n\r\n"
    } else {
        b"\r\nConnection: close\r\n\r\n"
    });
}

/// A dictionary entry with an integer value: `<len>:<key>i<n>e`.
fn write_int_entry<I: itoa::Integer>(out: &mut Vec<u8>, key: &[u8], n: I) {
    write_str(out, key);
    out.push(b'i');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.push(b'e');
}

fn write_len_prefix(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.push(b':');
}

fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    write_len_prefix(out, bytes.len());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_fits_the_longest_addresses() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255)),
            IpAddr::V6(Ipv6Addr::new(
                0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
            )),
            IpAddr::V6(Ipv4Addr::new(255, 255, 255, 255).to_ipv6_mapped()),
        ] {
            let mut text = IpText::default();
            write!(text, "{ip}").unwrap();
            assert_eq!(text.as_bytes(), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn unsorted_scrape_is_sorted_and_deduplicated() {
        let a = InfoHash([1; 20]);
        let b = InfoHash([2; 20]);
        let stats = |n| ScrapeStatistics {
            complete: n,
            downloaded: n,
            incomplete: n,
        };
        let mut out = Vec::new();
        ScrapeResponse {
            files: vec![(b, stats(1)), (a, stats(2)), (b, stats(3))],
        }
        .write(&mut out);
        let mut expected = Vec::new();
        ScrapeResponse {
            files: vec![(a, stats(2)), (b, stats(1))],
        }
        .write(&mut expected);
        assert_eq!(out, expected);
    }
}
