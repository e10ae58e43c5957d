//! The load tester against a tiny in-test UDP tracker on 127.0.0.1: counts
//! must be positive and add up, failures must show in the right counters,
//! and every run stops by itself within its duration.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aquatic_load_test_common::testing::{self, ServerThread, SummaryTail};

use aquatic_udp_load_test::{Config, Summary, run_load_test};
use aquatic_udp_protocol::{
    AnnounceResponse, ConnectResponse, ConnectionId, ErrorResponse, Request, Response,
    ResponsePeer, ScrapeResponse, TorrentScrapeStatistics, TransactionId,
};

const CONNECTION_ID: ConnectionId = ConnectionId(0x0123_4567_89ab_cdef);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answer everything correctly.
    Normal,
    /// Answer announces with an error response.
    ErrorOnAnnounce,
    /// Answer connects with another transaction id.
    WrongTransactionId,
}

#[derive(Debug, Default)]
struct Received {
    connect: u64,
    announce: u64,
    scrape: u64,
    bad_connection_id: u64,
}

impl Received {
    /// Connects, announces and scrapes.
    fn total(&self) -> u64 {
        self.connect + self.announce + self.scrape
    }
}

struct FakeTracker {
    address: SocketAddr,
    server: ServerThread<Received>,
}

impl FakeTracker {
    fn start(mode: Mode) -> Self {
        Self::start_on(UdpSocket::bind("127.0.0.1:0").unwrap(), mode)
    }

    fn start_on(socket: UdpSocket, mode: Mode) -> Self {
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let address = socket.local_addr().unwrap();
        let server = ServerThread::spawn(move |stop| serve(socket, mode, &stop));
        Self { address, server }
    }

    fn finish(self) -> Received {
        // Let datagrams still queued be read, then stop.
        self.server.finish()
    }
}

fn serve(socket: UdpSocket, mode: Mode, stop: &AtomicBool) -> Received {
    let mut received = Received::default();
    let mut buffer = [0u8; 2048];
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, from)) = socket.recv_from(&mut buffer) else {
            continue; // timeout: check the stop flag
        };
        let response = match Request::parse(&buffer[..len], 100) {
            Ok(Request::Connect(r)) => {
                received.connect += 1;
                let transaction_id = if mode == Mode::WrongTransactionId {
                    TransactionId(r.transaction_id.0.wrapping_add(1))
                } else {
                    r.transaction_id
                };
                Response::Connect(ConnectResponse {
                    transaction_id,
                    connection_id: CONNECTION_ID,
                })
            }
            Ok(Request::Announce(r)) => {
                received.announce += 1;
                assert!(r.port >= 1024);
                if r.connection_id != CONNECTION_ID {
                    received.bad_connection_id += 1;
                    error(r.transaction_id, "bad connection id")
                } else if mode == Mode::ErrorOnAnnounce {
                    error(r.transaction_id, "announces are refused")
                } else {
                    let wanted = usize::try_from(r.peers_wanted).unwrap_or(0).min(3) as u8;
                    let t = r.transaction_id;
                    if from.is_ipv4() {
                        Response::AnnounceIpv4(announce(t, wanted, |i| [10, 0, 0, i].into()))
                    } else {
                        let ip = |i| [0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)].into();
                        Response::AnnounceIpv6(announce(t, wanted, ip))
                    }
                }
            }
            Ok(Request::Scrape(r)) => {
                received.scrape += 1;
                if r.connection_id != CONNECTION_ID {
                    received.bad_connection_id += 1;
                    error(r.transaction_id, "bad connection id")
                } else {
                    Response::Scrape(ScrapeResponse {
                        transaction_id: r.transaction_id,
                        torrent_stats: vec![
                            TorrentScrapeStatistics::default();
                            r.info_hashes.len()
                        ],
                    })
                }
            }
            Err(err) => panic!("load tester sent an invalid request: {}", err.message()),
        };
        out.clear();
        response.write(&mut out);
        let _ = socket.send_to(&out, from);
    }
    received
}

/// An announce answer with `wanted` peers, the `i`th at `ip(i)`.
fn announce<I>(
    transaction_id: TransactionId,
    wanted: u8,
    ip: impl Fn(u8) -> I,
) -> AnnounceResponse<I> {
    AnnounceResponse {
        transaction_id,
        announce_interval: 1800,
        leechers: 1,
        seeders: 2,
        peers: (0..wanted)
            .map(|i| ResponsePeer {
                ip_address: ip(i),
                port: 6881,
            })
            .collect(),
    }
}

