//! Prometheus metrics: the `[metrics]` config section, the endpoint that
//! answers `GET /metrics` in the Prometheus text format (version 0.0.4) and
//! `/health` and `/stats.json` ([`crate::status`]), and the helpers a
//! daemon's collector writes its numbers with.
//!
//! The workers keep counting in their own relaxed atomics, as they do for
//! the statistics log line; a daemon's collector (a prometheus-client
//! [`Collector`]) reads those atomics when Prometheus scrapes and writes
//! them as absolute counters and gauges. So metrics cost the hot path
//! nothing, and no number is kept twice.
//!
//! The endpoint is answered by a few threads of its own
//! ([`crate::metrics_listener`]: bounded connections, head size and time),
//! so no async runtime comes with it. It has no authentication: bind it to
//! loopback or a private network (the default is 127.0.0.1:9000).
//!
//! Not here: which numbers a daemon exports (its `workers::statistics`).

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use prometheus_client::encoding::{EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::{Deserialize, Serialize};

use crate::clients::ClientKey;
use crate::metrics_listener::{self, Response};
use crate::peer_store::PeerKey;
use crate::status::{HISTORY_INTERVAL_SECS, History, Status, metrics_json};
use crate::supervision::Supervisor;
use crate::torrent_map::{Refusal, SIZE_BUCKET_LABELS, SwarmSummary, TorrentMap};

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
pub use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub address: SocketAddr,
    /// The largest swarms (info hashes) on the status page and in
    /// `/stats.json`.
    pub show_largest_swarms: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: SocketAddr::from(([127, 0, 0, 1], 9000)),
            show_largest_swarms: true,
        }
    }
}

/// The bound metrics endpoint, not yet answering.
pub struct MetricsEndpoint {
    listener: std::net::TcpListener,
    address: SocketAddr,
}

impl MetricsEndpoint {
    /// Bind `config.address` when metrics are enabled (`None` when not).
    /// Call it before privileges are dropped, like every other bind. The
    /// error names `metrics.address`.
    pub fn bind(config: &MetricsConfig) -> anyhow::Result<Option<Self>> {
        if !config.enabled {
            return Ok(None);
        }
        let cannot_bind = |err: std::io::Error| {
            anyhow::anyhow!("metrics.address {}: cannot bind: {err}", config.address)
        };
        let listener = metrics_listener::bind(config.address).map_err(cannot_bind)?;
        let address = listener.local_addr().map_err(cannot_bind)?;
        Ok(Some(Self { listener, address }))
    }

    /// The address bound (with the actual port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// [`serve`](Self::serve) on a worker thread of its own, `metrics`.
    pub fn spawn(
        self,
        supervisor: &Supervisor,
        prefix: &'static str,
        collectors: Vec<Box<dyn Collector>>,
        status: Status,
    ) -> anyhow::Result<()> {
        supervisor.spawn("metrics".into(), move || {
            self.serve(prefix, collectors, status)
        })
    }

    /// Answer requests for the life of the process ([`metrics_listener`]:
    /// a few threads, bounded requests): `GET /metrics` (or `HEAD`) with
    /// what the `collectors` write, every name prefixed with `prefix`;
    /// `/health` and `/stats.json` from `status` and the same collectors;
    /// the status page and its history; 404 for other paths, 405 for other
    /// methods. This thread samples the history every
    /// `HISTORY_INTERVAL_SECS` seconds.
    pub fn serve(
        self,
        prefix: &str,
        collectors: Vec<Box<dyn Collector>>,
        status: Status,
    ) -> anyhow::Result<()> {
        let mut registry = Registry::with_prefix(prefix);
        for collector in collectors {
            registry.register_collector(collector);
        }
        let registry = Arc::new(registry);
        let status = Arc::new(status);
        let history = Arc::new(Mutex::new(History::default()));
        let handler: metrics_listener::Handler = {
            let (registry, status, history) = (registry.clone(), status.clone(), history.clone());
            Arc::new(move |method, url| answer(&registry, &status, &history, method, url))
        };
        metrics_listener::spawn_workers(&self.listener, &handler)?;
        let mut next_sample = 0;
        loop {
            let uptime = status.heartbeats.uptime_secs();
            if uptime >= next_sample {
                if let Ok(text) = render(&registry) {
                    let json = metrics_json(&text);
                    if let Ok(mut history) = history.lock() {
                        history.record(uptime, &json);
                    }
                }
                next_sample = uptime + HISTORY_INTERVAL_SECS;
            }
            thread::sleep(Duration::from_secs(1));
        }
    }
}

