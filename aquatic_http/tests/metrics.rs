//! Prometheus metrics of the real aquatic_http binary: known traffic in,
//! exact counts out of `GET /metrics`, and the text checked by `promtool
//! check metrics` (Debian package `prometheus`, installed by
//! scripts/install-test-deps.sh; the test fails without it).

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use aquatic_test_support::Daemon;
use aquatic_test_support::http::{announce_path, pct};
use aquatic_test_support::metrics::{
    Expected, assert_help_and_promtool, assert_worker_series, check_health_and_stats_json,
    metrics_address, taken_address_fails_start, wait_for_expected,
};

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_http");

/// One request on its own connection (`Connection: close`), read to the
/// end: (status, request bytes, response bytes).
fn request_once(addr: SocketAddr, path: &str) -> (u16, u64, u64) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
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
    let config = "socket_workers = 2\nrequest_workers = 2\n[metrics]\nenabled = true\naddress = \"127.0.0.1:0\"\n";
    let tracker = Daemon::launch(BINARY, config);
    let metrics = metrics_address(&tracker);

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

    let expected: Vec<Expected> = vec![
        (
            "aquatic_http_connections_total",
            vec![("outcome", "accepted")],
            9,
        ),
        (
            "aquatic_http_connections_total",
            vec![("outcome", "refused")],
            0,
        ),
        ("aquatic_http_open_connections", vec![], 1),
        ("aquatic_http_requests_total", vec![("type", "announce")], 4),
        ("aquatic_http_requests_total", vec![("type", "scrape")], 2),
        (
            "aquatic_http_responses_total",
            vec![("type", "announce")],
            4,
        ),
        ("aquatic_http_responses_total", vec![("type", "scrape")], 2),
        ("aquatic_http_responses_total", vec![("type", "error")], 2),
        ("aquatic_http_error_responses_total", vec![], 2),
        (
            "aquatic_http_error_responses_total",
            vec![("reason", "invalid_request")],
            1,
        ),
        (
            "aquatic_http_error_responses_total",
            vec![("reason", "not_found")],
            1,
        ),
        ("aquatic_http_received_bytes_total", vec![], sent),
        ("aquatic_http_sent_bytes_total", vec![], received),
        ("aquatic_http_torrents", vec![("ip_version", "4")], 2),
        ("aquatic_http_seeders", vec![("ip_version", "4")], 2),
        ("aquatic_http_leechers", vec![("ip_version", "4")], 2),
        ("aquatic_http_torrents", vec![("ip_version", "6")], 0),
        ("aquatic_http_seeders", vec![("ip_version", "6")], 0),
        ("aquatic_http_leechers", vec![("ip_version", "6")], 0),
    ];
    // Counters are bumped around the writes and the close, gauges after a
    // batch: wait until the numbers settle.
    let (text, samples) = wait_for_expected(metrics, &expected, &[]);
    check_health_and_stats_json(
        metrics,
        "aquatic_http",
        &["socket-0", "socket-1", "request-0", "request-1"],
        &expected,
        &[],
    );

    assert!(
        text.contains("# HELP aquatic_http_error_responses_total "),
        "{text}"
    );
    assert_worker_series(&text, &samples, "aquatic_http_requests_total", &["0", "1"]);
    assert_help_and_promtool(&text, &expected);
}

#[test]
fn metrics_address_in_use_is_a_startup_error_naming_the_field() {
    taken_address_fails_start(BINARY, "");
}