fn error(transaction_id: TransactionId, message: &'static str) -> Response {
    Response::Error(ErrorResponse {
        transaction_id,
        message: message.into(),
    })
}

/// Run against a fake tracker in `mode` on 127.0.0.1 with the test config
/// for `duration` seconds changed by `edit`; see `run_on`.
fn run(mode: Mode, duration: u64, edit: impl FnOnce(&mut Config)) -> (Summary, String, Received) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    run_on(socket, mode, duration, edit)
}

/// Run against a fake tracker in `mode` on `socket` with the test config
/// for `duration` seconds changed by `edit`, checking what holds for every
/// run: it ends on time, and every request sent was answered, timed out,
/// or is still in flight. The summary, the progress lines and what the
/// tracker counted.
fn run_on(
    socket: UdpSocket,
    mode: Mode,
    duration: u64,
    edit: impl FnOnce(&mut Config),
) -> (Summary, String, Received) {
    let tracker = FakeTracker::start_on(socket, mode);
    let mut config = Config::for_local_tracker(tracker.address, duration);
    edit(&mut config);
    let (summary, progress) = run_with(&config);
    (summary, progress, tracker.finish())
}

fn run_with(config: &Config) -> (Summary, String) {
    let sockets = config.workers * config.sockets_per_worker;
    let run = |progress: &mut Vec<u8>| run_load_test(config, progress);
    let (summary, progress, took) = testing::run_checked(config.duration, sockets, run, |s| {
        let t = &s.totals;
        [
            t.requests_sent,
            t.responses() + t.invalid + t.timeouts,
            s.in_flight_at_end,
        ]
    });
    let duration = Duration::from_secs(config.duration);
    assert!(summary.elapsed >= duration && summary.elapsed < took + Duration::from_millis(1));
    (summary, progress)
}

#[test]
fn counts_are_positive_and_consistent() {
    let (summary, progress, received) = run(Mode::Normal, 2, |_| {});
    let t = &summary.totals;
    assert!(t.connect > 0, "{summary:?}");
    assert!(t.announce > 0, "{summary:?}");
    assert!(t.scrape > 0, "{summary:?}");
    assert_eq!(t.error, 0, "{summary:?}");
    assert_eq!((t.invalid, t.stale, t.timeouts), (0, 0, 0), "{summary:?}");
    assert_eq!(t.socket_errors, 0, "{summary:?}");
    // Weights 1 : 10 : 1, plus the first connect of each socket.
    assert!(t.announce > 3 * t.scrape, "{summary:?}");
    assert!(t.announce > 3 * t.connect, "{summary:?}");

    // Every socket's connection id reached the tracker.
    assert_eq!(received.bad_connection_id, 0);
    // The tracker saw every answered request, and none that was not sent.
    assert!(received.connect >= t.connect && received.announce >= t.announce);
    assert!(received.scrape >= t.scrape);
    let total_received = received.total();
    let report = format!("{received:?} {summary:?}");
    assert!(total_received <= t.requests_sent, "{report}");
    assert!(total_received >= t.responses(), "{report}");

    // Progress: one line a second, rates by type.
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
    let rate_sum = json.connect + json.announce + json.scrape + json.error;
    assert!((rate_sum - json.responses_per_second).abs() < 1.0);
}

#[test]
fn rate_cap_limits_requests_sent() {
    // 1000 a second for each of the 2 workers: far below what 8 sockets
    // get from the fake tracker uncapped.
    let (summary, _, received) = run(Mode::Normal, 2, |c| c.max_requests_per_second = 2000);

    // About 2 s x 2000 (+ the token each worker starts with).
    let t = &summary.totals;
    assert!(
        (3000..=4400).contains(&t.requests_sent),
        "{} requests sent: {summary:?}",
        t.requests_sent
    );
    let total_received = received.total();
    let report = format!("{received:?} {summary:?}");
    assert!((3000..=4400).contains(&total_received), "{report}");
    assert_eq!((t.invalid, t.stale, t.timeouts), (0, 0, 0), "{summary:?}");
    assert_eq!(received.bad_connection_id, 0);
    // Throttled sockets are not in flight.
    assert!(t.responses() + 8 >= t.requests_sent, "{summary:?}");
    let json = summary.to_json();
    assert_eq!(json.announce_responses_total, t.announce);
    assert!(t.announce > 2000, "{summary:?}");
    let rate = json.responses_per_second;
    assert!((1500.0..=2200.0).contains(&rate), "{summary:?}");
}

