//! aquatic_udp: a high-performance UDP BitTorrent tracker (BEP 15, BEP 41).
//!
//! ```text
//!   SO_REUSEPORT sockets, one per socket worker (mio event loop each):
//!   parse, check connection id and access list, answer connects and errors
//!          |  batches over crossbeam channels, one per shard  |
//!   request workers, each owning a shard of the torrents (no locks)
//!          |  batches back, one channel + mio::Waker per socket worker
//! ```
//!
//! Start-up and supervision are the shared skeleton
//! (`aquatic_common::daemon`): the main thread binds every socket (and the
//! metrics endpoint, when `[metrics]` enables it), drops privileges, loads
//! the swarm state file (`[state]`) into the shards, starts the workers and
//! then only supervises: SIGTERM/SIGINT save the swarm state and exit cleanly,
//! SIGUSR1 reloads the access list, a failing or panicking worker ends the
//! process with code 1. Each shard's owner writes its own part of the state
//! file and scrape export when asked (`aquatic_common::shard_parts`).
//!
//! Not here: wire formats (`aquatic_udp_protocol`) and the shared mechanisms
//! (`aquatic_common`). Swarm logic lives in [`swarm`] as plain data.

#![forbid(unsafe_code)]
pub mod common;
pub mod config;
pub mod connection_id;
pub mod swarm;
pub mod workers;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aquatic_common::SecondsSinceStart;
use aquatic_common::daemon::{self, Daemon, Settings, SocketWiring, StatisticsWorker};
use aquatic_common::interval::AnnounceInterval;
use aquatic_common::metrics::SwarmGauges;
use aquatic_common::state::{self, DaemonKind};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use socket2::{Domain, Protocol, Socket, Type};

use crate::common::{RequestMessage, ResponseMessage, SocketWorkerStats, shard_of};
use crate::config::Config;
use crate::connection_id::ConnectionValidator;
use crate::swarm::{SwarmConfig, TorrentMaps};
use crate::workers::request::UdpShard;
use crate::workers::socket::{SocketWorker, WAKER_TOKEN};
use crate::workers::statistics::MetricsCollector;

/// Run the tracker until a signal or a worker failure; returns the exit code.
pub fn run(config: Config) -> anyhow::Result<i32> {
    daemon::run(|| {
        config.validate()?;
        let validator = ConnectionValidator::new(config.cleaning.max_connection_age);
        Ok(Udp {
            config: Arc::new(config),
            validator,
        })
    })
}

/// What aquatic_udp adds to the shared daemon skeleton.
struct Udp {
    config: Arc<Config>,
    validator: ConnectionValidator,
}

impl Daemon for Udp {
    type Socket = std::net::UdpSocket;
    type Request = RequestMessage;
    type Response = ResponseMessage;
    type Shard = UdpShard;
    type SocketStats = SocketWorkerStats;
    type ShardStats = ();
    const WAKER_TOKEN: mio::Token = WAKER_TOKEN;
    const STATISTICS: StatisticsWorker<SocketWorkerStats> = workers::statistics::run;

    fn settings(&self) -> Settings<'_> {
        let config = &self.config;
        let scheme = "udp";
        aquatic_common::daemon_settings!(
            config,
            "aquatic_udp",
            scheme,
            Some((&config.state, DaemonKind::Udp))
        )
    }

    fn bind(&self, address: SocketAddr) -> anyhow::Result<Self::Socket> {
        create_socket(&self.config, address)
    }

    fn local_addr(socket: &Self::Socket) -> std::io::Result<SocketAddr> {
        socket.local_addr()
    }

    fn shards(
        &self,
        now: SecondsSinceStart,
        counters: Vec<(Arc<SwarmGauges>, Arc<()>)>,
    ) -> Vec<UdpShard> {
        let config = &self.config;
        let limits = config.shard_limits();
        let swarm_config = SwarmConfig {
            max_response_peers: config.protocol.max_response_peers,
            announce_interval: AnnounceInterval::configured(
                config.protocol.peer_announce_interval,
                config.protocol.peer_announce_interval_jitter,
            ),
            max_peer_age: config.cleaning.max_peer_age,
        };
        let maps = state::load_shards(
            &config.state,
            DaemonKind::Udp,
            counters.len(),
            now,
            |info_hash| shard_of(info_hash, config.request_workers),
            || TorrentMaps::new(limits),
            TorrentMaps::restore,
        );
        maps.into_iter()
            .zip(counters)
            .map(|(maps, (gauges, _))| UdpShard {
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
        let worker = SocketWorker::new(self.config.clone(), self.validator.clone(), wiring)?;
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
}

fn create_socket(config: &Config, address: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(config.network.only_ipv6)?;
    }
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    let wanted = config.network.socket_recv_buffer_size;
    if wanted != 0 {
        if let Err(err) = socket.set_recv_buffer_size(wanted) {
            log::warn!("cannot set socket receive buffer to {wanted} bytes: {err}");
        } else if let Ok(actual) = socket.recv_buffer_size() {
            // Linux reports twice the usable size; it caps at net.core.rmem_max.
            if actual / 2 < wanted {
                log::warn!(
                    "socket receive buffer is {} bytes, not the {wanted} configured: raise net.core.rmem_max",
                    actual / 2
                );
            }
        }
    }
    socket.bind(&address.into())?;
    // Answers leave from the address each request was sent to: ask for it.
    if let Err(err) =
        aquatic_common::datagrams::enable_local_addresses(socket.as_raw_fd(), address.is_ipv6())
    {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            log::warn!(
                "cannot learn the local address of requests ({err}): on a host with several addresses, answers leave from whichever the kernel picks, and clients with connected sockets may not accept them"
            );
        }
    }
    Ok(socket.into())
}
