//! The load tester against a small in-test WebTorrent tracker on 127.0.0.1
//! (a thread per connection, tungstenite over blocking sockets) that
//! answers announces and scrapes and relays offers and answers between its
//! peers: counts must be positive and add up, failures must show in the
//! right counters, closed connections must be reopened, and every run stops
//! by itself within its duration.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aquatic_load_test_common::testing::{self, SummaryTail, TcpTracker};
use aquatic_ws_load_test::{Config, Summary, run_load_test};
use aquatic_ws_protocol::{
    AnnounceResponse, AnswerMessage, ErrorResponse, InMessage, InfoHash, OfferMessage, OutMessage,
    PeerId, ScrapeResponse, ScrapeStatistics,
};
use tungstenite::handshake::HandshakeError;
use tungstenite::{Message, WebSocket};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Answer everything and relay offers and answers.
    Normal,
    /// As Normal, but close each connection (with a close frame) after
    /// this many announces and scrapes.
    CloseAfter(u64),
    /// A failure reason for every announce; scrapes answered.
    FailAnnounces,
    /// Read, never answer.
    Silent,
}

#[derive(Default)]
struct Received {
    announces: AtomicU64,
    scrapes: AtomicU64,
    offers: AtomicU64,
    offers_relayed: AtomicU64,
    answers: AtomicU64,
    answers_relayed: AtomicU64,
    connections: AtomicU64,
    /// Messages that did not parse.
    bad: AtomicU64,
}

/// The peers connected now (to relay to) and the swarms.
#[derive(Default)]
struct Swarms {
    peers: HashMap<PeerId, Sender<String>>,
    torrents: HashMap<InfoHash, Vec<PeerId>>,
}

