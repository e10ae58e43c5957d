//! Writing a request head as clients send it, for the load tester and the
//! tests: the other direction of [`crate::request`]'s parser.

use crate::percent;
use crate::request::Request;

impl Request {
    /// Append a `GET` request head as clients send it: `path_prefix` (e.g.
    /// `""` or `"/<passkey>"`, written as is) then `/announce` or `/scrape`
    /// and the query, with every byte of the ids percent-encoded and a
    /// `Host: {host}` header.
    ///
    /// Written as given, so parsing it back gives the same request, except
    /// that a scrape comes back sorted and deduplicated (and cut to
    /// `max_scrape_torrents`), and a `key` longer than [`crate::MAX_KEY_LEN`] bytes
    /// is rejected.
    pub fn write(&self, out: &mut Vec<u8>, path_prefix: &str, host: &str) {
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(path_prefix.as_bytes());
        match self {
            Request::Announce(a) => {
                let mut number = itoa::Buffer::new();
                out.extend_from_slice(b"/announce?info_hash=");
                percent::encode_all(out, &a.info_hash.0);
                out.extend_from_slice(b"&peer_id=");
                percent::encode_all(out, &a.peer_id.0);
                out.extend_from_slice(b"&port=");
                out.extend_from_slice(number.format(a.port).as_bytes());
                out.extend_from_slice(b"&uploaded=");
                out.extend_from_slice(number.format(a.bytes_uploaded).as_bytes());
                out.extend_from_slice(b"&downloaded=");
                out.extend_from_slice(number.format(a.bytes_downloaded).as_bytes());
                out.extend_from_slice(b"&left=");
                out.extend_from_slice(number.format(a.bytes_left).as_bytes());
                if let Some(key) = &a.key {
                    out.extend_from_slice(b"&key=");
                    percent::encode_text(out, key.as_bytes());
                }
                if let Some(event) = a.event.as_str() {
                    out.extend_from_slice(b"&event=");
                    out.extend_from_slice(event.as_bytes());
                }
                if let Some(numwant) = a.numwant {
                    out.extend_from_slice(b"&numwant=");
                    out.extend_from_slice(number.format(numwant).as_bytes());
                }
                out.extend_from_slice(if a.compact {
                    b"&compact=1"
                } else {
                    b"&compact=0"
                });
                if a.no_peer_id {
                    out.extend_from_slice(b"&no_peer_id=1");
                }
            }
            Request::Scrape(s) => {
                out.extend_from_slice(b"/scrape");
                for (i, info_hash) in s.info_hashes.iter().enumerate() {
                    out.extend_from_slice(if i == 0 {
                        b"?info_hash="
                    } else {
                        b"&info_hash="
                    });
                    percent::encode_all(out, &info_hash.0);
                }
            }
        }
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
    }
}
