//! Prometheus metrics of the real aquatic_ws binary: known WebSocket
//! traffic in, exact counts out of `GET /metrics`, and the text checked by
//! `promtool check metrics` (Debian package `prometheus`, installed by
//! scripts/install-test-deps.sh; the test fails without it).

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use aquatic_test_support::metrics::{Expectations, assert_settles_to, launch_two_by_two, sum};
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

/// An answer from peer `from` to peer `to`'s offer `offer_id` in torrent 1.
fn answer(from: u8, to: u8, offer_id: OfferId) -> InMessage {
    InMessage::Answer(AnswerRequest {
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([from; 20]),
        to_peer_id: PeerId([to; 20]),
        offer_id,
        answer: JsonValue::from("answer"),
    })
}

#[test]
fn metrics_count_known_traffic_exactly() {
    let (tracker, metrics) = launch_two_by_two(BINARY, "");
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
    sent += send(&mut leecher, &answer(1, 2, offer.offer_id));
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
    sent += send(&mut seeder, &answer(2, 1, OfferId([9; 20])));
    // The leecher closes: it leaves the swarm.
    leecher.close(None).unwrap();
    while leecher.read().is_ok() {}

    let expected = Expectations::new("aquatic_ws")
        .by("connections_total", "outcome", &[("accepted", 2)])
        .total("open_connections", 1)
        .by("closed_connections_total", "reason", &[("client", 1)])
        .by(
            "requests_total",
            "type",
            &[("announce", 2), ("answer", 2), ("scrape", 1)],
        )
        .by(
            "responses_total",
            "type",
            &[
                ("announce", 2),
                ("offer", 1),
                ("answer", 1),
                ("scrape", 1),
                ("error", 1),
            ],
        )
        .by(
            "error_responses_total",
            "reason",
            &[("invalid_message", 1), ("unknown_offer", 0)],
        )
        .by("answers_not_relayed_total", "worker", &[("all", 1)])
        .total("pending_offers", 0)
        .swarm(Some("4"), [1, 1, 0])
        .build();
    let (text, samples) = assert_settles_to(metrics, "aquatic_ws", &expected, &[]);
    // Message payload bytes, plus the upgrade requests and responses.
    let received_bytes = sum(&samples, "aquatic_ws_received_bytes_total", &[]);
    assert!(received_bytes > sent, "{text}");
    let sent_bytes = sum(&samples, "aquatic_ws_sent_bytes_total", &[]);
    assert!(sent_bytes > received, "{text}");
}
