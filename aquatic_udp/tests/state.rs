//! The real aquatic_udp binary keeps its swarms across a restart
//! (`[state] path`: SIGTERM, start again, the same peers and counts are
//! served), starts empty from a corrupted state file, and writes the scrape
//! export.

// Tests may panic: the workspace's no-panic lints are for the daemons.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;

use aquatic_test_support::state::{
    assert_export_lists, assert_loaded, loopbacks, not_loaded, scrape_export_section, state_config,
    stop_saving,
};
use aquatic_udp_protocol::*;
use common::*;

/// Dual stack on [::]:0 with `extra` and a `[state]` file in `state_dir`.
fn start_with_state(state_dir: &Path, extra: &str) -> Tracker {
    start_in(
        tempfile::tempdir().unwrap(),
        "[::]",
        &state_config(state_dir, extra),
        "",
    )
    .unwrap_or_else(|log| panic!("tracker did not start: {log}"))
}

fn sorted_ports(peers: &[ResponsePeer<Ipv4Addr>]) -> Vec<u16> {
    let mut ports: Vec<u16> = peers.iter().map(|p| p.port).collect();
    ports.sort();
    ports
}

#[test]
fn swarms_survive_a_restart() {
    // Sharded over 2 request workers, then 3: torrents go to new shards.
    restart_keeps_swarms("request_workers = 2\n", "request_workers = 3\n");
}

#[test]
fn swarms_survive_a_restart_in_inline_mode() {
    restart_keeps_swarms("request_workers = 0\n", "request_workers = 1\n");
}

fn restart_keeps_swarms(first: &str, second: &str) {
    let state_dir = tempfile::tempdir().unwrap();
    let tracker = start_with_state(state_dir.path(), first);
    not_loaded(&tracker);
    let (v4_addr, v6_addr) = loopbacks(tracker.addr);
    let mut seeder = Client::connected(v4_addr);
    let mut leecher = Client::connected(v4_addr);
    let h = hash(1);
    v4(seeder.announce(h, 1001, 0, AnnounceEvent::Started));
    v4(leecher.announce(h, 1002, 500, AnnounceEvent::Started));
    v4(leecher.announce(h, 1003, 500, AnnounceEvent::Started));
    v4(leecher.announce(h, 1003, 0, AnnounceEvent::Completed));
    // Torrents in several shards, and a stopped peer that must stay gone.
    for n in 2..=9u8 {
        v4(leecher.announce(hash(n), 2000 + u16::from(n), 5, AnnounceEvent::None));
    }
    v4(leecher.announce(hash(9), 2009, 5, AnnounceEvent::Stopped));
    let mut v6_client = Client::connected(v6_addr);
    v6_client.announce(h, 3001, 5, AnnounceEvent::Started);
    let all: Vec<InfoHash> = (1..=9).map(hash).collect();
    let before_v4 = scrape_stats(seeder.scrape(all.clone()));
    let before_v6 = scrape_stats(v6_client.scrape(vec![h]));
    assert_eq!(before_v4[0], (2, 1, 1));
    assert_eq!(before_v4[8], (0, 0, 0));
    assert_eq!(before_v6, vec![(0, 0, 1)]);
    stop_saving(tracker);
    assert!(state_dir.path().join("state.bin").exists());
    assert!(!state_dir.path().join("state.bin.tmp").exists());

    let tracker = start_with_state(state_dir.path(), second);
    assert_loaded(&tracker, "9 torrents, 11 peers");
    let (v4_addr, v6_addr) = loopbacks(tracker.addr);
    let mut client = Client::connected(v4_addr);
    assert_eq!(scrape_stats(client.scrape(all.clone())), before_v4);
    let mut v6_client = Client::connected(v6_addr);
    assert_eq!(scrape_stats(v6_client.scrape(vec![h])), before_v6);
    // A new leecher is sent the peers stored before the restart.
    let (s, l, peers) = v4(client.announce(h, 1004, 5, AnnounceEvent::Started));
    assert_eq!((s, l), (2, 2));
    assert_eq!(sorted_ports(&peers), vec![1001, 1002, 1003]);
    let (_, _, peers) = v4(client.announce(hash(5), 1004, 5, AnnounceEvent::Started));
    assert_eq!(sorted_ports(&peers), vec![2005]);
    // And the state is saved again, with the new peers.
    stop_saving(tracker);
    let tracker = start_with_state(state_dir.path(), second);
    assert_loaded(&tracker, "9 torrents, 13 peers");
}

#[test]
fn corrupted_state_file_starts_empty() {
    let state_dir = tempfile::tempdir().unwrap();
    let path = state_dir.path().join("state.bin");
    std::fs::write(&path, b"AQUASTAT and then some garbage that is no state").unwrap();
    let tracker = start_with_state(state_dir.path(), "");
    let line = not_loaded(&tracker);
    assert!(line.contains("WARN"), "{line}");
    let (v4_addr, _) = loopbacks(tracker.addr);
    let mut client = Client::connected(v4_addr);
    assert_eq!(scrape_stats(client.scrape(vec![hash(1)])), vec![(0, 0, 0)]);
    let (s, l, _) = v4(client.announce(hash(1), 1001, 0, AnnounceEvent::Started));
    assert_eq!((s, l), (1, 0));
    // SIGTERM replaces the broken file with a good one.
    stop_saving(tracker);
    let tracker = start_with_state(state_dir.path(), "");
    assert_loaded(&tracker, "1 torrents, 1 peers");

    // A truncated good file: the same.
    stop_saving(tracker);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let tracker = start_with_state(state_dir.path(), "");
    let line = not_loaded(&tracker);
    assert!(
        line.contains("truncated") || line.contains("checksum"),
        "{line}"
    );
}

#[test]
fn scrape_export_lists_every_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scrape.txt");
    let extra = format!("request_workers = 2\n{}", scrape_export_section(&path));
    let tracker = start("127.0.0.1", &extra);
    let mut a = Client::connected(tracker.addr);
    let mut b = Client::connected(tracker.addr);
    v4(a.announce(hash(0xab), 1001, 0, AnnounceEvent::Started));
    v4(b.announce(hash(0xab), 1002, 5, AnnounceEvent::Started));
    v4(b.announce(hash(0xab), 1003, 0, AnnounceEvent::Completed));
    v4(b.announce(hash(0x02), 1004, 5, AnnounceEvent::None));
    let expected = [
        format!("{} 2 1 1", "ab".repeat(20)),
        format!("{} 0 1 0", "02".repeat(20)),
    ];
    assert_export_lists(&path, "aquatic_udp", &expected);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}
