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
//! The main thread binds every socket (and the metrics endpoint, when
//! `[metrics]` enables it), drops privileges, loads the swarm state file
//! (`[state]`) into the shards, starts the workers and then only
//! supervises: SIGTERM/SIGINT save the swarm state and exit cleanly,
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

use aquatic_common::ServerStartInstant;
use aquatic_common::access_list::{self, AccessListCache};
use aquatic_common::metrics::MetricsEndpoint;
use aquatic_common::privileges::drop_privileges;
use aquatic_common::request_loop::{channels, polls_and_wakers, spawn_request_workers};
use aquatic_common::scrape_export;
use aquatic_common::shard_parts::{ShardControl, command_channel};
use aquatic_common::state::{self, DaemonKind};
use aquatic_common::supervision::Supervisor;
use aquatic_common::time::secs_u32;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use socket2::{Domain, Protocol, Socket, Type};

use crate::common::{SocketWorkerStats, SwarmGauges, shard_of};
use crate::config::Config;
use crate::connection_id::ConnectionValidator;
use crate::swarm::{SwarmConfig, TorrentMaps};
use crate::workers::request::UdpShard;
use crate::workers::socket::{SocketWorker, SocketWorkerParts, WAKER_TOKEN};
use crate::workers::statistics::MetricsCollector;

/// Run the tracker until a signal or a worker failure; returns the exit code.
pub fn run(config: Config) -> anyhow::Result<i32> {
    // Signal handlers first: a SIGTERM or SIGUSR1 (e.g. `systemctl reload`)
    // that arrives while starting is queued for the supervisor instead of
    // killing the process with the default action.
    let supervisor = Supervisor::new();
    supervisor.handle_signals()?;
    config.validate()?;
    let config = Arc::new(config);
    let shared_access_list = access_list::create_shared(&config.access_list)?;

    let sockets = aquatic_common::bind::bind_per_worker(
        config.socket_workers,
        config.network.address,
        |address| create_socket(&config, address),
        |socket| socket.local_addr(),
    )?;
    if let Some(first) = sockets.first() {
        log::info!("listening on {}", first.local_addr()?);
    }
    let metrics_endpoint = MetricsEndpoint::bind(&config.metrics)?;
    if let Some(endpoint) = &metrics_endpoint {
        log::info!("metrics on {} (GET /metrics)", endpoint.local_addr());
    }
    drop_privileges(&config.privileges)?;

    let clock = ServerStartInstant::new();
    let validator = ConnectionValidator::new(config.cleaning.max_connection_age);

    let capacity = config.network.request_channel_capacity;
    let (request_senders, request_receivers) = channels(config.request_workers, capacity);
    let (response_senders, response_receivers) = channels(config.socket_workers, capacity);
    let (polls, wakers) = polls_and_wakers(config.socket_workers, WAKER_TOKEN)?;

    let socket_stats: Vec<Arc<SocketWorkerStats>> =
        (0..config.socket_workers).map(|_| Arc::default()).collect();
    // With request_workers = 0 the socket worker owns the one shard.
    let swarm_gauges: Vec<Arc<SwarmGauges>> = (0..config.request_workers.max(1))
        .map(|_| Arc::default())
        .collect();
    let swarm_config = SwarmConfig {
        max_response_peers: config.protocol.max_response_peers,
        peer_announce_interval: config.protocol.peer_announce_interval,
        max_peer_age: config.cleaning.max_peer_age,
    };
    let shard_limits = config.shard_limits();
    // Loaded before any worker starts: nothing is served from empty swarms.
    let mut shard_maps: Vec<Option<TorrentMaps>> = state::load_shards(
        &config.state,
        DaemonKind::Udp,
        config.request_workers.max(1),
        clock.seconds_elapsed(),
        |info_hash| shard_of(info_hash, config.request_workers),
        || TorrentMaps::new(shard_limits),
        TorrentMaps::restore,
    )
    .into_iter()
    .map(Some)
    .collect();
    let mut new_shard = |index: usize| UdpShard {
        config: swarm_config,
        maps: shard_maps
            .get_mut(index)
            .and_then(Option::take)
            .unwrap_or_else(|| TorrentMaps::new(shard_limits)),
        rng: SmallRng::from_rng(&mut rand::rng()),
        // One per shard by construction; a fresh one would only go unreported.
        gauges: swarm_gauges.get(index).cloned().unwrap_or_default(),
    };
    // With request_workers = 0 the socket worker owns the shard and takes
    // the commands for it.
    let (inline_owner, inline_commands) = command_channel();
    let mut inline_commands = Some(inline_commands);

    for (index, ((socket, poll), response_receiver)) in sockets
        .into_iter()
        .zip(polls)
        .zip(response_receivers)
        .enumerate()
    {
        let worker = SocketWorker::new(SocketWorkerParts {
            config: config.clone(),
            socket,
            poll,
            clock,
            validator: validator.clone(),
            access_list: AccessListCache::new(config.access_list.mode, shared_access_list.clone()),
            index,
            request_senders: request_senders.clone(),
            response_receiver,
            // One per socket worker by construction; a fresh one would only
            // go unreported.
            stats: socket_stats.get(index).cloned().unwrap_or_default(),
            inline_shard: (config.request_workers == 0).then(|| new_shard(0)),
            shard_commands: inline_commands
                .take()
                .filter(|_| config.request_workers == 0),
        })?;
        supervisor.spawn(format!("socket-{index}"), move || worker.run())?;
    }
    drop(request_senders);

    let mut shard_control = spawn_request_workers(
        &supervisor,
        clock,
        request_receivers,
        &response_senders,
        &wakers,
        secs_u32(config.cleaning.interval),
        &mut new_shard,
    )?;
    if config.request_workers == 0 {
        shard_control = ShardControl::new(vec![inline_owner]);
    }
    scrape_export::spawn(
        &supervisor,
        &config.scrape_export,
        "aquatic_udp",
        shard_control.clone(),
    )?;

    if let Some(endpoint) = metrics_endpoint {
        let collector = MetricsCollector::new(socket_stats.clone(), swarm_gauges.clone());
        endpoint.spawn(&supervisor, "aquatic_udp", collector)?;
    }
    aquatic_common::statistics::spawn(&supervisor, &config.statistics, move |interval| {
        workers::statistics::run(interval, socket_stats, swarm_gauges)
    })?;

    let reload_config = config.clone();
    Ok(supervisor.run(
        move || access_list::reload_and_log(&reload_config.access_list, &shared_access_list),
        || state::save_and_log(&config.state, DaemonKind::Udp, &shard_control),
    ))
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
