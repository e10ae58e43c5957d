//! What the workers' counters are read for: the statistics worker (every
//! `statistics.interval` seconds, one log line with rates since the last
//! line and current swarm sizes) and the Prometheus collector (the same
//! counters as absolute values, at each scrape).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aquatic_common::metrics::{
    Collector, DescriptorEncoder, IP_VERSION_LABELS, Unit, write_counters, write_swarm_gauges,
};
use aquatic_common::statistics::{self, Group, Show};

use crate::common::{IpCounters, SocketWorkerStats, SwarmGauges};

/// The statistics log line, by name.
const LOG_LINE: &[Group<IpCounters>] = &[
    Group {
        title: "requests/s",
        show: Show::Rate,
        fields: &[
            ("connect", |c| &c.requests_connect),
            ("announce", |c| &c.requests_announce),
            ("scrape", |c| &c.requests_scrape),
        ],
    },
    Group {
        title: "responses/s",
        show: Show::Rate,
        fields: &[
            ("connect", |c| &c.responses_connect),
            ("announce", |c| &c.responses_announce),
            ("scrape", |c| &c.responses_scrape),
            ("error", |c| &c.responses_error),
        ],
    },
    Group {
        title: "bytes/s",
        show: Show::Rate,
        fields: &[("in", |c| &c.bytes_received), ("out", |c| &c.bytes_sent)],
    },
    Group {
        title: "dropped",
        show: Show::Count,
        fields: &[
            ("bad connection id", |c| &c.dropped_bad_connection_id),
            ("malformed", |c| &c.dropped_malformed),
            ("overload", |c| &c.dropped_overload),
            ("send", |c| &c.dropped_send),
        ],
    },
];

pub fn run(
    interval: Duration,
    sockets: Vec<Arc<SocketWorkerStats>>,
    swarms: Vec<Arc<SwarmGauges>>,
) -> anyhow::Result<()> {
    statistics::run(
        interval,
        &swarms,
        LOG_LINE,
        |visit| {
            for worker in &sockets {
                for counters in &worker.by_ip_version {
                    visit(counters);
                }
            }
        },
        String::new,
    )
}

/// Exports the socket workers' counters and the request workers' swarm
/// gauges as `aquatic_udp_*` metrics, read at each scrape.
pub struct MetricsCollector {
    sockets: Vec<Arc<SocketWorkerStats>>,
    swarms: Vec<Arc<SwarmGauges>>,
    /// `worker` label values: the socket workers' indices.
    worker_labels: Vec<String>,
}

impl MetricsCollector {
    pub fn new(sockets: Vec<Arc<SocketWorkerStats>>, swarms: Vec<Arc<SwarmGauges>>) -> Self {
        let worker_labels = (0..sockets.len()).map(|i| i.to_string()).collect();
        Self {
            sockets,
            swarms,
            worker_labels,
        }
    }

    /// One sample per socket worker, IP version and (`key` = kind) entry
    /// that `pick` returns.
    fn per_worker<'a>(
        &'a self,
        key: &'static str,
        pick: impl Fn(&'a IpCounters) -> Vec<(&'static str, &'a AtomicU64)>,
    ) -> Vec<([(&'static str, &'a str); 3], u64)> {
        let mut samples = Vec::new();
        for (worker, stats) in self.worker_labels.iter().zip(&self.sockets) {
            for (ip_version, counters) in IP_VERSION_LABELS.iter().zip(&stats.by_ip_version) {
                for (kind, counter) in pick(counters) {
                    let labels = [
                        (key, kind),
                        ("ip_version", *ip_version),
                        ("worker", worker.as_str()),
                    ];
                    samples.push((labels, counter.load(Ordering::Relaxed)));
                }
            }
        }
        samples
    }

    fn bytes<'a>(
        &'a self,
        pick: impl Fn(&'a IpCounters) -> &'a AtomicU64,
    ) -> Vec<([(&'static str, &'a str); 2], u64)> {
        let mut samples = Vec::new();
        for (worker, stats) in self.worker_labels.iter().zip(&self.sockets) {
            for (ip_version, counters) in IP_VERSION_LABELS.iter().zip(&stats.by_ip_version) {
                let labels = [("ip_version", *ip_version), ("worker", worker.as_str())];
                samples.push((labels, pick(counters).load(Ordering::Relaxed)));
            }
        }
        samples
    }
}

impl fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        aquatic_common::metrics::debug_collector(f, self.sockets.len(), self.swarms.len())
    }
}

