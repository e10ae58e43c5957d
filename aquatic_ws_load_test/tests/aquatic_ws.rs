//! The load tester against the real aquatic_ws daemon, briefly: replies
//! arrive, offers and answers are relayed between its peers (across two
//! socket workers), and every check holds, also when connections are
//! replaced after `requests_per_connection` replies.
//!
//! The daemon is another crate's binary, which cargo does not build for
//! this crate's tests: the test uses `$AQUATIC_WS_BINARY`, else
//! `target/debug/aquatic_ws` of the workspace (`cargo test --workspace`
//! builds it, for aquatic_ws's own tests), and fails, saying how to build
//! it, when neither exists: a test that cannot run must not pass.

use std::path::PathBuf;

use aquatic_test_support::Daemon;
use aquatic_ws_load_test::{Config, Summary, run_load_test};

fn binary() -> PathBuf {
    let path = match std::env::var_os("AQUATIC_WS_BINARY") {
        Some(path) => PathBuf::from(path),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("debug/aquatic_ws")
        }
    };
    assert!(
        path.is_file(),
        "no aquatic_ws binary at {}: run `cargo build -p aquatic_ws` first, or \
         `cargo test --workspace`, or set AQUATIC_WS_BINARY",
        path.display()
    );
    path
}

/// Run the load tester briefly against a fresh aquatic_ws (two socket
/// and two request workers) with `requests_per_connection`. Every check
/// must hold and nothing go wrong.
fn run_against_aquatic_ws(requests_per_connection: u64) -> Summary {
    let binary = binary();
    let daemon = Daemon::launch(
        binary.to_str().unwrap(),
        "socket_workers = 2\nrequest_workers = 2\n",
    );

    let mut config = Config {
        server_address: daemon.addr,
        workers: 2,
        connections_per_worker: 8,
        duration: 2,
        summarize_every: 0,
        request_timeout_ms: 5000,
        requests_per_connection,
        ..Config::default()
    };
    // Few torrents: swarms with several peers, so offers are relayed.
    config.requests.number_of_torrents = 10;
    let summary = run_load_test(&config, &mut std::io::sink()).unwrap();
    drop(daemon);

    let t = &summary.totals;
    let report = summary.report();
    assert!(summary.checks_pass(), "{report}");
    assert!(t.announce_replies > 0 && t.scrape_replies > 0, "{report}");
    assert!(t.offers_received > 0 && t.answers_received > 0, "{report}");
    let problems = t.problems() + t.connection_errors + t.tracker_closes + t.reconnects;
    assert_eq!(problems, 0, "{report}");
    summary
}

#[test]
fn load_test_against_aquatic_ws() {
    let summary = run_against_aquatic_ws(0);
    let t = &summary.totals;
    assert_eq!(t.connections_opened, 16, "{}", summary.report());
    assert_eq!(t.retired, 0, "{}", summary.report());
}

#[test]
fn connections_are_replaced_after_requests_per_connection() {
    let summary = run_against_aquatic_ws(5);
    let t = &summary.totals;
    let report = summary.report();
    assert!(t.retired >= 16, "{report}");
    // Each retired connection was replaced; replacements still in their
    // handshake when the run ended are not counted as opened.
    assert!(
        t.connections_opened <= 16 + t.retired && t.connections_opened >= t.retired,
        "{report}"
    );
    // Every retired connection had exactly 5 replies.
    assert!(t.responses() >= 5 * t.retired, "{report}");
}
