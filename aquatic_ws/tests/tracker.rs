//! The real aquatic_ws binary over real sockets on 127.0.0.1, with a
//! blocking tungstenite client: announce replies and counts, offer relay
//! and answer routing across socket workers, ids with every byte value,
//! scrape, peers leaving on stop / close / dropped TCP, peer id takeover,
//! malformed and oversized input, health check, TLS with reload.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aquatic_test_support::state::{scrape_export_section, wait_for_export};
use aquatic_test_support::{Daemon, tls};
use aquatic_ws_protocol::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, InMessage, InfoHash, JsonValue, Offer, OfferId,
    OutMessage, PeerId, ScrapeRequest,
};
use common::*;
use tungstenite::{Message, WebSocket};

fn start(extra: &str) -> Daemon {
    Daemon::launch(
        BINARY,
        &format!("socket_workers = 2\nrequest_workers = 2\n{extra}\n"),
    )
}

/// Nothing arrives within `wait`.
fn assert_silent(ws: &mut Client, wait: Duration) {
    ws.get_mut().set_read_timeout(Some(wait)).unwrap();
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
}

fn announce(hash: InfoHash, peer: PeerId, left: Option<u64>, offers: usize) -> InMessage {
    InMessage::Announce(AnnounceRequest {
        info_hash: hash,
        peer_id: peer,
        event: AnnounceEvent::Started,
        left,
        numwant: Some(offers as u64),
        offers: (0..offers)
            .map(|i| Offer {
                offer_id: OfferId([i as u8 + 1; 20]),
                offer: sdp("offer", 2000),
            })
            .collect(),
    })
}

fn sdp(kind: &str, len: usize) -> JsonValue {
    let mut value = simd_json::value::owned::Object::new();
    value.insert("type".into(), JsonValue::from(kind));
    value.insert("sdp".into(), JsonValue::from("v=0\r\n".repeat(len / 5)));
    JsonValue::from(value)
}

fn counts(message: &OutMessage) -> (usize, usize) {
    match message {
        OutMessage::AnnounceResponse(r) => (r.complete, r.incomplete),
        other => panic!("not an announce reply: {other:?}"),
    }
}

fn failure(message: &OutMessage) -> String {
    match message {
        OutMessage::Error(e) => e.failure_reason.to_string(),
        other => panic!("not a failure: {other:?}"),
    }
}

/// Scrape counts (seeders, leechers, downloaded) through a new connection.
fn scrape(addr: SocketAddr, hash: InfoHash) -> (usize, usize, u64) {
    let mut ws = connect(addr);
    send(
        &mut ws,
        &InMessage::Scrape(ScrapeRequest {
            info_hashes: vec![hash],
        }),
    );
    match recv(&mut ws) {
        OutMessage::ScrapeResponse(r) => r
            .files
            .iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, s)| (s.complete, s.incomplete, s.downloaded))
            .unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

