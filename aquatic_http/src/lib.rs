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
//! The main thread binds every listener (and the metrics endpoint, when
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
use aquatic_common::tls;
use arc_swap::ArcSwap;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::common::{SocketWorkerStats, SwarmGauges, shard_of};
use crate::config::Config;
use crate::swarm::{SwarmConfig, TorrentMaps};
use crate::workers::request::HttpShard;
use crate::workers::socket::{SocketWorker, SocketWorkerParts, WAKER_TOKEN};
use crate::workers::statistics::MetricsCollector;

/// Run the tracker until a signal or a worker failure; returns the exit code.
pub fn run(mut config: Config) -> anyhow::Result<i32> {
    // Signal handlers first: a SIGTERM or SIGUSR1 (e.g. `systemctl reload`)
    // that arrives while starting is queued for the supervisor instead of
    // killing the process with the default action.
    let supervisor = Supervisor::new();
    supervisor.handle_signals()?;
    config.validate()?;
    // Descriptors for every connection promised, or fewer connections.
    config.network.max_connections = aquatic_common::fd_limit::fit_connections(
        config.socket_workers,
        config.network.max_connections,
    );
    let config = Arc::new(config);
    let trusted_proxies = config.network.parse_trusted_proxies()?;
    let shared_access_list = access_list::create_shared(&config.access_list)?;
    let shared_tls = if config.network.tls_enabled() {
        Some(Arc::new(ArcSwap::new(tls::load(
            &config.network.tls_certificate_path,
            &config.network.tls_private_key_path,
        )?)))
    } else {
        None
    };

    let listeners = aquatic_common::bind::bind_per_worker(
        config.socket_workers,
        config.network.address,
        |address| create_listener(&config, address),
        |socket| socket.local_addr(),
    )?;
    if let Some(first) = listeners.first() {
        let scheme = if shared_tls.is_some() {
            "https"
        } else {
            "http"
        };
        log::info!("listening on {} ({scheme})", first.local_addr()?);
    }
    let metrics_endpoint = MetricsEndpoint::bind(&config.metrics)?;
    if let Some(endpoint) = &metrics_endpoint {
        log::info!("metrics on {} (GET /metrics)", endpoint.local_addr());
    }
    drop_privileges(&config.privileges)?;

    let clock = ServerStartInstant::new();
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
        min_announce_interval: config.protocol.min_announce_interval,
        max_peer_age: config.cleaning.max_peer_age,
    };
    let shard_limits = config.shard_limits();
    // Loaded before any worker starts: nothing is served from empty swarms.
    let mut shard_maps: Vec<Option<TorrentMaps>> = state::load_shards(
        &config.state,
        DaemonKind::Http,
        config.request_workers.max(1),
        clock.seconds_elapsed(),
        |info_hash| shard_of(info_hash, config.request_workers),
        || TorrentMaps::new(shard_limits),
        TorrentMaps::restore,
    )
    .into_iter()
    .map(Some)
    .collect();
    let mut new_shard = |index: usize| HttpShard {
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

    for (index, ((listener, poll), response_receiver)) in listeners
        .into_iter()
        .zip(polls)
        .zip(response_receivers)
        .enumerate()
    {
        let worker = SocketWorker::new(SocketWorkerParts {
            config: config.clone(),
            index,
            listener,
            poll,
            tls: shared_tls.clone(),
            trusted_proxies: trusted_proxies.clone(),
            access_list: AccessListCache::new(config.access_list.mode, shared_access_list.clone()),
            clock,
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
        "aquatic_http",
        shard_control.clone(),
    )?;

    if let Some(endpoint) = metrics_endpoint {
        let collector = MetricsCollector::new(socket_stats.clone(), swarm_gauges.clone());
        endpoint.spawn(&supervisor, "aquatic_http", collector)?;
    }
    aquatic_common::statistics::spawn(&supervisor, &config.statistics, move |interval| {
        workers::statistics::run(interval, socket_stats, swarm_gauges)
    })?;

    let reload_config = config.clone();
    Ok(supervisor.run(
        move || {
            access_list::reload_and_log(&reload_config.access_list, &shared_access_list);
            if let Some(shared) = &shared_tls {
                let network = &reload_config.network;
                tls::reload_and_log(
                    shared,
                    &network.tls_certificate_path,
                    &network.tls_private_key_path,
                );
            }
        },
        || state::save_and_log(&config.state, DaemonKind::Http, &shard_control),
    ))
}

fn create_listener(config: &Config, address: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    aquatic_common::bind::tcp_listener(
        address,
        config.network.only_ipv6,
        config.network.tcp_backlog,
    )
}
