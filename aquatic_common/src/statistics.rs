//! The statistics log line: the `[statistics]` config section and the loop
//! of the statistics worker. Every `statistics.interval` seconds it sums a
//! daemon's per-worker counters, and logs one line: the deltas since the
//! previous line of the counters the daemon names, grouped as it says
//! ([`Group`]), and the swarm sizes.
//!
//! Not here: which counters a daemon has and names (its
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

/// Add `n` to a worker's counter. Every counter has one writer, the
/// worker that owns it (a socket worker its `SocketWorkerStats`, a shard's
/// owner its shard's), so a relaxed load and store do: no locked
/// read-modify-write on the hot path. Readers (the log, metrics) see a
/// recent value. Two writers would lose increments (never more).
pub fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
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

/// How a log line shows a counter: per second since the previous line,
/// or as the count since then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    Rate,
    Count,
}

/// One counter of a worker's counter block `C`, by name.
pub type Field<C> = (&'static str, fn(&C) -> &AtomicU64);

/// One part of a log line, e.g. `requests/s: announce 10, scrape 1`: its
/// title, how its counters are shown and which they are.
pub struct Group<C: 'static> {
    pub title: &'static str,
    pub show: Show,
    pub fields: &'static [Field<C>],
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

/// Every field of `groups`, in order, summed over the counter blocks that
/// `each_block` visits (saturating).
fn totals<C>(groups: &[Group<C>], each_block: &impl Fn(&mut dyn FnMut(&C))) -> Vec<u64> {
    let fields = || groups.iter().flat_map(|group| group.fields);
    let mut sum = vec![0u64; fields().count()];
    each_block(&mut |block| {
        for (s, (_, counter)) in sum.iter_mut().zip(fields()) {
            *s = s.saturating_add(counter(block).load(Ordering::Relaxed));
        }
    });
    sum
}

/// `groups` with the deltas of their fields over `secs` seconds:
/// `title: name value, name value; title: ...`.
fn format_groups<C>(groups: &[Group<C>], deltas: &[u64], secs: f64) -> String {
    let mut deltas = deltas.iter();
    let mut line = String::new();
    for group in groups {
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(group.title);
        line.push(':');
        for (i, (name, _)) in group.fields.iter().enumerate() {
            let delta = deltas.next().copied().unwrap_or(0);
            let separator = if i == 0 { " " } else { ", " };
            let value = match group.show {
                Show::Rate => format!("{:.0}", delta as f64 / secs),
                Show::Count => delta.to_string(),
            };
            line.push_str(&format!("{separator}{name} {value}"));
        }
    }
    line
}

/// The statistics worker: every `interval`, one log line: `prefix()` (if
/// not empty), then `groups` over the counter blocks `each_block` visits
/// (deltas since the previous line), then the swarm totals. Runs until
/// the process ends.
pub fn run<C>(
    interval: Duration,
    swarms: &[Arc<SwarmGauges>],
    groups: &[Group<C>],
    each_block: impl Fn(&mut dyn FnMut(&C)),
    prefix: impl Fn() -> String,
) -> anyhow::Result<()> {
    let mut previous = totals(groups, &each_block);
    let mut previous_at = Instant::now();
    loop {
        thread::sleep(interval);
        let current = totals(groups, &each_block);
        let secs = previous_at.elapsed().as_secs_f64().max(0.001);
        previous_at = Instant::now();
        let deltas: Vec<u64> = current
            .iter()
            .zip(&previous)
            .map(|(c, p)| c.saturating_sub(*p))
            .collect();
        previous = current;
        let prefix = prefix();
        let separator = if prefix.is_empty() { "" } else { "; " };
        log::info!(
            "{prefix}{separator}{}; {}",
            format_groups(groups, &deltas, secs),
            SwarmLine(swarm_totals(swarms))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Block {
        a: AtomicU64,
        b: AtomicU64,
    }

    const GROUPS: &[Group<Block>] = &[
        Group {
            title: "requests/s",
            show: Show::Rate,
            fields: &[("a", |c| &c.a), ("b", |c| &c.b)],
        },
        Group {
            title: "dropped",
            show: Show::Count,
            fields: &[("b", |c| &c.b)],
        },
    ];

    #[test]
    fn totals_sum_every_block_and_saturate() {
        let blocks = [
            Block {
                a: AtomicU64::new(3),
                b: AtomicU64::new(u64::MAX),
            },
            Block {
                a: AtomicU64::new(4),
                b: AtomicU64::new(1),
            },
        ];
        let each = |f: &mut dyn FnMut(&Block)| blocks.iter().for_each(f);
        assert_eq!(totals(GROUPS, &each), vec![7, u64::MAX, u64::MAX]);
    }

    #[test]
    fn groups_name_their_counters() {
        assert_eq!(
            format_groups(GROUPS, &[10, 4, 4], 2.0),
            "requests/s: a 5, b 2; dropped: b 4"
        );
    }

    #[test]
    fn swarm_line_text() {
        assert_eq!(
            SwarmLine([[1, 2, 3], [4, 5, 6]]).to_string(),
            "ipv4: 1 torrents, 2 seeders, 3 leechers; ipv6: 4 torrents, 5 seeders, 6 leechers"
        );
    }
}
