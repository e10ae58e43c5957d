//! The daemon's config: every field optional in the file, with the defaults
//! an operator of a public tracker would choose.

use std::net::SocketAddr;
use std::path::PathBuf;

use aquatic_common::interval::Jitter;
use aquatic_common::state::StateConfig;
use aquatic_common::validation::first_failed;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

aquatic_common::daemon_config!(include_str!("default_config.toml"), state: StateConfig);

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
    #[default(10_000)]
    pub max_connections: usize,
    #[default(30)]
    pub connection_idle_timeout: u32,
    #[default(KeepAlive::WhenAsked)]
    pub keep_alive: KeepAlive,
    #[default(1024)]
    pub tcp_backlog: u32,
    #[default(50)]
    pub poll_timeout_ms: u64,
    #[default(4096)]
    pub request_channel_capacity: usize,
}

/// Whether a connection stays open after an answer, for more requests.
///
/// Most tracker traffic is one announce per connection. An HTTP/1.1 client
/// that sends no `Connection` header (curl: Transmission, rtorrent) is
/// persistent by the protocol's default, but usually sends nothing more
/// for half an hour; keeping it open costs an epoll registration and a
/// second wake-up for its close. Closing after the answer, with
/// `Connection: close`, is what opentracker always does and every client
/// handles. Connections from `trusted_proxies` are always kept open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepAlive {
    /// Keep open whatever HTTP allows (closing on `Connection: close` and
    /// for HTTP/1.0 without `keep-alive`).
    Always,
    /// Keep open only when the request says `Connection: keep-alive`.
    WhenAsked,
    /// Close after every answer.
    Never,
}

impl KeepAlive {
    /// Whether to keep the connection open after answering a request
    /// with this `keep_alive` and `keep_alive_asked`.
    pub fn keeps(self, keep_alive: bool, asked: bool) -> bool {
        match self {
            Self::Always => keep_alive,
            Self::WhenAsked => keep_alive && asked,
            Self::Never => false,
        }
    }
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
    #[default(50)]
    pub max_response_peers: usize,
    #[default(100)]
    pub max_scrape_torrents: usize,
    #[default(250_000)]
    pub max_peers_per_torrent: usize,
    #[default(20_000_000)]
    pub max_peers: usize,
    #[default(1800)]
    pub peer_announce_interval: u32,
    #[default(Jitter::Auto)]
    pub peer_announce_interval_jitter: Jitter,
    #[default(60)]
    pub min_announce_interval: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct CleaningConfig {
    #[default(60)]
    pub interval: u64,
    #[default(2000)]
    pub max_peer_age: u32,
}

impl Config {
    /// Reject values the daemon cannot run with, naming the field.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.shared_checks(self.state.path())?;
        aquatic_common::tcp_network_checks!(self.network)?;
        first_failed([(
            self.network.connection_idle_timeout == 0,
            "network.connection_idle_timeout must be at least 1 second",
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_named() {
        let mut config = Config::default();
        config.network.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into(), "nonsense".into()];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("nonsense"), "{err}");
        config.network.trusted_proxies.pop();
        config.validate().unwrap();
        config.network.tls_certificate_path = "cert.pem".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("together")
        );
    }
}
