//! What the three daemons' `tests/defences.rs` share: the TCP daemons'
//! start with metrics on (behind a trusted proxy, with an IP filter), the
//! filter's reload with a broken and a good file, the bounds a
//! rate-limited flood must keep, and the spread of jittered intervals.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::metrics::{metrics_address, parse, scrape, sum};
use crate::{Daemon, list_file};

/// Start `binary` in `dir` with metrics on, `extra` (top-level keys, then
/// sections) and `network_extra` in `[network]`.
pub fn launch_in(binary: &str, dir: tempfile::TempDir, extra: &str, network_extra: &str) -> Daemon {
    let config = format!(
        "{}{extra}\n[network]\n{network_extra}\n",
        crate::metrics::SECTION
    );
    Daemon::launch_in(binary, dir, &config)
}

/// As [`launch_in`], in a new directory.
pub fn launch(binary: &str, extra: &str, network_extra: &str) -> Daemon {
    launch_in(
        binary,
        tempfile::tempdir().expect("tempdir"),
        extra,
        network_extra,
    )
}

/// As [`launch`], with an IP filter denying `lines` (and `network_extra`
/// in `[network]`): the daemon and the filter file.
pub fn launch_denying(binary: &str, lines: &str, network_extra: &str) -> (Daemon, PathBuf) {
    let (dir, path, section) = list_file("ip_filter", "deny", lines);
    (launch_in(binary, dir, &section, network_extra), path)
}

/// As [`launch_denying`], with 127.0.0.1 a trusted proxy naming its
/// clients in `X-Forwarded-For`.
pub fn launch_behind_proxy_denying(binary: &str, lines: &str) -> Daemon {
    let network =
        "reverse_proxy_ip_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"127.0.0.1\"]\n";
    launch_denying(binary, lines, network).0
}

/// Write `broken` (bad on line 2) to the filter file and reload: the log
/// names the line. Then write `good` and reload: the log says so.
/// Between the two, `old_holds` checks that the old filter is in use.
pub fn reload_broken_then_good(
    daemon: &Daemon,
    path: &PathBuf,
    broken: &str,
    old_holds: impl FnOnce(),
    good: &str,
) {
    std::fs::write(path, broken).expect("write the filter file");
    daemon.signal("USR1");
    let line = daemon
        .wait_for_log("IP filter reload failed", Duration::from_secs(5))
        .expect("the failed reload is logged");
    assert!(line.contains("line 2"), "{line}");
    old_holds();
    std::fs::write(path, good).expect("write the filter file");
    daemon.signal("USR1");
    daemon
        .wait_for_log("IP filter reloaded", Duration::from_secs(5))
        .expect("the reload is logged");
}

/// `DAEMON_refused_total{reason}` (the metrics address is learnt from
/// the log: once per daemon).
pub fn refused(daemon: &Daemon, reason: &str) -> u64 {
    let samples = parse(&scrape(metrics_address(daemon)));
    let name = format!("{}_refused_total", daemon.name());
    sum(&samples, &name, &[("reason", reason)])
}

/// A flood of `sent` requests over `took` against a limit of `burst`
/// then `per_second`: `answered` is at least the burst and at most what
/// the bucket allows, and the flood went far beyond it.
pub fn assert_flood_limited(sent: u64, answered: u64, took: Duration, burst: u64, per_second: f64) {
    let allowed = burst + (per_second * took.as_secs_f64()).ceil() as u64 + 1;
    assert!(
        answered <= allowed,
        "{answered} of {sent} answered, {allowed} allowed"
    );
    assert!(answered >= burst, "{answered} answered: not even the burst");
    assert!(sent > 5 * allowed, "the flood sent only {sent}");
}

/// Intervals all within `base` +- `jitter` (or at `floor` and above),
/// at least `min_distinct` different values, and (without a floor) a mean
/// within `mean_tolerance` of `base`.
pub fn assert_spread(
    intervals: &[u32],
    base: u32,
    jitter: u32,
    floor: u32,
    min_distinct: usize,
    mean_tolerance: f64,
) {
    let low = base.saturating_sub(jitter).max(floor);
    let high = base + jitter;
    assert!(
        intervals.iter().all(|i| (low..=high).contains(i)),
        "not all in {low}..={high}: {intervals:?}"
    );
    let distinct: BTreeSet<_> = intervals.iter().collect();
    assert!(
        distinct.len() >= min_distinct,
        "{} distinct",
        distinct.len()
    );
    if floor <= base.saturating_sub(jitter) {
        let mean =
            intervals.iter().map(|&i| f64::from(i)).sum::<f64>() / intervals.len().max(1) as f64;
        assert!(
            (mean - f64::from(base)).abs() < mean_tolerance,
            "mean {mean}"
        );
    }
}

/// Run `round` (a well-behaved client's round trip, asserting its answers)
/// every `pace` for `total`: how many rounds ran and the slowest one.
pub fn timed_rounds(total: Duration, pace: Duration, mut round: impl FnMut()) -> (usize, Duration) {
    let begin = std::time::Instant::now();
    let (mut rounds, mut worst) = (0, Duration::ZERO);
    while begin.elapsed() < total {
        let start = std::time::Instant::now();
        round();
        worst = worst.max(start.elapsed());
        rounds += 1;
        std::thread::sleep(pace);
    }
    (rounds, worst)
}

/// The `[rate_limit]` of the TCP daemons' flood tests: a burst of
/// [`FLOOD_BURST`], then [`FLOOD_RATE`] a second.
pub const FLOOD_RATE_LIMIT: &str = "[rate_limit]\nenabled = true\nper_second = 10.0\nburst = 50\n";
pub const FLOOD_BURST: u64 = 50;
pub const FLOOD_RATE: f64 = 10.0;

/// What a well-behaved client's round trip may take while another address
/// floods (generous: debug builds on a loaded 2-core machine).
pub const LATENCY_BOUND: Duration = Duration::from_millis(500);

/// `flood` (on a thread of its own, for `flood_for`: it returns how many
/// of its requests were answered and how many refused for their rate)
/// while `honest` makes a round trip every 100 ms for 2 s: every honest
/// round trip within [`LATENCY_BOUND`], the flood held to
/// [`FLOOD_RATE_LIMIT`], and each refusal counted in `DAEMON_refused_total`.
pub fn flood_beside_honest_client(
    daemon: &Daemon,
    flood_for: Duration,
    flood: impl FnOnce(Duration) -> (u64, u64) + Send + 'static,
    honest: impl FnMut(),
) {
    let flood = std::thread::spawn(move || {
        let begin = std::time::Instant::now();
        let (answered, limited) = flood(flood_for);
        (answered, limited, begin.elapsed())
    });
    let (rounds, worst) = timed_rounds(Duration::from_secs(2), Duration::from_millis(100), honest);
    let (answered, limited, took) = flood.join().expect("the flood thread");
    assert!(rounds >= 5, "{rounds} honest rounds");
    assert!(worst < LATENCY_BOUND, "worst honest round trip {worst:?}");
    assert_flood_limited(answered + limited, answered, took, FLOOD_BURST, FLOOD_RATE);
    assert_eq!(refused(daemon, "rate_limit"), limited);
}
