//! aquatic_http: a high-performance HTTP(S) BitTorrent tracker (BEP 3, 7,
//! 23, 24, 48).
//!
//! ```text
//!   SO_REUSEPORT listeners, one per socket worker (mio event loop each):
//!   connections, optional TLS (rustls), parsing, access list, errors
//!          |  batches over crossbeam channels, one per shard  |
//!   request workers, each owning a shard of the torrents (no locks)
//!          |  batches back, one channel + mio::Waker per socket worker
//! ```
//!
//! Start-up and supervision are the shared skeleton
//! (`aquatic_common::daemon`). The main thread binds every listener (and the metrics endpoint, when
//! `[metrics]` enables it), reads the TLS files, drops privileges, loads
//! the swarm state file (`[state]`) into the shards, starts the workers
//! and then only supervises: SIGTERM/SIGINT save the swarm state and exit
//! cleanly, SIGUSR1 reloads the access list and the TLS certificate (new
//! connections get it; existing ones are not dropped), a failing or
//! panicking worker ends the process with code 1. Each shard's owner
//! writes its own part of the state file and scrape export when asked
//! (`aquatic_common::shard_parts`). Plain HTTP and HTTPS are two processes
//! with two configs: they never share swarm state.
//!
//! Not here: the wire format (`aquatic_http_protocol`) and the shared swarm
//! rules and mechanisms (`aquatic_common`).

#![forbid(unsafe_code)]
pub mod common;
pub mod config;
pub mod swarm;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use aquatic_common::SecondsSinceStart;
use aquatic_common::daemon::{self, Daemon, Settings, SocketWiring, StatisticsWorker, TcpFront};
use aquatic_common::interval::AnnounceInterval;
use aquatic_common::metrics::SwarmGauges;
use aquatic_common::state::{self, DaemonKind};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::common::{RequestMessage, ResponseMessage, SocketWorkerStats, shard_of};
use crate::config::Config;
use crate::swarm::{SwarmConfig, TorrentMaps};
use crate::workers::request::HttpShard;
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
        Ok(Http {
            config: Arc::new(config),
            front,
        })
    })
}

/// What aquatic_http adds to the shared daemon skeleton.
struct Http {
    config: Arc<Config>,
    front: TcpFront,
}

impl Daemon for Http {
    type Socket = std::net::TcpListener;
    type Request = RequestMessage;
    type Response = ResponseMessage;
    type Shard = HttpShard;
    type SocketStats = SocketWorkerStats;
    type ShardStats = ();
    const WAKER_TOKEN: mio::Token = WAKER_TOKEN;
    const STATISTICS: StatisticsWorker<SocketWorkerStats> = workers::statistics::run;

    fn settings(&self) -> Settings<'_> {
        let config = &self.config;
        let scheme = self.front.scheme("http", "https");
        aquatic_common::daemon_settings!(
            config,
            "aquatic_http",
            scheme,
            Some((&config.state, DaemonKind::Http))
        )
    }

    fn bind(&self, address: SocketAddr) -> anyhow::Result<Self::Socket> {
        create_listener(&self.config, address)
    }

    fn local_addr(socket: &Self::Socket) -> std::io::Result<SocketAddr> {
        socket.local_addr()
    }

    fn shards(
        &self,
        now: SecondsSinceStart,
        counters: Vec<(Arc<SwarmGauges>, Arc<()>)>,
    ) -> Vec<HttpShard> {
        let config = &self.config;
        let limits = config.shard_limits();
        let swarm_config = SwarmConfig {
            max_response_peers: config.protocol.max_response_peers,
            announce_interval: AnnounceInterval {
                base: config.protocol.peer_announce_interval,
                jitter: config
                    .protocol
                    .peer_announce_interval_jitter
                    .secs(config.protocol.peer_announce_interval),
                floor: config.protocol.min_announce_interval,
            },
            min_announce_interval: config.protocol.min_announce_interval,
            max_peer_age: config.cleaning.max_peer_age,
        };
        let maps = state::load_shards(
            &config.state,
            DaemonKind::Http,
            counters.len(),
            now,
            |info_hash| shard_of(info_hash, config.request_workers),
            || TorrentMaps::new(limits),
            TorrentMaps::restore,
        );
        maps.into_iter()
            .zip(counters)
            .map(|(maps, (gauges, _))| HttpShard {
                config: swarm_config,
                maps,
                rng: SmallRng::from_rng(&mut rand::rng()),
                gauges,
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
        _shards: Vec<Arc<()>>,
    ) -> impl aquatic_common::metrics::Collector {
        MetricsCollector::new(sockets, swarms)
    }

    fn reload(&self) {
        self.front.reload();
    }
}

fn create_listener(config: &Config, address: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    aquatic_common::bind::tcp_listener(
        address,
        config.network.only_ipv6,
        config.network.tcp_backlog,
    )
}
