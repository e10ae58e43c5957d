//! The defences an operator switches on, against the real aquatic_ws
//! binary: the IP filter (connections from refused addresses closed at
//! accept, upgrades a trusted proxy forwards for them answered 403, reload
//! on SIGUSR1), allowed host names (421), the per-source rate limit (a
//! flood from one address gets failure reasons while another address keeps
//! its answers and latency) and the announce-interval jitter.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aquatic_test_support::ws::raw_upgrade_from;
use aquatic_test_support::{defences, loopback, tcp_from};
use aquatic_ws_protocol::{
    AnnounceEvent, AnnounceRequest, InMessage, InfoHash, OutMessage, PeerId, ScrapeRequest,
};
use common::*;
use tungstenite::Message;

/// A WebSocket from 127.0.0.`n`, its upgrade naming `host`.
fn connect(n: u8, addr: SocketAddr, host: &str) -> Result<Client, String> {
    let stream = tcp_from(loopback(n), addr).map_err(|e| e.to_string())?;
    tungstenite::client::client(format!("ws://{host}/announce"), stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::handshake::HandshakeError::Failure(tungstenite::Error::Http(r)) => {
                format!("status {}", r.status().as_u16())
            }
            other => other.to_string(),
        })
}

fn announce(ws: &mut Client, peer: u8) -> OutMessage {
    let message = InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([peer; 20]),
        event: AnnounceEvent::Started,
        left: Some(0),
        numwant: Some(0),
        offers: Vec::new(),
    });
    ws.send(Message::text(String::from_utf8(message.to_json()).unwrap()))
        .unwrap();
    recv(ws)
}

#[test]
fn ip_filter_closes_refused_connections_and_reloads() {
    let (t, filter) = defences::launch_denying(BINARY, "127.0.0.2\n", "");
    assert!(raw_upgrade_from(loopback(2), t.addr).is_err());
    assert!(raw_upgrade_from(loopback(3), t.addr).is_ok());
    assert!(defences::refused(&t, "ip_filter") >= 1);
    // A WebSocket opened before the reload that refuses it.
    let mut open = connect(3, t.addr, "t").unwrap();
    assert!(failure(&announce(&mut open, 3)).is_none());
    defences::reload_broken_then_good(
        &t,
        &filter,
        "127.0.0.3\nbad\n",
        || assert!(raw_upgrade_from(loopback(2), t.addr).is_err()),
        "127.0.0.3\n",
    );
    assert!(raw_upgrade_from(loopback(2), t.addr).is_ok());
    assert!(raw_upgrade_from(loopback(3), t.addr).is_err());
    assert_eq!(
        failure(&announce(&mut open, 3)).as_deref(),
        Some("address refused")
    );
}

#[test]
fn upgrades_a_trusted_proxy_forwards_for_refused_addresses_get_403() {
    let t = defences::launch_behind_proxy_denying(BINARY, "192.0.2.0/24\n");
    let status = |forwarded: &str| {
        let mut raw = tcp_from(loopback(1), t.addr).unwrap();
        raw.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {forwarded}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes()).unwrap();
        let mut head = [0u8; 12];
        raw.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head).to_string()
    };
    assert_eq!(status("192.0.2.9"), "HTTP/1.1 403");
    assert_eq!(status("198.51.100.9"), "HTTP/1.1 101");
}

#[test]
fn hosts_not_allowed_get_421() {
    let t = defences::launch(BINARY, "", "allowed_hosts = [\"tracker.example.org\"]\n");
    let mut ws = connect(1, t.addr, "Tracker.Example.org:8000").unwrap();
    assert!(failure(&announce(&mut ws, 1)).is_none());
    assert_eq!(
        connect(1, t.addr, "other.example.com").err().as_deref(),
        Some("status 421")
    );
    assert_eq!(defences::refused(&t, "wrong_host"), 1);
}

#[test]
fn a_rate_limited_flood_leaves_other_clients_their_answers_and_latency() {
    let t = defences::launch(BINARY, defences::FLOOD_RATE_LIMIT, "");
    let addr = t.addr;
    let flood = move |flood_for: Duration| {
        let mut ws = connect(2, addr, "t").unwrap();
        let (mut answered, mut limited) = (0u64, 0u64);
        let begin = Instant::now();
        while begin.elapsed() < flood_for {
            // Scrapes and announces alike count.
            let scrape = InMessage::Scrape(ScrapeRequest {
                info_hashes: vec![InfoHash([1; 20])],
            });
            ws.send(Message::text(String::from_utf8(scrape.to_json()).unwrap()))
                .unwrap();
            match failure(&recv(&mut ws)) {
                Some(reason) if reason.contains("rate limit exceeded") => limited += 1,
                Some(other) => panic!("{other}"),
                None => answered += 1,
            }
        }
        (answered, limited)
    };
    let mut honest = connect(3, addr, "t").unwrap();
    defences::flood_beside_honest_client(&t, Duration::from_secs(3), flood, || {
        let reply = announce(&mut honest, 3);
        assert!(failure(&reply).is_none(), "{reply:?}");
    });
}

#[test]
fn announce_intervals_are_spread_around_the_configured_one() {
    let t = defences::launch(
        BINARY,
        "[protocol]\npeer_announce_interval = 120\npeer_announce_interval_jitter = 15\n",
        "",
    );
    let mut ws = connect(1, t.addr, "t").unwrap();
    let mut intervals = Vec::new();
    for _ in 0..200 {
        match announce(&mut ws, 1) {
            OutMessage::AnnounceResponse(r) => intervals.push(r.interval),
            other => panic!("{other:?}"),
        }
    }
    defences::assert_spread(&intervals, 120, 15, 0, 25, 3.0);
}
