//! The daemon's config: every field optional in the file, with the defaults
//! an operator of a public tracker would choose.

use std::net::SocketAddr;

use aquatic_common::interval::Jitter;
use aquatic_common::state::StateConfig;
use aquatic_common::validation::check_only_ipv6;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

aquatic_common::daemon_config!(include_str!("default_config.toml"), state: StateConfig);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    #[default(SocketAddr::from(([0, 0, 0, 0], 3000)))]
    pub address: SocketAddr,
    pub only_ipv6: bool,
    #[default(8 * 1024 * 1024)]
    pub socket_recv_buffer_size: usize,
    #[default(50)]
    pub poll_timeout_ms: u64,
    #[default(4096)]
    pub request_channel_capacity: usize,
    #[default(4096)]
    pub max_pending_sends: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    #[default(50)]
    pub max_response_peers: usize,
    #[default(70)]
    pub max_scrape_torrents: usize,
    #[default(250_000)]
    pub max_peers_per_torrent: usize,
    #[default(20_000_000)]
    pub max_peers: usize,
    #[default(1800)]
    pub peer_announce_interval: u32,
    #[default(Jitter::Auto)]
    pub peer_announce_interval_jitter: Jitter,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct CleaningConfig {
    #[default(60)]
    pub interval: u64,
    #[default(2000)]
    pub max_peer_age: u32,
    #[default(120)]
    pub max_connection_age: u32,
}

impl Config {
    /// Reject values the daemon cannot run with, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.shared_checks(self.state.path())?;
        check_only_ipv6(self.network.only_ipv6, self.network.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
