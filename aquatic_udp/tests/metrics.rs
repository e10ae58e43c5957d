//! Prometheus metrics of the real aquatic_udp binary: known traffic in,
//! exact counts out of `GET /metrics`, and the text checked by `promtool
//! check metrics` (Debian package `prometheus`, installed by
//! scripts/install-test-deps.sh; the test fails without it).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aquatic_udp_protocol::*;
use common::*;

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
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, samples) = loop {
        let text = scrape(metrics);
        let samples = parse(&text);
        let wrong: Vec<String> = expected
            .iter()
            .filter_map(|(name, labels, value)| {
                let mut filter = labels.clone();
                filter.push(("ip_version", "4"));
                let got = sum(&samples, name, &filter);
                (got != *value).then(|| format!("{name} {filter:?}: {got}, expected {value}"))
            })
            .collect();
        if wrong.is_empty() {
            break (text, samples);
        }
        assert!(
            Instant::now() < deadline,
            "metrics never matched:\n{}\n\n{text}",
            wrong.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    };

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
    for worker in ["0", "1"] {
        assert!(
            samples
                .iter()
                .any(|(name, labels, _)| name == "aquatic_udp_requests_total"
                    && labels.get("worker").map(String::as_str) == Some(worker)),
            "no worker {worker} series\n{text}"
        );
    }
    assert!(
        samples
            .iter()
            .filter(|(name, _, _)| name == "aquatic_udp_torrents")
            .all(|(_, labels, _)| labels.keys().map(String::as_str).eq(["ip_version"])),
        "{text}"
    );
    // Help text on every family.
    for (name, _, _) in &expected {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help for {name}\n{text}"
        );
    }
    promtool_check(&text);
}

#[test]
fn metrics_address_in_use_is_a_startup_error_naming_the_field() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let (code, stderr) = run_to_exit(&format!(
        "[network]\naddress = \"127.0.0.1:0\"\nsocket_recv_buffer_size = 0\n[metrics]\nenabled = true\naddress = \"{address}\"\n"
    ));
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("metrics.address {address}: cannot bind")),
        "{stderr}"
    );
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

/// The endpoint's address, from the `metrics on ADDR` log line.
fn metrics_address(tracker: &Tracker) -> SocketAddr {
    let line = tracker
        .wait_for_log("metrics on ", Duration::from_secs(10))
        .expect("no `metrics on` log line");
    line.split("metrics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("bad address in {line}"))
}

/// `GET /metrics`: the body of a 200 answer.
fn scrape(address: SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

type Sample = (String, BTreeMap<String, String>, u64);

/// A metric's name, a label filter, and the sum expected over the
/// samples that match it.
type Expected = (&'static str, Vec<(&'static str, &'static str)>, u64);

/// Sample lines `name{k="v",...} value` (label values here hold no commas
/// or escaped quotes).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("label");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            let value = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            (name.to_string(), labels, value)
        })
        .collect()
}

/// Sum of the `name` samples whose labels include all of `filter`.
fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> u64 {
    samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && filter
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// `promtool check metrics` on `text`: its lint must find nothing.
fn promtool_check(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => panic!(
            "cannot run promtool ({err}): install it with `scripts/install-test-deps.sh` (Debian package prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
