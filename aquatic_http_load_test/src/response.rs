//! Recognising a tracker's responses without allocating: the HTTP head
//! (status, framing, whether the connection stays open) and what the
//! bencoded body is (announce, scrape or failure).

/// Headers beyond this many make a response invalid (trackers send 2 to 5).
pub const MAX_RESPONSE_HEADERS: usize = 32;

/// How the body of a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes after the head.
    Length(usize),
    /// No `Content-Length` on a connection the server closes: the body is
    /// everything until the end of the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head, up to and including the empty line.
    pub len: usize,
    pub framing: Framing,
    /// Whether the server keeps the connection open after this response:
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadParse {
    /// Read more.
    Partial,
    Complete(Head),
    /// Not an HTTP/1.x response head, a `Transfer-Encoding` (chunked is not
    /// supported), a bad or repeated `Content-Length`, or a head without
    /// `Content-Length` on a connection that stays open (no way to know
    /// where the body ends).
    Invalid,
}

/// Parse the response head at the start of `bytes`.
pub fn parse_head(bytes: &[u8]) -> HeadParse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return HeadParse::Partial,
        Err(_) => return HeadParse::Invalid,
    };
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return HeadParse::Invalid;
    };

    let mut content_length = None;
    let mut close = false;
    let mut keep_alive_token = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = parse_usize(header.value.trim_ascii()) else {
                return HeadParse::Invalid;
            };
            if content_length.is_some_and(|previous| previous != n) {
                return HeadParse::Invalid;
            }
            content_length = Some(n);
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return HeadParse::Invalid;
        }
    }
    let keep_alive = !close && (version == 1 || keep_alive_token);
    let framing = match content_length {
        Some(n) => Framing::Length(n),
        // RFC 9112: these never have a body.
        None if status == 204 || status == 304 || (100..200).contains(&status) => {
            Framing::Length(0)
        }
        None if !keep_alive => Framing::UntilClose,
        None => return HeadParse::Invalid,
    };
    HeadParse::Complete(Head {
        status,
        len,
        framing,
        keep_alive,
    })
}

/// Decimal digits only, within `usize`.
fn parse_usize(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(usize::from(digit))
    })
}

/// What a bencoded body is, by the keys of its top-level dictionary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Has `failure reason`.
    Failure,
    /// Has `peers` or `peers6` (and no `failure reason`).
    Announce,
    /// Has `files` (and none of the above).
    Scrape,
    /// Not one well-formed bencoded dictionary, or none of these keys.
    Other,
}

/// Nesting deeper than this makes a body `Other` (a scrape answer nests 3
/// deep, a non-compact announce answer 3).
const MAX_DEPTH: u32 = 32;

/// Classify `body`: it must be exactly one well-formed bencoded dictionary
/// (all of it is checked, without allocating).
pub fn classify_body(body: &[u8]) -> BodyKind {
    let mut failure = false;
    let mut peers = false;
    let mut files = false;
    let well_formed = walk_dict(body, 0, 0, &mut |key| match key {
        b"failure reason" => failure = true,
        b"peers" | b"peers6" => peers = true,
        b"files" => files = true,
        _ => {}
    })
    .is_some_and(|end| end == body.len());
    match (well_formed, failure, peers, files) {
        (false, ..) => BodyKind::Other,
        (true, true, ..) => BodyKind::Failure,
        (true, false, true, _) => BodyKind::Announce,
        (true, false, false, true) => BodyKind::Scrape,
        (true, false, false, false) => BodyKind::Other,
    }
}

/// Walk the dictionary starting at `at`, calling `on_key` for each of its
/// keys; returns the position after it.
fn walk_dict(b: &[u8], at: usize, depth: u32, on_key: &mut dyn FnMut(&[u8])) -> Option<usize> {
    if *b.get(at)? != b'd' || depth > MAX_DEPTH {
        return None;
    }
    let mut pos = at + 1;
    loop {
        if *b.get(pos)? == b'e' {
            return Some(pos + 1);
        }
        let (key, after_key) = read_string(b, pos)?;
        on_key(key);
        pos = skip_value(b, after_key, depth + 1)?;
    }
}

/// The string (`<len>:<bytes>`) at `at`, and the position after it.
fn read_string(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let colon = at + b.get(at..)?.iter().position(|&c| c == b':')?;
    let len = parse_usize(b.get(at..colon)?)?;
    let end = (colon + 1).checked_add(len)?;
    Some((b.get(colon + 1..end)?, end))
}

