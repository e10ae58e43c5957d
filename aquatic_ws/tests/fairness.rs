//! One source cannot shut others out: attacks from 127.0.0.2 against the
//! real aquatic_ws binary, while an honest pair on 127.0.0.3 and 127.0.0.4
//! keeps signalling (announce, offer relayed, answer relayed) and must get
//! every step within a bound. Also the close codes of protocol errors and
//! a process with fewer file descriptors than its config asks for.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aquatic_test_support::metrics::{metrics_address, parse, scrape, sum};
use aquatic_test_support::ws::{CLOSE, TEXT, frame, frame_with, raw_upgrade_from, read_frame};
use aquatic_test_support::{Daemon, loopback};
use aquatic_ws_protocol::{
    AnnounceEvent, AnnounceRequest, AnswerRequest, InMessage, InfoHash, JsonValue, Offer, OfferId,
    OutMessage, PeerId,
};
use common::*;
use tungstenite::Message;

/// What an honest step may take while the tracker is under attack
/// (generous: debug builds on a loaded 2-core CI machine).
const LATENCY_BOUND: Duration = Duration::from_secs(2);
/// Every attack loop ends by this, whatever happens.
const ATTACK_LIMIT: Duration = Duration::from_secs(30);
const TORRENT: InfoHash = InfoHash([5; 20]);

fn start(config: &str) -> Daemon {
    let config = format!(
        "socket_workers = 2\nrequest_workers = 1\n{config}\n[metrics]\nenabled = true\naddress = \"127.0.0.1:0\"\n"
    );
    Daemon::launch(BINARY, &config)
}

fn attacker() -> IpAddr {
    loopback(2)
}

fn announce(peer: PeerId, left: u64, offers: usize, round: u8) -> InMessage {
    InMessage::Announce(AnnounceRequest {
        info_hash: TORRENT,
        peer_id: peer,
        event: AnnounceEvent::Started,
        left: Some(left),
        numwant: Some(offers as u64),
        offers: (0..offers)
            .map(|i| {
                let mut id = [0u8; 20];
                (id[0], id[1]) = (i as u8 + 1, round);
                Offer {
                    offer_id: OfferId(id),
                    offer: JsonValue::from("v=0 an offer's SDP"),
                }
            })
            .collect(),
    })
}

fn text_frame(message: &InMessage) -> Vec<u8> {
    frame(TEXT, true, &message.to_json())
}

/// Reads and discards everything a connection gets, so the tracker never
/// closes it for not reading, until it closes or `stop`.
fn drain(mut stream: TcpStream, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    thread::spawn(move || {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + ATTACK_LIMIT;
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    })
}

/// The attack of the findings: from one address, receivers announcing
/// 1000 peer ids each into the torrent, a sender relaying offers as fast
/// as it can, and connections opened until refused, all while `stop` is
/// unset. Offers sent go to `offers_sent`.
fn attack(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    offers_sent: Arc<AtomicU64>,
) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    for r in 0..3u32 {
        let mut raw = raw_upgrade_from(attacker(), addr).unwrap();
        threads.push(drain(raw.try_clone().unwrap(), stop.clone()));
        let mut batch = Vec::new();
        for i in 0..1000u32 {
            let mut id = [9u8; 20];
            id[..4].copy_from_slice(&(r * 1000 + i).to_be_bytes());
            batch.extend(text_frame(&announce(PeerId(id), 1, 0, 0)));
        }
        raw.write_all(&batch).unwrap();
        // The drain thread's clone keeps the connection open.
        drop(raw);
    }
    let mut sender = raw_upgrade_from(attacker(), addr).unwrap();
    threads.push(drain(sender.try_clone().unwrap(), stop.clone()));
    let stop_sender = stop.clone();
    threads.push(thread::spawn(move || {
        let deadline = Instant::now() + ATTACK_LIMIT;
        let mut round = 0u8;
        while !stop_sender.load(Ordering::Relaxed) && Instant::now() < deadline {
            let mut batch = Vec::new();
            for i in 0..50u8 {
                let mut message = announce(PeerId([0xee; 20]), 1, 10, round);
                if let InMessage::Announce(a) = &mut message {
                    for offer in &mut a.offers {
                        offer.offer_id.0[2] = i;
                    }
                }
                batch.extend(text_frame(&message));
            }
            if sender.write_all(&batch).is_err() {
                break;
            }
            offers_sent.fetch_add(500, Ordering::Relaxed);
            round = round.wrapping_add(1);
        }
    }));
    // Connections until refused: one address may hold its share only.
    let stop_holder = stop.clone();
    threads.push(thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..200 {
            if let Ok(raw) = raw_upgrade_from(attacker(), addr) {
                held.push(raw);
            }
        }
        let deadline = Instant::now() + ATTACK_LIMIT;
        while !stop_holder.load(Ordering::Relaxed) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
    }));
    threads
}

