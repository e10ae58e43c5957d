//! The statistics worker: every `statistics.interval` seconds, one log line
//! with rates since the last line and current swarm sizes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{IpCounters, SocketWorkerStats, SwarmGauges};

const FIELDS: usize = 13;

fn snapshot(c: &IpCounters) -> [u64; FIELDS] {
    let all: [&AtomicU64; FIELDS] = [
        &c.requests_connect,
        &c.requests_announce,
        &c.requests_scrape,
        &c.responses_connect,
        &c.responses_announce,
        &c.responses_scrape,
        &c.responses_error,
        &c.bytes_received,
        &c.bytes_sent,
        &c.dropped_bad_connection_id,
        &c.dropped_malformed,
        &c.dropped_overload,
        &c.dropped_send,
    ];
    all.map(|a| a.load(Ordering::Relaxed))
}

/// Sum of every socket worker's counters over both IP versions.
pub fn totals(sockets: &[Arc<SocketWorkerStats>]) -> [u64; FIELDS] {
    let mut sum = [0u64; FIELDS];
    for worker in sockets {
        for counters in &worker.by_ip_version {
            for (s, v) in sum.iter_mut().zip(snapshot(counters)) {
                *s = s.saturating_add(v);
            }
        }
    }
    sum
}

pub fn run(
    interval: Duration,
    sockets: Vec<Arc<SocketWorkerStats>>,
    swarms: Vec<Arc<SwarmGauges>>,
) -> anyhow::Result<()> {
    let mut previous = totals(&sockets);
    let mut previous_at = Instant::now();
    loop {
        thread::sleep(interval);
        let current = totals(&sockets);
        let secs = previous_at.elapsed().as_secs_f64().max(0.001);
        previous_at = Instant::now();
        let delta: [u64; FIELDS] = std::array::from_fn(|i| current[i].saturating_sub(previous[i]));
        previous = current;
        let rate = |i: usize| delta[i] as f64 / secs;
        let delta = |i: usize| delta[i];

        let mut swarm = [[0usize; 3]; 2];
        for worker in &swarms {
            for (v, counts) in worker.by_ip_version.iter().enumerate() {
                swarm[v][0] += counts.torrents.load(Ordering::Relaxed);
                swarm[v][1] += counts.seeders.load(Ordering::Relaxed);
                swarm[v][2] += counts.leechers.load(Ordering::Relaxed);
            }
        }
        log::info!(
            "requests/s: connect {:.0}, announce {:.0}, scrape {:.0}; responses/s: connect {:.0}, announce {:.0}, scrape {:.0}, error {:.0}; bytes/s: in {:.0}, out {:.0}; dropped: bad connection id {}, malformed {}, overload {}, send {}; ipv4: {} torrents, {} seeders, {} leechers; ipv6: {} torrents, {} seeders, {} leechers",
            rate(0),
            rate(1),
            rate(2),
            rate(3),
            rate(4),
            rate(5),
            rate(6),
            rate(7),
            rate(8),
            delta(9),
            delta(10),
            delta(11),
            delta(12),
            swarm[0][0],
            swarm[0][1],
            swarm[0][2],
            swarm[1][0],
            swarm[1][1],
            swarm[1][2],
        );
    }
}
