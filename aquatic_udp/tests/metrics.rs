//! Prometheus metrics of the real aquatic_udp binary: known traffic in,
//! exact counts out of `GET /metrics`, and the text checked by `promtool
//! check metrics` (Debian package `prometheus`, installed by
//! scripts/install-test-deps.sh; the test fails without it).

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use aquatic_test_support::metrics::{
    Expectations, assert_settles_to, assert_worker_series, launch_two_by_two, sum,
    taken_address_fails_start,
};
use aquatic_udp_protocol::*;
use common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_udp");

/// Send `request`, wait for the answer; both sizes are added to the
/// byte tallies.
fn exchange(client: &Client, request: &Request, sent: &mut u64, received: &mut u64) -> Response {
    let mut bytes = Vec::new();
    request.write(&mut bytes);
    client.send_raw(&bytes);
    *sent += bytes.len() as u64;
    let answer = client
        .recv_raw(Duration::from_secs(3))
        .expect("no response from tracker");
    *received += answer.len() as u64;
    Response::parse(&answer, false).unwrap()
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let (tracker, metrics) = launch_two_by_two(BINARY, "[network]\nsocket_recv_buffer_size = 0\n");

    let (mut sent, mut received) = (0u64, 0u64);
    // 3 connects.
    let mut clients: Vec<Client> = (0..3).map(|_| Client::new(tracker.addr)).collect();
    for client in &mut clients {
        let transaction_id = client.transaction();
        let request = Request::Connect(ConnectRequest { transaction_id });
        match exchange(client, &request, &mut sent, &mut received) {
            Response::Connect(r) => client.connection_id = r.connection_id,
            other => panic!("{other:?}"),
        }
    }
    // 5 announces: torrent 1 gets a seeder and two leechers, torrent 2 a
    // seeder and a leecher.
    for (c, h, port, left) in [
        (0, 1, 1001, 0),
        (1, 1, 1002, 100),
        (2, 1, 1003, 100),
        (0, 2, 1001, 0),
        (1, 2, 1002, 50),
    ] {
        let client = &mut clients[c];
        let request = client.announce_request(hash(h), port, left, AnnounceEvent::Started);
        let response = exchange(
            client,
            &Request::Announce(request),
            &mut sent,
            &mut received,
        );
        assert!(
            matches!(response, Response::AnnounceIpv4(_)),
            "{response:?}"
        );
    }
    // 2 scrapes.
    for (c, hashes) in [(2, vec![hash(1), hash(2)]), (0, vec![hash(1)])] {
        let client = &mut clients[c];
        let request = Request::Scrape(ScrapeRequest {
            connection_id: client.connection_id,
            transaction_id: client.transaction(),
            info_hashes: hashes,
        });
        let response = exchange(client, &request, &mut sent, &mut received);
        assert!(matches!(response, Response::Scrape(_)), "{response:?}");
    }
    // 4 junk packets, too short to be any request: dropped as malformed.
    let junk = Client::new(tracker.addr);
    for len in [1, 5, 10, 15] {
        junk.send_raw(&vec![0xff; len]);
        sent += len as u64;
    }

    let expected = Expectations::new("aquatic_udp")
        .by(
            "requests_total",
            "type",
            &[("connect", 3), ("announce", 5), ("scrape", 2)],
        )
        .by(
            "responses_total",
            "type",
            &[("connect", 3), ("announce", 5), ("scrape", 2), ("error", 0)],
        )
        .by(
            "dropped_total",
            "reason",
            &[
                ("malformed", 4),
                ("bad_connection_id", 0),
                ("overload", 0),
                ("send", 0),
            ],
        )
        .total("received_bytes_total", sent)
        .total("sent_bytes_total", received)
        .swarm(None, [2, 2, 3])
        .build();
    // Counters are bumped just after a send, gauges after a batch: wait
    // until the numbers settle.
    let (text, samples) =
        assert_settles_to(metrics, "aquatic_udp", &expected, &[("ip_version", "4")]);

    // Nothing came over IPv6.
    for (name, _, _) in &expected {
        assert_eq!(
            sum(&samples, name, &[("ip_version", "6")]),
            0,
            "{name}\n{text}"
        );
    }
    // Per worker series for both socket workers; swarm gauges per IP
    // version only.
    assert_worker_series(&text, &samples, "aquatic_udp_requests_total", &["0", "1"]);
    assert!(
        samples
            .iter()
            .filter(|(name, _, _)| name == "aquatic_udp_torrents")
            .all(|(_, labels, _)| labels.keys().map(String::as_str).eq(["ip_version"])),
        "{text}"
    );
}

#[test]
fn metrics_address_in_use_is_a_startup_error_naming_the_field() {
    taken_address_fails_start(BINARY, "socket_recv_buffer_size = 0\n");
}

#[test]
fn metrics_are_off_by_default() {
    let tracker = start("127.0.0.1", "");
    assert!(
        tracker
            .wait_for_log("metrics on ", Duration::from_millis(500))
            .is_none()
    );
}
