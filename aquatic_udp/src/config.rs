//! The daemon's config: every field optional in the file, with the defaults
//! an operator of a public tracker would choose.

use std::net::SocketAddr;

use aquatic_cli_helpers::LogLevel;
use aquatic_common::access_list::AccessListConfig;
use aquatic_common::interval::{Jitter, jitter_check};
use aquatic_common::ip_filter::IpFilterConfig;
use aquatic_common::metrics::MetricsConfig;
use aquatic_common::privileges::PrivilegeConfig;
use aquatic_common::rate_limit::RateLimitConfig;
use aquatic_common::scrape_export::ScrapeExportConfig;
use aquatic_common::source::SourceBudgetConfig;
use aquatic_common::state::StateConfig;
use aquatic_common::statistics::StatisticsConfig;
use aquatic_common::validation::{
    check_only_ipv6, first_failed, peer_lifetime_checks, worker_checks,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub socket_workers: usize,
    pub request_workers: usize,
    pub log_level: LogLevel,
    pub network: NetworkConfig,
    pub protocol: ProtocolConfig,
    pub cleaning: CleaningConfig,
    pub source_budgets: SourceBudgetConfig,
    pub statistics: StatisticsConfig,
    pub metrics: MetricsConfig,
    pub privileges: PrivilegeConfig,
    pub access_list: AccessListConfig,
    pub ip_filter: IpFilterConfig,
    pub rate_limit: RateLimitConfig,
    pub state: StateConfig,
    pub scrape_export: ScrapeExportConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket_workers: 1,
            request_workers: 1,
            log_level: LogLevel::Info,
            network: NetworkConfig::default(),
            protocol: ProtocolConfig::default(),
            cleaning: CleaningConfig::default(),
            source_budgets: SourceBudgetConfig::default(),
            statistics: StatisticsConfig::default(),
            metrics: MetricsConfig::default(),
            privileges: PrivilegeConfig::default(),
            access_list: AccessListConfig::default(),
            ip_filter: IpFilterConfig::default(),
            rate_limit: RateLimitConfig::default(),
            state: StateConfig::default(),
            scrape_export: ScrapeExportConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub address: SocketAddr,
    pub only_ipv6: bool,
    pub socket_recv_buffer_size: usize,
    pub poll_timeout_ms: u64,
    pub request_channel_capacity: usize,
    pub max_pending_sends: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([0, 0, 0, 0], 3000)),
            only_ipv6: false,
            socket_recv_buffer_size: 8 * 1024 * 1024,
            poll_timeout_ms: 50,
            request_channel_capacity: 4096,
            max_pending_sends: 4096,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    pub max_response_peers: usize,
    pub max_scrape_torrents: usize,
    pub max_peers_per_torrent: usize,
    pub max_peers: usize,
    pub peer_announce_interval: u32,
    pub peer_announce_interval_jitter: Jitter,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            max_response_peers: 50,
            max_scrape_torrents: 70,
            max_peers_per_torrent: 250_000,
            max_peers: 20_000_000,
            peer_announce_interval: 1800,
            peer_announce_interval_jitter: Jitter::Auto,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleaningConfig {
    pub interval: u64,
    pub max_peer_age: u32,
    pub max_connection_age: u32,
}

impl Default for CleaningConfig {
    fn default() -> Self {
        Self {
            interval: 60,
            max_peer_age: 2000,
            max_connection_age: 120,
        }
    }
}

impl Config {
    /// The memory ceilings of one shard, and each source's shares of
    /// them: `max_peers` is split over the request workers (the socket
    /// worker when there are none).
    pub fn shard_limits(&self) -> aquatic_common::torrent_map::Limits {
        aquatic_common::torrent_map::Limits::with_shares(
            self.protocol.max_peers_per_torrent,
            (self.protocol.max_peers / self.request_workers.max(1)).max(1),
            &self.source_budgets,
        )
    }

    /// Reject values the daemon cannot run with, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let n = &self.network;
        first_failed(worker_checks(self.socket_workers, self.request_workers))?;
        first_failed(self.source_budgets.checks())?;
        first_failed(self.rate_limit.checks())?;
        first_failed(peer_lifetime_checks(
            self.cleaning.max_peer_age,
            self.cleaning.interval,
        ))?;
        aquatic_common::interval::warn_if_peers_expire_early(
            self.cleaning.max_peer_age,
            self.protocol.peer_announce_interval,
            self.protocol.peer_announce_interval_jitter,
        );
        first_failed([
            jitter_check(
                self.protocol.peer_announce_interval,
                self.protocol.peer_announce_interval_jitter,
            ),
            (
                self.protocol.max_scrape_torrents == 0,
                "protocol.max_scrape_torrents must be at least 1",
            ),
            (
                self.cleaning.interval == 0,
                "cleaning.interval must be at least 1 second",
            ),
            (
                n.request_channel_capacity == 0,
                "network.request_channel_capacity must be at least 1",
            ),
            (
                self.scrape_export.path().is_some() && self.scrape_export.interval == 0,
                "scrape_export.interval must be at least 1 second",
            ),
            (
                self.state.path().is_some() && self.state.path() == self.scrape_export.path(),
                "state.path and scrape_export.path must name different files",
            ),
        ])?;
        check_only_ipv6(n.only_ipv6, n.address)
    }
}

impl aquatic_cli_helpers::Config for Config {
    const DEFAULT_TEMPLATE: &'static str = include_str!("default_config.toml");

    fn log_level(&self) -> Option<LogLevel> {
        Some(self.log_level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_matches_default_config() {
        aquatic_cli_helpers::check_default_template::<Config>();
        Config::default().validate().unwrap();
    }

    #[test]
    fn invalid_values_are_named() {
        let mut config = Config {
            socket_workers: 0,
            ..Config::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("socket_workers"), "{err}");
        config.socket_workers = 2;
        config.request_workers = 0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("request_workers")
        );
        config.socket_workers = 1;
        config.validate().unwrap();
        config.request_workers = 1;
        config.network.only_ipv6 = true;
        assert!(config.validate().is_err());
    }
}
