//! The start-up and supervision every daemon shares, once.
//!
//! [`run`] installs the signal handlers, binds one socket per socket
//! worker (and the metrics endpoint), drops privileges, makes the shards
//! (restored from the state file where the daemon keeps one), wires the
//! channels and wakers, starts the socket workers, the request workers
//! (or hands the one shard to the socket worker when `request_workers =
//! 0`), the scrape exporter, the metrics endpoint and the statistics log,
//! and then supervises until a signal or a failing worker. A daemon
//! supplies only what differs, by implementing [`Daemon`]: how to bind,
//! how to make its shards and its socket worker, what its counters say.
//!
//! Every per-worker counter block is made here and handed to its worker by
//! construction (zipped with the sockets and shards), so no worker can end
//! up with a block nobody reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use mio::{Poll, Token};

use crate::ServerStartInstant;
use crate::access_list::{AccessListCache, AccessListConfig, AccessLists};
use crate::defences::{DefenceCollector, DefenceCounters, Defences};
use crate::health::{Heartbeat, Heartbeats};
use crate::ip_filter::{IpFilterConfig, IpFilters};
use crate::metrics::{Collector, MetricsConfig, MetricsEndpoint, SwarmGauges};
use crate::privileges::{PrivilegeConfig, drop_privileges};
use crate::rate_limit::RateLimitConfig;
use crate::request_loop::{InlineShard, Shard, channels, polls_and_wakers, spawn_request_workers};
use crate::scrape_export::{self, ScrapeExportConfig};
use crate::shard_parts::{ShardControl, command_channel};
use crate::state::{self, DaemonKind, StateConfig};
use crate::statistics::{self, StatisticsConfig};
use crate::status::Status;
use crate::supervision::Supervisor;
use crate::time::secs_u32;

/// The parts of a daemon's config that the skeleton reads.
pub struct Settings<'a> {
    /// Binary name, thread-log and metrics prefix: `"aquatic_udp"`.
    pub name: &'static str,
    /// The daemon crate's version, for `/stats.json`.
    pub version: &'static str,
    /// Shown after the listening address in the log: `"https"`, `"ws"`.
    pub scheme: &'static str,
    pub address: SocketAddr,
    pub socket_workers: usize,
    /// 0: the one socket worker owns the one shard.
    pub request_workers: usize,
    /// Batches each request and response channel holds.
    pub channel_capacity: usize,
    /// Seconds between cleanings of a shard.
    pub cleaning_interval: u64,
    pub access_list: &'a AccessListConfig,
    pub ip_filter: &'a IpFilterConfig,
    pub rate_limit: &'a RateLimitConfig,
    pub metrics: &'a MetricsConfig,
    pub privileges: &'a PrivilegeConfig,
    pub statistics: &'a StatisticsConfig,
    pub scrape_export: &'a ScrapeExportConfig,
    /// The swarm state file, for daemons whose swarms outlive a restart.
    pub state: Option<(&'a StateConfig, DaemonKind)>,
}

/// The [`Settings`] of a daemon `Config` with the sections every daemon
/// has (`socket_workers`, `request_workers`, `[network] address` and
/// `request_channel_capacity`, `[cleaning] interval`, `[access_list]`,
/// `[ip_filter]`, `[rate_limit]`, `[metrics]`, `[privileges]`, `[statistics]`, `[scrape_export]`):
/// `daemon_settings!(config, name, scheme, state)`.
#[macro_export]
macro_rules! daemon_settings {
    ($config:expr, $name:expr, $scheme:expr, $state:expr) => {
        $crate::daemon::Settings {
            name: $name,
            version: env!("CARGO_PKG_VERSION"),
            scheme: $scheme,
            address: $config.network.address,
            socket_workers: $config.socket_workers,
            request_workers: $config.request_workers,
            channel_capacity: $config.network.request_channel_capacity,
            cleaning_interval: $config.cleaning.interval,
            access_list: &$config.access_list,
            ip_filter: &$config.ip_filter,
            rate_limit: &$config.rate_limit,
            metrics: &$config.metrics,
            privileges: &$config.privileges,
            statistics: &$config.statistics,
            scrape_export: &$config.scrape_export,
            state: $state,
        }
    };
}

/// What one socket worker is started with.
pub struct SocketWiring<D: Daemon> {
    pub index: usize,
    pub socket: D::Socket,
    pub poll: Poll,
    pub clock: ServerStartInstant,
    pub access_list: AccessListCache,
    /// The IP filter and rate limit, with their counters.
    pub defences: Defences,
    /// One per request worker (none with `request_workers = 0`).
    pub request_senders: Vec<Sender<Vec<D::Request>>>,
    pub response_receiver: Receiver<Vec<D::Response>>,
    pub stats: Arc<D::SocketStats>,
    /// Beaten once per turn of the worker's loop ([`crate::health`]).
    pub heartbeat: Arc<Heartbeat>,
    /// With `request_workers = 0`: the shard this worker owns.
    pub inline_shard: Option<InlineShard<D::Shard, D::Request, D::Response>>,
}

