//! Requests: an HTTP/1.x request head to an announce or a scrape, and back.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use crate::percent::{Decode, InvalidPercentEncoding};
use crate::{InfoHash, PeerId};

/// Headers beyond this many make a request a `400` (clients send 3 to 6).
pub const MAX_HEADERS: usize = 32;

/// The longest `key` accepted, in bytes of its (lossy UTF-8) decoded form.
pub const MAX_KEY_LEN: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnnounceEvent {
    Started,
    Stopped,
    Completed,
    /// A regular announce: no `event`, `event=empty`, `event=paused` (BEP 21
    /// partial seeds send it on every announce) and any unknown value.
    #[default]
    None,
}

impl AnnounceEvent {
    /// The query value, or `None` for a regular announce (written without
    /// an `event` key).
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Started => Some("started"),
            Self::Stopped => Some("stopped"),
            Self::Completed => Some("completed"),
            Self::None => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    /// `uploaded`; 0 when absent.
    pub bytes_uploaded: u64,
    /// `downloaded`; 0 when absent.
    pub bytes_downloaded: u64,
    /// `left`; 0 when absent. The whole `u64` range: Transmission sends
    /// 2^63-1 (older versions 2^64-1) for magnets without metadata.
    pub bytes_left: u64,
    pub event: AnnounceEvent,
    /// `numwant`; `None` when absent or negative (`numwant=-1`), saturated
    /// at `usize::MAX`.
    pub numwant: Option<usize>,
    /// `true` unless the client sent `compact=0`.
    pub compact: bool,
    /// `no_peer_id=1`.
    pub no_peer_id: bool,
    /// Percent-decoded, then lossy UTF-8; at most [`MAX_KEY_LEN`] bytes.
    pub key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// Sorted by bytes, without duplicates (the order of the response): the
    /// first [`ParseOptions::max_scrape_torrents`] `info_hash` values of the
    /// query, the rest ignored. Never empty when parsed.
    pub info_hashes: Vec<InfoHash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Announce(AnnounceRequest),
    Scrape(ScrapeRequest),
}

#[derive(Clone, Copy, Debug)]
pub struct ParseOptions<'a> {
    /// A scrape keeps at most this many `info_hash` values; later ones are
    /// ignored (not even validated).
    pub max_scrape_torrents: usize,
    /// Name (any case) of the header a reverse proxy puts the client address
    /// in, e.g. `X-Forwarded-For` or `X-Real-IP`; `None` to ignore headers.
    pub reverse_proxy_header: Option<&'a str>,
    /// Host names served (lowercase, without port): a request whose `Host`
    /// header names another is [`RequestParseError::WrongHost`]. Empty:
    /// any (see `aquatic_wire::host::host_allowed`).
    pub allowed_hosts: &'a [String],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRequest {
    pub request: Request,
    /// Bytes of the input this request used: anything after it belongs to
    /// the next (pipelined) request.
    pub consumed: usize,
    /// HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The client said `Connection: keep-alive` (and not `close`): it
    /// means to send more on this connection. HTTP/1.1 clients that say
    /// nothing are persistent too (`keep_alive`) but often send one
    /// request and close; a server may close after the answer either way.
    pub keep_alive_asked: bool,
    /// The client address from [`ParseOptions::reverse_proxy_header`]: the
    /// rightmost entry of the (comma separated, possibly repeated) header
    /// that is an address, i.e. the one our own proxy appended. Entries are
    /// trimmed and read as an IP, `[IPv6]`, `IPv4:port` or `[IPv6]:port`;
    /// anything else (`unknown`, garbage) is skipped.
    pub forwarded_ip: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestParseError {
    /// The head is incomplete: read more bytes and parse again.
    NeedMoreData,
    /// The path is not `/announce` or `/scrape` (after any prefix): 404.
    NotFound {
        consumed: usize,
        keep_alive: bool,
        keep_alive_asked: bool,
    },
    /// The `Host` header is not one of [`ParseOptions::allowed_hosts`]
    /// (someone else's domain pointed at the tracker): 421.
    WrongHost {
        consumed: usize,
        keep_alive: bool,
        keep_alive_asked: bool,
    },
    /// An announce or scrape with a bad query: answer with a bencoded
    /// `failure reason` (see [`crate::write_failure`]).
    Invalid {
        reason: Cow<'static, str>,
        consumed: usize,
        keep_alive: bool,
        keep_alive_asked: bool,
    },
    /// Not HTTP/1.x, not `GET`, a body (`Content-Length` above 0 or any
    /// `Transfer-Encoding`) or more than [`MAX_HEADERS`] headers: answer 400
    /// and close the connection (its framing can't be trusted).
    BadRequest,
}

