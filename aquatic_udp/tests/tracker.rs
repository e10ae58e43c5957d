//! The real aquatic_udp binary driven over loopback sockets: every packet
//! type on IPv4 and IPv6, connection id rejection and expiry, access lists
//! with reload, malformed input, and process lifecycle.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use aquatic_test_support::list_file;
use aquatic_udp_protocol::*;
use common::*;

#[test]
fn ipv4_announce_scrape_completed_stopped() {
    announce_scrape_completed_stopped("");
}

#[test]
fn inline_shard_mode_behaves_the_same() {
    // request_workers = 0: the socket worker owns the shard.
    announce_scrape_completed_stopped("request_workers = 0\n[cleaning]\ninterval = 1\n");
}

fn announce_scrape_completed_stopped(extra: &str) {
    let tracker = start("127.0.0.1", extra);
    let mut seeder = Client::connected(tracker.addr);
    let mut leecher1 = Client::connected(tracker.addr);
    let mut leecher2 = Client::connected(tracker.addr);
    let h = hash(1);

    let (s, l, peers) = v4(seeder.announce(h, 1001, 0, AnnounceEvent::Started));
    assert_eq!((s, l), (1, 0));
    assert!(peers.is_empty());
    let (s, l, peers) = v4(leecher1.announce(h, 1002, 500, AnnounceEvent::Started));
    assert_eq!((s, l), (1, 1));
    assert_eq!(peers.iter().map(|p| p.port).collect::<Vec<_>>(), vec![1001]);
    let (s, l, peers) = v4(leecher2.announce(h, 1003, 500, AnnounceEvent::Started));
    assert_eq!((s, l), (1, 2));
    let mut ports: Vec<u16> = peers.iter().map(|p| p.port).collect();
    ports.sort();
    assert_eq!(ports, vec![1001, 1002]);
    // A seeder is only sent leechers.
    let (_, _, peers) = v4(seeder.announce(h, 1001, 0, AnnounceEvent::None));
    let mut ports: Vec<u16> = peers.iter().map(|p| p.port).collect();
    ports.sort();
    assert_eq!(ports, vec![1002, 1003]);

    assert_eq!(
        scrape_stats(seeder.scrape(vec![h, hash(2)])),
        vec![(1, 0, 2), (0, 0, 0)]
    );

    let (s, l, _) = v4(leecher1.announce(h, 1002, 0, AnnounceEvent::Completed));
    assert_eq!((s, l), (2, 1));
    assert_eq!(scrape_stats(seeder.scrape(vec![h])), vec![(2, 1, 1)]);

    let (s, l, peers) = v4(leecher2.announce(h, 1003, 500, AnnounceEvent::Stopped));
    assert_eq!((s, l), (2, 0));
    assert!(peers.is_empty());
    assert_eq!(scrape_stats(seeder.scrape(vec![h])), vec![(2, 1, 0)]);
}

