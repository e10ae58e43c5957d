//! What the workers' counters are read for: the statistics worker (every
//! `statistics.interval` seconds, one log line with rates since the last
//! line, open connections and swarm sizes) and the Prometheus collector
//! (the same counters as absolute values, at each scrape).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aquatic_common::metrics::{
    Collector, DescriptorEncoder, PerWorker, write_counters, write_gauges, write_swarm_gauges,
};
use aquatic_common::statistics::{Group, Show};
use aquatic_common::tcp_counters::{self, Helps};

use crate::common::{
    CloseReason, Counters, DropReason, ErrorReason, ShardStats, SocketWorkerStats, SwarmGauges,
};

/// The statistics log line, by name (after the open connections).
const LOG_LINE: &[Group<Counters>] = &[
    Group {
        title: "connections/s",
        show: Show::Rate,
        fields: &[("accepted", |c| &c.tcp.accepted)],
    },
    Group {
        title: "messages/s in",
        show: Show::Rate,
        fields: &[
            ("announce", |c| &c.requests_announce),
            ("answer", |c| &c.requests_answer),
            ("scrape", |c| &c.requests_scrape),
        ],
    },
    Group {
        title: "out",
        show: Show::Rate,
        fields: &[
            ("announce", |c| &c.responses_announce),
            ("offer", |c| &c.offers_relayed),
            ("answer", |c| &c.answers_relayed),
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
    open_connections: "TCP connections open now (upgrading or WebSocket).",
    received: "Bytes received from clients: upgrade requests and message payloads (TLS: decrypted).",
    sent: "Bytes sent to clients: upgrade responses and message payloads (TLS: before encryption).",
};

pub fn run(
    interval: Duration,
    sockets: Vec<Arc<SocketWorkerStats>>,
    swarms: Vec<Arc<SwarmGauges>>,
) -> anyhow::Result<()> {
    tcp_counters::run_statistics(interval, &sockets, &swarms, LOG_LINE, |c| &c.tcp)
}

/// Exports the socket workers' counters, the request workers' swarm gauges
/// and offer counts as `aquatic_ws_*` metrics, read at each scrape.
pub struct MetricsCollector {
    sockets: PerWorker<SocketWorkerStats>,
    swarms: Vec<Arc<SwarmGauges>>,
    shards: Vec<Arc<ShardStats>>,
}

impl MetricsCollector {
    pub fn new(
        sockets: Vec<Arc<SocketWorkerStats>>,
        swarms: Vec<Arc<SwarmGauges>>,
        shards: Vec<Arc<ShardStats>>,
    ) -> Self {
        Self {
            sockets: PerWorker::new(sockets),
            swarms,
            shards,
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
            "closed_connections",
            "Connections closed, by reason: client, idle_timeout, protocol_error (not a WebSocket upgrade, bad frame or UTF-8, TLS error), over_limit (head, frame or message size), write_buffer_full (client not reading), http_answered (health check).",
            None,
            self.sockets.samples("reason", |c| {
                CloseReason::ALL
                    .iter()
                    .zip(&c.closed_by_reason)
                    .map(|(reason, counter)| (reason.label(), counter))
                    .collect()
            }),
        )?;
        write_counters(
            e,
            "requests",
            "Messages parsed from clients, by type: announce, answer (to a relayed offer), scrape; refused ones included.",
            None,
            self.sockets.samples("type", |c| {
                vec![
                    ("announce", &c.requests_announce),
                    ("answer", &c.requests_answer),
                    ("scrape", &c.requests_scrape),
                ]
            }),
        )?;
        write_counters(
            e,
            "responses",
            "Messages sent to clients, by type: announce and scrape replies, offer and answer (relayed from other peers), error (a failure reason).",
            None,
            self.sockets.samples("type", |c| {
                vec![
                    ("announce", &c.responses_announce),
                    ("scrape", &c.responses_scrape),
                    ("offer", &c.offers_relayed),
                    ("answer", &c.answers_relayed),
                    ("error", &c.responses_error),
                ]
            }),
        )?;
        write_counters(
            e,
            "error_responses",
            "Failure reasons sent, by reason: invalid_message, info_hash_not_allowed, overloaded, over_limit, peer_id_taken, unknown_offer (an answer to an offer not relayed to that peer), binary_message, rate_limited, address_refused.",
            None,
            self.sockets.samples("reason", |c| {
                ErrorReason::ALL
                    .iter()
                    .zip(&c.responses_error_by_reason)
                    .map(|(reason, counter)| (reason.label(), counter))
                    .collect()
            }),
        )?;
        write_counters(
            e,
            "dropped_messages",
            "Messages not delivered, by reason: connection_gone (for a connection closed meanwhile), overloaded (an answer or close notice on a full request queue).",
            None,
            self.sockets.samples("reason", |c| {
                DropReason::ALL
                    .iter()
                    .zip(&c.dropped_by_reason)
                    .map(|(reason, counter)| (reason.label(), counter))
                    .collect()
            }),
        )?;
        write_counters(
            e,
            "health_checks",
            "GET /health requests answered.",
            None,
            self.sockets
                .one_each(|c| c.health_checks.load(Ordering::Relaxed)),
        )?;
        let not_relayed = |pick: fn(&ShardStats) -> &AtomicU64| {
            self.shards
                .iter()
                .map(|s| pick(s).load(Ordering::Relaxed))
                .sum::<u64>()
        };
        write_counters(
            e,
            "offers_not_relayed",
            "Offers not relayed, by reason: full (protocol.max_pending_offers reached), source_share (the offering client's source holds its share of it), taken (another connection's offer is pending under the same info hash, offer id and answerer).",
            None,
            [
                (
                    [("reason", "full"), ("worker", "all")],
                    not_relayed(|s| &s.offers_not_relayed),
                ),
                (
                    [("reason", "source_share"), ("worker", "all")],
                    not_relayed(|s| &s.offers_not_relayed_source),
                ),
                (
                    [("reason", "taken"), ("worker", "all")],
                    not_relayed(|s| &s.offers_not_relayed_taken),
                ),
            ],
        )?;
        write_counters(
            e,
            "answers_not_relayed",
            "Answers dropped because their offer was no longer pending: answered already, expired, or its offerer's connection closed.",
            None,
            [([("worker", "all")], not_relayed(|s| &s.answers_not_relayed))],
        )?;
        write_gauges(
            e,
            "pending_offers",
            "Offers relayed whose answer is still accepted.",
            [(
                [("worker", "all")],
                self.shards
                    .iter()
                    .map(|s| s.pending_offers.load(Ordering::Relaxed) as u64)
                    .sum::<u64>(),
            )],
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
        let shards = fresh::<ShardStats>(2);
        add(&sockets[1].offers_relayed, 3);
        sockets[0].count_error(ErrorReason::PeerIdTaken);
        sockets[0].count_close(CloseReason::IdleTimeout);
        sockets[1].count_drop(DropReason::ConnectionGone, 2);
        shards[1].offers_not_relayed.store(5, Ordering::Relaxed);
        swarms[1].by_ip_version[0].set(4, 5, 6);
        let collector = MetricsCollector::new(sockets, swarms, shards);
        let lines = [
            "aquatic_ws_responses_total{type=\"offer\",worker=\"1\"} 3",
            "aquatic_ws_error_responses_total{reason=\"peer_id_taken\",worker=\"0\"} 1",
            "aquatic_ws_closed_connections_total{reason=\"idle_timeout\",worker=\"0\"} 1",
            "aquatic_ws_dropped_messages_total{reason=\"connection_gone\",worker=\"1\"} 2",
            "aquatic_ws_offers_not_relayed_total{reason=\"full\",worker=\"all\"} 5",
            "aquatic_ws_torrents{ip_version=\"4\"} 4",
        ];
        let _text = render_with_lines("aquatic_ws", collector, &lines);
    }
}
