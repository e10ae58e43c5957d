//! The top of every daemon's config, said once.
//!
//! The three daemons' `Config` have the same top-level fields (worker
//! counts, log level, their own `[network]`, `[protocol]` and `[cleaning]`,
//! then the shared sections), the same defaults for them, the same checks
//! of what they share, and the same tie to their TOML template.
//! [`daemon_config!`](macro@crate::daemon_config) defines all of that in the
//! daemon's crate, so that the daemon adds only its own sections' structs
//! and checks, as inherent methods of its `Config`.
//!
//! What the shared checks need of a daemon's own sections is named in
//! [`SharedChecks`]: `[protocol] peer_announce_interval`,
//! `peer_announce_interval_jitter`, `max_scrape_torrents`, `max_peers`,
//! `max_peers_per_torrent`; `[cleaning] interval` and `max_peer_age`;
//! `[network] request_channel_capacity`.

use std::net::SocketAddr;
use std::path::Path;

use crate::interval::{Jitter, jitter_check};
use crate::rate_limit::RateLimitConfig;
use crate::scrape_export::ScrapeExportConfig;
use crate::source::SourceBudgetConfig;
use crate::validation::{first_failed, peer_lifetime_checks, worker_checks};

/// The values of a daemon's config that the shared checks read.
pub struct SharedChecks<'a> {
    pub socket_workers: usize,
    pub request_workers: usize,
    pub source_budgets: &'a SourceBudgetConfig,
    pub rate_limit: &'a RateLimitConfig,
    pub scrape_export: &'a ScrapeExportConfig,
    /// `[state] path` when set, for the daemons that keep a state file.
    pub state_path: Option<&'a Path>,
    pub max_peer_age: u32,
    pub cleaning_interval: u64,
    pub announce_interval: u32,
    pub jitter: Jitter,
    pub max_scrape_torrents: usize,
    pub request_channel_capacity: usize,
}

impl SharedChecks<'_> {
    /// Fail with `config: MESSAGE` at the first shared check that fails;
    /// warn when peers would expire before they announce again.
    pub fn run(&self) -> anyhow::Result<()> {
        first_failed(worker_checks(self.socket_workers, self.request_workers))?;
        first_failed(self.source_budgets.checks())?;
        first_failed(self.rate_limit.checks())?;
        first_failed(peer_lifetime_checks(
            self.max_peer_age,
            self.cleaning_interval,
        ))?;
        crate::interval::warn_if_peers_expire_early(
            self.max_peer_age,
            self.announce_interval,
            self.jitter,
        );
        let export = self.scrape_export.path();
        first_failed([
            jitter_check(self.announce_interval, self.jitter),
            (
                self.max_scrape_torrents == 0,
                "protocol.max_scrape_torrents must be at least 1",
            ),
            (
                self.cleaning_interval == 0,
                "cleaning.interval must be at least 1 second",
            ),
            (
                self.request_channel_capacity == 0,
                "network.request_channel_capacity must be at least 1",
            ),
            (
                export.is_some() && self.scrape_export.interval == 0,
                "scrape_export.interval must be at least 1 second",
            ),
            (
                self.state_path.is_some() && self.state_path == export,
                "state.path and scrape_export.path must name different files",
            ),
        ])
    }
}

/// The `[network]` fields both TCP daemons (aquatic_http, aquatic_ws)
/// have, for their shared checks.
pub struct TcpNetworkChecks<'a> {
    pub address: SocketAddr,
    pub only_ipv6: bool,
    pub tls_certificate_path: &'a Path,
    pub tls_private_key_path: &'a Path,
    pub trusted_proxies: &'a [String],
    pub allowed_hosts: &'a [String],
    pub max_request_head_size: usize,
    pub max_connections: usize,
}

impl TcpNetworkChecks<'_> {
    /// Fail with `config: MESSAGE` (or the bad proxy entry) at the first
    /// check that fails.
    pub fn run(&self) -> anyhow::Result<()> {
        first_failed([
            (
                !self
                    .allowed_hosts
                    .iter()
                    .all(|h| crate::host::valid_entry(h)),
                "network.allowed_hosts entries must be host names or addresses without a port (\"tracker.example.org\", \"[2001:db8::1]\")",
            ),
            (
                self.max_request_head_size < 256,
                "network.max_request_head_size must be at least 256 bytes",
            ),
            (
                self.max_connections == 0,
                "network.max_connections must be at least 1",
            ),
            (
                self.tls_certificate_path.as_os_str().is_empty()
                    != self.tls_private_key_path.as_os_str().is_empty(),
                "network.tls_certificate_path and network.tls_private_key_path must be set together",
            ),
        ])?;
        crate::validation::check_only_ipv6(self.only_ipv6, self.address)?;
        crate::proxy::parse_trusted_proxies(self.trusted_proxies).map(drop)
    }
}