/// A daemon's statistics worker: every `interval`, a log line from the
/// socket workers' counters and the swarms' gauges.
pub type StatisticsWorker<S> =
    fn(Duration, Vec<Arc<S>>, Vec<Arc<SwarmGauges>>) -> anyhow::Result<()>;

/// What differs between the daemons.
pub trait Daemon: Sized + 'static {
    type Socket: Send + 'static;
    type Request: Send + 'static;
    type Response: Send + 'static;
    type Shard: Shard<Self::Request, Self::Response> + Send + 'static;
    /// One socket worker's counters.
    type SocketStats: Default + Send + Sync + 'static;
    /// One shard's counters beyond its [`SwarmGauges`] (`()` if none).
    type ShardStats: Default + Send + Sync + 'static;
    /// A socket worker's poll token for its waker.
    const WAKER_TOKEN: Token;

    fn settings(&self) -> Settings<'_>;
    fn bind(&self, address: SocketAddr) -> anyhow::Result<Self::Socket>;
    fn local_addr(socket: &Self::Socket) -> std::io::Result<SocketAddr>;
    /// One shard per counter pair, in order, restored from the state file
    /// where the daemon keeps one; `now` is the time of the start.
    fn shards(
        &self,
        now: crate::SecondsSinceStart,
        counters: Vec<(Arc<SwarmGauges>, Arc<Self::ShardStats>)>,
    ) -> Vec<Self::Shard>;
    /// The socket worker's loop, ready to run on its own thread.
    fn socket_worker(
        &self,
        wiring: SocketWiring<Self>,
    ) -> anyhow::Result<impl FnOnce() -> anyhow::Result<()> + Send + 'static>;
    fn metrics(
        &self,
        sockets: Vec<Arc<Self::SocketStats>>,
        swarms: Vec<Arc<SwarmGauges>>,
        shards: Vec<Arc<Self::ShardStats>>,
    ) -> impl Collector;
    /// The statistics worker: a log line every `interval`.
    const STATISTICS: StatisticsWorker<Self::SocketStats>;
    /// On SIGUSR1, after the access list: reload what else the daemon
    /// reloads (TLS certificates).
    fn reload(&self) {}
}

