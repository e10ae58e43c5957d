//! The HTTP request before the WebSocket, without its socket: the head is
//! read into a bounded buffer, then answered with the 101 upgrade (built by
//! tungstenite, which checks the upgrade headers), a `GET /health` 200, or
//! an error status; every answer but the 101 closes the connection.

use std::net::IpAddr;

use aquatic_common::proxy::{client_ip, forwarded_ip};
use ipnet::IpNet;

use crate::common::CloseReason;

/// What the connection does once the answer is written.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterResponse {
    /// Go on as a WebSocket of a client at this address (forwarded by a
    /// trusted proxy, or the connection's own; canonical); bytes read after
    /// the head belong to it.
    Upgrade { client_ip: IpAddr, tail: Vec<u8> },
    /// A plain HTTP answer (health check or error): close.
    Close(CloseReason),
}

/// The handshake's settings, from the config.
#[derive(Clone, Copy, Debug)]
pub struct HandshakeRules<'a> {
    pub max_head: usize,
    /// The reverse proxy's client-address header ("" for none).
    pub proxy_header: &'a str,
    pub trusted_proxies: &'a [IpNet],
    /// `network.allowed_hosts`: another `Host` gets 421 (empty: any).
    pub allowed_hosts: &'a [String],
}

/// The request head read so far, and the answer once decided.
pub struct Handshake {
    /// The address the connection comes from.
    direct_ip: IpAddr,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    written: usize,
    next: Option<AfterResponse>,
    /// The answer decided is a 421 for a `Host` not allowed.
    wrong_host: bool,
}

impl Handshake {
    pub fn new(direct_ip: IpAddr) -> Self {
        Self {
            direct_ip,
            read_buf: Vec::new(),
            write_buf: Vec::new(),
            written: 0,
            next: None,
            wrong_host: false,
        }
    }

    /// Still reading the head: read into this buffer and call
    /// [`decide`](Self::decide); `None` once decided.
    pub fn read_buf(&mut self) -> Option<&mut Vec<u8>> {
        self.next.is_none().then_some(&mut self.read_buf)
    }

    /// Stop reading with this much buffered: a head this long is refused
    /// anyway.
    pub fn read_limit(rules: &HandshakeRules) -> usize {
        rules.max_head.saturating_mul(2)
    }