impl fmt::Display for RequestParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NeedMoreData => f.write_str("incomplete request head"),
            Self::NotFound { .. } => f.write_str("path is neither announce nor scrape"),
            Self::WrongHost { .. } => f.write_str("host name not served here"),
            Self::Invalid { reason, .. } => f.write_str(reason),
            Self::BadRequest => f.write_str("bad HTTP request"),
        }
    }
}

impl std::error::Error for RequestParseError {}

/// Parse one request head from the start of `bytes`.
///
/// The path must be `/announce` or `/scrape`, or end in `/announce` or
/// `/scrape` after a prefix (`/<passkey>/announce`, `/tracker/scrape`); the
/// query is split off at the first `?` first. Query values are
/// percent-decoded (`%XX` in either case, and `+` as a space except in
/// `info_hash` and `peer_id`, whose other bytes are taken raw); unknown keys
/// are ignored and, for a repeated announce key, the last value counts.
///
/// Announce: `info_hash`, `peer_id` (20 bytes each) and `port` are required;
/// `uploaded`, `downloaded` and `left` default to 0 when missing but must be
/// numbers when present. Scrape: at least one `info_hash`; a full scrape is
/// not offered. Raw (unescaped) bytes that are not UTF-8 make the head
/// unparseable, which is a `BadRequest`.
pub fn parse_request(
    bytes: &[u8],
    options: &ParseOptions<'_>,
) -> Result<ParsedRequest, RequestParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let consumed = match head.parse(bytes) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) => return Err(RequestParseError::NeedMoreData),
        Err(_) => return Err(RequestParseError::BadRequest),
    };
    if head.method != Some("GET") {
        return Err(RequestParseError::BadRequest);
    }
    let Some(target) = head.path else {
        return Err(RequestParseError::BadRequest);
    };
    let http_1_1 = head.version == Some(1);

    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut host = None;
    let mut hosts = 0;
    for header in head.headers.iter() {
        if header.name.eq_ignore_ascii_case("host") {
            host = Some(header.value);
            hosts += 1;
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    connection_keep_alive = true;
                }
            }
        } else if header.name.eq_ignore_ascii_case("content-length") {
            match parse_u64(header.value.trim_ascii()) {
                Some(0) => {}
                _ => return Err(RequestParseError::BadRequest),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestParseError::BadRequest);
        }
    }
    let keep_alive = !connection_close && (http_1_1 || connection_keep_alive);
    let keep_alive_asked = keep_alive && connection_keep_alive;

    // Two Host headers, or an absolute-form target (whose authority
    // would override the header), name no host that can be trusted.
    let host = host.filter(|_| hosts == 1 && target.starts_with('/'));
    if !aquatic_wire::host::host_allowed(host, options.allowed_hosts) {
        return Err(RequestParseError::WrongHost {
            consumed,
            keep_alive,
            keep_alive_asked,
        });
    }

    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, query.as_bytes()),
        None => (target, &b""[..]),
    };
    let parsed = if path.ends_with("/announce") {
        parse_announce(query).map(Request::Announce)
    } else if path.ends_with("/scrape") {
        parse_scrape(query, options.max_scrape_torrents).map(Request::Scrape)
    } else {
        return Err(RequestParseError::NotFound {
            consumed,
            keep_alive,
            keep_alive_asked,
        });
    };
    let request = parsed.map_err(|reason| RequestParseError::Invalid {
        reason: Cow::Borrowed(reason),
        consumed,
        keep_alive,
        keep_alive_asked,
    })?;

    let forwarded_ip = options
        .reverse_proxy_header
        .and_then(|name| forwarded_ip(head.headers, name));

    Ok(ParsedRequest {
        request,
        consumed,
        keep_alive,
        keep_alive_asked,
        forwarded_ip,
    })
}

