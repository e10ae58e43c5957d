//! The statistics worker: every `statistics.interval` seconds, one log line
//! with rates since the last line, open connections and swarm sizes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{SocketWorkerStats, SwarmGauges};

const FIELDS: usize = 9;

fn totals(sockets: &[Arc<SocketWorkerStats>]) -> [u64; FIELDS] {
    let mut sum = [0u64; FIELDS];
    for worker in sockets {
        let c = &worker.0;
        let all: [&AtomicU64; FIELDS] = [
            &c.connections_accepted,
            &c.connections_refused,
            &c.requests_announce,
            &c.requests_scrape,
            &c.responses_announce,
            &c.responses_scrape,
            &c.responses_error,
            &c.bytes_received,
            &c.bytes_sent,
        ];
        for (s, a) in sum.iter_mut().zip(all) {
            *s = s.saturating_add(a.load(Ordering::Relaxed));
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
        let rate: [f64; FIELDS] =
            std::array::from_fn(|i| current[i].saturating_sub(previous[i]) as f64 / secs);
        previous = current;
        let open: usize = sockets
            .iter()
            .map(|s| s.0.connections_open.load(Ordering::Relaxed))
            .sum();
        let mut swarm = [[0usize; 3]; 2];
        for worker in &swarms {
            for (v, counts) in worker.by_ip_version.iter().enumerate() {
                swarm[v][0] += counts.torrents.load(Ordering::Relaxed);
                swarm[v][1] += counts.seeders.load(Ordering::Relaxed);
                swarm[v][2] += counts.leechers.load(Ordering::Relaxed);
            }
        }
        log::info!(
            "connections: {open} open, {:.0}/s accepted, {:.0}/s refused; requests/s: announce {:.0}, scrape {:.0}; responses/s: announce {:.0}, scrape {:.0}, error {:.0}; bytes/s: in {:.0}, out {:.0}; ipv4: {} torrents, {} seeders, {} leechers; ipv6: {} torrents, {} seeders, {} leechers",
            rate[0],
            rate[1],
            rate[2],
            rate[3],
            rate[4],
            rate[5],
            rate[6],
            rate[7],
            rate[8],
            swarm[0][0],
            swarm[0][1],
            swarm[0][2],
            swarm[1][0],
            swarm[1][1],
            swarm[1][2],
        );
    }
}
