//! Hostile and unusual clients against the real aquatic_ws binary on
//! 127.0.0.1: thousands of connections that never send, ping floods,
//! clients that never read, fragmented messages, idle connections, the
//! connection limit; meanwhile a well-behaved client keeps getting answers
//! within a bound. Also the reverse-proxy rule, the access list and the
//! single-thread (request_workers = 0) mode.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aquatic_test_support::Daemon;
use aquatic_test_support::ws::{CONTINUATION, PING, PONG, TEXT, frame, raw_upgrade_from};
use aquatic_ws_protocol::{
    AnnounceEvent, AnnounceRequest, InMessage, InfoHash, OutMessage, PeerId, ScrapeRequest,
};
use common::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// What a well-behaved client's round trip may take while the tracker is
/// under attack (generous: debug builds on a loaded 2-core CI machine).
const LATENCY_BOUND: Duration = Duration::from_secs(1);

/// Every client here comes from 127.0.0.1: per-source budgets are opened
/// wide (one source may use every slot) so that each attack meets the
/// limit it is about; `fairness.rs` tests the budgets.
fn start(top: &str, network: &str) -> Daemon {
    let config = format!("{top}\n[network]\n{network}\n[source_budgets]\nshare_percent = 100\n");
    Daemon::launch(BINARY, &config)
}

fn connect_with(addr: SocketAddr, header: Option<(&'static str, &str)>) -> Client {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some((name, value)) = header {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    tungstenite::client::client(request, stream).unwrap().0
}

fn connect(addr: SocketAddr) -> Client {
    connect_with(addr, None)
}

fn announce(hash: u8, peer: u8) -> InMessage {
    InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash([hash; 20]),
        peer_id: PeerId([peer; 20]),
        event: AnnounceEvent::Started,
        left: Some(1),
        numwant: None,
        offers: Vec::new(),
    })
}

fn leechers(message: &OutMessage) -> usize {
    match message {
        OutMessage::AnnounceResponse(r) => r.incomplete,
        other => panic!("not an announce reply: {other:?}"),
    }
}

/// The well-behaved client: an announce round trip, timed.
fn timed_round_trip(ws: &mut Client, peer: u8) -> Duration {
    let start = Instant::now();
    send(ws, &announce(200, peer));
    assert!(leechers(&recv(ws)) >= 1);
    start.elapsed()
}

fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    raw_upgrade_from(addr.ip(), addr).unwrap()
}

#[test]
fn silent_connections_and_floods_do_not_disturb_a_well_behaved_client() {
    let t = start("socket_workers = 2\nrequest_workers = 1", "");
    let mut good = connect(t.addr);
    let mut worst = timed_round_trip(&mut good, 1);

    // 2000 TCP connections that never send a byte, and 500 WebSocket
    // connections that never send a message.
    let silent: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(t.addr).unwrap())
        .collect();
    let idle: Vec<TcpStream> = (0..500).map(|_| raw_upgrade(t.addr)).collect();
    worst = worst.max(timed_round_trip(&mut good, 1));

    // A ping flood from a client that never reads its pongs, and a client
    // announcing as fast as it can without reading the replies.
    let mut pinger = raw_upgrade(t.addr);
    let ping = frame(PING, true, b"x");
    let mut flooder = raw_upgrade(t.addr);
    let flood = frame(
        TEXT,
        true,
        &InMessage::Scrape(ScrapeRequest {
            info_hashes: (0..50u8).map(|i| InfoHash([i; 20])).collect(),
        })
        .to_json(),
    );
    pinger.set_nonblocking(true).unwrap();
    flooder.set_nonblocking(true).unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    let mut rounds = 0;
    while Instant::now() < until {
        for _ in 0..200 {
            let _ = pinger.write(&ping);
            let _ = flooder.write(&flood);
        }
        worst = worst.max(timed_round_trip(&mut good, 1));
        rounds += 1;
    }
    assert!(rounds > 5, "only {rounds} round trips in 3 s");
    assert!(worst < LATENCY_BOUND, "slowest round trip {worst:?}");
    // The tracker still takes new clients.
    let mut late = connect(t.addr);
    send(&mut late, &announce(200, 2));
    assert_eq!(leechers(&recv(&mut late)), 2);
    drop((silent, idle));
}

#[test]
fn a_client_sending_faster_than_its_worker_reads_does_not_starve_the_others() {
    // One socket worker for both: the flooder's messages (pongs, which
    // need no answer, so nothing makes the tracker stop reading it) come
    // in faster than the worker can parse them.
    let t = start("socket_workers = 1\nrequest_workers = 1", "");
    let mut good = connect(t.addr);
    let mut worst = timed_round_trip(&mut good, 1);
    let mut flooder = raw_upgrade(t.addr);
    flooder
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let pongs: Vec<u8> = (0..8192).flat_map(|_| frame(PONG, true, b"x")).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut written = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match flooder.write(&pongs) {
                    Ok(n) => written += n,
                    Err(_) => break,
                }
            }
            written
        })
    };
    let until = Instant::now() + Duration::from_secs(3);
    let mut rounds = 0;
    while Instant::now() < until {
        worst = worst.max(timed_round_trip(&mut good, 1));
        rounds += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = flooding.join().unwrap();
    println!("{rounds} round trips, slowest {worst:?}, while {written} bytes of pongs came in");
    assert!(written > 1 << 20, "the flood was only {written} bytes");
    assert!(rounds > 5, "only {rounds} round trips in 3 s");
    assert!(worst < LATENCY_BOUND, "slowest round trip {worst:?}");
}