/// The status page (`GET /`): static, it draws `/stats.json` and
/// `/history.json`.
const STATUS_PAGE: &str = include_str!("status.html");

fn answer(
    registry: &Registry,
    status: &Status,
    history: &Mutex<History>,
    method: &str,
    url: &str,
) -> Response {
    let path = url.split('?').next().unwrap_or(url);
    if !matches!(
        path,
        "/" | "/metrics" | "/health" | "/stats.json" | "/history.json"
    ) {
        return Response::plain(
            404,
            "404 Not Found: try /, /metrics, /stats.json, /history.json or /health\n",
        );
    }
    if !matches!(method, "GET" | "HEAD") {
        return Response::plain(405, "405 Method Not Allowed\n");
    }
    let json = |body: String| Response {
        status: 200,
        content_type: "application/json",
        body: body.into_bytes(),
    };
    match path {
        "/health" => {
            let (ok, body) = status.health();
            return Response::plain(if ok { 200 } else { 503 }, body);
        }
        "/" => {
            return Response {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: STATUS_PAGE.as_bytes().to_vec(),
            };
        }
        "/history.json" => {
            let body = match history.lock() {
                Ok(history) => history.json(),
                Err(_) => return Response::plain(500, "500 Internal Server Error\n"),
            };
            return json(body);
        }
        _ => {}
    }
    let Ok(text) = render(registry) else {
        log::error!("metrics: encoding failed");
        return Response::plain(500, "500 Internal Server Error\n");
    };
    if path == "/stats.json" {
        json(status.json(&text))
    } else {
        Response {
            status: 200,
            content_type: prometheus_text::CONTENT_TYPE,
            body: text.into_bytes(),
        }
    }
}

/// The registry's metrics in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut body = String::new();
    prometheus_text::encode(&mut body, registry)?;
    Ok(body)
}

/// A daemon's collector as `{:?}` shows it: how many workers it reads.
pub fn debug_collector(
    f: &mut fmt::Formatter<'_>,
    socket_workers: usize,
    request_workers: usize,
) -> fmt::Result {
    f.debug_struct("MetricsCollector")
        .field("socket_workers", &socket_workers)
        .field("request_workers", &request_workers)
        .finish()
}

/// Write one counter family: `PREFIX_NAME[_UNIT]_total`, with `help`, one
/// sample per label set. Values are absolute (the atomics' current totals).
pub fn write_counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Write one gauge family: `PREFIX_NAME`, with `help`, one sample per
/// label set.
pub fn write_gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Most (client, version) series of `peers_by_client`; the rarer
/// versions of each client are summed under `version="other"` (so at most
/// 40 + 14 series).
pub const MAX_CLIENT_VERSIONS: usize = 40;