#[test]
fn ipv6_swarm_is_separate_and_uses_18_byte_peers() {
    let tracker = start("[::1]", "");
    let mut a = Client::connected(tracker.addr);
    let mut b = Client::connected(tracker.addr);
    let h = hash(3);
    match a.announce(h, 2001, 0, AnnounceEvent::Started) {
        Response::AnnounceIpv6(r) => assert_eq!((r.seeders, r.leechers), (1, 0)),
        other => panic!("{other:?}"),
    }
    let request = b.announce_request(h, 2002, 10, AnnounceEvent::Started);
    b.send(&Request::Announce(request));
    let raw = b.recv_raw(Duration::from_secs(3)).unwrap();
    assert_eq!(raw.len(), 20 + 18);
    match Response::parse(&raw, true).unwrap() {
        Response::AnnounceIpv6(r) => {
            assert_eq!(r.peers.len(), 1);
            assert_eq!(r.peers[0].ip_address, Ipv6Addr::LOCALHOST);
            assert_eq!(r.peers[0].port, 2001);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(scrape_stats(a.scrape(vec![h])), vec![(1, 0, 1)]);
}

#[test]
fn dual_stack_socket_counts_mapped_ipv4_as_ipv4() {
    // "[::]" serves both families; an IPv4 client must land in the IPv4
    // swarm and get 6-byte peers.
    let dir = tempfile::tempdir().unwrap();
    let tracker = match start_in(dir, "[::]", "", "") {
        Ok(t) => t,
        Err(log) => panic!("{log}"),
    };
    let port = tracker.addr.port();
    let v4_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let v6_addr = format!("[::1]:{port}").parse().unwrap();
    let mut a = Client::connected(v4_addr);
    let mut b = Client::connected(v4_addr);
    let mut c = Client::connected(v6_addr);
    let h = hash(4);
    v4(a.announce(h, 3001, 0, AnnounceEvent::Started));
    let (s, l, peers) = v4(b.announce(h, 3002, 5, AnnounceEvent::Started));
    assert_eq!((s, l), (1, 1));
    assert_eq!(peers[0].ip_address, std::net::Ipv4Addr::LOCALHOST);
    match c.announce(h, 3003, 5, AnnounceEvent::Started) {
        Response::AnnounceIpv6(r) => {
            assert_eq!((r.seeders, r.leechers), (0, 1));
            assert!(r.peers.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn requests_without_valid_connection_id_get_nothing() {
    let tracker = start("127.0.0.1", "");
    let mut client = Client::connected(tracker.addr);
    let mut forged = client.announce_request(hash(5), 1, 0, AnnounceEvent::None);
    forged.connection_id = ConnectionId(client.connection_id.0 ^ 0x55);
    client.send(&Request::Announce(forged));
    client.send(&Request::Scrape(ScrapeRequest {
        connection_id: ConnectionId(1234),
        transaction_id: TransactionId(1),
        info_hashes: vec![hash(5)],
    }));
    // Malformed, with an invalid connection id: no error response either.
    let mut bad_action = vec![0u8; 16];
    bad_action[8..12].copy_from_slice(&7i32.to_be_bytes());
    client.send_raw(&bad_action);
    assert!(client.recv_raw(Duration::from_millis(500)).is_none());

    // The same connection id from another address (port) is fine: the id is
    // bound to the IP, as a client may use several sockets.
    let (s, _, _) = v4(client.announce(hash(5), 1, 0, AnnounceEvent::None));
    assert_eq!(s, 1);
}

#[test]
fn connection_id_expires() {
    let tracker = start("127.0.0.1", "[cleaning]\nmax_connection_age = 1\n");
    let mut client = Client::connected(tracker.addr);
    v4(client.announce(hash(6), 1, 0, AnnounceEvent::None));
    std::thread::sleep(Duration::from_millis(2600));
    let request = client.announce_request(hash(6), 1, 0, AnnounceEvent::None);
    client.send(&Request::Announce(request));
    assert!(client.recv_raw(Duration::from_millis(500)).is_none());
    client.connect();
    v4(client.announce(hash(6), 1, 0, AnnounceEvent::None));
}

#[test]
fn malformed_packets_do_not_crash_or_amplify() {
    let tracker = start("127.0.0.1", "");
    let client = Client::new(tracker.addr);
    let mut sent = 0usize;
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 15],
        vec![0xff; 16],
        vec![0; 97],
        vec![0xab; 1500],
        vec![0; 65000],
    ];
    // Connect with wrong magic; announce and scrape truncated; unknown action.
    let mut wrong_magic = vec![0u8; 16];
    wrong_magic[..8].copy_from_slice(&0x1234i64.to_be_bytes());
    junk.push(wrong_magic);
    let mut truncated_announce = vec![0u8; 60];
    truncated_announce[8..12].copy_from_slice(&1i32.to_be_bytes());
    junk.push(truncated_announce);
    let mut empty_scrape = vec![0u8; 16];
    empty_scrape[8..12].copy_from_slice(&2i32.to_be_bytes());
    junk.push(empty_scrape);
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for len in (0..300).step_by(7) {
        let bytes = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        junk.push(bytes);
    }
    for packet in &junk {
        client.send_raw(packet);
        sent += packet.len();
    }
    let mut received = 0usize;
    while let Some(bytes) = client.recv_raw(Duration::from_millis(500)) {
        received += bytes.len();
    }
    assert_eq!(
        received, 0,
        "answered {received} bytes to {sent} bytes of junk"
    );

    // Connect requests are answered with exactly as many bytes as they carry.
    let mut c = Client::new(tracker.addr);
    c.connect();
    let mut sent = 0;
    let mut received = 0;
    for t in 0..50 {
        let mut buf = Vec::new();
        Request::Connect(ConnectRequest {
            transaction_id: TransactionId(t),
        })
        .write(&mut buf);
        c.send_raw(&buf);
        sent += buf.len();
    }
    while let Some(bytes) = c.recv_raw(Duration::from_millis(500)) {
        received += bytes.len();
    }
    assert!(received <= sent, "amplification: {received} > {sent}");

    // Still serving.
    let mut ok = Client::connected(tracker.addr);
    v4(ok.announce(hash(7), 1, 0, AnnounceEvent::None));
}

#[test]
fn num_want_extremes_get_at_most_max_response_peers() {
    let tracker = start("127.0.0.1", "");
    let mut client = Client::connected(tracker.addr);
    let h = hash(40);
    // Peers are keyed by address and port: 120 of them, 40 from each of
    // three addresses (within a source's share of a torrent).
    for n in 2..=4u8 {
        let mut other = Client::from(aquatic_test_support::loopback(n), tracker.addr);
        other.connect();
        for port in 1..=40u16 {
            v4(other.announce(h, port, 500, AnnounceEvent::Started));
        }
    }
    // -1 and 0 ask for the default; nothing gets more than
    // max_response_peers (50 by default).
    for (peers_wanted, expected) in [
        (i32::MIN, 50),
        (-2, 50),
        (-1, 50),
        (0, 50),
        (1, 1),
        (7, 7),
        (50, 50),
        (51, 50),
        (i32::MAX, 50),
    ] {
        let mut request = client.announce_request(h, 999, 500, AnnounceEvent::None);
        request.peers_wanted = peers_wanted;
        client.send(&Request::Announce(request));
        let bytes = client
            .recv_raw(Duration::from_secs(3))
            .expect("no response from tracker");
        // 20 bytes of header, 6 a peer.
        assert_eq!(bytes.len(), 20 + 6 * expected, "num_want {peers_wanted}");
        let (_, leechers, peers) = v4(Response::parse(&bytes, false).unwrap());
        assert_eq!(leechers, 121);
        let mut addresses: Vec<_> = peers.iter().map(|p| (p.ip_address, p.port)).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(
            addresses.len(),
            expected,
            "num_want {peers_wanted}: repeated peers"
        );
        assert!(
            peers.iter().all(|p| p.ip_address != Ipv4Addr::LOCALHOST),
            "the announcer in its own answer"
        );
    }
}

#[test]
fn malformed_request_with_valid_connection_id_gets_error() {
    let tracker = start("127.0.0.1", "");
    let mut client = Client::connected(tracker.addr);
    let mut packet = Vec::new();
    packet.extend_from_slice(&client.connection_id.0.to_be_bytes());
    packet.extend_from_slice(&9i32.to_be_bytes());
    packet.extend_from_slice(&77i32.to_be_bytes());
    client.send_raw(&packet);
    match client.recv() {
        Response::Error(e) => {
            assert_eq!(e.transaction_id, TransactionId(77));
            assert_eq!(e.message, "unknown action");
        }
        other => panic!("{other:?}"),
    }
    // Tolerated quirks: event values above 3 and trailing bytes.
    let mut request = client.announce_request(hash(8), 9, 10, AnnounceEvent::None);
    request.url_data = b"/announce?passkey=x".to_vec();
    let mut bytes = Vec::new();
    Request::Announce(request).write(&mut bytes);
    bytes[80..84].copy_from_slice(&4i32.to_be_bytes()); // libtorrent's "paused"
    bytes.extend_from_slice(&[0xde, 0xad]);
    client.send_raw(&bytes);
    let (_, l, _) = v4(client.recv());
    assert_eq!(l, 1);
}

#[test]
fn scrape_split_over_shards_and_capped() {
    let tracker = start(
        "127.0.0.1",
        "socket_workers = 2\nrequest_workers = 3\n[protocol]\nmax_scrape_torrents = 20\n",
    );
    let mut client = Client::connected(tracker.addr);
    for n in 0..30u8 {
        for port in 0..u16::from(n % 4) {
            client.announce(
                hash(n),
                100 + port,
                i64::from(port % 2),
                AnnounceEvent::None,
            );
        }
    }
    let hashes: Vec<InfoHash> = (0..30u8).map(hash).collect();
    let stats = scrape_stats(client.scrape(hashes));
    assert_eq!(stats.len(), 20);
    for (n, (seeders, completed, leechers)) in stats.into_iter().enumerate() {
        let peers = (n % 4) as i32;
        let expected_seeders = (0..peers).filter(|p| p % 2 == 0).count() as i32;
        assert_eq!(
            (seeders, completed, leechers),
            (expected_seeders, 0, peers - expected_seeders),
            "hash {n}"
        );
    }
}

/// A tracker with an access list of `mode` holding `lines`, a client
/// connected to it, and the list file.
fn with_access_list(mode: &str, lines: &str) -> (Tracker, Client, PathBuf) {
    let (dir, list, section) = list_file("access_list", mode, lines);
    let tracker = start_in(dir, "127.0.0.1", &section, "").unwrap();
    let client = Client::connected(tracker.addr);
    (tracker, client, list)
}

#[test]
fn access_list_allow_deny_and_reload() {
    let allowed = format!("# allowed\n{}\n", hash(10).to_hex());
    let (tracker, mut client, list) = with_access_list("allow", &allowed);
    v4(client.announce(hash(10), 1, 0, AnnounceEvent::None));
    match client.announce(hash(11), 1, 0, AnnounceEvent::None) {
        Response::Error(e) => assert!(e.message.contains("not allowed")),
        other => panic!("{other:?}"),
    }

    std::fs::write(&list, format!("{}\n", hash(11).to_hex())).unwrap();
    tracker.signal("USR1");
    assert!(
        tracker
            .wait_for_log("access list reloaded", Duration::from_secs(5))
            .is_some()
    );
    v4(client.announce(hash(11), 1, 0, AnnounceEvent::None));
    assert!(matches!(
        client.announce(hash(10), 1, 0, AnnounceEvent::None),
        Response::Error(_)
    ));

    // A broken file at reload keeps the old list.
    std::fs::write(&list, "not a hash\n").unwrap();
    tracker.signal("USR1");
    let line = tracker
        .wait_for_log("reload failed", Duration::from_secs(5))
        .unwrap();
    assert!(line.contains("line 1"), "{line}");
    v4(client.announce(hash(11), 1, 0, AnnounceEvent::None));
}

#[test]
fn access_list_deny() {
    let (_tracker, mut client, _) = with_access_list("deny", &format!("{}\n", hash(12).to_hex()));
    assert!(matches!(
        client.announce(hash(12), 1, 0, AnnounceEvent::None),
        Response::Error(_)
    ));
    v4(client.announce(hash(13), 1, 0, AnnounceEvent::None));
}

#[test]
fn startup_errors_are_one_line_with_exit_code_one() {
    let (_dir, _, section) = list_file(
        "access_list",
        "allow",
        &format!("{}\nxyz\n", hash(1).to_hex()),
    );
    let (code, stderr) = run_to_exit(&section);
    assert_eq!(code, 1);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let (code, stderr) = run_to_exit("[protocol]\nmax_response_peers = \"many\"\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("max_response_peers"), "{stderr}");

    // An address in use (bound without SO_REUSEPORT) cannot be bound.
    let blocker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = blocker.local_addr().unwrap();
    let (code, stderr) = run_to_exit(&format!("[network]\naddress = \"{addr}\"\n"));
    assert_eq!(code, 1);
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_exits_cleanly() {
    let mut tracker = start("127.0.0.1", "socket_workers = 2\nrequest_workers = 2\n");
    let mut client = Client::connected(tracker.addr);
    v4(client.announce(hash(14), 1, 0, AnnounceEvent::None));
    tracker.signal("TERM");
    assert_eq!(tracker.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn statistics_line_is_logged() {
    let tracker = start("127.0.0.1", "[statistics]\ninterval = 1\n");
    let mut client = Client::connected(tracker.addr);
    v4(client.announce(hash(15), 1, 0, AnnounceEvent::None));
    let line = tracker.wait_for_log(
        "ipv4: 1 torrents, 1 seeders, 0 leechers",
        Duration::from_secs(5),
    );
    assert!(line.is_some());
}

#[test]
fn drops_privileges_after_binding() {
    let euid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&euid.stdout).trim() != "0" {
        eprintln!("not root: privilege drop cannot be tested here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chroot = dir.path().join("root");
    std::fs::create_dir(&chroot).unwrap();
    let extra = format!(
        "[privileges]\ndrop_privileges = true\nchroot_path = {:?}\nuser = \"nobody\"\n",
        chroot.to_str().unwrap()
    );
    let tracker = start_in(dir, "127.0.0.1", &extra, "").unwrap();
    let mut client = Client::connected(tracker.addr);
    v4(client.announce(hash(16), 1, 0, AnnounceEvent::None));
    let status = std::fs::read_to_string(format!("/proc/{}/status", tracker.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|uid| uid != "0"),
        "{uid_line}"
    );
    let root = std::fs::read_link(format!("/proc/{}/root", tracker.pid())).unwrap();
    assert!(root.ends_with("root"), "{}", root.display());
}

#[test]
fn peer_ceilings_bound_storage_but_everyone_is_answered() {
    let tracker = start(
        "127.0.0.1",
        "[protocol]\nmax_peers_per_torrent = 2\nmax_peers = 3\n",
    );
    // Every peer from an address of its own: a source may hold only its
    // share of these tiny ceilings (one peer), and this is about the
    // ceilings themselves.
    let client = |n: u8| {
        let mut c = Client::from(aquatic_test_support::loopback(n), tracker.addr);
        c.connect();
        c
    };
    v4(client(1).announce(hash(20), 1, 5, AnnounceEvent::Started));
    v4(client(2).announce(hash(20), 2, 5, AnnounceEvent::Started));
    // Third peer of a full swarm: answered with the stored peers, not stored.
    let (s, l, peers) = v4(client(3).announce(hash(20), 3, 5, AnnounceEvent::Started));
    assert_eq!((s, l, peers.len()), (0, 2, 2));
    // One more torrent fits the total of 3; a fourth torrent does not.
    v4(client(4).announce(hash(21), 1, 0, AnnounceEvent::Started));
    let (s, l, _) = v4(client(5).announce(hash(22), 1, 0, AnnounceEvent::Started));
    assert_eq!((s, l), (0, 0));
    let stats = scrape_stats(client(6).scrape(vec![hash(20), hash(21), hash(22)]));
    assert_eq!(stats, vec![(0, 0, 2), (1, 0, 0), (0, 0, 0)]);
}