#[test]
fn fragmented_messages_are_assembled_and_oversized_ones_close_the_connection() {
    let t = start("", "max_frame_size = 65536\nmax_message_size = 131072");
    let mut raw = raw_upgrade(t.addr);
    let json = announce(1, 1).to_json();
    let (a, b) = json.split_at(json.len() / 2);
    let (b, c) = b.split_at(b.len() / 2);
    raw.write_all(&frame(TEXT, false, a)).unwrap();
    raw.write_all(&frame(CONTINUATION, false, b)).unwrap();
    // A ping between the fragments is allowed.
    raw.write_all(&frame(PING, true, b"p")).unwrap();
    raw.write_all(&frame(CONTINUATION, true, c)).unwrap();
    let mut ws = WebSocket::from_raw_socket(raw, tungstenite::protocol::Role::Client, None);
    assert_eq!(leechers(&recv(&mut ws)), 1);

    // 3 fragments of 60 KiB: each frame is within the limit, the message
    // is not.
    let mut raw = raw_upgrade(t.addr);
    let chunk = vec![b' '; 60 * 1024];
    let _ = raw.write_all(&frame(TEXT, false, &chunk));
    let _ = raw.write_all(&frame(CONTINUATION, false, &chunk));
    let _ = raw.write_all(&frame(CONTINUATION, true, &chunk));
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest); // closed, not hanging
    let mut good = connect(t.addr);
    send(&mut good, &announce(1, 2));
    assert_eq!(leechers(&recv(&mut good)), 2);
}

#[test]
fn idle_connections_are_pinged_then_closed_and_their_peers_leave() {
    let t = start("", "ping_interval = 1\nconnection_idle_timeout = 3");
    // This client announces, then never reads (so never answers pings).
    let mut mute = connect(t.addr);
    send(&mut mute, &announce(5, 1));
    recv(&mut mute);
    // This one keeps reading: tungstenite answers the pings.
    let mut alive = connect(t.addr);
    send(&mut alive, &announce(5, 2));
    assert_eq!(leechers(&recv(&mut alive)), 2);
    alive
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut pings = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        match alive.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(other) => panic!("{other:?}"),
            Err(tungstenite::Error::Io(_)) => {}
            Err(e) => panic!("{e}"),
        }
        let _ = alive.flush();
    }
    assert!(pings >= 1, "no ping");
    // The mute client's peer is gone, the live one is still there.
    alive
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    send(&mut alive, &announce(5, 2));
    assert_eq!(leechers(&recv(&mut alive)), 1);
    assert!(
        mute.read().is_err() || mute.read().is_err(),
        "mute client not closed"
    );
}

#[test]
fn connection_limit_refuses_only_the_extra_connections() {
    let t = start("", "max_connections = 3");
    let mut open: Vec<Client> = (0..3).map(|_| connect(t.addr)).collect();
    let mut extra = TcpStream::connect(t.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\n\r\n");
    let mut buf = Vec::new();
    assert!(matches!(extra.read_to_end(&mut buf), Ok(0) | Err(_)));
    for (i, ws) in open.iter_mut().enumerate() {
        send(ws, &announce(7, i as u8));
        assert_eq!(leechers(&recv(ws)), i + 1);
    }
}

#[test]
fn reverse_proxy_header_only_from_trusted_proxies() {
    // Trusted: the header decides the address family the peer is counted in.
    let t = start(
        "",
        "reverse_proxy_ip_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    let mut v6 = connect_with(t.addr, Some(("X-Forwarded-For", "10.0.0.1, 2001:db8::1")));
    send(&mut v6, &announce(9, 1));
    assert_eq!(leechers(&recv(&mut v6)), 1);
    let mut v4 = connect_with(t.addr, Some(("X-Forwarded-For", "192.0.2.1")));
    send(&mut v4, &announce(9, 2));
    assert_eq!(
        leechers(&recv(&mut v4)),
        1,
        "IPv4 and IPv6 swarms are separate"
    );
    // From a trusted proxy without the header: refused.
    let stream = TcpStream::connect(t.addr).unwrap();
    assert!(tungstenite::client::client(format!("ws://{}/", t.addr), stream).is_err());

    // Untrusted: the header is ignored.
    let t = start(
        "",
        "reverse_proxy_ip_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"10.0.0.0/8\"]",
    );
    let mut a = connect_with(t.addr, Some(("X-Forwarded-For", "2001:db8::1")));
    send(&mut a, &announce(9, 1));
    let mut b = connect(t.addr);
    send(&mut b, &announce(9, 2));
    recv(&mut a);
    assert_eq!(leechers(&recv(&mut b)), 2);
}

#[test]
fn access_list_and_single_thread_mode() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("deny.txt");
    std::fs::write(&list, format!("{}\n", InfoHash([6; 20]).to_hex())).unwrap();
    let config = format!(
        "socket_workers = 1\nrequest_workers = 0\n[access_list]\nmode = \"deny\"\npath = {list:?}\n"
    );
    let t = Daemon::launch_in(BINARY, dir, &config);
    let mut ws = connect(t.addr);
    send(&mut ws, &announce(6, 1));
    match recv(&mut ws) {
        OutMessage::Error(e) => assert!(e.failure_reason.contains("not allowed")),
        other => panic!("{other:?}"),
    }
    send(&mut ws, &announce(5, 1));
    assert_eq!(leechers(&recv(&mut ws)), 1);
    let mut other = connect(t.addr);
    send(&mut other, &announce(5, 2));
    assert_eq!(leechers(&recv(&mut other)), 2);
}