/// Run a daemon until a signal or a worker failure; returns the exit code.
/// `prepare` checks the config and makes the daemon (loading TLS
/// certificates and the like) after the signal handlers are in place, so
/// a SIGTERM or SIGUSR1 (`systemctl reload`) that arrives while starting
/// is queued for the supervisor instead of killing the process.
pub fn run<D: Daemon>(prepare: impl FnOnce() -> anyhow::Result<D>) -> anyhow::Result<i32> {
    let supervisor = Supervisor::new();
    supervisor.handle_signals()?;
    let daemon = prepare()?;
    let settings = daemon.settings();
    let access_lists = AccessLists::load(settings.access_list)?;
    let ip_filters = IpFilters::load(settings.ip_filter)?;

    let sockets = crate::bind::bind_per_worker(
        settings.socket_workers,
        settings.address,
        |address| daemon.bind(address),
        D::local_addr,
    )?;
    let listening = match sockets.first() {
        Some(first) => D::local_addr(first)?,
        None => settings.address,
    };
    log::info!("listening on {listening} ({})", settings.scheme);
    let metrics_endpoint = MetricsEndpoint::bind(settings.metrics)?;
    if let Some(endpoint) = &metrics_endpoint {
        log::info!("metrics on {} (GET /metrics)", endpoint.local_addr());
    }
    drop_privileges(settings.privileges)?;

    let clock = ServerStartInstant::new();
    let heartbeats = Heartbeats::new(clock);
    let inline = settings.request_workers == 0;
    let (request_senders, request_receivers) =
        channels(settings.request_workers, settings.channel_capacity);
    let (response_senders, response_receivers) =
        channels(settings.socket_workers, settings.channel_capacity);
    let (polls, wakers) = polls_and_wakers(settings.socket_workers, D::WAKER_TOKEN)?;

    let socket_stats: Vec<Arc<D::SocketStats>> = (0..settings.socket_workers)
        .map(|_| Arc::default())
        .collect();
    let defence_counters: Vec<Arc<DefenceCounters>> = (0..settings.socket_workers)
        .map(|_| Arc::default())
        .collect();
    // With request_workers = 0 the socket worker owns the one shard.
    let shard_count = settings.request_workers.max(1);
    let swarm_gauges: Vec<Arc<SwarmGauges>> = (0..shard_count).map(|_| Arc::default()).collect();
    let shard_stats: Vec<Arc<D::ShardStats>> = (0..shard_count).map(|_| Arc::default()).collect();
    // Made (and loaded from the state file) before any worker starts:
    // nothing is served from empty swarms.
    let mut shards = daemon.shards(
        clock.seconds_elapsed(),
        swarm_gauges
            .iter()
            .cloned()
            .zip(shard_stats.iter().cloned())
            .collect(),
    );
    let (inline_owner, inline_commands) = command_channel();
    let mut inline_shard = if inline {
        let shard = shards.pop();
        shard.map(|shard| {
            InlineShard::new(
                shard,
                inline_commands,
                clock.seconds_elapsed(),
                secs_u32(settings.cleaning_interval),
            )
        })
    } else {
        None
    };

    for (index, (((socket, poll), (response_receiver, stats)), defence_counters)) in sockets
        .into_iter()
        .zip(polls)
        .zip(
            response_receivers
                .into_iter()
                .zip(socket_stats.iter().cloned()),
        )
        .zip(defence_counters.iter().cloned())
        .enumerate()
    {
        let worker = daemon.socket_worker(SocketWiring {
            index,
            socket,
            poll,
            clock,
            access_list: access_lists.cache(),
            defences: Defences::new(
                ip_filters.cache(),
                settings.rate_limit.limiter(),
                defence_counters,
            ),
            request_senders: request_senders.clone(),
            response_receiver,
            stats,
            heartbeat: heartbeats.register(format!("socket-{index}")),
            inline_shard: inline_shard.take(),
        })?;
        supervisor.spawn(format!("socket-{index}"), worker)?;
    }
    drop(request_senders);

    let shard_control = if inline {
        ShardControl::new(vec![inline_owner])
    } else {
        spawn_request_workers(
            &supervisor,
            &heartbeats,
            request_receivers,
            &response_senders,
            &wakers,
            secs_u32(settings.cleaning_interval),
            shards,
        )?
    };
    scrape_export::spawn(
        &supervisor,
        settings.scrape_export,
        settings.name,
        shard_control.clone(),
    )?;

    if let Some(endpoint) = metrics_endpoint {
        let collector = daemon.metrics(socket_stats.clone(), swarm_gauges.clone(), shard_stats);
        let status = Status {
            daemon: settings.name,
            version: settings.version,
            listen: format!("{}://{}", settings.scheme, listening),
            socket_workers: settings.socket_workers,
            request_workers: settings.request_workers,
            heartbeats,
            swarms: swarm_gauges.clone(),
            show_largest_swarms: settings.metrics.show_largest_swarms,
        };
        let defences = DefenceCollector::new(defence_counters);
        endpoint.spawn(
            &supervisor,
            settings.name,
            vec![
                Box::new(collector),
                Box::new(defences),
                Box::new(crate::status::FileCollector),
            ],
            status,
        )?;
    }
    statistics::spawn(&supervisor, settings.statistics, move |interval| {
        D::STATISTICS(interval, socket_stats, swarm_gauges)
    })?;

    let state_file = settings.state;
    Ok(supervisor.run(
        || {
            access_lists.reload_and_log();
            ip_filters.reload_and_log();
            daemon.reload();
        },
        || {
            if let Some((config, kind)) = state_file {
                state::save_and_log(config, kind, &shard_control);
            }
        },
    ))
}

/// What both TCP daemons (HTTP, WebSocket) prepare besides their config:
/// file descriptors for every connection promised (or fewer connections,
/// `fd_limit`), the trusted reverse proxies, and the TLS config when a
/// certificate is configured; and, on SIGUSR1, the certificate reloaded.
pub struct TcpFront {
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub tls: Option<crate::tls::SharedTlsConfig>,
    tls_paths: (std::path::PathBuf, std::path::PathBuf),
}

impl TcpFront {
    /// `max_connections` is lowered to what the descriptor limit allows.
    pub fn prepare(
        socket_workers: usize,
        max_connections: &mut usize,
        trusted_proxies: Vec<ipnet::IpNet>,
        certificate_path: &std::path::Path,
        private_key_path: &std::path::Path,
    ) -> anyhow::Result<Self> {
        *max_connections = crate::fd_limit::fit_connections(socket_workers, *max_connections);
        let enabled = !certificate_path.as_os_str().is_empty();
        let tls = crate::tls::load_shared(enabled, certificate_path, private_key_path)?;
        Ok(Self {
            trusted_proxies,
            tls,
            tls_paths: (certificate_path.into(), private_key_path.into()),
        })
    }

    /// The scheme a listener speaks: `plain` or `secure` (e.g. "ws", "wss").
    pub fn scheme(&self, plain: &'static str, secure: &'static str) -> &'static str {
        if self.tls.is_some() { secure } else { plain }
    }

    /// Load the certificate again (new connections get it; a broken file
    /// keeps the old one, logged).
    pub fn reload(&self) {
        if let Some(shared) = &self.tls {
            let (certificate, key) = &self.tls_paths;
            crate::tls::reload_and_log(shared, certificate, key);
        }
    }
}
