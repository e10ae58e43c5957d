//! The load tester against a tiny in-test HTTP(S) tracker on 127.0.0.1 that
//! answers with fixed bencoded bodies: counts must be positive and add up,
//! failures must show in the right counters, and every run stops by itself
//! within its duration.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aquatic_http_load_test::{Config, Summary, run_load_test};
use aquatic_http_protocol::{
    ParseOptions, Request, RequestParseError, parse_request, write_failure, write_http_head,
};
use aquatic_load_test_common::testing::{self, SummaryTail, TcpTracker};

/// A compact announce answer with two IPv4 peers.
const ANNOUNCE_BODY: &[u8] =
    b"d8:completei2e10:incompletei1e8:intervali1800e12:min intervali60e5:peers12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe1e";
/// A scrape answer for one torrent.
const SCRAPE_BODY: &[u8] =
    b"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei1e10:downloadedi0e10:incompletei0eeee";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Answer everything, keeping connections open unless asked to close.
    Normal,
    /// Answer everything with `Connection: close` and close.
    AlwaysClose,
    /// Answer everything as if keeping the connection open, but close it
    /// (as opentracker does).
    CloseSilently,
    /// HTTP/1.0 answers without Content-Length; the body ends with the
    /// connection.
    Http10WithoutLength,
    /// Failure reasons for announces, 404 for scrapes.
    Errors,
    /// Close the connection instead of answering every 50th request.
    DropSome,
    /// Read requests, never answer.
    Silent,
}

#[derive(Default)]
struct Received {
    announce: AtomicU64,
    scrape: AtomicU64,
    /// Requests that asked for `Connection: close`.
    close_requested: AtomicU64,
    connections: AtomicU64,
    /// Requests that did not parse.
    bad: AtomicU64,
}

impl Received {
    fn requests(&self) -> u64 {
        self.announce.load(Ordering::Relaxed) + self.scrape.load(Ordering::Relaxed)
    }
}

type FakeTracker = TcpTracker<Received>;

/// Start a fake tracker in `mode`, behind TLS with `tls`.
fn start(mode: Mode, tls: bool) -> FakeTracker {
    let tls = tls.then(aquatic_test_support::tls::server_config);
    let read_timeout = Duration::from_millis(20);
    TcpTracker::start(
        tls,
        read_timeout,
        move |stream, stop, counts: Arc<Received>| {
            counts.connections.fetch_add(1, Ordering::Relaxed);
            serve(stream, mode, &stop, &counts)
        },
    )
}

