//! What the workers' counters are read for: the statistics worker (every
//! `statistics.interval` seconds, one log line with rates since the last
//! line, open connections and swarm sizes) and the Prometheus collector
//! (the same counters as absolute values, at each scrape).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aquatic_common::metrics::{
    Collector, DescriptorEncoder, PerWorker, write_counters, write_swarm_gauges,
};
use aquatic_common::statistics::{Group, Show};
use aquatic_common::tcp_counters::{self, Helps};

use crate::common::{Counters, ErrorReason, SocketWorkerStats, SwarmGauges};

/// The statistics log line, by name (after the open connections).
const LOG_LINE: &[Group<Counters>] = &[
    Group {
        title: "connections/s",
        show: Show::Rate,
        fields: &[
            ("accepted", |c| &c.tcp.accepted),
            ("refused", |c| &c.tcp.refused),
        ],
    },
    Group {
        title: "requests/s",
        show: Show::Rate,
        fields: &[
            ("announce", |c| &c.requests_announce),
            ("scrape", |c| &c.requests_scrape),
        ],
    },
    Group {
        title: "responses/s",
        show: Show::Rate,
        fields: &[
            ("announce", |c| &c.responses_announce),
            ("scrape", |c| &c.responses_scrape),
            ("error", |c| &c.responses_error),
        ],
    },
    Group {
        title: "bytes/s",
        show: Show::Rate,
        fields: &[
            ("in", |c| &c.tcp.bytes_received),
            ("out", |c| &c.tcp.bytes_sent),
        ],
    },
];

/// The help texts of the shared TCP families.
const HELPS: Helps = Helps {
    open_connections: "TCP connections open now.",
    received: "Bytes received from clients (TLS: decrypted).",
    sent: "Bytes of responses sent (TLS: before encryption).",
};

pub fn run(
    interval: Duration,
    sockets: Vec<Arc<SocketWorkerStats>>,
    swarms: Vec<Arc<SwarmGauges>>,
) -> anyhow::Result<()> {
    tcp_counters::run_statistics(interval, &sockets, &swarms, LOG_LINE, |c| &c.tcp)
}

/// Exports the socket workers' counters and the request workers' swarm
/// gauges as `aquatic_http_*` metrics, read at each scrape.
pub struct MetricsCollector {
    sockets: PerWorker<SocketWorkerStats>,
    swarms: Vec<Arc<SwarmGauges>>,
}

impl MetricsCollector {
    pub fn new(sockets: Vec<Arc<SocketWorkerStats>>, swarms: Vec<Arc<SwarmGauges>>) -> Self {
        Self {
            sockets: PerWorker::new(sockets),
            swarms,
        }
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
        tcp_counters::write_connections(e, &self.sockets, |c| &c.tcp, &HELPS)?;
        write_counters(
            e,
            "requests",
            "Announce and scrape requests parsed, by type; refused ones included.",
            None,
            self.sockets.samples("type", |c| {
                vec![
                    ("announce", &c.requests_announce),
                    ("scrape", &c.requests_scrape),
                ]
            }),
        )?;
        write_counters(
            e,
            "responses",
            "Responses sent, by type: announce, scrape, or error (a failure reason or an HTTP error status).",
            None,
            self.sockets.samples("type", |c| {
                vec![
                    ("announce", &c.responses_announce),
                    ("scrape", &c.responses_scrape),
                    ("error", &c.responses_error),
                ]
            }),
        )?;
        write_counters(
            e,
            "error_responses",
            "Error responses, by reason. Failure reasons (status 200): invalid_request, info_hash_not_allowed, overloaded, proxy_header_missing, rate_limited, address_refused. HTTP statuses: bad_request (400), not_found (404), head_too_large (431), wrong_host (421), other_status.",
            None,
            self.sockets.samples("reason", |c| {
                ErrorReason::ALL
                    .iter()
                    .zip(&c.responses_error_by_reason)
                    .map(|(reason, counter)| (reason.label(), counter))
                    .collect()
            }),
        )?;
        tcp_counters::write_traffic(e, &self.sockets, |c| &c.tcp, &HELPS)?;
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
        add(&sockets[1].requests_scrape, 3);
        sockets[0].count_error(ErrorReason::NotFound);
        sockets[0]
            .tcp
            .open
            .store(4, std::sync::atomic::Ordering::Relaxed);
        add(&sockets[1].tcp.bytes_received, 100);
        swarms[0].by_ip_version[1].set(1, 2, 3);
        swarms[1].by_ip_version[1].set(4, 5, 6);
        let collector = MetricsCollector::new(sockets, swarms);
        let lines = [
            "aquatic_http_requests_total{type=\"scrape\",worker=\"1\"} 3",
            "aquatic_http_responses_total{type=\"error\",worker=\"0\"} 1",
            "aquatic_http_error_responses_total{reason=\"not_found\",worker=\"0\"} 1",
            "aquatic_http_error_responses_total{reason=\"overloaded\",worker=\"1\"} 0",
            "aquatic_http_open_connections{worker=\"0\"} 4",
            "aquatic_http_connections_total{outcome=\"refused\",worker=\"1\"} 0",
            "aquatic_http_received_bytes_total{worker=\"1\"} 100",
            "aquatic_http_sent_bytes_total{worker=\"0\"} 0",
            "aquatic_http_torrents{ip_version=\"6\"} 5",
            "aquatic_http_seeders{ip_version=\"6\"} 7",
            "aquatic_http_leechers{ip_version=\"4\"} 0",
        ];
        let text = render_with_lines("aquatic_http", collector, &lines);
        // 2 workers x (3 + 1 + 2 + 3 + 11 + 2) + 4 gauges x 2 IP versions
        // + 4 reasons x 2 IP versions + 20 swarm sizes x 2 IP versions.
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        // + 14 clients x 2 workers.
        assert_eq!(samples, 2 * 22 + 8 + 8 + 40 + 28, "{text}");
    }
}
