//! The defences an operator switches on, against the real aquatic_http
//! binary: the IP filter (connections from refused addresses closed at
//! accept, requests a trusted proxy forwards for them refused, reload on
//! SIGUSR1 with a good and a broken file), allowed host names (421), the
//! per-source rate limit (a flood from one address gets failure reasons
//! while another address keeps its answers and latency) and the
//! announce-interval jitter.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aquatic_test_support::http::{announce_path, assert_contains, contains, read_response};
use aquatic_test_support::metrics::{metrics_address, parse, scrape, sum};
use aquatic_test_support::{defences, loopback, tcp_from};

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_http");

/// `GET path` with `Host: host` from `from` on a new connection: the
/// response, or `None` when the connection is closed without one.
fn get_from(from: IpAddr, addr: SocketAddr, path: &str, headers: &str) -> Option<(u16, Vec<u8>)> {
    let mut stream = tcp_from(from, addr).ok()?;
    let head = format!("GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    read_response(&mut stream)
}

fn announce_from(n: u8, addr: SocketAddr) -> Option<(u16, Vec<u8>)> {
    get_from(
        loopback(n),
        addr,
        &announce_path(1, n, 6881, 0, ""),
        "Host: tracker\r\n",
    )
}

#[test]
fn ip_filter_closes_refused_connections_and_reloads() {
    let (t, filter) = defences::launch_denying(BINARY, "127.0.0.2\n", "");
    assert_eq!(announce_from(2, t.addr), None);
    let (status, body) = announce_from(3, t.addr).unwrap();
    assert_eq!(status, 200);
    assert_contains(&body, b"8:interval");
    assert!(defences::refused(&t, "ip_filter") >= 1);
    // A keep-alive connection opened before the reload that refuses it.
    let mut open = tcp_from(loopback(3), t.addr).unwrap();
    let keep_alive = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
        announce_path(1, 3, 6881, 0, "")
    );
    open.write_all(keep_alive.as_bytes()).unwrap();
    assert!(contains(
        &read_response(&mut open).unwrap().1,
        b"8:interval"
    ));
    defences::reload_broken_then_good(
        &t,
        &filter,
        "127.0.0.3\n127.0.0.0/40\n",
        || assert_eq!(announce_from(2, t.addr), None, "the old filter stays"),
        "127.0.0.3\n",
    );
    assert_eq!(announce_from(2, t.addr).unwrap().0, 200);
    assert_eq!(announce_from(3, t.addr), None);
    open.write_all(keep_alive.as_bytes()).unwrap();
    let (_, body) = read_response(&mut open).unwrap();
    assert_contains(&body, b"address refused");
}

#[test]
fn requests_a_trusted_proxy_forwards_for_refused_addresses_are_refused() {
    let t = defences::launch_behind_proxy_denying(BINARY, "192.0.2.0/24\n");
    let path = announce_path(1, 1, 6881, 0, "");
    let forwarded_for = |client: &str| {
        let headers = format!("Host: tracker\r\nX-Forwarded-For: {client}\r\n");
        get_from(loopback(1), t.addr, &path, &headers).unwrap()
    };
    let (status, body) = forwarded_for("192.0.2.9");
    assert_eq!(status, 200);
    assert_contains(&body, b"address refused");
    assert_contains(&forwarded_for("198.51.100.9").1, b"8:interval");
}

#[test]
fn hosts_not_allowed_get_421() {
    let t = defences::launch(
        BINARY,
        "",
        "allowed_hosts = [\"tracker.example.org\", \"[::1]\"]\n",
    );
    let path = announce_path(1, 1, 6881, 0, "");
    for host in [
        "tracker.example.org",
        "Tracker.Example.ORG:6969",
        "[::1]:80",
    ] {
        let (status, body) =
            get_from(loopback(1), t.addr, &path, &format!("Host: {host}\r\n")).unwrap();
        assert_eq!(status, 200, "{host}");
        assert!(contains(&body, b"8:interval"), "{host}: {body:?}");
    }
    for headers in ["Host: other.example.com\r\n", "Host: example.org\r\n", ""] {
        let (status, body) = get_from(loopback(1), t.addr, &path, headers).unwrap();
        assert_eq!(status, 421, "{headers:?}");
        assert_contains(&body, b"Misdirected Request");
    }
    let samples = parse(&scrape(metrics_address(&t)));
    let wrong_host = sum(
        &samples,
        "aquatic_http_refused_total",
        &[("reason", "wrong_host")],
    );
    assert_eq!(wrong_host, 3);
    let counted = sum(
        &samples,
        "aquatic_http_error_responses_total",
        &[("reason", "wrong_host")],
    );
    assert_eq!(counted, 3);
}

#[test]
fn a_rate_limited_flood_leaves_other_clients_their_answers_and_latency() {
    let t = defences::launch(BINARY, defences::FLOOD_RATE_LIMIT, "");
    let addr = t.addr;
    let flood = move |flood_for: Duration| {
        // Keep-alive announces as fast as they are answered.
        let mut stream = tcp_from(loopback(2), addr).unwrap();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
            announce_path(1, 2, 6881, 0, "")
        );
        let (mut answered, mut limited) = (0u64, 0u64);
        let begin = Instant::now();
        while begin.elapsed() < flood_for {
            stream.write_all(request.as_bytes()).unwrap();
            let (_, body) = read_response(&mut stream).unwrap();
            if contains(&body, b"rate limit exceeded") {
                limited += 1;
            } else {
                assert_contains(&body, b"8:interval");
                answered += 1;
            }
        }
        (answered, limited)
    };
    defences::flood_beside_honest_client(&t, Duration::from_secs(3), flood, || {
        let (status, body) = announce_from(3, addr).unwrap();
        assert_eq!(status, 200);
        assert_contains(&body, b"8:interval");
    });
}

#[test]
fn announce_intervals_are_spread_and_never_below_min_interval() {
    let t = defences::launch(
        BINARY,
        "[protocol]\npeer_announce_interval = 1800\npeer_announce_interval_jitter = 120\nmin_announce_interval = 1750\n",
        "",
    );
    let mut intervals = Vec::new();
    for n in 0..150u8 {
        let (_, body) = get_from(
            loopback(1),
            t.addr,
            &announce_path(1, n, 6881, 0, ""),
            "Host: t\r\n",
        )
        .unwrap();
        let text = String::from_utf8_lossy(&body);
        let value = text
            .split("8:intervali")
            .nth(1)
            .and_then(|rest| rest.split('e').next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no interval in {text}"));
        intervals.push(value);
        assert!(text.contains("12:min intervali1750e"), "{text}");
    }
    defences::assert_spread(&intervals, 1800, 120, 1750, 50, 0.0);
    // Draws below 1750 (about 29 %) are raised to it.
    let floored = intervals.iter().filter(|&&i| i == 1750).count();
    assert!(
        (20..=75).contains(&floored),
        "{floored} of 150 at the floor"
    );
}