impl Collector for MetricsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        write_counters(
            e,
            "requests",
            "Requests parsed, by type (connect, announce, scrape); announces and scrapes with a bad connection id included.",
            None,
            self.per_worker("type", |c| {
                vec![
                    ("connect", &c.requests_connect),
                    ("announce", &c.requests_announce),
                    ("scrape", &c.requests_scrape),
                ]
            }),
        )?;
        write_counters(
            e,
            "responses",
            "Responses sent, by type (connect, announce, scrape, error).",
            None,
            self.per_worker("type", |c| {
                vec![
                    ("connect", &c.responses_connect),
                    ("announce", &c.responses_announce),
                    ("scrape", &c.responses_scrape),
                    ("error", &c.responses_error),
                ]
            }),
        )?;
        write_counters(
            e,
            "dropped",
            "Packets dropped without an answer, by reason: bad_connection_id (announce or scrape without a valid connection id), malformed (not a request, or an invalid one without a valid connection id), overload (a request worker's queue was full), send (a response the socket would not take).",
            None,
            self.per_worker("reason", |c| {
                vec![
                    ("bad_connection_id", &c.dropped_bad_connection_id),
                    ("malformed", &c.dropped_malformed),
                    ("overload", &c.dropped_overload),
                    ("send", &c.dropped_send),
                ]
            }),
        )?;
        aquatic_common::clients::write_metric(
            e,
            " Only announces with a valid connection id.",
            self.per_worker("client", |c| c.clients.samples().collect()),
        )?;
        write_counters(
            e,
            "received",
            "UDP payload bytes received.",
            Some(&Unit::Bytes),
            self.bytes(|c| &c.bytes_received),
        )?;
        write_counters(
            e,
            "sent",
            "UDP payload bytes sent.",
            Some(&Unit::Bytes),
            self.bytes(|c| &c.bytes_sent),
        )?;
        write_swarm_gauges(e, &self.swarms)
    }
}

#[cfg(test)]
mod tests {
    use aquatic_test_support::collectors::{fresh, render_with_lines};

    use super::*;
    use crate::common::add;

    #[test]
    fn collector_exports_every_counter_with_its_labels() {
        let (sockets, swarms) = (fresh::<SocketWorkerStats>(2), fresh::<SwarmGauges>(2));
        add(&sockets[1].by_ip_version[1].requests_announce, 3);
        add(&sockets[0].by_ip_version[0].dropped_overload, 2);
        add(&sockets[0].by_ip_version[0].bytes_sent, 100);
        swarms[0].by_ip_version[0].set(1, 2, 3);
        swarms[1].by_ip_version[0].set(4, 5, 6);
        let collector = MetricsCollector::new(sockets, swarms);
        let lines = [
            "aquatic_udp_requests_total{type=\"announce\",ip_version=\"6\",worker=\"1\"} 3",
            "aquatic_udp_requests_total{type=\"connect\",ip_version=\"4\",worker=\"0\"} 0",
            "aquatic_udp_responses_total{type=\"error\",ip_version=\"6\",worker=\"1\"} 0",
            "aquatic_udp_dropped_total{reason=\"overload\",ip_version=\"4\",worker=\"0\"} 2",
            "aquatic_udp_sent_bytes_total{ip_version=\"4\",worker=\"0\"} 100",
            "aquatic_udp_received_bytes_total{ip_version=\"6\",worker=\"1\"} 0",
            "aquatic_udp_torrents{ip_version=\"4\"} 5",
            "aquatic_udp_seeders{ip_version=\"4\"} 7",
            "aquatic_udp_leechers{ip_version=\"4\"} 9",
            "aquatic_udp_leechers{ip_version=\"6\"} 0",
            "aquatic_udp_sources{ip_version=\"4\"} 0",
            "aquatic_udp_peers_not_stored_total{ip_version=\"4\",reason=\"source_share\"} 0",
        ];
        let text = render_with_lines("aquatic_udp", collector, &lines);
        // 2 workers x 2 IP versions x (3 + 4 + 4 kinds + 2 byte counters)
        // + 4 gauges x 2 IP versions + 4 reasons x 2 IP versions
        // + 20 swarm sizes x 2 IP versions.
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        // + 14 clients x 2 workers x 2 IP versions.
        assert_eq!(samples, 4 * 13 + 8 + 8 + 40 + 56, "{text}");
    }
}
