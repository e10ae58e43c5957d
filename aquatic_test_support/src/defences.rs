//! What the three daemons' `tests/defences.rs` share: the IP filter file
//! and its config, its reload with a broken and a good file, the bounds a
//! rate-limited flood must keep, and the spread of jittered intervals.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::Daemon;
use crate::metrics::{metrics_address, parse, scrape, sum};

/// An IP filter file in `dir` holding `lines`, and the `[ip_filter]`
/// section denying them.
pub fn deny_file(dir: &tempfile::TempDir, lines: &str) -> (PathBuf, String) {
    let path = dir.path().join("ip-filter.txt");
    std::fs::write(&path, lines).expect("write the filter file");
    let section = format!(
        "[ip_filter]\nmode = \"deny\"\npath = \"{}\"\n",
        path.display()
    );
    (path, section)
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

/// `PREFIX_refused_total{reason}` (the metrics address is learnt from
/// the log: once per daemon).
pub fn refused(daemon: &Daemon, prefix: &str, reason: &str) -> u64 {
    let samples = parse(&scrape(metrics_address(daemon)));
    sum(
        &samples,
        &format!("{prefix}_refused_total"),
        &[("reason", reason)],
    )
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
