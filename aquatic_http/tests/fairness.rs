//! One source cannot shut others out: attacks from 127.0.0.2 against the
//! real aquatic_http binary, each while honest clients on 127.0.0.3 and
//! 127.0.0.4 go on, and must keep getting correct answers within a bound.
//! Also pipelined bursts larger than the read buffer, and clients that
//! send their request together with FIN.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aquatic_test_support::http::{announce_path, get, pct, read_response};
use aquatic_test_support::{Daemon, loopback, tcp_from};

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_http");
/// What an honest round trip may take while the tracker is under attack
/// (generous: debug builds on a loaded 2-core CI machine).
const LATENCY_BOUND: Duration = Duration::from_secs(1);
/// Every attack loop ends by this, whatever happens.
const ATTACK_LIMIT: Duration = Duration::from_secs(30);

/// Connections kept open as HTTP/1.1 allows: these tests pipeline requests
/// without `Connection: keep-alive`.
fn start(extra: &str, network: &str) -> Daemon {
    Daemon::launch(
        BINARY,
        &format!("{extra}\n[network]\nkeep_alive = \"always\"\n{network}\n"),
    )
}

fn attacker() -> IpAddr {
    loopback(2)
}

/// A timed announce from `from`: the answer's body.
fn honest_announce(addr: SocketAddr, from: IpAddr, path: &str) -> Vec<u8> {
    let begin = Instant::now();
    let mut s = tcp_from(from, addr).expect("honest connect");
    s.write_all(&get(path, "")).unwrap();
    let (status, body) = read_response(&mut s).expect("an answer");
    assert_eq!(status, 200);
    let took = begin.elapsed();
    assert!(took < LATENCY_BOUND, "honest announce took {took:?}");
    body
}

/// The compact peers of an announce answer: (IPv4 address, port) each.
fn compact_peers(body: &[u8]) -> Vec<(Ipv4Addr, u16)> {
    let key = b"5:peers";
    let at = body
        .windows(key.len())
        .position(|w| w == key)
        .expect("peers key")
        + key.len();
    let rest = &body[at..];
    let colon = rest.iter().position(|&b| b == b':').unwrap();
    let len: usize = std::str::from_utf8(&rest[..colon])
        .unwrap()
        .parse()
        .unwrap();
    rest[colon + 1..colon + 1 + len]
        .chunks(6)
        .map(|c| {
            (
                Ipv4Addr::new(c[0], c[1], c[2], c[3]),
                u16::from_be_bytes([c[4], c[5]]),
            )
        })
        .collect()
}

fn number(body: &[u8], key: &str) -> usize {
    let key = format!("{}:{key}i", key.len());
    let at = body
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap_or_else(|| panic!("no {key} in {}", String::from_utf8_lossy(body)))
        + key.len();
    let end = body[at..].iter().position(|&b| b == b'e').unwrap();
    std::str::from_utf8(&body[at..at + end])
        .unwrap()
        .parse()
        .unwrap()
}

/// Finding: with max_peers_per_torrent = 1000, one address announcing 1000
/// peer ids filled the torrent; an honest peer got 50 copies of one
/// address and another was not stored.
#[test]
fn one_address_cannot_fill_a_torrent() {
    let t = start(
        "[protocol]\nmax_peers_per_torrent = 1000\nmax_response_peers = 200\n",
        "",
    );
    let mut s = tcp_from(attacker(), t.addr).unwrap();
    // 1000 peer ids on one port, then 1000 ports: pipelined, keep-alive.
    for round in 0..2u32 {
        let mut batch = Vec::new();
        for i in 0..1000u32 {
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&(round * 1000 + i).to_be_bytes());
            let port = if round == 0 { 6881 } else { 1 + i as u16 };
            batch.extend(get(
                &format!(
                    "/announce?info_hash={}&peer_id={}&port={port}&left=1",
                    pct(&[7; 20]),
                    pct(&id)
                ),
                "",
            ));
        }
        let mut writer = s.try_clone().unwrap();
        let sender = thread::spawn(move || writer.write_all(&batch));
        for _ in 0..1000 {
            assert_eq!(read_response(&mut s).expect("attacker answered").0, 200);
        }
        sender.join().unwrap().unwrap();
    }
    // Honest peers on two other addresses are stored and find each other.
    let a = honest_announce(
        t.addr,
        loopback(3),
        &announce_path(7, 3, 7000, 1, "&numwant=200"),
    );
    assert!(number(&a, "incomplete") >= 2);
    let b = honest_announce(
        t.addr,
        loopback(4),
        &announce_path(7, 4, 8000, 1, "&numwant=200"),
    );
    // The attacker holds its share of the torrent: 5 % of 1000.
    assert_eq!(number(&b, "incomplete"), 50 + 2);
    let peers = compact_peers(&b);
    assert_eq!(peers.len(), 51);
    assert!(peers.contains(&(Ipv4Addr::new(127, 0, 0, 3), 7000)));
    let unique: HashSet<_> = peers.iter().collect();
    assert_eq!(unique.len(), peers.len(), "an address listed twice");
}

