//! The load tester's config: every field optional in the file; the printed
//! default config (`-p`) documents each one.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use aquatic_cli_helpers::LogLevel;
use aquatic_load_test_common::limits;
use serde::{Deserialize, Serialize};

pub use aquatic_load_test_common::limits::{
    MAX_REQUEST_TIMEOUT_MS, MAX_REQUESTS_PER_SECOND, MAX_SECONDS,
};

/// Most info hashes in one scrape: a message of at most about 30 KB, well
/// within the 128 KiB every WebTorrent tracker must accept.
pub const MAX_SCRAPE_TORRENTS: usize = 500;

/// Most offers in one announce: about 80 KB of JSON with the fake SDP,
/// within the 128 KiB message size trackers must accept. (Browsers send
/// 10 at most; aquatic_ws relays `max_offers` of them, 10 by default.)
pub const MAX_OFFERS_PER_ANNOUNCE: usize = 50;

/// Most connections per worker (one mio token each; far beyond what one
/// thread keeps busy).
pub const MAX_CONNECTIONS_PER_WORKER: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the tracker under test.
    pub server_address: SocketAddr,
    /// wss:// instead of ws://, without checking the tracker's certificate.
    pub tls: bool,
    /// Worker threads.
    pub workers: usize,
    /// WebSocket connections (peers) per worker, one request in flight each.
    pub connections_per_worker: usize,
    /// Run time in seconds.
    pub duration: u64,
    /// Seconds between progress lines; 0: none.
    pub summarize_every: u64,
    /// Milliseconds from sending a request (or starting a connection) to
    /// its reply before it counts as timed out.
    pub request_timeout_ms: u64,
    /// Cap on announces and scrapes sent per second, over all workers
    /// (each gets an equal share); 0: no cap.
    pub max_requests_per_second: u64,
    /// Replies after which a connection is closed (its peers leave) and a
    /// new one, a new peer, opened; 0: connections stay open.
    pub requests_per_connection: u64,
    pub requests: RequestConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_address: SocketAddr::from(([127, 0, 0, 1], 3000)),
            tls: false,
            workers: 1,
            connections_per_worker: 64,
            duration: 30,
            summarize_every: 2,
            request_timeout_ms: 2000,
            max_requests_per_second: 0,
            requests_per_connection: 0,
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
    /// Offers (with fake SDP) in every announce; numwant is the same.
    pub offers_per_announce: usize,
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
            number_of_torrents: 10_000,
            torrent_selection_exponent: 1.0,
            offers_per_announce: 5,
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
        if r.offers_per_announce > MAX_OFFERS_PER_ANNOUNCE {
            bail!("requests.offers_per_announce must be at most {MAX_OFFERS_PER_ANNOUNCE}");
        }
        if r.scrape_max_torrents == 0 || r.scrape_max_torrents > MAX_SCRAPE_TORRENTS {
            bail!("requests.scrape_max_torrents must be between 1 and {MAX_SCRAPE_TORRENTS}");
        }
        Ok(())
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
            |c| c.requests.torrent_selection_exponent = f64::NAN,
            "torrent_selection_exponent",
        );
        check(
            |c| c.requests.offers_per_announce = MAX_OFFERS_PER_ANNOUNCE + 1,
            "offers_per_announce",
        );
        check(
            |c| c.requests.scrape_max_torrents = 0,
            "scrape_max_torrents",
        );
        check(
            |c| c.requests.scrape_max_torrents = MAX_SCRAPE_TORRENTS + 1,
            "scrape_max_torrents",
        );
        check(
            |c| c.requests.peer_seeder_probability = 1.5,
            "peer_seeder_probability",
        );
        let mut no_offers = Config::default();
        no_offers.requests.offers_per_announce = 0;
        no_offers.validate().unwrap();
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err =
            aquatic_cli_helpers::parse_config::<Config>("offers_per_anounce = 3\n").unwrap_err();
        assert!(format!("{err:#}").contains("offers_per_anounce"));
    }
}
