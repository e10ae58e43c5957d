//! The load tester's config: every field optional in the file; the printed
//! default config (`-p`) documents each one.

use std::net::SocketAddr;
use std::path::PathBuf;

use aquatic_cli_helpers::LogLevel;
use aquatic_load_test_common::limits;
use serde::{Deserialize, Serialize};

pub use aquatic_load_test_common::limits::{
    MAX_REQUEST_TIMEOUT_MS, MAX_REQUESTS_PER_SECOND, MAX_SECONDS,
};

/// Most info hashes in one scrape request: a head of about 36 KB, far more
/// than trackers accept (they answer 431 or close the connection), and
/// within rustls' 64 KiB limit of unsent data.
pub const MAX_SCRAPE_TORRENTS: usize = 500;

/// Most connections per worker (one mio token each; far beyond what one
/// thread keeps busy).
pub const MAX_CONNECTIONS_PER_WORKER: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the tracker under test.
    pub server_address: SocketAddr,
    /// Worker threads.
    pub workers: usize,
    /// TCP connections per worker, one request in flight each.
    pub connections_per_worker: usize,
    /// Reuse connections (HTTP/1.1 keep-alive); false: one connection per
    /// request.
    pub keep_alive: bool,
    /// Send `Connection: keep-alive` (with `keep_alive`) or `Connection:
    /// close` (without), or (false) no such header: with `keep_alive =
    /// false`, a one-shot client that does not say so.
    pub connection_header: bool,
    /// HTTPS, without checking the tracker's certificate.
    pub tls: bool,
    /// With `tls`: resume sessions on new connections (false: a full
    /// handshake every time).
    pub tls_resumption: bool,
    /// Run time in seconds.
    pub duration: u64,
    /// Seconds between progress lines; 0: none.
    pub summarize_every: u64,
    /// Milliseconds from starting a request to the end of its response
    /// before it counts as timed out.
    pub request_timeout_ms: u64,
    /// Cap on requests sent per second, over all workers (each gets an
    /// equal share); 0: no cap.
    pub max_requests_per_second: u64,
    pub requests: RequestConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_address: SocketAddr::from(([127, 0, 0, 1], 3000)),
            workers: 1,
            connections_per_worker: 64,
            keep_alive: true,
            connection_header: true,
            tls: false,
            tls_resumption: true,
            duration: 30,
            summarize_every: 2,
            request_timeout_ms: 2000,
            max_requests_per_second: 0,
            requests: RequestConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestConfig {
    pub weight_announce: u32,
    pub weight_scrape: u32,
    pub number_of_torrents: u64,
    /// Zipf exponent over torrent ranks.
    pub torrent_selection_exponent: f64,
    /// numwant of every announce; -1: left out.
    pub peers_wanted: i32,
    pub scrape_max_torrents: usize,
    pub peer_seeder_probability: f64,
    pub info_hash_seed: u64,
    /// When not empty: write the info hashes here and exit.
    pub info_hash_file: PathBuf,
}

impl Default for RequestConfig {
    fn default() -> Self {
        Self {
            weight_announce: 10,
            weight_scrape: 1,
            number_of_torrents: 1_000_000,
            torrent_selection_exponent: 1.0,
            peers_wanted: 30,
            scrape_max_torrents: 10,
            peer_seeder_probability: 0.75,
            info_hash_seed: 0,
            info_hash_file: PathBuf::new(),
        }
    }
}

impl aquatic_cli_helpers::Config for Config {
    const DEFAULT_TEMPLATE: &'static str = include_str!("default_config.toml");

    /// The load tester prints its own output; no logging.
    fn log_level(&self) -> Option<LogLevel> {
        None
    }
}

impl Config {
    /// Reject values the load tester cannot run with; the message names the
    /// field.
    pub fn validate(&self) -> anyhow::Result<()> {
        limits::validate_workers(
            self.workers,
            "connections_per_worker",
            self.connections_per_worker,
            MAX_CONNECTIONS_PER_WORKER,
        )?;
        limits::validate_timing(
            self.duration,
            self.summarize_every,
            self.request_timeout_ms,
            self.max_requests_per_second,
        )?;
        limits::validate_server_address(self.server_address)?;

        let r = &self.requests;
        limits::validate_weights(
            &[r.weight_announce, r.weight_scrape],
            "requests: weight_announce and weight_scrape are both 0",
        )?;
        limits::validate_torrents(
            r.number_of_torrents,
            r.torrent_selection_exponent,
            r.peer_seeder_probability,
        )?;
        limits::validate_announce_and_scrape(
            r.peers_wanted,
            r.scrape_max_torrents,
            MAX_SCRAPE_TORRENTS,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_template_matches_default() {
        aquatic_cli_helpers::check_default_template::<Config>();
    }

    #[test]
    fn default_config_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn validation_names_the_field() {
        let check = |edit: fn(&mut Config), field: &str| {
            let mut config = Config::default();
            edit(&mut config);
            let message = format!("{:#}", config.validate().unwrap_err());
            assert!(message.contains(field), "{message}");
        };
        check(|c| c.workers = 0, "workers");
        check(|c| c.connections_per_worker = 0, "connections_per_worker");
        check(
            |c| c.connections_per_worker = MAX_CONNECTIONS_PER_WORKER + 1,
            "connections_per_worker",
        );
        check(|c| c.duration = 0, "duration");
        check(|c| c.summarize_every = u64::MAX, "summarize_every");
        check(|c| c.request_timeout_ms = 0, "request_timeout_ms");
        check(
            |c| c.max_requests_per_second = u64::MAX,
            "max_requests_per_second",
        );
        check(
            |c| c.server_address = "0.0.0.0:3000".parse().unwrap(),
            "server_address",
        );
        check(
            |c| {
                c.requests.weight_announce = 0;
                c.requests.weight_scrape = 0;
            },
            "weight",
        );
        check(|c| c.requests.number_of_torrents = 0, "number_of_torrents");
        check(
            |c| c.requests.torrent_selection_exponent = -1.0,
            "torrent_selection_exponent",
        );
        check(|c| c.requests.peers_wanted = -2, "peers_wanted");
        check(
            |c| c.requests.scrape_max_torrents = 0,
            "scrape_max_torrents",
        );
        check(
            |c| c.requests.scrape_max_torrents = MAX_SCRAPE_TORRENTS + 1,
            "scrape_max_torrents",
        );
        check(
            |c| c.requests.peer_seeder_probability = -0.1,
            "peer_seeder_probability",
        );
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = aquatic_cli_helpers::parse_config::<Config>("keep_alvie = false\n").unwrap_err();
        assert!(format!("{err:#}").contains("keep_alvie"));
    }
}
