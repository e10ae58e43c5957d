//! The statistics log line: the `[statistics]` config section and the loop
//! of the statistics worker. Every `statistics.interval` seconds it reads a
//! daemon's counter totals and the swarm sizes and hands the deltas since
//! the last line to the daemon, which writes its own log line.
//!
//! Not here: which counters a daemon sums, and its log line's text (its
//! `workers::statistics`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::{SwarmGauges, swarm_totals};
use crate::supervision::Supervisor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatisticsConfig {
    pub interval: u64,
}

impl Default for StatisticsConfig {
    fn default() -> Self {
        Self { interval: 60 }
    }
}

/// Add `n` to a worker's counter (relaxed: counters are only read for
/// the log and metrics).
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Start the statistics worker (thread `statistics`) unless
/// `config.interval` is 0; `worker` gets the interval.
pub fn spawn(
    supervisor: &Supervisor,
    config: &StatisticsConfig,
    worker: impl FnOnce(Duration) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.interval > 0 {
        let interval = Duration::from_secs(config.interval);
        supervisor.spawn("statistics".into(), move || worker(interval))?;
    }
    Ok(())
}

/// What changed since the previous log line: the counters' deltas and the
/// seconds they cover.
pub struct Deltas<const N: usize> {
    pub delta: [u64; N],
    pub secs: f64,
}

impl<const N: usize> Deltas<N> {
    /// Counter `i` per second (0 for an `i` out of range).
    pub fn rate(&self, i: usize) -> f64 {
        self.delta.get(i).map_or(0.0, |&d| d as f64 / self.secs)
    }
}

/// The swarm totals as the end of a log line: `ipv4: T torrents, S
/// seeders, L leechers; ipv6: T torrents, S seeders, L leechers`.
pub struct SwarmLine(pub [[usize; 3]; 2]);

impl fmt::Display for SwarmLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [v4, v6] = self.0;
        write!(
            f,
            "ipv4: {} torrents, {} seeders, {} leechers; ipv6: {} torrents, {} seeders, {} leechers",
            v4[0], v4[1], v4[2], v6[0], v6[1], v6[2]
        )
    }
}

/// Add each counter's value to its slot of `sum` (saturating).
pub fn add_counters<const N: usize>(sum: &mut [u64; N], counters: [&AtomicU64; N]) {
    for (s, counter) in sum.iter_mut().zip(counters) {
        *s = s.saturating_add(counter.load(Ordering::Relaxed));
    }
}

/// The statistics worker: every `interval`, read the counter totals with
/// `totals` and call `log_line` with their deltas since the previous call
/// and the swarm totals. Runs until the process ends.
pub fn run<const N: usize>(
    interval: Duration,
    swarms: &[Arc<SwarmGauges>],
    totals: impl Fn() -> [u64; N],
    log_line: impl Fn(&Deltas<N>, SwarmLine),
) -> anyhow::Result<()> {
    let mut previous = totals();
    let mut previous_at = Instant::now();
    loop {
        thread::sleep(interval);
        let current = totals();
        let secs = previous_at.elapsed().as_secs_f64().max(0.001);
        previous_at = Instant::now();
        let mut delta = current;
        for (d, p) in delta.iter_mut().zip(previous) {
            *d = d.saturating_sub(p);
        }
        previous = current;
        log_line(&Deltas { delta, secs }, SwarmLine(swarm_totals(swarms)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_counters_saturates() {
        let (a, b) = (AtomicU64::new(3), AtomicU64::new(u64::MAX));
        let mut sum = [1, 1];
        add_counters(&mut sum, [&a, &b]);
        assert_eq!(sum, [4, u64::MAX]);
    }

    #[test]
    fn swarm_line_text() {
        assert_eq!(
            SwarmLine([[1, 2, 3], [4, 5, 6]]).to_string(),
            "ipv4: 1 torrents, 2 seeders, 3 leechers; ipv6: 4 torrents, 5 seeders, 6 leechers"
        );
    }

    #[test]
    fn rates_are_per_second() {
        let deltas = Deltas {
            delta: [10, 0],
            secs: 2.0,
        };
        assert_eq!(deltas.rate(0), 5.0);
        assert_eq!(deltas.rate(1), 0.0);
    }
}