fn forwarded_ip(headers: &[httparse::Header<'_>], name: &str) -> Option<IpAddr> {
    aquatic_wire::forwarded::forwarded_ip(headers.iter().map(|h| (h.name, h.value)), name)
}

/// Query keys with their value, in order (`key` alone reads as `key=`).
fn query_pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (
                pair.get(..i).unwrap_or(pair),
                pair.get(i + 1..).unwrap_or(b""),
            ),
            None => (pair, &b""[..]),
        })
}

/// The failure reasons, one per field and problem, so none allocates.
#[derive(Clone, Copy)]
enum Field {
    InfoHash,
    PeerId,
    Port,
    Uploaded,
    Downloaded,
    Left,
    Event,
    Numwant,
    Compact,
    NoPeerId,
    Key,
}

impl Field {
    fn bad_encoding(self) -> &'static str {
        match self {
            Self::InfoHash => "invalid percent-encoding in info_hash",
            Self::PeerId => "invalid percent-encoding in peer_id",
            Self::Port => "invalid percent-encoding in port",
            Self::Uploaded => "invalid percent-encoding in uploaded",
            Self::Downloaded => "invalid percent-encoding in downloaded",
            Self::Left => "invalid percent-encoding in left",
            Self::Event => "invalid percent-encoding in event",
            Self::Numwant => "invalid percent-encoding in numwant",
            Self::Compact => "invalid percent-encoding in compact",
            Self::NoPeerId => "invalid percent-encoding in no_peer_id",
            Self::Key => "invalid percent-encoding in key",
        }
    }

    fn bad_value(self) -> &'static str {
        match self {
            Self::InfoHash => "info_hash must be 20 bytes",
            Self::PeerId => "peer_id must be 20 bytes",
            Self::Port => "port must be a number from 1 to 65535",
            Self::Uploaded => "uploaded must be a number from 0 to 18446744073709551615",
            Self::Downloaded => "downloaded must be a number from 0 to 18446744073709551615",
            Self::Left => "left must be a number from 0 to 18446744073709551615",
            Self::Numwant => "numwant must be a whole number",
            Self::Key => "key must be at most 100 bytes",
            // Any value of these is accepted.
            Self::Event | Self::Compact | Self::NoPeerId => "invalid value",
        }
    }
}

enum FieldError {
    Encoding,
    Value,
}

impl From<InvalidPercentEncoding> for FieldError {
    fn from(_: InvalidPercentEncoding) -> Self {
        Self::Encoding
    }
}

fn field<T>(field: Field, result: Result<T, FieldError>) -> Result<T, &'static str> {
    result.map_err(|error| match error {
        FieldError::Encoding => field.bad_encoding(),
        FieldError::Value => field.bad_value(),
    })
}

fn parse_announce(query: &[u8]) -> Result<AnnounceRequest, &'static str> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut request = AnnounceRequest {
        info_hash: InfoHash::default(),
        peer_id: PeerId::default(),
        port: 0,
        bytes_uploaded: 0,
        bytes_downloaded: 0,
        bytes_left: 0,
        event: AnnounceEvent::None,
        numwant: None,
        compact: true,
        no_peer_id: false,
        key: None,
    };
    for (key, value) in query_pairs(query) {
        match key {
            b"info_hash" => info_hash = Some(field(Field::InfoHash, decode_id(value))?),
            b"peer_id" => peer_id = Some(field(Field::PeerId, decode_id(value))?),
            b"port" => {
                let number = field(Field::Port, decode_u64(value))?;
                // Nobody can connect to port 0: never hand it to peers.
                port = Some(field(
                    Field::Port,
                    u16::try_from(number)
                        .ok()
                        .filter(|&port| port != 0)
                        .ok_or(FieldError::Value),
                )?);
            }
            b"uploaded" => request.bytes_uploaded = field(Field::Uploaded, decode_u64(value))?,
            b"downloaded" => {
                request.bytes_downloaded = field(Field::Downloaded, decode_u64(value))?;
            }
            b"left" => request.bytes_left = field(Field::Left, decode_u64(value))?,
            b"event" => request.event = field(Field::Event, decode_event(value))?,
            b"numwant" => request.numwant = field(Field::Numwant, decode_numwant(value))?,
            b"compact" => request.compact = !field(Field::Compact, decodes_to(value, b"0"))?,
            b"no_peer_id" => request.no_peer_id = field(Field::NoPeerId, decodes_to(value, b"1"))?,
            b"key" => request.key = Some(field(Field::Key, decode_key(value))?),
            _ => {}
        }
    }
    request.info_hash = InfoHash(info_hash.ok_or("missing info_hash")?);
    request.peer_id = PeerId(peer_id.ok_or("missing peer_id")?);
    request.port = port.ok_or("missing port")?;
    Ok(request)
}

