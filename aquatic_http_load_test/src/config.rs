//! The load tester's config: every field optional in the file; the printed
//! default config (`-p`) documents each one.

use std::net::SocketAddr;
use std::path::PathBuf;

use aquatic_load_test_common::limits;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the tracker under test.
    #[default(SocketAddr::from(([127, 0, 0, 1], 3000)))]
    pub server_address: SocketAddr,
    /// Worker threads.
    #[default(1)]
    pub workers: usize,
    /// TCP connections per worker, one request in flight each.
    #[default(64)]
    pub connections_per_worker: usize,
    /// Reuse connections (HTTP/1.1 keep-alive); false: one connection per
    /// request.
    #[default(true)]
    pub keep_alive: bool,
    /// Send `Connection: keep-alive` (with `keep_alive`) or `Connection:
    /// close` (without), or (false) no such header: with `keep_alive =
    /// false`, a one-shot client that does not say so.
    #[default(true)]
    pub connection_header: bool,
    /// HTTPS, without checking the tracker's certificate.
    pub tls: bool,
    /// With `tls`: resume sessions on new connections (false: a full
    /// handshake every time).
    #[default(true)]
    pub tls_resumption: bool,
    /// Run time in seconds.
    #[default(30)]
    pub duration: u64,
    /// Seconds between progress lines; 0: none.
    #[default(2)]
    pub summarize_every: u64,
    /// Milliseconds from starting a request to the end of its response
    /// before it counts as timed out.
    #[default(2000)]
    pub request_timeout_ms: u64,
    /// Cap on requests sent per second, over all workers (each gets an
    /// equal share); 0: no cap.
    pub max_requests_per_second: u64,
    pub requests: RequestConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct RequestConfig {
    #[default(10)]
    pub weight_announce: u32,
    #[default(1)]
    pub weight_scrape: u32,
    #[default(1_000_000)]
    pub number_of_torrents: u64,
    /// Zipf exponent over torrent ranks.
    #[default(1.0)]
    pub torrent_selection_exponent: f64,
    /// numwant of every announce; -1: left out.
    #[default(30)]
    pub peers_wanted: i32,
    #[default(10)]
    pub scrape_max_torrents: usize,
    #[default(0.75)]
    pub peer_seeder_probability: f64,
    pub info_hash_seed: u64,
    /// When not empty: write the info hashes here and exit.
    pub info_hash_file: PathBuf,
}

aquatic_load_test_common::load_test_config!(
    include_str!("default_config.toml"),
    connections_per_worker,
    MAX_CONNECTIONS_PER_WORKER
);

impl Config {
    /// Reject values the load tester cannot run with; the message names the
    /// field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let r = &self.requests;
        self.shared_checks(
            &[r.weight_announce, r.weight_scrape],
            "requests: weight_announce and weight_scrape are both 0",
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
            |c| (c.requests.weight_announce, c.requests.weight_scrape) = (0, 0),
            "weight",
        );
        fails_naming(|c| c.requests.peers_wanted = -2, "peers_wanted");
        for scrape in [0, MAX_SCRAPE_TORRENTS + 1] {
            fails_naming(
                |c| c.requests.scrape_max_torrents = scrape,
                "scrape_max_torrents",
            );
        }
        let exponent = "torrent_selection_exponent";
        fails_naming(|c| c.requests.torrent_selection_exponent = -1.0, exponent);
        let probability = "peer_seeder_probability";
        fails_naming(|c| c.requests.peer_seeder_probability = -0.1, probability);
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = aquatic_cli_helpers::parse_config::<Config>("keep_alvie = false\n").unwrap_err();
        assert!(format!("{err:#}").contains("keep_alvie"));
    }
}