/// Holds connections from `from` open: as many as the daemon keeps,
/// reopening those it closes, until `stop`. How many it held at most.
fn hold_connections(
    addr: SocketAddr,
    from: IpAddr,
    want: usize,
    stop: Arc<AtomicBool>,
    held_most: Arc<AtomicU64>,
) {
    let deadline = Instant::now() + ATTACK_LIMIT;
    let mut open: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        // At most 100 new connections a round: a flood, not a tight loop.
        for _ in 0..want.saturating_sub(open.len()).min(100) {
            match tcp_from(from, addr) {
                Ok(s) => {
                    s.set_nonblocking(true).unwrap();
                    open.push(s);
                }
                Err(_) => break,
            }
        }
        // Give the daemon time to accept (or refuse and close) them, then
        // drop those it closed (EOF or reset); silent ones stay.
        thread::sleep(Duration::from_millis(100));
        let mut buf = [0u8; 16];
        open.retain_mut(
            |s| matches!(s.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock),
        );
        held_most.fetch_max(open.len() as u64, Ordering::Relaxed);
    }
}

/// Finding: 10,500 idle connects from one address filled max_connections
/// and a client on another address failed most of its tries.
#[test]
fn one_address_cannot_take_every_connection() {
    let t = start(
        "socket_workers = 2",
        "max_connections = 300\nconnection_idle_timeout = 30\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicU64::new(0));
    let attack = {
        let (stop, held, addr) = (stop.clone(), held.clone(), t.addr);
        thread::spawn(move || hold_connections(addr, attacker(), 2000, stop, held))
    };
    thread::sleep(Duration::from_secs(1));
    // 40 fresh connections of an honest client, each answered in time.
    for i in 0..40u8 {
        let body = honest_announce(t.addr, loopback(3), &announce_path(9, i, 7000, 1, ""));
        assert!(number(&body, "incomplete") >= 1);
        thread::sleep(Duration::from_millis(25));
    }
    stop.store(true, Ordering::Relaxed);
    attack.join().unwrap();
    // Its share: 5 % of 300 per socket worker.
    let held = held.load(Ordering::Relaxed);
    assert!(held <= 2 * 15, "the attacker held {held} connections");
    assert!(held >= 15, "the attacker held only {held}");
}

/// Finding: 17 pipelined announces of 1000 bytes in one send got one 431
/// and a close.
#[test]
fn every_request_of_a_pipelined_burst_is_answered() {
    let t = start("", "max_request_head_size = 8192\n");
    for requests in [16usize, 17, 50, 300] {
        let mut s = tcp_from(loopback(3), t.addr).unwrap();
        let mut burst = Vec::new();
        for i in 0..requests {
            let pad = "a".repeat(1000 - 190);
            let path = announce_path(11, (i % 250) as u8, 7000, 1, &format!("&pad={pad}"));
            burst.extend(get(&path, ""));
        }
        // One write (the kernel may split it; the daemon must not care),
        // while reading answers in another thread so neither side blocks.
        let mut writer = s.try_clone().unwrap();
        let sender = thread::spawn(move || writer.write_all(&burst));
        for i in 0..requests {
            let answer = read_response(&mut s);
            assert_eq!(
                answer.as_ref().map(|a| a.0),
                Some(200),
                "request {i} of {requests}"
            );
        }
        sender.join().unwrap().unwrap();
    }
    // A head over the limit is still refused, after the complete requests
    // before it are answered.
    let mut s = tcp_from(loopback(3), t.addr).unwrap();
    let mut burst = get(&announce_path(11, 1, 7000, 1, ""), "");
    burst.extend(get(
        &announce_path(11, 2, 7000, 1, &format!("&pad={}", "a".repeat(9000))),
        "",
    ));
    s.write_all(&burst).unwrap();
    assert_eq!(read_response(&mut s).unwrap().0, 200);
    assert_eq!(read_response(&mut s).unwrap().0, 431);
}

/// A connection the daemon closed: EOF (or a reset) within the bound.
fn closed_within(s: &mut TcpStream, bound: Duration) -> bool {
    s.set_read_timeout(Some(bound)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Finding: a request arriving together with FIN was closed unanswered;
/// with a short gap, some connections sat in CLOSE-WAIT.
#[test]
fn a_request_sent_with_fin_is_answered_then_closed() {
    for extra in ["", "request_workers = 0\n"] {
        let t = start(extra, "");
        for i in 0..80u32 {
            let mut s = tcp_from(loopback(3), t.addr).unwrap();
            let head = get(&announce_path(12, (i % 200) as u8, 7000, 1, ""), "");
            s.write_all(&head).unwrap();
            if i % 2 == 1 {
                thread::sleep(Duration::from_micros(200));
            }
            s.shutdown(Shutdown::Write).unwrap();
            let answer = read_response(&mut s);
            assert_eq!(answer.map(|a| a.0), Some(200), "try {i} ({extra:?})");
            assert!(
                closed_within(&mut s, Duration::from_secs(2)),
                "try {i}: not closed after the answer ({extra:?})"
            );
        }
        // Two pipelined requests, then FIN: both answered, in order.
        let mut s = tcp_from(loopback(3), t.addr).unwrap();
        let mut two = get(&announce_path(12, 1, 7000, 1, ""), "");
        two.extend(get(&format!("/scrape?info_hash={}", pct(&[12; 20])), ""));
        s.write_all(&two).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_response(&mut s).unwrap().0, 200);
        let (status, body) = read_response(&mut s).unwrap();
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains("5:files"));
        assert!(closed_within(&mut s, Duration::from_secs(2)));
        // FIN in the middle of a request: closed without an answer.
        let mut s = tcp_from(loopback(3), t.addr).unwrap();
        s.write_all(b"GET /announce?info_hash=").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(2)));
    }
}