fn parse_scrape(query: &[u8], max_scrape_torrents: usize) -> Result<ScrapeRequest, &'static str> {
    let is_info_hash = |&(key, _): &(&[u8], &[u8])| key == b"info_hash";
    // Counted first so the list is allocated once. Only values that can
    // decode to 20 bytes (20 to 60 bytes long) get room, so the list is
    // never larger than the query that asked for it.
    let mut present = 0usize;
    let mut plausible = 0usize;
    for (_, value) in query_pairs(query)
        .filter(is_info_hash)
        .take(max_scrape_torrents)
    {
        present += 1;
        plausible += usize::from((20..=60).contains(&value.len()));
    }
    if present == 0 {
        return Err("scrape without info_hash");
    }
    let mut info_hashes = Vec::with_capacity(plausible);
    for (_, value) in query_pairs(query)
        .filter(is_info_hash)
        .take(max_scrape_torrents)
    {
        info_hashes.push(InfoHash(field(Field::InfoHash, decode_id(value))?));
    }
    // Sorting (rather than a seen-set) keeps this O(n log n) without a
    // second allocation, and is the order the response is written in.
    info_hashes.sort_unstable();
    info_hashes.dedup();
    Ok(ScrapeRequest { info_hashes })
}

fn decode_id(value: &[u8]) -> Result<[u8; 20], FieldError> {
    let mut id = [0u8; 20];
    let mut decoded = Decode::binary(value);
    for slot in id.iter_mut() {
        *slot = decoded.next().ok_or(FieldError::Value)??;
    }
    match decoded.next() {
        None => Ok(id),
        // Report a bad escape in the excess before the excess itself.
        Some(Err(InvalidPercentEncoding)) => Err(FieldError::Encoding),
        Some(Ok(_)) => {
            if decoded.any(|b| b.is_err()) {
                Err(FieldError::Encoding)
            } else {
                Err(FieldError::Value)
            }
        }
    }
}

/// Decimal digits only (no sign, no spaces), within `u64`.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn decode_u64(value: &[u8]) -> Result<u64, FieldError> {
    let mut n = 0u64;
    let mut any = false;
    for b in Decode::text(value) {
        let digit = b?.checked_sub(b'0').filter(|d| *d < 10);
        let next = digit.and_then(|d| n.checked_mul(10)?.checked_add(u64::from(d)));
        n = next.ok_or(FieldError::Value)?;
        any = true;
    }
    if any { Ok(n) } else { Err(FieldError::Value) }
}

/// `None` for a negative number (clients send -1 for "default"), saturating
/// at `usize::MAX` for huge ones.
fn decode_numwant(value: &[u8]) -> Result<Option<usize>, FieldError> {
    let mut decoded = Decode::text(value).peekable();
    let negative = matches!(decoded.peek(), Some(Ok(b'-')));
    if negative {
        decoded.next();
    }
    let mut n = 0usize;
    let mut any = false;
    for b in decoded {
        let digit = b?.checked_sub(b'0').filter(|d| *d < 10);
        let digit = usize::from(digit.ok_or(FieldError::Value)?);
        n = n.saturating_mul(10).saturating_add(digit);
        any = true;
    }
    match (any, negative) {
        (false, _) => Err(FieldError::Value),
        (true, true) => Ok(None),
        (true, false) => Ok(Some(n)),
    }
}

