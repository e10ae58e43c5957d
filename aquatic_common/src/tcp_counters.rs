//! What both TCP daemons (aquatic_http, aquatic_ws) count of their
//! connections and traffic, once: the counters each socket worker keeps
//! (inside its daemon's own counter block), their metric families
//! (`connections_total`, `open_connections`, `announces_by_client_total`,
//! `received_bytes_total`, `sent_bytes_total`) and the statistics log line
//! with its "connections: N open" head.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::clients::{self, ClientCounts};
use crate::metrics::{
    DescriptorEncoder, PerWorker, SwarmGauges, Unit, write_counters, write_gauges,
};
use crate::statistics::{self, Group};

/// A TCP socket worker's connection and traffic counters.
#[derive(Debug, Default)]
pub struct TcpCounters {
    pub accepted: AtomicU64,
    /// Closed at once at `network.max_connections`.
    pub refused: AtomicU64,
    /// Refused because their source held its share of the connections.
    pub refused_source: AtomicU64,
    pub open: AtomicUsize,
    /// Bytes from clients (TLS: decrypted).
    pub bytes_received: AtomicU64,
    /// Bytes to clients (TLS: before encryption).
    pub bytes_sent: AtomicU64,
    /// Announces parsed, by client.
    pub clients: ClientCounts,
}

/// The help texts that differ between the daemons.
pub struct Helps {
    pub open_connections: &'static str,
    pub received: &'static str,
    pub sent: &'static str,
}

/// `connections_total{outcome}` and `open_connections`.
pub fn write_connections<W>(
    encoder: &mut DescriptorEncoder,
    sockets: &PerWorker<W>,
    tcp: fn(&W) -> &TcpCounters,
    helps: &Helps,
) -> fmt::Result {
    write_counters(
        encoder,
        "connections",
        "TCP connections, by outcome: accepted; refused (closed at once) at network.max_connections; refused_source, their source holding its share ([source_budgets] share_percent) of network.max_connections.",
        None,
        sockets.samples("outcome", |w| {
            let c = tcp(w);
            vec![
                ("accepted", &c.accepted),
                ("refused", &c.refused),
                ("refused_source", &c.refused_source),
            ]
        }),
    )?;
    write_gauges(
        encoder,
        "open_connections",
        helps.open_connections,
        sockets.one_each(|w| tcp(w).open.load(Ordering::Relaxed) as u64),
    )
}

/// `announces_by_client_total{client}`, `received_bytes_total` and
/// `sent_bytes_total`.
pub fn write_traffic<W>(
    encoder: &mut DescriptorEncoder,
    sockets: &PerWorker<W>,
    tcp: fn(&W) -> &TcpCounters,
    helps: &Helps,
) -> fmt::Result {
    clients::write_metric(
        encoder,
        "",
        sockets.samples("client", |w| tcp(w).clients.samples().collect()),
    )?;
    write_counters(
        encoder,
        "received",
        helps.received,
        Some(&Unit::Bytes),
        sockets.one_each(|w| tcp(w).bytes_received.load(Ordering::Relaxed)),
    )?;
    write_counters(
        encoder,
        "sent",
        helps.sent,
        Some(&Unit::Bytes),
        sockets.one_each(|w| tcp(w).bytes_sent.load(Ordering::Relaxed)),
    )
}

/// The statistics log loop of a TCP daemon: "connections: N open", then
/// `groups`, then the swarms.
pub fn run_statistics<C: 'static>(
    interval: Duration,
    sockets: &[Arc<CachePadded<C>>],
    swarms: &[Arc<SwarmGauges>],
    groups: &[Group<C>],
    tcp: fn(&C) -> &TcpCounters,
) -> anyhow::Result<()> {
    statistics::run(
        interval,
        swarms,
        groups,
        |visit| sockets.iter().for_each(|worker| visit(worker)),
        || {
            let open: usize = sockets
                .iter()
                .map(|s| tcp(s).open.load(Ordering::Relaxed))
                .sum();
            format!("connections: {open} open")
        },
    )
}
