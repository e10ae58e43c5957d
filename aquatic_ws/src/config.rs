//! The daemon's config: every field optional in the file, with the defaults
//! an operator of a public tracker would choose.

use std::net::SocketAddr;
use std::path::PathBuf;

use aquatic_common::interval::Jitter;
use aquatic_common::validation::first_failed;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

/// WebRTC offers carry SDP of a few KiB each, up to ten per announce: the
/// smallest limits that still let every real client through.
pub const MIN_FRAME_SIZE: usize = 64 * 1024;
pub const MIN_MESSAGE_SIZE: usize = 128 * 1024;

aquatic_common::daemon_config!(include_str!("default_config.toml"));

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    #[default(SocketAddr::from(([0, 0, 0, 0], 3000)))]
    pub address: SocketAddr,
    pub only_ipv6: bool,
    pub tls_certificate_path: PathBuf,
    pub tls_private_key_path: PathBuf,
    pub reverse_proxy_ip_header: String,
    pub trusted_proxies: Vec<String>,
    pub allowed_hosts: Vec<String>,
    #[default(8192)]
    pub max_request_head_size: usize,
    #[default(128 * 1024)]
    pub max_frame_size: usize,
    #[default(256 * 1024)]
    pub max_message_size: usize,
    #[default(1024 * 1024)]
    pub max_write_buffer_size: usize,
    #[default(50_000)]
    pub max_connections: usize,
    #[default(60)]
    pub ping_interval: u32,
    #[default(180)]
    pub connection_idle_timeout: u32,
    #[default(1024)]
    pub tcp_backlog: u32,
    #[default(50)]
    pub poll_timeout_ms: u64,
    #[default(4096)]
    pub request_channel_capacity: usize,
}

impl NetworkConfig {
    /// `trusted_proxies` parsed; an error names the entry.
    pub fn parse_trusted_proxies(&self) -> anyhow::Result<Vec<IpNet>> {
        aquatic_common::proxy::parse_trusted_proxies(&self.trusted_proxies)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    #[default(10)]
    pub max_offers: usize,
    #[default(100)]
    pub max_scrape_torrents: usize,
    #[default(1000)]
    pub max_torrents_per_connection: usize,
    #[default(100_000)]
    pub max_peers_per_torrent: usize,
    #[default(5_000_000)]
    pub max_peers: usize,
    #[default(2_000_000)]
    pub max_pending_offers: usize,
    #[default(60)]
    pub offer_timeout: u32,
    #[default(120)]
    pub peer_announce_interval: u32,
    #[default(Jitter::Auto)]
    pub peer_announce_interval_jitter: Jitter,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct CleaningConfig {
    #[default(30)]
    pub interval: u64,
    #[default(300)]
    pub max_peer_age: u32,
}

impl Config {
    /// Reject values the daemon cannot run with, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let n = &self.network;
        let p = &self.protocol;
        self.shared_checks(None)?;
        aquatic_common::tcp_network_checks!(self.network)?;
        first_failed([
            (p.max_offers == 0, "protocol.max_offers must be at least 1"),
            (
                p.max_torrents_per_connection == 0,
                "protocol.max_torrents_per_connection must be at least 1",
            ),
            (
                p.offer_timeout == 0,
                "protocol.offer_timeout must be at least 1 second",
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
                n.ping_interval == 0,
                "network.ping_interval must be at least 1 second",
            ),
            (
                n.connection_idle_timeout <= n.ping_interval,
                "network.connection_idle_timeout must be longer than network.ping_interval",
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