impl Swarms {
    /// Send `message` to peer `to` when it is connected, counting it in
    /// `relayed`.
    fn relay(&self, to: &PeerId, message: &OutMessage, relayed: &AtomicU64) {
        let Some(peer) = self.peers.get(to) else {
            return;
        };
        if peer.send(json(message)).is_ok() {
            relayed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

type FakeTracker = TcpTracker<Received>;

/// Start a fake tracker in `mode`, behind TLS with `tls`.
fn start(mode: Mode, tls: bool) -> FakeTracker {
    let tls = tls.then(aquatic_test_support::tls::server_config);
    let swarms = Arc::new(Mutex::new(Swarms::default()));
    let read_timeout = Duration::from_millis(5);
    TcpTracker::start(
        tls,
        read_timeout,
        move |stream, stop, counts: Arc<Received>| {
            counts.connections.fetch_add(1, Ordering::Relaxed);
            let swarms = swarms.clone();
            Peer {
                mode,
                stop,
                counts,
                swarms,
            }
            .serve(stream)
        },
    )
}

/// One connection of the fake tracker.
struct Peer {
    mode: Mode,
    stop: Arc<AtomicBool>,
    counts: Arc<Received>,
    swarms: Arc<Mutex<Swarms>>,
}

fn is_timeout(err: &tungstenite::Error) -> bool {
    matches!(err, tungstenite::Error::Io(e)
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

fn json(message: &OutMessage) -> String {
    String::from_utf8(message.to_json()).unwrap()
}

impl Peer {
    fn serve<S: Read + Write>(self, stream: S) {
        let mut handshake = tungstenite::accept(stream);
        let mut ws = loop {
            match handshake {
                Ok(ws) => break ws,
                Err(HandshakeError::Interrupted(mid)) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    handshake = mid.handshake();
                }
                Err(HandshakeError::Failure(_)) => return,
            }
        };
        let (tx, rx) = channel();
        let mut own_ids = Vec::new();
        let mut requests = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let mut bytes = t.as_bytes().to_vec();
                    match InMessage::from_json(&mut bytes) {
                        Ok(message) => {
                            if !matches!(message, InMessage::Answer(_)) {
                                requests += 1;
                            }
                            self.handle(&mut ws, message, &tx, &mut own_ids);
                        }
                        Err(_) => {
                            self.counts.bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok(_) => {}
                Err(err) if is_timeout(&err) => {}
                Err(_) => break,
            }
            if let Mode::CloseAfter(n) = self.mode
                && requests >= n
            {
                let _ = ws.close(None);
                let _ = ws.flush();
                // Let the client see the close frame before the socket
                // goes.
                std::thread::sleep(Duration::from_millis(20));
                break;
            }
            if !self.relay_queued(&mut ws, &rx) {
                break;
            }
        }
        let mut swarms = self.swarms.lock().unwrap();
        for id in own_ids {
            swarms.peers.remove(&id);
        }
    }

    /// Send what other connections relayed to this one.
    fn relay_queued<S: Read + Write>(&self, ws: &mut WebSocket<S>, rx: &Receiver<String>) -> bool {
        while let Ok(message) = rx.try_recv() {
            if ws.send(Message::text(message)).is_err() {
                return false;
            }
        }
        true
    }

    fn handle<S: Read + Write>(
        &self,
        ws: &mut WebSocket<S>,
        message: InMessage,
        tx: &Sender<String>,
        own_ids: &mut Vec<PeerId>,
    ) {
        let reply = match message {
            InMessage::Announce(a) => {
                self.counts.announces.fetch_add(1, Ordering::Relaxed);
                self.counts
                    .offers
                    .fetch_add(a.offers.len() as u64, Ordering::Relaxed);
                if self.mode == Mode::FailAnnounces {
                    Some(OutMessage::Error(ErrorResponse {
                        failure_reason: "announces are off today".into(),
                        action: Some(aquatic_ws_protocol::Action::Announce),
                        info_hash: Some(a.info_hash),
                    }))
                } else if self.mode == Mode::Silent {
                    None
                } else {
                    let mut swarms = self.swarms.lock().unwrap();
                    if !own_ids.contains(&a.peer_id) {
                        own_ids.push(a.peer_id);
                        swarms.peers.insert(a.peer_id, tx.clone());
                    }
                    let members = swarms.torrents.entry(a.info_hash).or_default();
                    let others: Vec<PeerId> = members
                        .iter()
                        .copied()
                        .filter(|p| *p != a.peer_id)
                        .collect();
                    if !members.contains(&a.peer_id) {
                        members.push(a.peer_id);
                    }
                    for (offer, to) in a.offers.into_iter().zip(others) {
                        let relayed = OutMessage::Offer(OfferMessage {
                            info_hash: a.info_hash,
                            peer_id: a.peer_id,
                            offer_id: offer.offer_id,
                            offer: offer.offer,
                        });
                        swarms.relay(&to, &relayed, &self.counts.offers_relayed);
                    }
                    Some(OutMessage::AnnounceResponse(AnnounceResponse {
                        info_hash: a.info_hash,
                        complete: 1,
                        incomplete: 2,
                        interval: 120,
                    }))
                }
            }
            InMessage::Answer(a) => {
                self.counts.answers.fetch_add(1, Ordering::Relaxed);
                let relayed = OutMessage::Answer(AnswerMessage {
                    info_hash: a.info_hash,
                    peer_id: a.peer_id,
                    offer_id: a.offer_id,
                    answer: a.answer,
                });
                let swarms = self.swarms.lock().unwrap();
                swarms.relay(&a.to_peer_id, &relayed, &self.counts.answers_relayed);
                None
            }
            InMessage::Scrape(s) => {
                self.counts.scrapes.fetch_add(1, Ordering::Relaxed);
                (self.mode != Mode::Silent).then(|| {
                    OutMessage::ScrapeResponse(ScrapeResponse {
                        files: s
                            .info_hashes
                            .into_iter()
                            .map(|h| (h, ScrapeStatistics::default()))
                            .collect(),
                    })
                })
            }
        };
        if let Some(reply) = reply {
            let _ = ws.send(Message::text(json(&reply)));
        }
    }
}

/// Run against a fake tracker in `mode` (behind TLS with `config.tls`)
/// with the test config for `duration` seconds changed by `edit`, checking
/// what holds for every run: it ends on time, and every request sent got a
/// reply, a failure, timed out, was dropped, or is still in flight. The
/// summary, the progress lines and what the tracker counted.
fn run(
    mode: Mode,
    duration: u64,
    edit: impl FnOnce(&mut Config),
) -> (Summary, String, Arc<Received>) {
    let mut config = Config::for_local_tracker(testing::unused_tcp_address(), duration);
    // Few torrents: full swarms, many offers relayed.
    config.requests.number_of_torrents = 20;
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
            t.requests_sent(),
            t.responses() + t.failures + t.timeouts + t.dropped,
            s.in_flight_at_end,
        ]
    });
    (summary, progress)
}

#[test]
fn offers_and_answers_are_relayed_and_add_up() {
    let (summary, progress, received) = run(Mode::Normal, 2, |_| {});
    let t = &summary.totals;
    assert!(summary.checks_pass(), "{}", summary.report());
    assert!(
        t.announce_replies > 0 && t.scrape_replies > 0,
        "{summary:?}"
    );
    // Weights 10 : 1.
    assert!(t.announce_replies > 3 * t.scrape_replies, "{summary:?}");
    assert_eq!(t.offers_sent, 5 * t.announces_sent);
    assert!(
        t.offers_received > 0 && t.answers_received > 0,
        "{summary:?}"
    );
    assert_eq!(t.answers_sent, t.offers_received, "{summary:?}");
    let problems = t.problems() + t.answers_unknown + t.own_offers_received;
    assert_eq!(problems, 0, "{summary:?}");
    let closes = t.connection_errors + t.reconnects + t.tracker_closes;
    assert_eq!(closes, 0, "{summary:?}");
    assert_eq!(t.connections_opened, 8, "{summary:?}");
    assert_eq!(received.connections.load(Ordering::Relaxed), 8);
    assert_eq!(received.bad.load(Ordering::Relaxed), 0);
    // What the tracker saw matches what was sent, but for requests in
    // flight at the end: those may not have reached it before it stopped.
    let in_flight = summary.in_flight_at_end;
    let announces = received.announces.load(Ordering::Relaxed);
    let scrapes = received.scrapes.load(Ordering::Relaxed);
    assert!(announces <= t.announces_sent, "{summary:?}");
    assert!(scrapes <= t.scrapes_sent, "{summary:?}");
    assert!(
        announces + scrapes + in_flight >= t.requests_sent(),
        "{summary:?}"
    );
    assert_eq!(received.offers.load(Ordering::Relaxed), 5 * announces);
    assert!(received.offers_relayed.load(Ordering::Relaxed) >= t.offers_received);
    assert!(received.answers.load(Ordering::Relaxed) <= t.answers_sent);
    assert!(received.answers_relayed.load(Ordering::Relaxed) >= t.answers_received);

    // Progress: one line a second.
    let lines: Vec<&str> = progress.lines().collect();
    assert_eq!(lines.len(), 2, "{progress}");
    assert!(lines[0].contains("responses/s: "), "{progress}");
    assert!(lines[0].contains("offers in/s "), "{progress}");
}

#[test]
fn more_connections_than_open_at_once_all_open() {
    // Above the 128 handshakes a worker has under way at once.
    let (summary, _, received) = run(Mode::Normal, 2, |config| {
        config.workers = 1;
        config.connections_per_worker = 300;
    });
    let t = &summary.totals;
    assert_eq!(t.connections_opened, 300, "{}", summary.report());
    assert_eq!(t.connection_errors + t.timeouts, 0, "{}", summary.report());
    assert_eq!(received.connections.load(Ordering::Relaxed), 300);
    assert!(summary.checks_pass(), "{}", summary.report());
}

#[test]
fn closed_connections_are_counted_and_reopened() {
    let (summary, _, received) = run(Mode::CloseAfter(5), 1, |_| {});
    let t = &summary.totals;
    assert!(t.tracker_closes > 8, "{summary:?}");
    assert!(t.reconnects >= t.tracker_closes - 8, "{summary:?}");
    assert_eq!(t.connections_opened, 8 + t.reconnects, "{summary:?}");
    assert!(t.responses() >= 5 * t.tracker_closes, "{summary:?}");
    assert_eq!(t.timeouts + t.invalid, 0, "{summary:?}");
    assert!(received.connections.load(Ordering::Relaxed) >= t.connections_opened);
    assert!(summary.checks_pass(), "{}", summary.report());
}

#[test]
fn failure_reasons_are_counted_and_listed() {
    let (summary, _, _) = run(Mode::FailAnnounces, 1, |_| {});
    let t = &summary.totals;
    assert!(t.failures > 0 && t.scrape_replies > 0, "{summary:?}");
    assert_eq!(t.announce_replies + t.offers_received, 0, "{summary:?}");
    // Every announce got its failure reason, but those still in flight.
    assert!(t.failures <= t.announces_sent, "{summary:?}");
    let in_flight = summary.in_flight_at_end;
    assert!(t.failures + in_flight >= t.announces_sent, "{summary:?}");
    assert_eq!(
        summary.failure_reasons.sorted(),
        vec![("announces are off today", t.failures)]
    );
    assert!(
        summary
            .report()
            .contains("failure reasons: \"announces are off today\"")
    );
}

#[test]
fn unanswered_requests_time_out() {
    let (summary, _, _) = run(Mode::Silent, 1, |c| c.request_timeout_ms = 200);
    let t = &summary.totals;
    assert_eq!(t.responses(), 0, "{summary:?}");
    // 8 connections, each timing out about every 200 ms (then waiting
    // 100 ms: a connection without any reply reconnects after a delay).
    assert!(t.timeouts >= 8, "{summary:?}");
    assert!(t.reconnects >= t.timeouts.saturating_sub(8), "{summary:?}");
}

#[test]
fn rate_cap_limits_requests_sent() {
    let (summary, _, _) = run(Mode::Normal, 1, |c| c.max_requests_per_second = 200);
    let sent = summary.totals.requests_sent();
    assert!((100..=260).contains(&sent), "{summary:?}");
    assert!(summary.checks_pass(), "{}", summary.report());
}

#[test]
fn tls() {
    let (summary, _, _) = run(Mode::Normal, 1, |c| c.tls = true);
    let t = &summary.totals;
    assert!(
        t.announce_replies > 0 && t.answers_received > 0,
        "{summary:?}"
    );
    assert_eq!(t.connections_opened, 8, "{summary:?}");
    let problems = t.connection_errors + t.timeouts + t.invalid;
    assert_eq!(problems, 0, "{summary:?}");
    assert!(summary.checks_pass(), "{}", summary.report());
}

const EXE: &str = env!("CARGO_BIN_EXE_aquatic_ws_load_test");
const PREFIX: &str = "aquatic_ws_load_test";

#[test]
fn no_tracker_means_connection_errors_and_exit_code_2() {
    // A port nobody listens on.
    let address = testing::unused_tcp_address();
    let mut config = Config::for_local_tracker(address, 1);
    config.requests.number_of_torrents = 20;
    let (summary, _) = run_with(&config);
    let t = &summary.totals;
    assert_eq!(t.responses() + t.requests_sent(), 0, "{summary:?}");
    // 8 connections, refused and retried every 100 ms.
    assert!(t.connection_errors >= 16, "{summary:?}");
    testing::check_exit_code_2_without_tracker(EXE, PREFIX, address, "no replies");
}

#[test]
fn binary_prints_summary_and_json() {
    let tracker = start(Mode::Normal, false);
    let toml = format!(
        "server_address = \"{}\"\nduration = 1\nsummarize_every = 1\nconnections_per_worker = 4\n[requests]\nnumber_of_torrents = 5\n",
        tracker.address
    );
    let stdout = testing::run_binary_json(EXE, PREFIX, &toml);
    tracker.finish();

    let first = stdout.lines().next().unwrap();
    assert!(first.starts_with("load testing ws://"), "{stdout}");
    assert!(
        stdout.contains("\ncheck ok: answers received <= answers sent"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let tail = SummaryTail::parse(&stdout);
    assert!(tail.responses_per_second > 0.0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(tail.json).unwrap();
    assert_eq!(
        json["announce_responses_total"],
        tail.announce_responses_total
    );
    assert!(json["answers_received"].as_f64().unwrap() > 0.0, "{stdout}");
    assert_eq!(json["checks_pass"], true);
    assert!(
        tail.json.starts_with("{\"responses_per_second\":"),
        "{stdout}"
    );
}

#[test]
fn binary_writes_info_hash_file_and_exits() {
    let fourth = aquatic_ws_load_test::torrents::info_hash(5, 3).to_hex();
    testing::check_info_hash_file(EXE, PREFIX, &fourth);
}
