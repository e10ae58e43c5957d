//! The defences an operator switches on, against the real aquatic_udp
//! binary: the IP filter (refused addresses get nothing; reload on SIGUSR1
//! with a good and a broken file), the per-source rate limit (a flood from
//! one address is cut to its rate while a client on another address keeps
//! its answers and latency), and the announce-interval jitter.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::thread;
use std::time::{Duration, Instant};

use aquatic_test_support::metrics::SECTION as METRICS;
use aquatic_test_support::{defences, list_file, loopback};
use aquatic_udp_protocol::*;
use common::*;

/// A connect from `client` gets no answer within `wait`.
fn unanswered(client: &mut Client, wait: Duration) -> bool {
    let transaction_id = client.transaction();
    client.send(&Request::Connect(ConnectRequest { transaction_id }));
    client.recv_raw(wait).is_none()
}

/// The announce intervals of `count` announces of new peers, one client.
fn announce_intervals(tracker: &Tracker, count: u16) -> Vec<u32> {
    let mut client = Client::connected(tracker.addr);
    (0..count)
        .map(
            |n| match client.announce(hash(9), 1000 + n, 0, AnnounceEvent::None) {
                Response::AnnounceIpv4(r) => u32::try_from(r.announce_interval).unwrap(),
                other => panic!("{other:?}"),
            },
        )
        .collect()
}

#[test]
fn ip_filter_refuses_listed_addresses_and_reloads() {
    let (dir, filter, section) =
        list_file("ip_filter", "deny", "# banned\n127.0.0.2\n10.0.0.0/8\n");
    let tracker = start_in(dir, "127.0.0.1", &format!("{METRICS}{section}"), "").unwrap();
    let mut banned = Client::from(loopback(2), tracker.addr);
    let mut other = Client::from(loopback(3), tracker.addr);
    assert!(unanswered(&mut banned, Duration::from_millis(500)));
    other.connect();
    v4(other.announce(hash(1), 6881, 0, AnnounceEvent::Started));
    assert!(defences::refused(&tracker, "ip_filter") >= 1);

    defences::reload_broken_then_good(
        &tracker,
        &filter,
        "127.0.0.3\n127.0.0.300\n",
        || {
            assert!(unanswered(&mut banned, Duration::from_millis(500)));
            other.connect();
        },
        "127.0.0.3/32\n",
    );
    banned.connect();
    v4(banned.announce(hash(1), 6882, 0, AnnounceEvent::Started));
    assert!(unanswered(&mut other, Duration::from_millis(500)));
}

#[test]
fn ip_filter_allow_mode_answers_only_listed_addresses() {
    let (dir, _, section) = list_file("ip_filter", "allow", "127.0.0.4\n");
    let tracker = start_in(dir, "127.0.0.1", &section, "").unwrap();
    Client::from(loopback(4), tracker.addr).connect();
    assert!(unanswered(
        &mut Client::from(loopback(5), tracker.addr),
        Duration::from_millis(500)
    ));
}

#[test]
fn a_rate_limited_flood_leaves_other_clients_their_answers_and_latency() {
    let tracker = start(
        "127.0.0.1",
        &format!("{METRICS}[rate_limit]\nenabled = true\nper_second = 20.0\nburst = 100\n"),
    );
    let flood = thread::spawn({
        let addr = tracker.addr;
        move || {
            let mut attacker = Client::from(loopback(2), addr);
            attacker.connect();
            let begin = Instant::now();
            let (mut sent, mut answered) = (0u64, 0u64);
            // 4 s of announces, 64 at a time with the answers that come
            // within 20 ms collected.
            while begin.elapsed() < Duration::from_secs(4) {
                for n in 0..64u8 {
                    let request = attacker.announce_request(hash(n), 7000, 1, AnnounceEvent::None);
                    attacker.send(&Request::Announce(request));
                    sent += 1;
                }
                while attacker.recv_raw(Duration::from_millis(20)).is_some() {
                    answered += 1;
                }
            }
            while attacker.recv_raw(Duration::from_millis(200)).is_some() {
                answered += 1;
            }
            (sent, answered, begin.elapsed())
        }
    });

    let mut honest = Client::from(loopback(3), tracker.addr);
    let (rounds, worst) =
        defences::timed_rounds(Duration::from_secs(3), Duration::from_millis(50), || {
            honest.connect();
            v4(honest.announce(hash(200), 8000, 0, AnnounceEvent::None));
            let stats = scrape_stats(honest.scrape(vec![hash(200)]));
            assert_eq!(stats.len(), 1);
        });
    let (sent, answered, took) = flood.join().unwrap();
    assert!(rounds >= 10, "{rounds} rounds");
    // The honest client's round trips of the 3 s were each within the
    // bound: 2 limited requests a round, far below 20 a second.
    assert!(
        worst < defences::LATENCY_BOUND,
        "worst honest round trip {worst:?}"
    );
    // The attacker got its burst and its rate, no more.
    defences::assert_flood_limited(sent, answered, took, 100, 20.0);
    let dropped = defences::refused(&tracker, "rate_limit");
    assert!(
        dropped + answered >= sent,
        "{dropped} counted of {sent} sent"
    );
}

#[test]
fn announce_intervals_are_spread_around_the_configured_one() {
    let tracker = start(
        "127.0.0.1",
        "[protocol]\npeer_announce_interval = 1800\npeer_announce_interval_jitter = 120\n",
    );
    let intervals = announce_intervals(&tracker, 300);
    // The mean of 300 uniform draws over +-120 s: standard error 4 s.
    defences::assert_spread(&intervals, 1800, 120, 0, 100, 20.0);
    let below = intervals.iter().filter(|&&i| i < 1800).count();
    assert!((90..=210).contains(&below), "{below} of 300 below 1800");

    // Jitter 0: every answer says the interval.
    let fixed = start(
        "127.0.0.1",
        "[protocol]\npeer_announce_interval = 900\npeer_announce_interval_jitter = 0\n",
    );
    assert_eq!(announce_intervals(&fixed, 20), vec![900; 20]);
}

#[test]
fn invalid_defence_settings_stop_the_start_naming_the_field() {
    for (config, field) in [
        (
            "[protocol]\npeer_announce_interval = 100\npeer_announce_interval_jitter = 100\n",
            "peer_announce_interval_jitter",
        ),
        (
            "[rate_limit]\nenabled = true\nburst = 0\n",
            "rate_limit.burst",
        ),
        ("[ip_filter]\nmode = \"deny\"\n", "ip_filter.path"),
    ] {
        let (code, log) = run_to_exit(&format!("{config}[network]\naddress = \"127.0.0.1:0\"\n"));
        assert_ne!(code, 0, "{config}");
        assert!(log.contains(field), "{config}: {log}");
    }
}