/// Defines the daemon's `Config` in the calling crate, from its
/// `NetworkConfig`, `ProtocolConfig` and `CleaningConfig` (which must be in
/// scope) and the extra sections it names last:
///
/// ```ignore
/// aquatic_common::daemon_config!(include_str!("default_config.toml"), state: StateConfig);
/// ```
///
/// It makes the struct with its serde attributes and `Default` (one socket
/// worker, one request worker, log level `info`), the
/// `aquatic_cli_helpers::Config` impl with the TOML template, the methods
/// `shared_checks` (see [`SharedChecks`]), `per_shard` and `shard_limits`,
/// and a test that the template and `Default` agree and are valid.
#[macro_export]
macro_rules! daemon_config {
    ($template:expr $(, $field:ident: $section:ty)* $(,)?) => {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            pub socket_workers: usize,
            pub request_workers: usize,
            pub log_level: aquatic_cli_helpers::LogLevel,
            pub network: NetworkConfig,
            pub protocol: ProtocolConfig,
            pub cleaning: CleaningConfig,
            pub source_budgets: $crate::source::SourceBudgetConfig,
            pub statistics: $crate::statistics::StatisticsConfig,
            pub metrics: $crate::metrics::MetricsConfig,
            pub privileges: $crate::privileges::PrivilegeConfig,
            pub access_list: $crate::access_list::AccessListConfig,
            pub ip_filter: $crate::ip_filter::IpFilterConfig,
            pub rate_limit: $crate::rate_limit::RateLimitConfig,
            pub scrape_export: $crate::scrape_export::ScrapeExportConfig,
            $(pub $field: $section,)*
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    socket_workers: 1,
                    request_workers: 1,
                    log_level: aquatic_cli_helpers::LogLevel::Info,
                    network: Default::default(),
                    protocol: Default::default(),
                    cleaning: Default::default(),
                    source_budgets: Default::default(),
                    statistics: Default::default(),
                    metrics: Default::default(),
                    privileges: Default::default(),
                    access_list: Default::default(),
                    ip_filter: Default::default(),
                    rate_limit: Default::default(),
                    scrape_export: Default::default(),
                    $($field: Default::default(),)*
                }
            }
        }

        impl aquatic_cli_helpers::Config for Config {
            const DEFAULT_TEMPLATE: &'static str = $template;

            fn log_level(&self) -> Option<aquatic_cli_helpers::LogLevel> {
                Some(self.log_level)
            }
        }

        impl Config {
            /// The checks every daemon makes; `state_path` is `[state]
            /// path` (when set) for a daemon that keeps a state file.
            fn shared_checks(&self, state_path: Option<&std::path::Path>) -> anyhow::Result<()> {
                $crate::daemon_config::SharedChecks {
                    socket_workers: self.socket_workers,
                    request_workers: self.request_workers,
                    source_budgets: &self.source_budgets,
                    rate_limit: &self.rate_limit,
                    scrape_export: &self.scrape_export,
                    state_path,
                    max_peer_age: self.cleaning.max_peer_age,
                    cleaning_interval: self.cleaning.interval,
                    announce_interval: self.protocol.peer_announce_interval,
                    jitter: self.protocol.peer_announce_interval_jitter,
                    max_scrape_torrents: self.protocol.max_scrape_torrents,
                    request_channel_capacity: self.network.request_channel_capacity,
                }
                .run()
            }

            /// A daemon-wide count split over the shards (at least 1 each).
            pub fn per_shard(&self, total: usize) -> usize {
                (total / self.request_workers.max(1)).max(1)
            }

            /// The memory ceilings of one shard, and each source's shares
            /// of them: `max_peers` is split over the request workers (the
            /// socket worker when there are none).
            pub fn shard_limits(&self) -> $crate::torrent_map::Limits {
                $crate::torrent_map::Limits::with_shares(
                    self.protocol.max_peers_per_torrent,
                    self.per_shard(self.protocol.max_peers),
                    &self.source_budgets,
                )
            }
        }

        #[cfg(test)]
        mod daemon_config_template {
            #[test]
            fn default_template_matches_default_config() {
                aquatic_cli_helpers::check_default_template::<super::Config>();
                <super::Config as Default>::default().validate().unwrap();
            }
        }
    };
}

/// Runs [`TcpNetworkChecks`] on a TCP daemon's `[network]` section:
/// `tcp_network_checks!(config.network)`.
#[macro_export]
macro_rules! tcp_network_checks {
    ($network:expr) => {{
        let n = &$network;
        $crate::daemon_config::TcpNetworkChecks {
            address: n.address,
            only_ipv6: n.only_ipv6,
            tls_certificate_path: &n.tls_certificate_path,
            tls_private_key_path: &n.tls_private_key_path,
            trusted_proxies: &n.trusted_proxies,
            allowed_hosts: &n.allowed_hosts,
            max_request_head_size: n.max_request_head_size,
            max_connections: n.max_connections,
        }
        .run()
    }};
}
