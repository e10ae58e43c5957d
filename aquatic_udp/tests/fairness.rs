//! One source cannot shut others out: a flood of announces for random info
//! hashes from 127.0.0.2 against the real aquatic_udp binary, while honest
//! clients on 127.0.0.3 and 127.0.0.4 keep announcing and scraping and
//! must keep getting correct answers within a bound. Also port 0.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aquatic_test_support::loopback;
use aquatic_test_support::metrics::{metrics_address, parse, scrape, sum};
use aquatic_udp_protocol::*;
use common::*;

/// What an honest round trip may take while the tracker is under attack
/// (generous: debug builds on a loaded 2-core CI machine).
const LATENCY_BOUND: Duration = Duration::from_secs(1);
/// Every attack loop ends by this, whatever happens.
const ATTACK_LIMIT: Duration = Duration::from_secs(30);
/// `[protocol] max_peers`: the attacker's share is 5 % of it.
const MAX_PEERS: u64 = 20_000;

/// Announces for ever new info hashes from `client`, 256 at a time with
/// their answers awaited (a flood the tracker keeps up with, so what is
/// tested is its ceilings, not the kernel's queue), until `stop` or
/// `count` announces.
fn flood(mut client: Client, count: u64, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let deadline = Instant::now() + ATTACK_LIMIT;
    let mut n = 0u64;
    while n < count && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for _ in 0..256 {
            let mut hash = [0u8; 20];
            hash[..8].copy_from_slice(&n.to_be_bytes());
            hash[19] = 0xaa;
            let request = client.announce_request(InfoHash(hash), 6881, 1, AnnounceEvent::Started);
            client.send(&Request::Announce(request));
            n += 1;
        }
        // Every answer, however slow a loaded machine makes the tracker:
        // moving on after a short wait would put more than 256 in flight
        // and overflow the socket's queue, dropping honest datagrams too
        // (the kernel's doing, not the tracker's ceilings).
        for _ in 0..256 {
            if client.recv_raw(Duration::from_secs(5)).is_none() {
                break;
            }
        }
        sent.store(n, Ordering::Relaxed);
    }
}

/// Finding: 150k random-info-hash announces a second from one address
/// filled max_peers; honest announces then got empty peer lists and
/// scrapes 0/0/0.
#[test]
fn a_flood_from_one_address_leaves_room_for_everyone_else() {
    let tracker = start(
        "127.0.0.1",
        &format!(
            "[protocol]\nmax_peers = {MAX_PEERS}\n[metrics]\nenabled = true\naddress = \"127.0.0.1:0\"\n"
        ),
    );
    let metrics = metrics_address(&tracker);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let attack = {
        let mut client = Client::from(loopback(2), tracker.addr);
        client.connect();
        let (stop, sent) = (stop.clone(), sent.clone());
        thread::spawn(move || flood(client, 3 * MAX_PEERS, stop, sent))
    };

    let mut a = Client::from(loopback(3), tracker.addr);
    let mut b = Client::from(loopback(4), tracker.addr);
    let h = hash(77);
    let mut rounds = 0;
    // Until the attacker has sent more than the whole ceiling (and a
    // few rounds at least), the honest pair announces and scrapes.
    while rounds < 5 || sent.load(Ordering::Relaxed) < 2 * MAX_PEERS {
        assert!(rounds < 1000, "the flood never got through");
        let begin = Instant::now();
        a.connect();
        b.connect();
        v4(a.announce(h, 7000, 1, AnnounceEvent::None));
        let (seeders, leechers, peers) = v4(b.announce(h, 8000, 0, AnnounceEvent::None));
        assert_eq!((seeders, leechers), (1, 1), "round {rounds}");
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].ip_address, Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(peers[0].port, 7000);
        let stats = scrape_stats(a.scrape(vec![h]));
        assert_eq!(stats, vec![(1, 0, 1)]);
        let took = begin.elapsed();
        assert!(took < LATENCY_BOUND * 4, "round {rounds} took {took:?}");
        rounds += 1;
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    attack.join().unwrap();

    // The attacker holds its share (5 % of max_peers) and no more; the
    // rest of its announces were answered but not stored, and counted.
    let samples = parse(&scrape(metrics));
    let leechers = sum(&samples, "aquatic_udp_leechers", &[("ip_version", "4")]);
    assert!(
        (MAX_PEERS / 20..=MAX_PEERS / 20 + 2).contains(&leechers),
        "{leechers} leechers stored"
    );
    let refused = sum(
        &samples,
        "aquatic_udp_peers_not_stored_total",
        &[("reason", "source_share")],
    );
    assert!(refused >= MAX_PEERS, "only {refused} refused");
}

/// One address announcing a thousand ports into one torrent holds its
/// share of it (64 by default), and a peer on another address is stored
/// and found.
#[test]
fn one_address_cannot_fill_a_torrent() {
    let tracker = start(
        "127.0.0.1",
        "[protocol]\nmax_peers_per_torrent = 1000\nmax_response_peers = 200\n",
    );
    let mut attacker = Client::from(loopback(2), tracker.addr);
    attacker.connect();
    let h = hash(78);
    for port in 1..=1000u16 {
        v4(attacker.announce(h, port, 1, AnnounceEvent::Started));
    }
    let mut honest = Client::from(loopback(3), tracker.addr);
    honest.connect();
    v4(honest.announce(h, 7000, 1, AnnounceEvent::Started));
    let mut other = Client::from(loopback(4), tracker.addr);
    other.connect();
    let mut request = other.announce_request(h, 8000, 1, AnnounceEvent::Started);
    request.peers_wanted = 200;
    other.send(&Request::Announce(request));
    let (_, leechers, peers) = v4(other.recv());
    // 5 % of 1000 for the attacker, and the two honest peers.
    assert_eq!(leechers, 50 + 2);
    assert_eq!(peers.len(), 51);
    assert!(
        peers
            .iter()
            .any(|p| p.ip_address == Ipv4Addr::new(127, 0, 0, 3) && p.port == 7000)
    );
}

#[test]
fn port_zero_is_refused() {
    let tracker = start("127.0.0.1", "");
    let mut client = Client::connected(tracker.addr);
    match client.announce(hash(79), 0, 1, AnnounceEvent::Started) {
        Response::Error(e) => assert_eq!(e.message, "invalid port"),
        other => panic!("{other:?}"),
    }
    // Nothing was stored: a peer on another address finds no one.
    let (_, leechers, peers) = v4(client.announce(hash(79), 1, 1, AnnounceEvent::Started));
    assert_eq!((leechers, peers.len()), (1, 0));
}