/// Serve one connection until the client closes it, the mode closes it, or
/// the test stops.
fn serve(mut stream: impl Read + Write, mode: Mode, stop: &AtomicBool, counts: &Received) {
    let options = ParseOptions {
        max_scrape_torrents: 100,
        reverse_proxy_header: None,
        allowed_hosts: &[],
    };
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(len) => input.extend_from_slice(&chunk[..len]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(_) => return,
        }
        loop {
            let parsed = match parse_request(&input, &options) {
                Ok(parsed) => parsed,
                Err(RequestParseError::NeedMoreData) => break,
                Err(_) => {
                    counts.bad.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            input.drain(..parsed.consumed);
            if !parsed.keep_alive {
                counts.close_requested.fetch_add(1, Ordering::Relaxed);
            }
            let is_announce = matches!(parsed.request, Request::Announce(_));
            let counter = if is_announce {
                &counts.announce
            } else {
                &counts.scrape
            };
            counter.fetch_add(1, Ordering::Relaxed);
            match mode {
                Mode::Silent => continue,
                // Closes the connection.
                Mode::DropSome if counts.requests() % 50 == 0 => return,
                _ => {}
            }
            let keep_alive = parsed.keep_alive
                && matches!(
                    mode,
                    Mode::Normal | Mode::Errors | Mode::DropSome | Mode::CloseSilently
                );
            out.clear();
            match (mode, is_announce) {
                (Mode::Errors, true) => {
                    let mut body = Vec::new();
                    write_failure(&mut body, "unregistered torrent");
                    write_http_head(&mut out, 200, "OK", body.len(), keep_alive);
                    out.extend_from_slice(&body);
                }
                (Mode::Errors, false) => {
                    write_http_head(&mut out, 404, "Not Found", 9, keep_alive);
                    out.extend_from_slice(b"not found");
                }
                (Mode::Http10WithoutLength, _) => {
                    out.extend_from_slice(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n");
                    out.extend_from_slice(if is_announce {
                        ANNOUNCE_BODY
                    } else {
                        SCRAPE_BODY
                    });
                }
                (_, announce) => {
                    let body = if announce { ANNOUNCE_BODY } else { SCRAPE_BODY };
                    write_http_head(&mut out, 200, "OK", body.len(), keep_alive);
                    out.extend_from_slice(body);
                }
            }
            if stream
                .write_all(&out)
                .and_then(|()| stream.flush())
                .is_err()
            {
                return;
            }
            if !keep_alive || mode == Mode::CloseSilently {
                return;
            }
        }
    }
}

/// Run against a fake tracker in `mode` (behind TLS with `config.tls`)
/// with the test config for `duration` seconds changed by `edit`, checking
/// what holds for every run: it ends on time, and every request sent got a
/// response, timed out, was dropped, or is still in flight. The summary,
/// the progress lines and what the tracker counted.
fn run(
    mode: Mode,
    duration: u64,
    edit: impl FnOnce(&mut Config),
) -> (Summary, String, Arc<Received>) {
    let mut config = Config::for_local_tracker(testing::unused_tcp_address(), duration);
    edit(&mut config);
    let tracker = start(mode, config.tls);
    config.server_address = tracker.address;
    let (summary, progress) = run_with(&config);
    (summary, progress, tracker.finish())
}

fn run_with(config: &Config) -> (Summary, String) {
    let connections = config.workers * config.connections_per_worker;
    let run = |progress: &mut Vec<u8>| run_load_test(config, progress);
    let (summary, progress, _) = testing::run_checked(config.duration, connections, run, |s| {
        let t = &s.totals;
        [
            t.requests_sent,
            t.responses() + t.invalid + t.timeouts + t.dropped,
            s.in_flight_at_end,
        ]
    });
    (summary, progress)
}

/// No failures, invalid responses, timeouts or dropped requests.
fn assert_all_answered(summary: &Summary) {
    let t = &summary.totals;
    let problems = t.errors() + t.invalid + t.timeouts + t.dropped;
    assert_eq!(problems, 0, "{summary:?}");
}

/// No connection errors, reconnects or connections the tracker closed.
fn assert_connections_kept(summary: &Summary) {
    let t = &summary.totals;
    let closes = t.connection_errors + t.reconnects + t.tracker_closes;
    assert_eq!(closes, 0, "{summary:?}");
}

#[test]
fn keep_alive_counts_are_positive_and_consistent() {
    let (summary, progress, received) = run(Mode::Normal, 2, |_| {});
    let t = &summary.totals;
    assert!(t.announce > 0 && t.scrape > 0, "{summary:?}");
    // Weights 10 : 1.
    assert!(t.announce > 3 * t.scrape, "{summary:?}");
    assert_all_answered(&summary);
    assert_connections_kept(&summary);
    // One connection each, kept for the whole run.
    assert_eq!(t.connections_opened, 8, "{summary:?}");
    assert_eq!(received.connections.load(Ordering::Relaxed), 8);
    assert_eq!(received.close_requested.load(Ordering::Relaxed), 0);
    assert_eq!(received.bad.load(Ordering::Relaxed), 0);
    // The tracker saw every request sent, and answered all but those in
    // flight at the end.
    assert_eq!(received.requests(), t.requests_sent, "{summary:?}");
    assert!(received.announce.load(Ordering::Relaxed) >= t.announce);

    // Progress: one line a second, rates by kind.
    let lines: Vec<&str> = progress.lines().collect();
    assert_eq!(lines.len(), 2, "{progress}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("responses/s") && l.contains("announce"))
    );

    let json = summary.to_json();
    assert!(json.responses_per_second > 0.0);
    assert!((json.duration_secs - 2.0).abs() < 0.5);
    let rate_sum = json.announce + json.scrape + json.error;
    assert!((rate_sum - json.responses_per_second).abs() < 1.0);
}

#[test]
fn close_mode_opens_a_connection_per_request() {
    // With the Connection: close header, and without it (the tracker keeps
    // the connection open and the load tester closes it after the answer).
    for close_header in [true, false] {
        let (summary, _, received) = run(Mode::Normal, 2, |config| {
            config.keep_alive = false;
            config.connection_header = close_header;
        });
        let t = &summary.totals;
        assert!(t.announce > 0 && t.scrape > 0, "{summary:?}");
        assert_all_answered(&summary);
        assert_connections_kept(&summary);
        // A connection for each request (the last ones may not be out yet).
        assert!(t.connections_opened >= t.requests_sent, "{summary:?}");
        assert!(t.connections_opened <= t.requests_sent + 8, "{summary:?}");
        assert_eq!(received.bad.load(Ordering::Relaxed), 0);
        let requests = received.requests();
        assert_eq!(requests, t.requests_sent, "{summary:?}");
        let asked_to_close = if close_header { requests } else { 0 };
        let close_requested = received.close_requested.load(Ordering::Relaxed);
        assert_eq!(close_requested, asked_to_close);
        assert!(received.connections.load(Ordering::Relaxed) >= requests);
    }
}

#[test]
fn tracker_closing_keep_alive_connections_is_counted() {
    let (summary, _, _) = run(Mode::AlwaysClose, 1, |_| {});
    let t = &summary.totals;
    assert!(t.announce > 0, "{summary:?}");
    assert_all_answered(&summary);
    // Every response closed its connection; reopening is not an error.
    assert_eq!(t.tracker_closes, t.responses(), "{summary:?}");
    assert_eq!(t.reconnects + t.connection_errors, 0, "{summary:?}");
    assert!(t.connections_opened >= t.responses(), "{summary:?}");
}

#[test]
fn tracker_closing_without_saying_so_is_noticed() {
    let (summary, _, _) = run(Mode::CloseSilently, 1, |_| {});
    let t = &summary.totals;
    assert!(t.announce > 0, "{summary:?}");
    assert_eq!(t.errors() + t.invalid + t.timeouts, 0, "{summary:?}");
    // Mostly the close comes with the response; when it comes later, the
    // next request on the connection is dropped (and the connection
    // reopened).
    assert!(t.tracker_closes > 4 * t.dropped, "{summary:?}");
    assert_eq!(t.connection_errors, 0, "{summary:?}");
    assert!(
        t.reconnects <= t.dropped && t.dropped - t.reconnects <= 8,
        "{summary:?}"
    );
    let closes = t.tracker_closes + t.reconnects;
    assert!(t.connections_opened <= 8 + closes, "{summary:?}");
    assert!(t.connections_opened + 8 >= 8 + closes, "{summary:?}");
}

#[test]
fn bodies_without_length_end_with_the_connection() {
    let (summary, _, _) = run(Mode::Http10WithoutLength, 1, |_| {});
    let t = &summary.totals;
    assert!(t.announce > 0 && t.scrape > 0, "{summary:?}");
    assert_all_answered(&summary);
    assert_eq!(t.tracker_closes, t.responses(), "{summary:?}");
}

#[test]
fn failures_and_error_statuses_are_counted() {
    let (summary, _, _) = run(Mode::Errors, 1, |c| c.requests.weight_scrape = 5);
    let t = &summary.totals;
    assert!(t.failure > 0 && t.error_status > 0, "{summary:?}");
    let not_errors = t.announce + t.scrape + t.invalid + t.dropped;
    assert_eq!(not_errors, 0, "{summary:?}");
    // Error answers keep the connection.
    assert_eq!(t.connections_opened, 8, "{summary:?}");
    let json = summary.to_json();
    assert!(json.error > 0.0 && json.error == json.responses_per_second);
}

#[test]
fn dropped_connections_are_counted_and_reopened() {
    let (summary, _, _) = run(Mode::DropSome, 1, |_| {});
    let t = &summary.totals;
    assert!(t.announce > 0, "{summary:?}");
    assert!(t.dropped > 0, "{summary:?}");
    // Every dropped request's connection was replaced (the last ones may
    // not have been yet).
    assert!(
        t.reconnects <= t.dropped && t.reconnects + 8 >= t.dropped,
        "{summary:?}"
    );
    assert_eq!(t.connections_opened, 8 + t.reconnects, "{summary:?}");
    assert_eq!(t.invalid + t.timeouts, 0, "{summary:?}");
}

#[test]
fn unanswered_requests_time_out() {
    let (summary, _, received) = run(Mode::Silent, 1, |c| c.request_timeout_ms = 200);
    let t = &summary.totals;
    assert_eq!(t.responses(), 0, "{summary:?}");
    // 8 connections, each timing out about 4 times a second.
    assert!(t.timeouts >= 16, "{summary:?}");
    assert!(t.reconnects >= t.timeouts - 8, "{summary:?}");
    assert!(received.requests() >= t.timeouts);
}

#[test]
fn rate_cap_limits_requests_sent() {
    // 1000 a second for each of the 2 workers: far below what 8
    // connections get from the fake tracker uncapped.
    let (summary, _, received) = run(Mode::Normal, 2, |c| c.max_requests_per_second = 2000);

    // About 2 s x 2000 (+ the token each worker starts with).
    let t = &summary.totals;
    assert!(
        (3000..=4400).contains(&t.requests_sent),
        "{} requests sent: {summary:?}",
        t.requests_sent
    );
    assert!((3000..=4400).contains(&received.requests()));
    assert_eq!(t.invalid + t.timeouts + t.dropped, 0, "{summary:?}");
    // Throttled connections are not in flight.
    assert!(t.responses() + 8 >= t.requests_sent, "{summary:?}");
    let json = summary.to_json();
    assert_eq!(json.announce_responses_total, t.announce);
    assert!(t.announce > 2000, "{summary:?}");
    assert!(
        (1500.0..=2200.0).contains(&json.responses_per_second),
        "{summary:?}"
    );
}

#[test]
fn tls_in_both_modes() {
    for keep_alive in [true, false] {
        let (summary, _, received) = run(Mode::Normal, 1, |config| {
            config.tls = true;
            config.keep_alive = keep_alive;
        });
        let t = &summary.totals;
        assert!(t.announce > 0 && t.scrape > 0, "{keep_alive}: {summary:?}");
        assert_eq!(t.errors() + t.invalid + t.timeouts, 0, "{summary:?}");
        assert_eq!(t.connection_errors + t.reconnects, 0, "{summary:?}");
        assert_eq!(received.bad.load(Ordering::Relaxed), 0);
        if keep_alive {
            assert_eq!(t.connections_opened, 8, "{summary:?}");
            assert_eq!(t.dropped, 0, "{summary:?}");
        } else {
            assert!(t.connections_opened >= t.requests_sent, "{summary:?}");
        }
    }
}

const EXE: &str = env!("CARGO_BIN_EXE_aquatic_http_load_test");
const PREFIX: &str = "aquatic_http_load_test";

#[test]
fn no_tracker_means_connection_errors_and_exit_code_2() {
    // A port nobody listens on.
    let address = testing::unused_tcp_address();
    let (summary, _) = run_with(&Config::for_local_tracker(address, 1));
    let t = &summary.totals;
    assert_eq!(t.responses() + t.requests_sent, 0, "{summary:?}");
    // 8 connections, refused and retried every 100 ms.
    assert!(t.connection_errors >= 16, "{summary:?}");
    testing::check_exit_code_2_without_tracker(EXE, PREFIX, address, "no responses");
}

#[test]
fn binary_prints_summary_and_json() {
    let tracker = start(Mode::Normal, false);
    let toml = format!(
        "server_address = \"{}\"\nduration = 1\nsummarize_every = 1\nconnections_per_worker = 4\nmax_requests_per_second = 500\n[requests]\nnumber_of_torrents = 50\n",
        tracker.address
    );
    let stdout = testing::run_binary_json(EXE, PREFIX, &toml);
    tracker.finish();

    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("load testing http://") && first.contains("at most 500 requests/s"),
        "{stdout}"
    );
    let tail = SummaryTail::parse(&stdout);
    let announces = tail.announce_responses_total;
    let rate = tail.responses_per_second;
    assert!(rate > 0.0, "{stdout}");
    let json_line = tail.json;
    let json: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 9, "{json_line}");
    // These keys, in this order.
    let positions: Vec<usize> = [
        "responses_per_second",
        "announce",
        "scrape",
        "error",
        "requests_sent",
        "timeouts",
        "reconnects",
        "duration_secs",
        "announce_responses_total",
    ]
    .iter()
    .map(|key| {
        json_line
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("{key}: {json_line}"))
    })
    .collect();
    assert!(positions.is_sorted(), "{json_line}");
    assert!(json.as_object().unwrap().values().all(|v| v.is_number()));
    assert!(json["announce"].as_f64().unwrap() > 0.0);
    assert_eq!(json["announce_responses_total"], announces);
    // Capped at 500 a second for 1 s.
    let sent = json["requests_sent"].as_u64().unwrap();
    assert!((300..=600).contains(&sent), "{stdout}");
}

#[test]
fn binary_writes_info_hash_file_and_exits() {
    let fourth = aquatic_http_load_test::torrents::info_hash(5, 3).to_hex();
    testing::check_info_hash_file(EXE, PREFIX, &fourth);
}