    /// Decide on the head read so far: `false` while it is incomplete and
    /// within the limit (read more); otherwise the answer is queued
    /// ([`output`](Self::output)).
    pub fn decide(&mut self, rules: &HandshakeRules) -> bool {
        if self.next.is_some() {
            return true;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        let too_long = || {
            (
                http_error(431, "Request Header Fields Too Large"),
                AfterResponse::Close(CloseReason::OverLimit),
            )
        };
        let (response, next) = match request.parse(&self.read_buf) {
            Ok(httparse::Status::Partial) if self.read_buf.len() <= rules.max_head => {
                return false;
            }
            Ok(httparse::Status::Partial) => too_long(),
            Ok(httparse::Status::Complete(len)) if len > rules.max_head => too_long(),
            Ok(httparse::Status::Complete(len)) => {
                let tail = self.read_buf.get(len..).unwrap_or_default().to_vec();
                match upgrade_response(&request, self.direct_ip, rules) {
                    Upgrade::WebSocket(response, client_ip) => {
                        (response, AfterResponse::Upgrade { client_ip, tail })
                    }
                    Upgrade::Health => (
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n".to_vec(),
                        AfterResponse::Close(CloseReason::HttpAnswered),
                    ),
                    Upgrade::Refused(response) => {
                        (response, AfterResponse::Close(CloseReason::ProtocolError))
                    }
                    Upgrade::WrongHost => {
                        self.wrong_host = true;
                        (
                            http_error(421, "Misdirected Request"),
                            AfterResponse::Close(CloseReason::ProtocolError),
                        )
                    }
                }
            }
            Err(_) => (
                http_error(400, "Bad Request"),
                AfterResponse::Close(CloseReason::ProtocolError),
            ),
        };
        self.read_buf = Vec::new();
        self.write_buf = response;
        self.next = Some(next);
        true
    }

    /// The answer decided is a 421: the `Host` is not served here.
    pub fn is_wrong_host(&self) -> bool {
        self.wrong_host
    }

    /// The address a trusted proxy forwarded this upgrade for, when it is
    /// not the connection's own (which the IP filter saw at accept).
    pub fn forwarded_client(&self) -> Option<IpAddr> {
        match &self.next {
            Some(AfterResponse::Upgrade { client_ip, .. })
                if *client_ip != self.direct_ip.to_canonical() =>
            {
                Some(*client_ip)
            }
            _ => None,
        }
    }

    /// Answer 403 instead of upgrading (the IP filter refuses the
    /// forwarded client): only before any of the answer is written.
    pub fn refuse_forwarded(&mut self) {
        if self.written == 0 {
            self.write_buf = http_error(403, "Forbidden");
            self.next = Some(AfterResponse::Close(CloseReason::ProtocolError));
        }
    }

    /// The answer decided is a health check's.
    pub fn is_health_check(&self) -> bool {
        self.next == Some(AfterResponse::Close(CloseReason::HttpAnswered))
    }

    /// The answer's bytes not yet written.
    pub fn output(&self) -> &[u8] {
        self.write_buf.get(self.written..).unwrap_or_default()
    }

    pub fn wrote(&mut self, n: usize) {
        self.written = self.written.saturating_add(n).min(self.write_buf.len());
    }

    /// The answer's length (for the byte counters).
    pub fn response_len(&self) -> usize {
        self.write_buf.len()
    }

    /// What comes after the answer, once it is written.
    pub fn finish(self) -> AfterResponse {
        self.next
            .unwrap_or(AfterResponse::Close(CloseReason::ProtocolError))
    }
}

enum Upgrade {
    /// The 101 response, and the client's address.
    WebSocket(Vec<u8>, IpAddr),
    Health,
    /// An error response.
    Refused(Vec<u8>),
    /// 421: the `Host` is not one of `allowed_hosts`.
    WrongHost,
}

/// Decide what to do with a complete request head from `direct`.
fn upgrade_response(
    request: &httparse::Request,
    direct: IpAddr,
    rules: &HandshakeRules,
) -> Upgrade {
    let full_path = request.path.unwrap_or("/");
    let path = full_path.split('?').next().unwrap_or(full_path);
    if request.method != Some("GET") {
        return Upgrade::Refused(http_error(405, "Method Not Allowed"));
    }
    if path == "/health" {
        return Upgrade::Health;
    }
    // Exactly one Host header, and an origin-form target.
    let mut hosts = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) if full_path.starts_with('/') => Some(h.value),
        _ => None,
    };
    if !aquatic_common::host::host_allowed(host, rules.allowed_hosts) {
        return Upgrade::WrongHost;
    }
    let header = rules.proxy_header;
    let forwarded = if header.is_empty() {
        None
    } else {
        forwarded_ip(request.headers.iter().map(|h| (h.name, h.value)), header)
    };
    let Ok(ip) = client_ip(direct, forwarded, !header.is_empty(), rules.trusted_proxies) else {
        return Upgrade::Refused(http_error(400, "Reverse Proxy Header Missing"));
    };
    // tungstenite checks the upgrade headers and derives the accept key.
    let mut builder = tungstenite::http::Request::builder()
        .method("GET")
        .uri(full_path);
    for header in request.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    let Ok(http_request) = builder.body(()) else {
        return Upgrade::Refused(http_error(400, "Bad Request"));
    };
    let Ok(response) = tungstenite::handshake::server::create_response(&http_request) else {
        return Upgrade::Refused(http_error(400, "Bad Request"));
    };
    let mut bytes = Vec::with_capacity(160);
    if tungstenite::handshake::server::write_response(&mut bytes, &response).is_err() {
        return Upgrade::Refused(http_error(400, "Bad Request"));
    }
    Upgrade::WebSocket(bytes, ip.to_canonical())
}

