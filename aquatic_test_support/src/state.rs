//! What the daemons' tests of swarm state across restarts (`[state]`) and
//! of the scrape export (`[scrape_export]`) share: the config sections, the
//! dual-stack loopback addresses, a stop that must save the state, the
//! load log lines, and waiting for the export file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Daemon;

/// How long a state log line or a clean exit may take.
pub const LOG_WAIT: Duration = Duration::from_secs(10);

/// `extra` and a `[state]` section keeping the swarms in
/// `state_dir/state.bin`.
pub fn state_config(state_dir: &Path, extra: &str) -> String {
    format!(
        "{extra}\n[state]\npath = \"{}\"\n",
        state_dir.join("state.bin").display()
    )
}

/// The IPv4 and IPv6 loopback addresses of a dual-stack daemon on
/// `addr`'s port.
pub fn loopbacks(addr: SocketAddr) -> (SocketAddr, SocketAddr) {
    let port = addr.port();
    (
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    )
}

/// SIGTERM: the state is saved (and logged) and the exit is clean.
pub fn stop_saving(mut daemon: Daemon) {
    daemon.signal("TERM");
    assert!(
        daemon.wait_for_log("swarm state saved", LOG_WAIT).is_some(),
        "no 'swarm state saved' line"
    );
    assert_eq!(daemon.wait_exit(LOG_WAIT), Some(0));
}

/// The `swarm state loaded` line names `counts` (`N torrents, M peers`).
pub fn assert_loaded(daemon: &Daemon, counts: &str) {
    let loaded = daemon
        .wait_for_log("swarm state loaded", LOG_WAIT)
        .expect("no 'swarm state loaded' line");
    assert!(loaded.contains(counts), "{loaded}");
}

/// The `swarm state not loaded` line.
pub fn not_loaded(daemon: &Daemon) -> String {
    daemon
        .wait_for_log("swarm state not loaded", LOG_WAIT)
        .expect("no 'swarm state not loaded' line")
}

/// A `[scrape_export]` section writing to `path` every second.
pub fn scrape_export_section(path: &Path) -> String {
    format!(
        "[scrape_export]\npath = \"{}\"\ninterval = 1\n",
        path.display()
    )
}

/// The export file at `path` once it holds every line of `expected`;
/// fails after `timeout`, showing what the file held.
pub fn wait_for_export(path: &Path, expected: &[String], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if expected.iter().all(|e| text.lines().any(|l| l == e)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "export never held {expected:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The export of the daemon named `daemon` at `path`, within 10 s: its
/// header line, then exactly the `expected` lines (in any order).
pub fn assert_export_lists(path: &Path, daemon: &str, expected: &[String]) {
    let text = wait_for_export(path, expected, Duration::from_secs(10));
    assert!(
        text.starts_with(&format!("# {daemon} scrape export at ")),
        "{text}"
    );
    assert_eq!(text.lines().count(), expected.len() + 1, "{text}");
}
