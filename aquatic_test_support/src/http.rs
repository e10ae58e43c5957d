//! Talking HTTP/1.1 to aquatic_http in tests, over plain `TcpStream`s:
//! announce paths, request heads, and reading one response at a time so
//! pipelined answers stay in the stream.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Every byte percent-encoded.
pub fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

/// An announce path for info hash `[hash; 20]` and peer id `[peer; 20]`;
/// `extra` is appended to the query as is.
pub fn announce_path(hash: u8, peer: u8, port: u16, left: u64, extra: &str) -> String {
    format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}{extra}",
        pct(&[hash; 20]),
        pct(&[peer; 20])
    )
}

/// A GET request head; `headers` are whole `Name: value\r\n` lines.
pub fn get(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: tracker\r\n{headers}\r\n").into_bytes()
}

/// Read one response: (status, body). None on timeout or close. Reads the
/// head a byte at a time so a pipelined next answer stays in the stream.
pub fn read_response(stream: &mut impl Read) -> Option<(u16, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("content-length: ")
            .and_then(|v| v.trim().parse().ok())
    })?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some((status, body))
}

/// A connection whose reads give up after 5 s.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Send `request` (whole, head and all) on a new connection and read the
/// answer until the server closes it (or 5 s pass without a byte).
pub fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = connect(addr);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `GET path` on a new connection: (status, body).
pub fn request(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = connect(addr);
    s.write_all(&get(path, "")).unwrap();
    read_response(&mut s).expect("response")
}

pub fn contains(body: &[u8], needle: &[u8]) -> bool {
    body.windows(needle.len()).any(|w| w == needle)
}

/// `needle` is in `body` (both shown, lossily, when it is not).
pub fn assert_contains(body: &[u8], needle: &[u8]) {
    assert!(
        contains(body, needle),
        "no {:?} in {}",
        String::from_utf8_lossy(needle),
        String::from_utf8_lossy(body)
    );
}

/// `GET path` with `headers` on the open connection `stream`: (status,
/// body).
pub fn round_trip(stream: &mut (impl Read + Write), path: &str, headers: &str) -> (u16, Vec<u8>) {
    stream.write_all(&get(path, headers)).unwrap();
    read_response(stream).expect("response")
}