fn http_error(status: u16, phrase: &str) -> Vec<u8> {
    let body = format!("{status} {phrase}\n");
    format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET /announce HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    fn rules<'a>(trusted: &'a [IpNet], header: &'static str) -> HandshakeRules<'a> {
        HandshakeRules {
            max_head: 400,
            proxy_header: header,
            trusted_proxies: trusted,
            allowed_hosts: &[],
        }
    }

    fn decide(input: &[u8], rules: &HandshakeRules) -> Option<(String, AfterResponse)> {
        let mut h = Handshake::new("192.0.2.1".parse().unwrap());
        h.read_buf().unwrap().extend_from_slice(input);
        if !h.decide(rules) {
            return None;
        }
        assert!(h.read_buf().is_none());
        let out = String::from_utf8_lossy(h.output()).into_owned();
        let n = h.output().len();
        h.wrote(n);
        assert!(h.output().is_empty());
        Some((out, h.finish()))
    }

    #[test]
    fn an_upgrade_is_accepted_and_keeps_what_came_after_the_head() {
        let mut input = format!("{UPGRADE}\r\n").into_bytes();
        input.extend_from_slice(&[0x81, 0x05]);
        let (out, next) = decide(&input, &rules(&[], "")).unwrap();
        assert!(out.starts_with("HTTP/1.1 101"), "{out}");
        // RFC 6455's example key and accept value.
        assert!(out.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{out}");
        assert_eq!(
            next,
            AfterResponse::Upgrade {
                client_ip: "192.0.2.1".parse().unwrap(),
                tail: vec![0x81, 0x05],
            }
        );
    }

    #[test]
    fn another_host_gets_421_and_a_refused_proxied_client_403() {
        let allowed = ["tracker.example.org".to_string()];
        let strict = HandshakeRules {
            allowed_hosts: &allowed,
            ..rules(&[], "")
        };
        let mut h = Handshake::new("192.0.2.1".parse().unwrap());
        h.read_buf()
            .unwrap()
            .extend_from_slice(format!("{UPGRADE}\r\n").as_bytes());
        assert!(h.decide(&strict));
        assert!(h.is_wrong_host());
        assert!(String::from_utf8_lossy(h.output()).starts_with("HTTP/1.1 421 "));
        let right = UPGRADE.replace("Host: t", "Host: TRACKER.example.org:443");
        let (out, _) = decide(format!("{right}\r\n").as_bytes(), &strict).unwrap();
        assert!(out.starts_with("HTTP/1.1 101"), "{out}");

        let proxies: Vec<IpNet> = vec!["192.0.2.1/32".parse().unwrap()];
        let proxied = rules(&proxies, "X-Forwarded-For");
        let mut h = Handshake::new("192.0.2.1".parse().unwrap());
        h.read_buf().unwrap().extend_from_slice(
            format!("{UPGRADE}X-Forwarded-For: 198.51.100.7\r\n\r\n").as_bytes(),
        );
        assert!(h.decide(&proxied));
        assert_eq!(h.forwarded_client(), Some("198.51.100.7".parse().unwrap()));
        h.refuse_forwarded();
        assert!(String::from_utf8_lossy(h.output()).starts_with("HTTP/1.1 403 "));
        assert_eq!(h.finish(), AfterResponse::Close(CloseReason::ProtocolError));
        // From an address that is no trusted proxy, the header is ignored:
        // the connection's own address is the client's, not "forwarded".
        let mut h = Handshake::new("203.0.113.5".parse().unwrap());
        h.read_buf().unwrap().extend_from_slice(
            format!("{UPGRADE}X-Forwarded-For: 198.51.100.7\r\n\r\n").as_bytes(),
        );
        assert!(h.decide(&proxied));
        assert_eq!(h.forwarded_client(), None);
        assert!(String::from_utf8_lossy(h.output()).starts_with("HTTP/1.1 101 "));
    }

    #[test]
    fn a_partial_head_waits_until_it_is_too_long() {
        assert!(decide(UPGRADE.as_bytes(), &rules(&[], "")).is_none());
        let long = format!("{UPGRADE}X-Pad: {}\r\n", "a".repeat(400));
        let (out, next) = decide(long.as_bytes(), &rules(&[], "")).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "));
        assert_eq!(next, AfterResponse::Close(CloseReason::OverLimit));
        // Complete, but over the limit.
        let complete = format!("{UPGRADE}X-Pad: {}\r\n\r\n", "a".repeat(300));
        let (out, _) = decide(complete.as_bytes(), &rules(&[], "")).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn health_checks_and_refusals_close() {
        let (out, next) = decide(b"GET /health HTTP/1.1\r\n\r\n", &rules(&[], "")).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 ") && out.ends_with("ok\n"));
        assert_eq!(next, AfterResponse::Close(CloseReason::HttpAnswered));
        let (out, _) = decide(b"POST / HTTP/1.1\r\n\r\n", &rules(&[], "")).unwrap();
        assert!(out.starts_with("HTTP/1.1 405 "));
        let (out, next) = decide(b"GET / HTTP/1.1\r\n\r\n", &rules(&[], "")).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "), "not an upgrade: {out}");
        assert_eq!(next, AfterResponse::Close(CloseReason::ProtocolError));
        let (out, _) = decide(b"\x00\x01\r\n\r\n", &rules(&[], "")).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        let forwarded = format!("{UPGRADE}X-Forwarded-For: 198.51.100.7\r\n\r\n");
        let (_, next) = decide(forwarded.as_bytes(), &rules(&trusted, "X-Forwarded-For")).unwrap();
        let AfterResponse::Upgrade { client_ip, .. } = next else {
            panic!("{next:?}");
        };
        assert_eq!(client_ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        // From the proxy, without the header: refused.
        let plain = format!("{UPGRADE}\r\n");
        let (out, _) = decide(plain.as_bytes(), &rules(&trusted, "X-Forwarded-For")).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 Reverse Proxy Header Missing"));
        // Not trusted: the header is ignored.
        let (_, next) = decide(forwarded.as_bytes(), &rules(&[], "X-Forwarded-For")).unwrap();
        assert!(
            matches!(next, AfterResponse::Upgrade { client_ip, .. } if client_ip == "192.0.2.1".parse::<IpAddr>().unwrap())
        );
    }
}