/// Poll the scrape counts until they equal `expected` (a closed
/// connection's peers leave as soon as the tracker sees it close).
fn wait_for_counts(addr: SocketAddr, hash: InfoHash, expected: (usize, usize, u64)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = scrape(addr, hash);
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "counts {got:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every byte value somewhere, including `"`, `\`, control characters,
/// 0x7F and 0x80..0xFF.
fn awkward_id(start: u8) -> [u8; 20] {
    std::array::from_fn(|i| start.wrapping_add((i as u8).wrapping_mul(13)))
}

#[test]
fn announce_offer_answer_round_trip_across_socket_workers() {
    let t = start("");
    let hash = InfoHash(awkward_id(0));
    // Eight peers on separate connections: with two socket workers, some
    // land on each (SO_REUSEPORT spreads them by address and port).
    let mut peers: Vec<(PeerId, Client)> = Vec::new();
    for i in 0..8u8 {
        let id = PeerId(awkward_id(i.wrapping_mul(32).wrapping_add(1)));
        let mut ws = connect(t.addr);
        send(&mut ws, &announce(hash, id, Some(100), 0));
        assert_eq!(counts(&recv(&mut ws)), (0, i as usize + 1));
        peers.push((id, ws));
    }
    // A seeder with 10 offers: each goes to a different leecher.
    let seeder_id = PeerId(awkward_id(200));
    let mut seeder = connect(t.addr);
    send(&mut seeder, &announce(hash, seeder_id, Some(0), 10));
    assert_eq!(counts(&recv(&mut seeder)), (1, 8));
    let mut offer_ids = Vec::new();
    for (id, ws) in &mut peers {
        let OutMessage::Offer(offer) = recv(ws) else {
            panic!("no offer")
        };
        assert_eq!(offer.info_hash, hash);
        assert_eq!(offer.peer_id, seeder_id);
        assert_eq!(offer.offer, sdp("offer", 2000));
        offer_ids.push(offer.offer_id);
        // Answer it.
        send(
            ws,
            &InMessage::Answer(AnswerRequest {
                info_hash: hash,
                peer_id: *id,
                to_peer_id: seeder_id,
                offer_id: offer.offer_id,
                answer: sdp("answer", 500),
            }),
        );
    }
    offer_ids.sort();
    offer_ids.dedup();
    assert_eq!(offer_ids.len(), 8, "8 distinct offers for 8 leechers");
    let mut answered = Vec::new();
    for _ in 0..8 {
        let OutMessage::Answer(answer) = recv(&mut seeder) else {
            panic!("no answer")
        };
        assert_eq!(answer.answer, sdp("answer", 500));
        answered.push(answer.peer_id);
    }
    answered.sort();
    let mut expected: Vec<PeerId> = peers.iter().map(|(id, _)| *id).collect();
    expected.sort();
    assert_eq!(answered, expected);
    // Answering changed no status; nobody got a second offer.
    assert_eq!(scrape(t.addr, hash), (1, 8, 0));
    for (_, ws) in &mut peers {
        assert_silent(ws, Duration::from_millis(100));
    }
}

#[test]
fn forged_answers_and_peer_id_takeover_are_refused() {
    let t = start("");
    let hash = InfoHash([3; 20]);
    let (a, b, c) = (PeerId([1; 20]), PeerId([2; 20]), PeerId([3; 20]));
    let mut wa = connect(t.addr);
    send(&mut wa, &announce(hash, a, Some(5), 0));
    recv(&mut wa);
    let mut wb = connect(t.addr);
    send(&mut wb, &announce(hash, b, Some(5), 1));
    recv(&mut wb);
    let OutMessage::Offer(offer) = recv(&mut wa) else {
        panic!()
    };
    // C (another connection) answers in A's name: refused. A answers an
    // offer id it never got: nothing to relay it to, dropped without a
    // reply. B receives nothing.
    let mut wc = connect(t.addr);
    let forged = |peer_id, offer_id| {
        InMessage::Answer(AnswerRequest {
            info_hash: hash,
            peer_id,
            to_peer_id: b,
            offer_id,
            answer: sdp("answer", 10),
        })
    };
    send(&mut wc, &forged(a, offer.offer_id));
    assert!(failure(&recv(&mut wc)).contains("offer"));
    send(&mut wa, &forged(a, OfferId([77; 20])));
    assert_silent(&mut wa, Duration::from_millis(200));
    assert_silent(&mut wb, Duration::from_millis(200));
    // C cannot take over A's peer id.
    send(&mut wc, &announce(hash, a, Some(0), 0));
    assert!(failure(&recv(&mut wc)).contains("peer id"));
    send(&mut wc, &announce(hash, c, Some(0), 0));
    assert_eq!(counts(&recv(&mut wc)), (1, 2));
}

#[test]
fn peers_leave_on_stop_close_and_dropped_connection() {
    let t = start("");
    let hash = InfoHash([9; 20]);
    let mut clients: Vec<Client> = (0..3u8)
        .map(|i| {
            let mut ws = connect(t.addr);
            send(&mut ws, &announce(hash, PeerId([i; 20]), Some(i.into()), 0));
            recv(&mut ws);
            ws
        })
        .collect();
    // Peer 0 is a seeder (left 0), peers 1 and 2 leechers.
    assert_eq!(scrape(t.addr, hash), (1, 2, 0));
    // Stopped.
    let mut stop = announce(hash, PeerId([2; 20]), Some(2), 0);
    if let InMessage::Announce(a) = &mut stop {
        a.event = AnnounceEvent::Stopped;
    }
    send(&mut clients[2], &stop);
    assert_eq!(counts(&recv(&mut clients[2])), (1, 1));
    // A WebSocket close.
    let mut one = clients.remove(1);
    one.close(None).unwrap();
    wait_for_counts(t.addr, hash, (1, 0, 0));
    // A TCP connection dropped without a close frame.
    drop(clients.remove(0));
    wait_for_counts(t.addr, hash, (0, 0, 0));
}

#[test]
fn malformed_messages_get_failure_reasons_and_the_connection_stays_usable() {
    let t = start("");
    let mut ws = connect(t.addr);
    for (text, expected) in [
        ("not json", "invalid"),
        ("{\"action\":\"announce\"}", "info_hash"),
        ("{\"action\":\"dance\"}", "unknown action"),
        (
            "{\"action\":\"announce\",\"info_hash\":\"short\",\"peer_id\":\"aaaaaaaaaaaaaaaaaaaa\"}",
            "info_hash",
        ),
        (
            "{\"action\":\"announce\",\"info_hash\":\"aaaaaaaaaaaaaaaaaaa\u{100}\",\"peer_id\":\"aaaaaaaaaaaaaaaaaaaa\"}",
            "info_hash",
        ),
    ] {
        ws.send(Message::text(text)).unwrap();
        let reason = failure(&recv(&mut ws));
        assert!(reason.contains(expected), "{text}: {reason}");
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert!(failure(&recv(&mut ws)).contains("binary"));
    // Too many info hashes in a scrape.
    let scrape_many = InMessage::Scrape(ScrapeRequest {
        info_hashes: (0..=100u8).map(|i| InfoHash([i; 20])).collect(),
    });
    send(&mut ws, &scrape_many);
    assert!(failure(&recv(&mut ws)).contains("too many"));
    // Still usable.
    send(
        &mut ws,
        &announce(InfoHash([1; 20]), PeerId([1; 20]), None, 0),
    );
    assert_eq!(counts(&recv(&mut ws)), (0, 1));
    // Scrape of several hashes (across both shards), one unknown.
    send(
        &mut ws,
        &InMessage::Scrape(ScrapeRequest {
            info_hashes: (0..6u8).map(|i| InfoHash([i; 20])).collect(),
        }),
    );
    let OutMessage::ScrapeResponse(r) = recv(&mut ws) else {
        panic!()
    };
    assert_eq!(r.files.len(), 6);
    assert!(
        r.files
            .iter()
            .any(|(h, s)| *h == InfoHash([1; 20]) && s.incomplete == 1)
    );
}

#[test]
fn oversized_messages_and_invalid_utf8_close_only_that_connection() {
    let t = start("");
    let mut good = connect(t.addr);
    // A 200 KiB frame (limit 128 KiB): closed.
    let mut big = connect(t.addr);
    let _ = big.send(Message::text("x".repeat(200 * 1024)));
    assert!(read_until_closed(&mut big));
    // Invalid UTF-8 in a text frame, written raw (masked as clients must).
    let mut raw = TcpStream::connect(t.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 512];
    let n = raw.read(&mut head).unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101"));
    raw.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
        .unwrap();
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
    // The others are untouched.
    send(
        &mut good,
        &announce(InfoHash([2; 20]), PeerId([2; 20]), None, 0),
    );
    assert_eq!(counts(&recv(&mut good)), (0, 1));
}

fn read_until_closed(ws: &mut Client) -> bool {
    for _ in 0..100 {
        match ws.read() {
            Ok(_) => continue,
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn health_check_and_plain_http_requests() {
    let t = start("");
    let get = |request: &str| aquatic_test_support::http::exchange(t.addr, request);
    let health = get("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(health.ends_with("ok\n"));
    let plain = get("GET /announce HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    let huge = get(&format!(
        "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    ));
    assert!(huge.starts_with("HTTP/1.1 431"), "{huge}");
}

#[test]
fn ids_with_every_byte_value_round_trip_through_the_tracker() {
    let t = start("");
    for start_byte in (0..=255u8).step_by(20) {
        let hash = InfoHash(awkward_id(start_byte));
        let offerer = PeerId(awkward_id(start_byte.wrapping_add(7)));
        let answerer = PeerId(awkward_id(start_byte.wrapping_add(3)));
        let mut wa = connect(t.addr);
        send(&mut wa, &announce(hash, answerer, Some(1), 0));
        recv(&mut wa);
        let mut wo = connect(t.addr);
        send(&mut wo, &announce(hash, offerer, Some(1), 1));
        let OutMessage::AnnounceResponse(reply) = recv(&mut wo) else {
            panic!()
        };
        assert_eq!(reply.info_hash, hash);
        let OutMessage::Offer(offer) = recv(&mut wa) else {
            panic!()
        };
        assert_eq!((offer.info_hash, offer.peer_id), (hash, offerer));
        assert_eq!(offer.offer_id, OfferId([1; 20]));
    }
}

type TlsClient = WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

fn wss_connect(addr: SocketAddr, trusted: &tls::Certified) -> Result<TlsClient, String> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let stream = tls::client(tcp, trusted);
    tungstenite::client::client(format!("wss://localhost:{}/", addr.port()), stream)
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

fn tls_announce(ws: &mut TlsClient, hash: InfoHash, peer: PeerId) -> OutMessage {
    let text = String::from_utf8(announce(hash, peer, Some(1), 0).to_json()).unwrap();
    ws.send(Message::text(text)).unwrap();
    loop {
        if let Message::Text(text) = ws.read().unwrap() {
            let mut bytes = text.as_bytes().to_vec();
            return OutMessage::from_json(&mut bytes).unwrap();
        }
    }
}

#[test]
fn wss_and_certificate_reload_keep_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = tls::write_cert(dir.path(), "cert");
    let config = format!(
        "[network]\ntls_certificate_path = {:?}\ntls_private_key_path = {:?}\n",
        dir.path().join("cert.pem"),
        dir.path().join("cert.key")
    );
    let t = Daemon::launch_in(BINARY, dir, &config);
    let mut old = wss_connect(t.addr, &first).expect("wss with the first certificate");
    assert_eq!(
        counts(&tls_announce(&mut old, InfoHash([1; 20]), PeerId([1; 20]))),
        (0, 1)
    );
    let second = tls::write_cert(t.dir.path(), "cert");
    t.signal("USR1");
    t.wait_for_log("TLS certificate reloaded", Duration::from_secs(5))
        .expect("reload logged");
    let mut new = wss_connect(t.addr, &second).expect("wss with the new certificate");
    assert_eq!(
        counts(&tls_announce(&mut new, InfoHash([1; 20]), PeerId([2; 20]))),
        (0, 2)
    );
    // The old connection and the swarm survived the reload.
    assert_eq!(
        counts(&tls_announce(&mut old, InfoHash([1; 20]), PeerId([1; 20]))),
        (0, 2)
    );
    assert!(
        wss_connect(t.addr, &first).is_err(),
        "old certificate still served"
    );
}

#[test]
fn scrape_export_lists_every_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.txt");
    let t = start(&scrape_export_section(&export));
    let hash = InfoHash(awkward_id(42));
    let mut clients = Vec::new();
    for (peer, left) in [(1u8, 0u64), (2, 5), (3, 5)] {
        let mut ws = connect(t.addr);
        send(&mut ws, &announce(hash, PeerId([peer; 20]), Some(left), 0));
        recv(&mut ws);
        clients.push(ws);
    }
    let expected = format!("{} 1 2 0", hash.to_hex());
    let text = wait_for_export(&export, &[expected], Duration::from_secs(5));
    assert!(text.starts_with('#'), "{text}");
}
