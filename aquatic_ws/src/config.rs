//! The daemon's config: every field optional in the file, with the defaults
//! an operator of a public tracker would choose.

use std::net::SocketAddr;
use std::path::PathBuf;

use aquatic_cli_helpers::LogLevel;
use aquatic_common::access_list::AccessListConfig;
use aquatic_common::interval::{Jitter, jitter_check};
use aquatic_common::ip_filter::IpFilterConfig;
use aquatic_common::metrics::MetricsConfig;
use aquatic_common::privileges::PrivilegeConfig;
use aquatic_common::rate_limit::RateLimitConfig;
use aquatic_common::scrape_export::ScrapeExportConfig;
use aquatic_common::source::SourceBudgetConfig;
use aquatic_common::statistics::StatisticsConfig;
use aquatic_common::validation::{
    check_only_ipv6, first_failed, peer_lifetime_checks, worker_checks,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// WebRTC offers carry SDP of a few KiB each, up to ten per announce: the
/// smallest limits that still let every real client through.
pub const MIN_FRAME_SIZE: usize = 64 * 1024;
pub const MIN_MESSAGE_SIZE: usize = 128 * 1024;

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
            scrape_export: ScrapeExportConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub address: SocketAddr,
    pub only_ipv6: bool,
    pub tls_certificate_path: PathBuf,
    pub tls_private_key_path: PathBuf,
    pub reverse_proxy_ip_header: String,
    pub trusted_proxies: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub max_request_head_size: usize,
    pub max_frame_size: usize,
    pub max_message_size: usize,
    pub max_write_buffer_size: usize,
    pub max_connections: usize,
    pub ping_interval: u32,
    pub connection_idle_timeout: u32,
    pub tcp_backlog: u32,
    pub poll_timeout_ms: u64,
    pub request_channel_capacity: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([0, 0, 0, 0], 3000)),
            only_ipv6: false,
            tls_certificate_path: PathBuf::new(),
            tls_private_key_path: PathBuf::new(),
            reverse_proxy_ip_header: String::new(),
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            max_request_head_size: 8192,
            max_frame_size: 128 * 1024,
            max_message_size: 256 * 1024,
            max_write_buffer_size: 1024 * 1024,
            max_connections: 50_000,
            ping_interval: 60,
            connection_idle_timeout: 180,
            tcp_backlog: 1024,
            poll_timeout_ms: 50,
            request_channel_capacity: 4096,
        }
    }
}

impl NetworkConfig {
    /// `trusted_proxies` parsed; an error names the entry.
    pub fn parse_trusted_proxies(&self) -> anyhow::Result<Vec<IpNet>> {
        aquatic_common::proxy::parse_trusted_proxies(&self.trusted_proxies)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    pub max_offers: usize,
    pub max_scrape_torrents: usize,
    pub max_torrents_per_connection: usize,
    pub max_peers_per_torrent: usize,
    pub max_peers: usize,
    pub max_pending_offers: usize,
    pub offer_timeout: u32,
    pub peer_announce_interval: u32,
    pub peer_announce_interval_jitter: Jitter,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            max_offers: 10,
            max_scrape_torrents: 100,
            max_torrents_per_connection: 1000,
            max_peers_per_torrent: 100_000,
            max_peers: 5_000_000,
            max_pending_offers: 2_000_000,
            offer_timeout: 60,
            peer_announce_interval: 120,
            peer_announce_interval_jitter: Jitter::Auto,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleaningConfig {
    pub interval: u64,
    pub max_peer_age: u32,
}

impl Default for CleaningConfig {
    fn default() -> Self {
        Self {
            interval: 30,
            max_peer_age: 300,
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
            self.per_shard(self.protocol.max_peers),
            &self.source_budgets,
        )
    }

    /// A daemon-wide count split over the shards (at least 1 each).
    pub fn per_shard(&self, total: usize) -> usize {
        (total / self.request_workers.max(1)).max(1)
    }

    /// Reject values the daemon cannot run with, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let n = &self.network;
        let p = &self.protocol;
        first_failed(worker_checks(self.socket_workers, self.request_workers))?;
        first_failed(self.source_budgets.checks())?;
        first_failed(self.rate_limit.checks())?;
        first_failed(peer_lifetime_checks(
            self.cleaning.max_peer_age,
            self.cleaning.interval,
        ))?;
        aquatic_common::interval::warn_if_peers_expire_early(
            self.cleaning.max_peer_age,
            p.peer_announce_interval,
            p.peer_announce_interval_jitter,
        );
        first_failed([
            jitter_check(p.peer_announce_interval, p.peer_announce_interval_jitter),
            (
                !n.allowed_hosts
                    .iter()
                    .all(|h| aquatic_common::host::valid_entry(h)),
                "network.allowed_hosts entries must be host names or addresses without a port (\"tracker.example.org\", \"[2001:db8::1]\")",
            ),
            (p.max_offers == 0, "protocol.max_offers must be at least 1"),
            (
                p.max_scrape_torrents == 0,
                "protocol.max_scrape_torrents must be at least 1",
            ),
            (
                p.max_torrents_per_connection == 0,
                "protocol.max_torrents_per_connection must be at least 1",
            ),
            (
                p.offer_timeout == 0,
                "protocol.offer_timeout must be at least 1 second",
            ),
            (
                self.cleaning.interval == 0,
                "cleaning.interval must be at least 1 second",
            ),
            (
                self.scrape_export.path().is_some() && self.scrape_export.interval == 0,
                "scrape_export.interval must be at least 1 second",
            ),
            (
                n.request_channel_capacity == 0,
                "network.request_channel_capacity must be at least 1",
            ),
            (
                n.max_request_head_size < 256,
                "network.max_request_head_size must be at least 256 bytes",
            ),
            (
                n.max_frame_size < MIN_FRAME_SIZE,
                "network.max_frame_size must be at least 65536 bytes (offers carry SDP)",
            ),
            (
                n.max_message_size < MIN_MESSAGE_SIZE.max(n.max_frame_size),
                "network.max_message_size must be at least 131072 bytes and at least network.max_frame_size",
            ),
            (
                n.max_write_buffer_size < n.max_message_size.saturating_mul(2),
                "network.max_write_buffer_size must be at least twice network.max_message_size",
            ),
            (
                n.max_connections == 0,
                "network.max_connections must be at least 1",
            ),
            (
                n.ping_interval == 0,
                "network.ping_interval must be at least 1 second",
            ),
            (
                n.connection_idle_timeout <= n.ping_interval,
                "network.connection_idle_timeout must be longer than network.ping_interval",
            ),
            (
                n.tls_certificate_path.as_os_str().is_empty()
                    != n.tls_private_key_path.as_os_str().is_empty(),
                "network.tls_certificate_path and network.tls_private_key_path must be set together",
            ),
        ])?;
        check_only_ipv6(n.only_ipv6, n.address)?;
        n.parse_trusted_proxies()?;
        Ok(())
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
        let mut config = Config::default();
        config.network.max_frame_size = 1000;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_frame_size"), "{err}");
        config.network.max_frame_size = MIN_FRAME_SIZE;
        config.network.trusted_proxies = vec!["nonsense".into()];
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("nonsense")
        );
        config.network.trusted_proxies.clear();
        config.network.tls_certificate_path = "cert.pem".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("together"), "{err}");
    }

    #[test]
    fn huge_message_size_is_an_error_not_an_overflow() {
        let mut config = Config::default();
        config.network.max_message_size = usize::MAX;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_write_buffer_size"), "{err}");
    }
}