/// The position after the value at `at`.
fn skip_value(b: &[u8], at: usize, depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *b.get(at)? {
        b'i' => {
            let end = at + b.get(at..)?.iter().position(|&c| c == b'e')?;
            let digits = b.get(at + 1..end)?;
            let digits = digits.strip_prefix(b"-").unwrap_or(digits);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(end + 1)
        }
        b'0'..=b'9' => read_string(b, at).map(|(_, end)| end),
        b'l' => {
            let mut pos = at + 1;
            loop {
                if *b.get(pos)? == b'e' {
                    return Some(pos + 1);
                }
                pos = skip_value(b, pos, depth + 1)?;
            }
        }
        b'd' => walk_dict(b, at, depth, &mut |_| {}),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aquatic_http_protocol::{
        AnnounceResponse, InfoHash, PeerFormat, PeerId, ResponsePeer, ScrapeResponse,
        ScrapeStatistics, write_failure, write_http_head,
    };

    fn announce_body(format: PeerFormat, peers: usize) -> Vec<u8> {
        let response = AnnounceResponse {
            interval: 1800,
            min_interval: 60,
            complete: 3,
            incomplete: 1,
            peers: (0..peers)
                .map(|i| ResponsePeer {
                    ip_address: [10, 0, 0, i as u8].into(),
                    port: 6881,
                    peer_id: PeerId([i as u8; 20]),
                })
                .collect(),
            peers6: vec![ResponsePeer {
                ip_address: "fd00::1".parse().unwrap(),
                port: 1,
                peer_id: PeerId([9; 20]),
            }],
            external_ip: Some("127.0.0.1".parse().unwrap()),
            warning_message: Some("w".into()),
        };
        let mut out = Vec::new();
        response.write(&mut out, format);
        out
    }

    #[test]
    fn bodies_written_by_the_protocol_crate_are_recognised() {
        assert_eq!(
            classify_body(&announce_body(PeerFormat::Compact, 5)),
            BodyKind::Announce
        );
        assert_eq!(
            classify_body(&announce_body(PeerFormat::Compact, 0)),
            BodyKind::Announce
        );
        let dict = PeerFormat::Dictionary {
            include_peer_id: true,
        };
        assert_eq!(classify_body(&announce_body(dict, 3)), BodyKind::Announce);

        let mut scrape = Vec::new();
        ScrapeResponse {
            files: vec![
                (InfoHash([1; 20]), ScrapeStatistics::default()),
                (InfoHash([b'e'; 20]), ScrapeStatistics::default()),
            ],
        }
        .write(&mut scrape);
        assert_eq!(classify_body(&scrape), BodyKind::Scrape);
        assert_eq!(classify_body(b"d5:filesdee"), BodyKind::Scrape);

        let mut failure = Vec::new();
        write_failure(&mut failure, "unregistered torrent");
        assert_eq!(classify_body(&failure), BodyKind::Failure);
    }

    #[test]
    fn malformed_bodies_are_other() {
        for body in [
            &b""[..],
            b"d",
            b"de ",
            b"le",
            b"i3e",
            b"d5:peers",
            b"d5:peers0:",
            b"d5:peers9:abce",
            b"d5:peersi-e",
            b"d5:peersixe",
            b"d5:peersl0:",
            b"d5:peers0:ee",
            b"d4:peer0:e",
            b"x",
            b"d99999999999999999999999:ae",
        ] {
            assert_eq!(classify_body(body), BodyKind::Other, "{body:?}");
        }
        // Nested too deep.
        let mut deep = b"d1:a".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 100));
        deep.extend(std::iter::repeat_n(b'e', 101));
        assert_eq!(classify_body(&deep), BodyKind::Other);
        assert_eq!(
            classify_body(b"d5:peersli-3ed1:ai0eeee"),
            BodyKind::Announce
        );
    }

    #[test]
    fn heads() {
        let mut head = Vec::new();
        write_http_head(&mut head, 200, "OK", 42, true);
        let len = head.len();
        head.extend_from_slice(b"body");
        assert_eq!(
            parse_head(&head),
            HeadParse::Complete(Head {
                status: 200,
                len,
                framing: Framing::Length(42),
                keep_alive: true,
            })
        );
        assert_eq!(parse_head(&head[..len - 1]), HeadParse::Partial);
        let mut head = Vec::new();
        write_http_head(&mut head, 404, "Not Found", 0, false);
        assert!(matches!(
            parse_head(&head),
            HeadParse::Complete(Head {
                status: 404,
                framing: Framing::Length(0),
                keep_alive: false,
                ..
            })
        ));

        // HTTP/1.0: closes unless told otherwise; without a length the body
        // runs to the end of the connection.
        let HeadParse::Complete(h) = parse_head(b"HTTP/1.0 200 OK\r\n\r\nd5:filesdee") else {
            panic!()
        };
        assert_eq!(
            (h.framing, h.keep_alive, h.len),
            (Framing::UntilClose, false, 19)
        );
        let HeadParse::Complete(h) =
            parse_head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(3), true));
        let HeadParse::Complete(h) =
            parse_head(b"HTTP/1.1 200 OK\r\nConnection: x, close\r\ncontent-length: 3\r\n\r\n")
        else {
            panic!()
        };
        assert!(!h.keep_alive);

        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), HeadParse::Invalid, "{bad:?}");
        }
    }
}