/// The first message `wanted` picks out within the bound (others, e.g.
/// the attacker's offers, are skipped).
fn wait_for<T>(ws: &mut Client, what: &str, mut wanted: impl FnMut(OutMessage) -> Option<T>) -> T {
    let begin = Instant::now();
    loop {
        let left = LATENCY_BOUND.saturating_sub(begin.elapsed());
        assert!(!left.is_zero(), "{what}: nothing within {LATENCY_BOUND:?}");
        ws.get_mut().set_read_timeout(Some(left)).unwrap();
        match ws.read() {
            Ok(Message::Text(text)) => {
                let mut bytes = text.as_bytes().to_vec();
                if let Some(found) = wanted(OutMessage::from_json(&mut bytes).unwrap()) {
                    return found;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("{what}: {e} after {:?}", begin.elapsed()),
        }
    }
}

/// Findings: one address filled max_pending_offers (no offer relayed for
/// anyone after), and put so many peers into a torrent that an honest
/// peer's offers all went to it.
#[test]
fn an_honest_pair_keeps_signalling_through_an_attack() {
    let t = start(
        "[protocol]\nmax_pending_offers = 2000\nmax_peers_per_torrent = 1000\n[network]\naddress = \"127.0.0.1:0\"\nmax_connections = 300\n",
    );
    let metrics = metrics_address(&t);
    let stop = Arc::new(AtomicBool::new(false));
    let offers_sent = Arc::new(AtomicU64::new(0));
    let threads = attack(t.addr, stop.clone(), offers_sent.clone());

    // The attack has used up every share of its source before the honest
    // pair starts (and goes on meanwhile): its peers in the torrent (5 %
    // of 1000: 3000 announced), its pending offers (5 % of 2000), its
    // connections (5 % of 300 per socket worker: 200 tried).
    let full_attack = |samples: &[aquatic_test_support::metrics::Sample]| {
        let refused = |name, filter| sum(samples, name, filter);
        refused(
            "aquatic_ws_peers_not_stored_total",
            &[("reason", "source_torrent_share")],
        ) >= 2900
            && refused(
                "aquatic_ws_offers_not_relayed_total",
                &[("reason", "source_share")],
            ) >= 2000
            && refused(
                "aquatic_ws_connections_total",
                &[("outcome", "refused_source")],
            ) >= 200 - 2 * 15 + 4
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut samples = parse(&scrape(metrics));
    while !full_attack(&samples) {
        assert!(
            Instant::now() < deadline,
            "the attack never used up its shares: {}",
            scrape(metrics)
        );
        thread::sleep(Duration::from_millis(100));
        samples = parse(&scrape(metrics));
    }

    let (r_id, s_id) = (PeerId([3; 20]), PeerId([4; 20]));
    let mut receiver = connect_from(loopback(3), t.addr);
    let mut sender = connect_from(loopback(4), t.addr);
    for round in 0..5u8 {
        send(&mut receiver, &announce(r_id, 1, 0, round));
        wait_for(&mut receiver, "receiver's announce reply", |m| {
            matches!(m, OutMessage::AnnounceResponse(_)).then_some(())
        });
        send(&mut sender, &announce(s_id, 1, 10, round));
        let offer = wait_for(&mut receiver, "the honest offer", |m| match m {
            OutMessage::Offer(o) if o.peer_id == s_id => Some(o),
            _ => None,
        });
        send(
            &mut receiver,
            &InMessage::Answer(AnswerRequest {
                info_hash: TORRENT,
                peer_id: r_id,
                to_peer_id: s_id,
                offer_id: offer.offer_id,
                answer: JsonValue::from("v=0 an answer's SDP"),
            }),
        );
        wait_for(&mut sender, "the honest answer", |m| match m {
            OutMessage::Answer(a) if a.peer_id == r_id && a.offer_id == offer.offer_id => Some(()),
            _ => None,
        });
    }
    let samples = parse(&scrape(metrics));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    // The shard's own ceiling was never reached: only the attacker's
    // share of it.
    assert_eq!(
        sum(
            &samples,
            "aquatic_ws_offers_not_relayed_total",
            &[("reason", "full")]
        ),
        0
    );
    // The attacker's 50 peers and the pair.
    assert_eq!(
        sum(&samples, "aquatic_ws_leechers", &[("ip_version", "4")]),
        52
    );
}

/// The close frame the daemon answers `bytes` with on a fresh connection.
fn close_code_for(addr: SocketAddr, bytes: &[u8]) -> u16 {
    let mut raw = raw_upgrade_from(loopback(3), addr).unwrap();
    raw.write_all(bytes).unwrap();
    let (opcode, payload) = read_frame(&mut raw).expect("a close frame");
    assert_eq!(opcode, CLOSE, "{payload:?}");
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn protocol_errors_get_their_close_code() {
    let t = start("[network]\naddress = \"127.0.0.1:0\"\n");
    // Unmasked, reserved bits, an unknown opcode: 1002.
    assert_eq!(
        close_code_for(t.addr, &frame_with(TEXT, true, false, b"{}")),
        1002
    );
    let mut rsv = frame(TEXT, true, b"{}");
    rsv[0] |= 0x40;
    assert_eq!(close_code_for(t.addr, &rsv), 1002);
    assert_eq!(close_code_for(t.addr, &frame(0x3, true, b"x")), 1002);
    // A control frame over 125 bytes: 1002.
    assert_eq!(close_code_for(t.addr, &frame(0x9, true, &[0u8; 200])), 1002);
    // Text that is not UTF-8: 1007.
    assert_eq!(
        close_code_for(t.addr, &frame(TEXT, true, b"\xff\xfe")),
        1007
    );
    // A frame over max_frame_size (128 KiB by default): 1009.
    assert_eq!(
        close_code_for(t.addr, &frame(TEXT, true, &vec![b' '; 200 * 1024])),
        1009
    );
}

/// Finding: 20,600 connections hit the open-file limit (20,000) before
/// max_connections (50,000): accepts failed and honest clients with them.
/// Now max_connections is lowered to what the descriptors allow.
#[test]
fn max_connections_fits_the_open_file_limit() {
    let config =
        "log_level = \"info\"\n[network]\naddress = \"127.0.0.1:0\"\nmax_connections = 5000\n";
    let t = Daemon::start_wrapped(
        &["prlimit", "--nofile=600:600", "--"],
        BINARY,
        tempfile::tempdir().unwrap(),
        config,
    )
    .unwrap_or_else(|log| panic!("did not start: {log}"));
    assert!(
        t.startup_log
            .contains("max_connections lowered from 5000 to 344 per socket worker"),
        "{}",
        t.startup_log
    );
    // Many connections from many addresses: the daemon holds 344 and
    // refuses the rest at once; it never runs out of descriptors.
    let mut held = Vec::new();
    for i in 0..450u32 {
        let from = IpAddr::from([127, 0, 1 + (i / 200) as u8, 1 + (i % 200) as u8]);
        if let Ok(raw) = raw_upgrade_from(from, t.addr) {
            held.push(raw);
        }
    }
    thread::sleep(Duration::from_millis(500));
    let open = held
        .iter_mut()
        .filter_map(|s| {
            s.set_nonblocking(true).unwrap();
            matches!(s.read(&mut [0u8; 8]), Err(e) if e.kind() == ErrorKind::WouldBlock)
                .then_some(())
        })
        .count();
    assert_eq!(open, 344);
    // Once they go, everyone is served again.
    drop(held);
    thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        let mut ws = connect_from(loopback(3), t.addr);
        send(&mut ws, &announce(PeerId([7; 20]), 1, 0, 0));
        wait_for(&mut ws, "an announce reply", |m| {
            matches!(m, OutMessage::AnnounceResponse(_)).then_some(())
        });
    }
    assert!(
        t.wait_for_log("accept failed", Duration::from_millis(200))
            .is_none()
    );
}