/// `peers_by_client{client,version}`: the stored peers (both IP
/// versions) by the client and version their peer id names, as of each
/// request worker's last cleaning; `version=""` where it is unknown.
fn write_peers_by_client(
    encoder: &mut DescriptorEncoder,
    summaries: &[SwarmSummary; 2],
) -> fmt::Result {
    let mut all: hashbrown::HashMap<ClientKey, u64> = hashbrown::HashMap::new();
    for summary in summaries {
        for (client, n) in &summary.clients {
            *all.entry(*client).or_default() += n;
        }
    }
    let mut sorted: Vec<(ClientKey, u64)> = all.into_iter().collect();
    sorted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut rows: Vec<(&'static str, String, u64)> = Vec::new();
    let mut rest: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for (i, (client, n)) in sorted.into_iter().enumerate() {
        let name = client.client().label();
        if i < MAX_CLIENT_VERSIONS {
            rows.push((name, client.version(), n));
        } else {
            *rest.entry(name).or_default() += n;
        }
    }
    rows.extend(
        rest.into_iter()
            .map(|(name, n)| (name, "other".to_string(), n)),
    );
    write_gauges(
        encoder,
        "peers_by_client",
        "Stored peers (both IP versions) by the client and version their peer id names, as of each request worker's last cleaning; version is empty when unknown, \"other\" for a client's rarer versions beyond the 40 largest series. aquatic_udp's peers restored from the state file count as client \"other\" until they announce.",
        rows.iter()
            .map(|(client, version, n)| ([("client", *client), ("version", version.as_str())], *n)),
    )
}

/// Every request worker's [`SwarmSummary`] merged, per IP version.
pub fn merged_summaries(swarms: &[Arc<SwarmGauges>]) -> [SwarmSummary; 2] {
    let mut merged = [SwarmSummary::default(), SwarmSummary::default()];
    for worker in swarms {
        for (sum, sizes) in merged.iter_mut().zip(&worker.by_ip_version) {
            sum.merge(&sizes.summary());
        }
    }
    merged
}

/// Values of the `ip_version` label, in `by_ip_version` order (IPv4, IPv6).
pub const IP_VERSION_LABELS: [&str; 2] = ["4", "6"];

/// Swarm sizes published by one request worker after each batch of
/// requests and each cleaning, per IP version (IPv4, IPv6); read by the
/// statistics line and the metrics.
#[derive(Default)]
pub struct SwarmGauges {
    pub by_ip_version: [CachePadded<SwarmSizes>; 2],
}

#[derive(Default)]
pub struct SwarmSizes {
    pub torrents: AtomicUsize,
    pub seeders: AtomicUsize,
    pub leechers: AtomicUsize,
    /// Sources holding a peer (the per-source accounting's entries).
    pub sources: AtomicUsize,
    /// Announces whose peer was not stored, by [`Refusal`] (absolute,
    /// as the map counts them).
    pub refused: [AtomicU64; Refusal::ALL.len()],
    /// Swarm sizes and the largest swarms as of the map's last cleaning,
    /// copied once per cleaning (`cleanings` says which).
    summary: Mutex<SwarmSummary>,
    cleanings: AtomicU64,
}

impl SwarmSizes {
    pub fn set(&self, torrents: usize, seeders: usize, leechers: usize) {
        self.torrents.store(torrents, Ordering::Relaxed);
        self.seeders.store(seeders, Ordering::Relaxed);
        self.leechers.store(leechers, Ordering::Relaxed);
    }

    /// Publish a map's sizes and refusals.
    pub fn set_from<K: PeerKey, V>(&self, map: &TorrentMap<K, V>) {
        self.set(map.num_torrents(), map.num_seeders(), map.num_leechers());
        self.sources.store(map.num_sources(), Ordering::Relaxed);
        for (counter, value) in self.refused.iter().zip(map.refused()) {
            counter.store(value, Ordering::Relaxed);
        }
        let (summary, cleanings) = map.summary();
        if self.cleanings.load(Ordering::Relaxed) != cleanings {
            *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = summary.clone();
            self.cleanings.store(cleanings, Ordering::Relaxed);
        }
    }

    /// The summary as of the last cleaning published.
    pub fn summary(&self) -> SwarmSummary {
        self.summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The socket workers' counters (`W` each) with their `worker` label
/// values (the workers' indices), for a daemon's metrics collector.
pub struct PerWorker<W> {
    workers: Vec<Arc<W>>,
    labels: Vec<String>,
}

impl<W> PerWorker<W> {
    pub fn new(workers: Vec<Arc<W>>) -> Self {
        let labels = (0..workers.len()).map(|i| i.to_string()).collect();
        Self { workers, labels }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// One sample per worker and (`key` = kind) entry that `pick` returns.
    pub fn samples<'a>(
        &'a self,
        key: &'static str,
        pick: impl Fn(&'a W) -> Vec<(&'static str, &'a AtomicU64)>,
    ) -> Vec<([(&'static str, &'a str); 2], u64)> {
        let mut samples = Vec::new();
        for (worker, stats) in self.labels.iter().zip(&self.workers) {
            for (kind, counter) in pick(stats) {
                let labels = [(key, kind), ("worker", worker.as_str())];
                samples.push((labels, counter.load(Ordering::Relaxed)));
            }
        }
        samples
    }

    /// One sample per worker: the value `pick` reads.
    pub fn one_each<'a>(
        &'a self,
        pick: impl Fn(&'a W) -> u64,
    ) -> Vec<([(&'static str, &'a str); 1], u64)> {
        self.labels
            .iter()
            .zip(&self.workers)
            .map(|(worker, stats)| ([("worker", worker.as_str())], pick(stats)))
            .collect()
    }
}

/// Torrents, seeders and leechers per IP version, summed over the request
/// workers (shards): `[[torrents, seeders, leechers]; 2]`.
pub fn swarm_totals(swarms: &[Arc<SwarmGauges>]) -> [[usize; 3]; 2] {
    let mut totals = [[0usize; 3]; 2];
    for worker in swarms {
        for (total, sizes) in totals.iter_mut().zip(&worker.by_ip_version) {
            total[0] += sizes.torrents.load(Ordering::Relaxed);
            total[1] += sizes.seeders.load(Ordering::Relaxed);
            total[2] += sizes.leechers.load(Ordering::Relaxed);
        }
    }
    totals
}

/// Write the `PREFIX_torrents`, `PREFIX_seeders` and `PREFIX_leechers`
/// gauges, labelled by `ip_version`.
pub fn write_swarm_gauges(
    encoder: &mut DescriptorEncoder,
    swarms: &[Arc<SwarmGauges>],
) -> fmt::Result {
    let [[t4, s4, l4], [t6, s6, l6]] = swarm_totals(swarms);
    let families = [
        (
            "torrents",
            "Torrents tracked, by IP version (as of each request worker's last batch of requests or cleaning; a torrent without peers goes at the next cleaning).",
            [t4, t6],
        ),
        ("seeders", "Seeders, by IP version.", [s4, s6]),
        ("leechers", "Leechers, by IP version.", [l4, l6]),
    ];
    for (name, help, by_ip_version) in families {
        write_gauges(
            encoder,
            name,
            help,
            IP_VERSION_LABELS
                .iter()
                .zip(by_ip_version)
                .map(|(ip_version, total)| ([("ip_version", *ip_version)], total as u64)),
        )?;
    }
    let summaries = merged_summaries(swarms);
    write_peers_by_client(encoder, &summaries)?;
    let samples = IP_VERSION_LABELS
        .iter()
        .zip(&summaries)
        .flat_map(|(ip_version, summary)| {
            SIZE_BUCKET_LABELS
                .iter()
                .zip(summary.by_size)
                .map(move |(peers, n)| ([("ip_version", *ip_version), ("peers", *peers)], n))
        });
    write_gauges(
        encoder,
        "torrents_by_size",
        "Torrents by their number of peers (seeders and leechers; buckets 1, 2-3, 4-7, ...), by IP version, as of each request worker's last cleaning.",
        samples,
    )?;
    let mut sources = [0u64; 2];
    let mut refused = [[0u64; Refusal::ALL.len()]; 2];
    for worker in swarms {
        for (i, sizes) in worker.by_ip_version.iter().enumerate() {
            if let (Some(total), Some(by_reason)) = (sources.get_mut(i), refused.get_mut(i)) {
                *total += sizes.sources.load(Ordering::Relaxed) as u64;
                for (sum, counter) in by_reason.iter_mut().zip(&sizes.refused) {
                    *sum += counter.load(Ordering::Relaxed);
                }
            }
        }
    }
    write_gauges(
        encoder,
        "sources",
        "Sources (IPv4 addresses, IPv6 prefixes as [source_budgets] groups them) holding at least one stored peer, by IP version.",
        IP_VERSION_LABELS
            .iter()
            .zip(sources)
            .map(|(ip_version, n)| ([("ip_version", *ip_version)], n)),
    )?;
    let samples = IP_VERSION_LABELS
        .iter()
        .zip(refused)
        .flat_map(|(ip_version, by_reason)| {
            Refusal::ALL.iter().zip(by_reason).map(move |(reason, n)| {
                ([("ip_version", *ip_version), ("reason", reason.label())], n)
            })
        });
    write_counters(
        encoder,
        "peers_not_stored",
        "Announces answered without storing their peer, by reason: tracker_full (max_peers), torrent_full (max_peers_per_torrent), source_share (the source holds its share of max_peers), source_torrent_share (the source holds its share of the torrent).",
        None,
        samples,
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    #[derive(Debug)]
    struct Fixed;

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            write_counters(
                &mut encoder,
                "requests",
                "Requests received, by type.",
                None,
                [
                    ([("type", "announce"), ("worker", "0")], 5),
                    ([("type", "scrape"), ("worker", "0")], 2),
                ],
            )?;
            write_counters(
                &mut encoder,
                "received",
                "Bytes received.",
                Some(&Unit::Bytes),
                [([("worker", "0")], 1234)],
            )?;
            write_gauges(
                &mut encoder,
                "torrents",
                "Torrents.",
                [([("ip_version", "4")], 7)],
            )
        }
    }

    #[test]
    fn stored_peers_by_client_and_version_are_bounded_series() {
        use crate::PeerId;
        let key = |prefix: &[u8]| {
            let mut id = [b'x'; 20];
            id[..prefix.len()].copy_from_slice(prefix);
            ClientKey::of(&PeerId(id))
        };
        let mut v4 = SwarmSummary::default();
        let mut v6 = SwarmSummary::default();
        for _ in 0..3 {
            v4.add_peer(key(b"-qB4520-"));
        }
        v6.add_peer(key(b"-qB4520-"));
        v6.add_peer(key(b"-TR4060-"));
        v4.add_peer(ClientKey::UNKNOWN);
        v6.add_peer(ClientKey::UNKNOWN);
        // 50 more libtorrent versions, one peer each: beyond the 40 series
        // they are summed as "other".
        for minor in 0..5u8 {
            for patch in 0..10u8 {
                v4.add_peer(key(&[
                    b'-',
                    b'L',
                    b'T',
                    b'1',
                    b'0' + minor,
                    b'0' + patch,
                    b'0',
                    b'-',
                ]));
            }
        }
        let mut text = String::new();
        {
            let mut registry = Registry::with_prefix("aquatic_test");
            #[derive(Debug)]
            struct Clients([SwarmSummary; 2]);
            impl Collector for Clients {
                fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
                    write_peers_by_client(&mut encoder, &self.0)
                }
            }
            registry.register_collector(Box::new(Clients([v4, v6])));
            text.push_str(&render(&registry).unwrap());
        }
        for line in [
            "aquatic_test_peers_by_client{client=\"qbittorrent\",version=\"4.5.2\"} 4",
            "aquatic_test_peers_by_client{client=\"transmission\",version=\"4.0.6\"} 1",
            "aquatic_test_peers_by_client{client=\"other\",version=\"\"} 2",
            "aquatic_test_peers_by_client{client=\"libtorrent\",version=\"other\"} 13",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(series, MAX_CLIENT_VERSIONS + 1, "{text}");
    }

    #[test]
    fn collector_output_is_prometheus_text() {
        let mut registry = Registry::with_prefix("aquatic_test");
        registry.register_collector(Box::new(Fixed));
        assert_eq!(
            render(&registry).unwrap(),
            "# HELP aquatic_test_requests_total Requests received, by type.\n\
             # TYPE aquatic_test_requests_total counter\n\
             aquatic_test_requests_total{type=\"announce\",worker=\"0\"} 5\n\
             aquatic_test_requests_total{type=\"scrape\",worker=\"0\"} 2\n\
             # HELP aquatic_test_received_bytes_total Bytes received.\n\
             # TYPE aquatic_test_received_bytes_total counter\n\
             aquatic_test_received_bytes_total{worker=\"0\"} 1234\n\
             # HELP aquatic_test_torrents Torrents.\n\
             # TYPE aquatic_test_torrents gauge\n\
             aquatic_test_torrents{ip_version=\"4\"} 7\n"
        );
    }

    #[test]
    fn disabled_binds_nothing() {
        assert!(
            MetricsEndpoint::bind(&MetricsConfig::default())
                .unwrap()
                .is_none()
        );
    }

    fn get(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn endpoint_answers_metrics_and_refuses_the_rest() {
        let config = MetricsConfig {
            enabled: true,
            address: "127.0.0.1:0".parse().unwrap(),
            ..MetricsConfig::default()
        };
        let endpoint = MetricsEndpoint::bind(&config).unwrap().unwrap();
        let address = endpoint.local_addr();
        assert_ne!(address.port(), 0);

        // The port is taken now: a second bind fails, naming the field.
        let taken = MetricsConfig {
            enabled: true,
            address,
            ..MetricsConfig::default()
        };
        let err = MetricsEndpoint::bind(&taken).err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("metrics.address {address}: cannot bind")),
            "{err}"
        );

        let status = Status::for_tests(true);
        thread::spawn(move || endpoint.serve("aquatic_test", vec![Box::new(Fixed)], status));
        let ok = get(
            address,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains("\r\n\r\n# HELP aquatic_test_requests_total"),
            "{ok}"
        );

        let head = get(
            address,
            "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(!head.contains("# HELP"), "{head}");

        let other = get(
            address,
            "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        let page = get(
            address,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("text/html") && page.contains("stats.json"));
        let history = get(
            address,
            "GET /history.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let body = history.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["interval_seconds"], 5, "{body}");
        let health = get(
            address,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");
        let json = get(
            address,
            "GET /stats.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(json.starts_with("HTTP/1.1 200"), "{json}");
        assert!(
            json.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{json}"
        );
        let body = json.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            parsed["metrics"]["aquatic_test_requests_total"]["samples"][0]["value"],
            5
        );
        let post = get(
            address,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    }
}
