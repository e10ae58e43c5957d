//! The load tester's config: every field optional in the file; the printed
//! default config (`-p`) documents each one.

use std::net::SocketAddr;
use std::path::PathBuf;

use aquatic_load_test_common::limits;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

/// Most info hashes in one scrape: a request of 16 + 20 n bytes must fit a
/// UDP datagram (65,507 bytes).
pub const MAX_SCRAPE_TORRENTS: usize = (65_507 - 16) / 20;

/// Most sockets per worker (one mio token each; far beyond what one thread
/// keeps busy).
pub const MAX_SOCKETS_PER_WORKER: usize = 65_536;

pub use aquatic_load_test_common::limits::{
    MAX_REQUEST_TIMEOUT_MS, MAX_REQUESTS_PER_SECOND, MAX_SECONDS,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the tracker under test.
    #[default(SocketAddr::from(([127, 0, 0, 1], 3000)))]
    pub server_address: SocketAddr,
    /// Worker threads.
    #[default(1)]
    pub workers: usize,
    /// UDP sockets per worker, one request in flight each.
    #[default(16)]
    pub sockets_per_worker: usize,
    /// Run time in seconds.
    #[default(30)]
    pub duration: u64,
    /// Seconds between progress lines; 0: none.
    #[default(2)]
    pub summarize_every: u64,
    /// Milliseconds before an unanswered request counts as timed out.
    #[default(500)]
    pub request_timeout_ms: u64,
    /// Cap on requests sent per second, over all workers (each gets an
    /// equal share); 0: no cap.
    pub max_requests_per_second: u64,
    pub requests: RequestConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct RequestConfig {
    #[default(1)]
    pub weight_connect: u32,
    #[default(10)]
    pub weight_announce: u32,
    #[default(1)]
    pub weight_scrape: u32,
    #[default(1_000_000)]
    pub number_of_torrents: u64,
    /// Zipf exponent over torrent ranks.
    #[default(1.0)]
    pub torrent_selection_exponent: f64,
    /// num_want of every announce.
    #[default(30)]
    pub peers_wanted: i32,
    #[default(10)]
    pub scrape_max_torrents: usize,
    #[default(0.75)]
    pub peer_seeder_probability: f64,
    /// Announces come from this many peers, each always the same (port,
    /// peer id, torrent, seeder or not); 0: every announce from a new one.
    pub number_of_peers: u64,
    pub info_hash_seed: u64,
    /// When not empty: write the info hashes here and exit.
    pub info_hash_file: PathBuf,
}

aquatic_load_test_common::load_test_config!(
    include_str!("default_config.toml"),
    sockets_per_worker,
    MAX_SOCKETS_PER_WORKER
);

impl Config {
    /// Reject values the load tester cannot run with; the message names the
    /// field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let r = &self.requests;
        self.shared_checks(
            &[r.weight_connect, r.weight_announce, r.weight_scrape],
            "requests: weight_connect, weight_announce and weight_scrape are all 0",
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
    use super::shared_config_tests::fails_naming;
    use super::*;

    #[test]
    fn own_checks_name_the_field() {
        fails_naming(
            |c| {
                c.requests.weight_connect = 0;
                c.requests.weight_announce = 0;
                c.requests.weight_scrape = 0;
            },
            "weight",
        );
        fails_naming(|c| c.requests.peers_wanted = -2, "peers_wanted");
        fails_naming(
            |c| c.requests.scrape_max_torrents = 0,
            "scrape_max_torrents",
        );
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = aquatic_cli_helpers::parse_config::<Config>("[requests]\nweight_conect = 1\n")
            .unwrap_err();
        assert!(format!("{err:#}").contains("weight_conect"));
    }
}
