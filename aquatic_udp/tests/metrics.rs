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
    Expected, assert_help_and_promtool, assert_worker_series, check_health_and_stats_json,
    metrics_address, sum, taken_address_fails_start, wait_for_expected,
};
use aquatic_udp_protocol::*;
use common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_udp");
const METRICS_CONFIG: &str = "socket_workers = 2\nrequest_workers = 2\n[metrics]\nenabled = true\naddress = \"127.0.0.1:0\"\n";

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
    let dir = tempfile::tempdir().unwrap();
    let tracker = start_in(dir, "127.0.0.1", METRICS_CONFIG, "")
        .unwrap_or_else(|log| panic!("tracker did not start: {log}"));
    let metrics = metrics_address(&tracker);

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

    let expected: Vec<Expected> = vec![
        ("aquatic_udp_requests_total", vec![("type", "connect")], 3),
        ("aquatic_udp_requests_total", vec![("type", "announce")], 5),
        ("aquatic_udp_requests_total", vec![("type", "scrape")], 2),
        ("aquatic_udp_responses_total", vec![("type", "connect")], 3),
        ("aquatic_udp_responses_total", vec![("type", "announce")], 5),
        ("aquatic_udp_responses_total", vec![("type", "scrape")], 2),
        ("aquatic_udp_responses_total", vec![("type", "error")], 0),
        (
            "aquatic_udp_dropped_total",
            vec![("reason", "malformed")],
            4,
        ),
        (
            "aquatic_udp_dropped_total",
            vec![("reason", "bad_connection_id")],
            0,
        ),
        ("aquatic_udp_dropped_total", vec![("reason", "overload")], 0),
        ("aquatic_udp_dropped_total", vec![("reason", "send")], 0),
        ("aquatic_udp_received_bytes_total", vec![], sent),
        ("aquatic_udp_sent_bytes_total", vec![], received),
        ("aquatic_udp_torrents", vec![], 2),
        ("aquatic_udp_seeders", vec![], 2),
        ("aquatic_udp_leechers", vec![], 3),
    ];
    // Counters are bumped just after a send, gauges after a batch: wait
    // until the numbers settle.
    let (text, samples) = wait_for_expected(metrics, &expected, &[("ip_version", "4")]);
    check_health_and_stats_json(
        metrics,
        "aquatic_udp",
        &["socket-0", "socket-1", "request-0", "request-1"],
        &expected,
        &[("ip_version", "4")],
    );

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
    assert_help_and_promtool(&text, &expected);
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
