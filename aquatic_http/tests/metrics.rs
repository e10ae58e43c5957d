//! Prometheus metrics of the real aquatic_http binary: known traffic in,
//! exact counts out of `GET /metrics`, and the text checked by `promtool
//! check metrics` (Debian package `prometheus`, installed by
//! scripts/install-test-deps.sh; the test fails without it).

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use aquatic_test_support::http::{announce_path, connect, get, pct};
use aquatic_test_support::metrics::{
    Expectations, assert_settles_to, assert_worker_series, launch_two_by_two,
    taken_address_fails_start,
};

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_http");

/// One request on its own connection (`Connection: close`), read to the
/// end: (status, request bytes, response bytes).
fn request_once(addr: SocketAddr, path: &str) -> (u16, u64, u64) {
    let request = get(path, "Connection: close\r\n");
    let mut stream = connect(addr);
    stream.write_all(&request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let status = String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&response)));
    (status, request.len() as u64, response.len() as u64)
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let (tracker, metrics) = launch_two_by_two(BINARY, "");

    let (mut sent, mut received) = (0u64, 0u64);
    let mut expect_status = |path: &str, status: u16| {
        let (got, request, response) = request_once(tracker.addr, path);
        assert_eq!(got, status, "{path}");
        sent += request;
        received += response;
    };
    // 4 announces: torrent 1 gets a seeder and a leecher, torrent 2 too.
    expect_status(&announce_path(1, 1, 1001, 0, "&compact=1"), 200);
    expect_status(&announce_path(1, 2, 1002, 100, "&compact=1"), 200);
    expect_status(&announce_path(2, 3, 1003, 0, "&compact=1"), 200);
    expect_status(&announce_path(2, 4, 1004, 10, "&compact=1"), 200);
    // 2 scrapes.
    expect_status(
        &format!(
            "/scrape?info_hash={}&info_hash={}",
            pct(&[1; 20]),
            pct(&[2; 20])
        ),
        200,
    );
    expect_status(&format!("/scrape?info_hash={}", pct(&[1; 20])), 200);
    // 2 errors: a failure reason (no info_hash) and a 404.
    expect_status("/announce?peer_id=aaaaaaaaaaaaaaaaaaaa&port=1", 200);
    expect_status("/favicon.ico", 404);
    // One connection left open, without a request.
    let _open = TcpStream::connect(tracker.addr).unwrap();

    let expected = Expectations::new("aquatic_http")
        .by(
            "connections_total",
            "outcome",
            &[("accepted", 9), ("refused", 0)],
        )
        .total("open_connections", 1)
        .by("requests_total", "type", &[("announce", 4), ("scrape", 2)])
        .by(
            "responses_total",
            "type",
            &[("announce", 4), ("scrape", 2), ("error", 2)],
        )
        .total("error_responses_total", 2)
        .by(
            "error_responses_total",
            "reason",
            &[("invalid_request", 1), ("not_found", 1)],
        )
        .total("received_bytes_total", sent)
        .total("sent_bytes_total", received)
        .swarm(Some("4"), [2, 2, 2])
        .swarm(Some("6"), [0, 0, 0])
        .build();
    // Counters are bumped around the writes and the close, gauges after a
    // batch: wait until the numbers settle.
    let (text, samples) = assert_settles_to(metrics, "aquatic_http", &expected, &[]);

    assert!(
        text.contains("# HELP aquatic_http_error_responses_total "),
        "{text}"
    );
    assert_worker_series(&text, &samples, "aquatic_http_requests_total", &["0", "1"]);
}

#[test]
fn metrics_address_in_use_is_a_startup_error_naming_the_field() {
    taken_address_fails_start(BINARY, "");
}