fn decode_event(value: &[u8]) -> Result<AnnounceEvent, FieldError> {
    let event = if decodes_to(value, b"started")? {
        AnnounceEvent::Started
    } else if decodes_to(value, b"stopped")? {
        AnnounceEvent::Stopped
    } else if decodes_to(value, b"completed")? {
        AnnounceEvent::Completed
    } else {
        // "empty", "paused" (BEP 21) and anything unknown.
        AnnounceEvent::None
    };
    Ok(event)
}

/// Whether `value` decodes to exactly `expected`; a bad escape is an error
/// even when the value could not match anyway.
fn decodes_to(value: &[u8], expected: &[u8]) -> Result<bool, FieldError> {
    let mut matches = true;
    let mut expected = expected.iter();
    for b in Decode::text(value) {
        let b = b?;
        if expected.next() != Some(&b) {
            matches = false;
        }
    }
    Ok(matches && expected.next().is_none())
}

fn decode_key(value: &[u8]) -> Result<String, FieldError> {
    let mut buffer = [0u8; MAX_KEY_LEN];
    let mut len = 0;
    for b in Decode::text(value) {
        let b = b?;
        let slot = buffer.get_mut(len).ok_or(FieldError::Value)?;
        *slot = b;
        len += 1;
    }
    let bytes = buffer.get(..len).unwrap_or_default();
    // Lossy decoding only grows (one U+FFFD, 3 bytes, per invalid sequence
    // of 1 to 3 bytes): check the final length before allocating it, so a
    // written key always parses again.
    let lossy_len: usize = bytes
        .utf8_chunks()
        .map(|chunk| {
            let replacement = if chunk.invalid().is_empty() { 0 } else { 3 };
            chunk.valid().len() + replacement
        })
        .sum();
    if lossy_len > MAX_KEY_LEN {
        return Err(FieldError::Value);
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_u64_limits() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"1 "), None);
    }

    #[test]
    fn numwant_forms() {
        assert!(matches!(decode_numwant(b"200"), Ok(Some(200))));
        assert!(matches!(decode_numwant(b"-1"), Ok(None)));
        assert!(matches!(decode_numwant(b"%2D1"), Ok(None)));
        assert!(matches!(
            decode_numwant(b"999999999999999999999999999"),
            Ok(Some(usize::MAX))
        ));
        assert!(matches!(decode_numwant(b"-"), Err(FieldError::Value)));
        assert!(matches!(decode_numwant(b""), Err(FieldError::Value)));
        assert!(matches!(decode_numwant(b"1e3"), Err(FieldError::Value)));
        assert!(matches!(decode_numwant(b"%1"), Err(FieldError::Encoding)));
    }

    #[test]
    fn key_length_counts_replacement_characters() {
        assert_eq!(decode_key(&[b'a'; 100]).ok(), Some("a".repeat(100)));
        assert!(matches!(decode_key(&[b'a'; 101]), Err(FieldError::Value)));
        // 34 invalid bytes become 102 bytes of U+FFFD.
        let invalid = "%FF".repeat(34);
        assert!(matches!(
            decode_key(invalid.as_bytes()),
            Err(FieldError::Value)
        ));
        let invalid = "%FF".repeat(33);
        assert_eq!(
            decode_key(invalid.as_bytes()).ok(),
            Some("\u{FFFD}".repeat(33))
        );
    }

    #[test]
    fn scrape_list_is_sized_by_plausible_values() {
        let hash = "%AB".repeat(20);
        let query = format!(
            "info_hash={hash}&info_hash={hash}&info_hash=abcdefghijabcdefghij&info_hash&x=1"
        );
        // The bare `info_hash` fails the scrape, but only after the others.
        assert!(parse_scrape(query.as_bytes(), 3).is_ok_and(|scrape| {
            scrape.info_hashes.len() == 2 && scrape.info_hashes.capacity() == 3
        }));
        assert_eq!(
            parse_scrape(query.as_bytes(), 4),
            Err("info_hash must be 20 bytes")
        );
    }

    #[test]
    fn query_pairs_split_at_first_equals() {
        let pairs: Vec<_> = query_pairs(b"a=1&&b&c=d=e&=f").collect();
        assert_eq!(
            pairs,
            vec![
                (&b"a"[..], &b"1"[..]),
                (b"b", b""),
                (b"c", b"d=e"),
                (b"", b"f"),
            ]
        );
    }
}