#[test]
fn ipv6_tracker_gets_ipv6_sockets() {
    // Skipped where the machine has no IPv6 loopback.
    let Ok(socket) = UdpSocket::bind("[::1]:0") else {
        eprintln!("no [::1]: skipping the IPv6 test");
        return;
    };
    let (summary, _, received) = run_on(socket, Mode::Normal, 1, |_| {});
    let t = &summary.totals;
    // 18-byte peers pass the length check only when read as IPv6.
    let all_kinds = t.announce > 0 && t.scrape > 0 && t.connect > 0;
    assert!(all_kinds, "{summary:?}");
    assert_eq!((t.invalid, t.error, t.timeouts), (0, 0, 0), "{summary:?}");
    assert_eq!(received.bad_connection_id, 0);
}

#[test]
fn error_responses_are_counted_and_sockets_reconnect() {
    let (summary, _, received) = run(Mode::ErrorOnAnnounce, 1, |config| {
        config.requests.weight_scrape = 0;
    });
    let t = &summary.totals;
    assert!(t.error > 0, "{summary:?}");
    assert_eq!(t.announce, 0, "{summary:?}");
    // After an error a socket connects again before its next request.
    assert!(t.connect >= t.error, "{summary:?}");
    assert_eq!(received.bad_connection_id, 0);
}

#[test]
fn mismatched_transaction_ids_are_not_responses() {
    let (summary, _, _) = run(Mode::WrongTransactionId, 1, |config| {
        config.request_timeout_ms = 100;
    });
    let t = &summary.totals;
    assert_eq!(t.responses(), 0, "{summary:?}");
    assert!(t.stale > 0, "{summary:?}");
    assert!(t.timeouts > 0, "{summary:?}");
}

#[test]
fn no_tracker_means_timeouts_not_failure() {
    // A port nobody listens on.
    let address = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = Config::for_local_tracker(address, 1);
    config.request_timeout_ms = 100;
    let (summary, _) = run_with(&config);
    assert_eq!(summary.totals.responses(), 0);
    assert!(summary.totals.timeouts > 0, "{summary:?}");
}

const EXE: &str = env!("CARGO_BIN_EXE_aquatic_udp_load_test");
const PREFIX: &str = "aquatic_udp_load_test";

#[test]
fn binary_prints_summary_and_json() {
    let tracker = FakeTracker::start(Mode::Normal);
    let toml = format!(
        "server_address = \"{}\"\nduration = 1\nsummarize_every = 1\nmax_requests_per_second = 500\n[requests]\nnumber_of_torrents = 50\n",
        tracker.address
    );
    let stdout = testing::run_binary_json(EXE, PREFIX, &toml);
    tracker.finish();

    assert!(
        stdout.starts_with("load testing")
            && stdout
                .lines()
                .next()
                .unwrap()
                .contains("at most 500 requests/s"),
        "{stdout}"
    );
    let tail = SummaryTail::parse(&stdout);
    let announces = tail.announce_responses_total;
    let rate = tail.responses_per_second;
    assert!(rate > 0.0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(tail.json).unwrap();
    for key in [
        "responses_per_second",
        "connect",
        "announce",
        "scrape",
        "error",
        "requests_sent",
        "timeouts",
        "announce_responses_total",
        "duration_secs",
    ] {
        assert!(json[key].is_number(), "{key}: {stdout}");
    }
    assert_eq!(json.as_object().unwrap().len(), 9);
    assert!(json["announce"].as_f64().unwrap() > 0.0);
    assert_eq!(json["announce_responses_total"], announces);
    // Capped at 500 a second for 1 s.
    let sent = json["requests_sent"].as_u64().unwrap();
    assert!((300..=600).contains(&sent), "{stdout}");
}

#[test]
fn binary_writes_info_hash_file_and_exits() {
    let fourth = aquatic_udp_load_test::torrents::info_hash(5, 3).to_hex();
    testing::check_info_hash_file(EXE, PREFIX, &fourth);
}
