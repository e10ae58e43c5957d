//! Prometheus metrics of the real aquatic_ws binary: known WebSocket
//! traffic in, exact counts out of `GET /metrics`, and the text checked by
//! `promtool check metrics` (Debian package `prometheus`, installed by
//! scripts/install-test-deps.sh; the test fails without it).

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use aquatic_test_support::Daemon;
use aquatic_test_support::metrics::{
    Expected, assert_help_and_promtool, check_health_and_stats_json, metrics_address,
    wait_for_expected,
};
use aquatic_ws_protocol::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, InMessage, InfoHash, JsonValue, Offer, OfferId,
    OutMessage, PeerId, ScrapeRequest,
};
use tungstenite::{Message, WebSocket};

const BINARY: &str = env!("CARGO_BIN_EXE_aquatic_ws");

fn connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    tungstenite::client::client(format!("ws://{addr}/"), stream)
        .unwrap()
        .0
}

/// Send a message; the bytes of its JSON.
fn send(ws: &mut WebSocket<TcpStream>, message: &InMessage) -> u64 {
    let text = String::from_utf8(message.to_json()).unwrap();
    let len = text.len() as u64;
    ws.send(Message::text(text)).unwrap();
    len
}

/// Receive a message; it and the bytes of its JSON.
fn recv(ws: &mut WebSocket<TcpStream>) -> (OutMessage, u64) {
    loop {
        if let Message::Text(text) = ws.read().unwrap() {
            let mut bytes = text.as_bytes().to_vec();
            let len = bytes.len() as u64;
            return (OutMessage::from_json(&mut bytes).unwrap(), len);
        }
    }
}

fn announce(hash: u8, peer: u8, left: u64, offers: u8) -> InMessage {
    InMessage::Announce(AnnounceRequest {
        info_hash: InfoHash([hash; 20]),
        peer_id: PeerId([peer; 20]),
        event: AnnounceEvent::Started,
        left: Some(left),
        numwant: None,
        offers: (0..offers)
            .map(|i| Offer {
                offer_id: OfferId([i; 20]),
                offer: JsonValue::from("sdp"),
            })
            .collect(),
    })
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let config = "socket_workers = 2\nrequest_workers = 2\n[metrics]\nenabled = true\naddress = \"127.0.0.1:0\"\n";
    let tracker = Daemon::launch(BINARY, config);
    let metrics = metrics_address(&tracker);
    let (mut sent, mut received) = (0u64, 0u64);

    // A leecher, then a seeder whose one offer reaches the leecher, which
    // answers: 2 announces, 1 offer and 1 answer relayed.
    let mut leecher = connect(tracker.addr);
    sent += send(&mut leecher, &announce(1, 1, 10, 0));
    received += recv(&mut leecher).1;
    let mut seeder = connect(tracker.addr);
    sent += send(&mut seeder, &announce(1, 2, 0, 1));
    received += recv(&mut seeder).1;
    let (offer, len) = recv(&mut leecher);
    received += len;
    let OutMessage::Offer(offer) = offer else {
        panic!("{offer:?}")
    };
    sent += send(
        &mut leecher,
        &InMessage::Answer(AnswerRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([1; 20]),
            to_peer_id: PeerId([2; 20]),
            offer_id: offer.offer_id,
            answer: JsonValue::from("answer"),
        }),
    );
    received += recv(&mut seeder).1;
    // A scrape, an error (invalid JSON), and an answer to an offer that
    // was never made (dropped without a reply, counted).
    sent += send(
        &mut seeder,
        &InMessage::Scrape(ScrapeRequest {
            info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
        }),
    );
    received += recv(&mut seeder).1;
    seeder.send(Message::text("{")).unwrap();
    sent += 1;
    received += recv(&mut seeder).1;
    sent += send(
        &mut seeder,
        &InMessage::Answer(AnswerRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            to_peer_id: PeerId([1; 20]),
            offer_id: OfferId([9; 20]),
            answer: JsonValue::from("answer"),
        }),
    );
    // The leecher closes: it leaves the swarm.
    leecher.close(None).unwrap();
    while leecher.read().is_ok() {}

    let expected: Vec<Expected> = vec![
        (
            "aquatic_ws_connections_total",
            vec![("outcome", "accepted")],
            2,
        ),
        ("aquatic_ws_open_connections", vec![], 1),
        (
            "aquatic_ws_closed_connections_total",
            vec![("reason", "client")],
            1,
        ),
        ("aquatic_ws_requests_total", vec![("type", "announce")], 2),
        ("aquatic_ws_requests_total", vec![("type", "answer")], 2),
        ("aquatic_ws_requests_total", vec![("type", "scrape")], 1),
        ("aquatic_ws_responses_total", vec![("type", "announce")], 2),
        ("aquatic_ws_responses_total", vec![("type", "offer")], 1),
        ("aquatic_ws_responses_total", vec![("type", "answer")], 1),
        ("aquatic_ws_responses_total", vec![("type", "scrape")], 1),
        ("aquatic_ws_responses_total", vec![("type", "error")], 1),
        (
            "aquatic_ws_error_responses_total",
            vec![("reason", "invalid_message")],
            1,
        ),
        (
            "aquatic_ws_error_responses_total",
            vec![("reason", "unknown_offer")],
            0,
        ),
        (
            "aquatic_ws_answers_not_relayed_total",
            vec![("worker", "all")],
            1,
        ),
        ("aquatic_ws_pending_offers", vec![], 0),
        ("aquatic_ws_torrents", vec![("ip_version", "4")], 1),
        ("aquatic_ws_seeders", vec![("ip_version", "4")], 1),
        ("aquatic_ws_leechers", vec![("ip_version", "4")], 0),
    ];
    let (text, samples) = wait_for_expected(metrics, &expected, &[]);
    check_health_and_stats_json(
        metrics,
        "aquatic_ws",
        &["socket-0", "socket-1", "request-0", "request-1"],
        &expected,
        &[],
    );
    // Message payload bytes, plus the upgrade requests and responses.
    let bytes = |name: &str| {
        samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| *v)
            .sum::<u64>()
    };
    assert!(bytes("aquatic_ws_received_bytes_total") > sent, "{text}");
    assert!(bytes("aquatic_ws_sent_bytes_total") > received, "{text}");
    assert_help_and_promtool(&text, &expected);
}
