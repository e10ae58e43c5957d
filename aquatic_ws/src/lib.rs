//! aquatic_ws: a high-performance WebTorrent tracker. Browsers announce
//! over WebSocket (ws:// or wss://) and the tracker relays their WebRTC
//! offers and answers to other peers of the swarm.
//!
//! ```text
//!   SO_REUSEPORT listeners, one per socket worker (mio event loop each):
//!   connections, TLS (rustls), upgrade + framing (tungstenite), parsing,
//!   access list, per-connection limits
//!          |  batches over crossbeam channels, one per shard  |
//!   request workers, each owning a shard of the torrents (no locks):
//!   swarms, offer recipients, pending offers for answer checks
//!          |  batches back, one channel + mio::Waker per socket worker:
//!          |  replies, and offers/answers for that worker's connections
//! ```
//!
//! Start-up and supervision are the shared skeleton
//! (`aquatic_common::daemon`). The main thread binds every listener (and the metrics endpoint, when
//! `[metrics]` enables it), reads the TLS files, drops privileges, starts
//! the workers and then only supervises: SIGTERM/SIGINT exit cleanly,
//! SIGUSR1 reloads the access list and the TLS certificate (new
//! connections get it; existing ones are not dropped), a failing or
//! panicking worker ends the process with code 1.
//!
//! Not here: the wire format (`aquatic_ws_protocol`) and the shared swarm
//! rules and mechanisms (`aquatic_common`).

#![forbid(unsafe_code)]
pub mod common;
pub mod config;
pub mod offers;
pub mod swarm;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use aquatic_common::SecondsSinceStart;
use aquatic_common::daemon::{self, Daemon, Settings, SocketWiring, StatisticsWorker, TcpFront};
use aquatic_common::interval::AnnounceInterval;
use aquatic_common::metrics::SwarmGauges;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::common::{RequestMessage, ResponseMessage, ShardStats, SocketWorkerStats};
use crate::config::Config;
use crate::swarm::{SwarmConfig, WsShard};
use crate::workers::socket::{SocketWorker, WAKER_TOKEN};
use crate::workers::statistics::MetricsCollector;

/// Run the tracker until a signal or a worker failure; returns the exit code.
pub fn run(mut config: Config) -> anyhow::Result<i32> {
    daemon::run(|| {
        config.validate()?;
        let trusted_proxies = config.network.parse_trusted_proxies()?;
        let network = &mut config.network;
        let front = TcpFront::prepare(
            config.socket_workers,
            &mut network.max_connections,
            trusted_proxies,
            &network.tls_certificate_path,
            &network.tls_private_key_path,
        )?;
        Ok(Ws {
            config: Arc::new(config),
            front,
        })
    })
}

/// What aquatic_ws adds to the shared daemon skeleton. Its swarms are
/// bound to open connections, which a restart closes: no state file.
struct Ws {
    config: Arc<Config>,
    front: TcpFront,
}

impl Daemon for Ws {
    type Socket = std::net::TcpListener;
    type Request = RequestMessage;
    type Response = ResponseMessage;
    type Shard = WsShard;
    type SocketStats = SocketWorkerStats;
    type ShardStats = ShardStats;
    const WAKER_TOKEN: mio::Token = WAKER_TOKEN;
    const STATISTICS: StatisticsWorker<SocketWorkerStats> = workers::statistics::run;

    fn settings(&self) -> Settings<'_> {
        let config = &self.config;
        let scheme = self.front.scheme("ws", "wss");
        aquatic_common::daemon_settings!(config, "aquatic_ws", scheme, None)
    }

    fn bind(&self, address: SocketAddr) -> anyhow::Result<Self::Socket> {
        let network = &self.config.network;
        aquatic_common::bind::tcp_listener(address, network.only_ipv6, network.tcp_backlog)
    }

    fn local_addr(socket: &Self::Socket) -> std::io::Result<SocketAddr> {
        socket.local_addr()
    }

    fn shards(
        &self,
        _now: SecondsSinceStart,
        counters: Vec<(Arc<SwarmGauges>, Arc<ShardStats>)>,
    ) -> Vec<WsShard> {
        let config = &self.config;
        let max_pending_offers = config.per_shard(config.protocol.max_pending_offers);
        let swarm_config = SwarmConfig {
            max_offers: config.protocol.max_offers,
            announce_interval: AnnounceInterval::configured(
                config.protocol.peer_announce_interval,
                config.protocol.peer_announce_interval_jitter,
            ),
            max_peer_age: config.cleaning.max_peer_age,
            offer_timeout: config.protocol.offer_timeout,
            max_pending_offers,
            max_pending_offers_per_source: config.source_budgets.share_of(max_pending_offers),
        };
        let limits = config.shard_limits();
        counters
            .into_iter()
            .map(|(gauges, stats)| {
                WsShard::new(
                    swarm_config,
                    limits,
                    SmallRng::from_rng(&mut rand::rng()),
                    gauges,
                    stats,
                )
            })
            .collect()
    }

    fn socket_worker(
        &self,
        wiring: SocketWiring<Self>,
    ) -> anyhow::Result<impl FnOnce() -> anyhow::Result<()> + Send + 'static> {
        let worker = SocketWorker::new(self.config.clone(), &self.front, wiring)?;
        Ok(move || worker.run())
    }

    fn metrics(
        &self,
        sockets: Vec<Arc<SocketWorkerStats>>,
        swarms: Vec<Arc<SwarmGauges>>,
        shards: Vec<Arc<ShardStats>>,
    ) -> impl aquatic_common::metrics::Collector {
        MetricsCollector::new(sockets, swarms, shards)
    }

    fn reload(&self) {
        self.front.reload();
    }
}
