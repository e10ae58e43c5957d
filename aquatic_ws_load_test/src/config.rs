//! The load tester's config: every field optional in the file; the printed
//! default config (`-p`) documents each one.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the tracker under test.
    #[default(SocketAddr::from(([127, 0, 0, 1], 3000)))]
    pub server_address: SocketAddr,
    /// wss:// instead of ws://, without checking the tracker's certificate.
    pub tls: bool,
    /// Worker threads.
    #[default(1)]
    pub workers: usize,
    /// WebSocket connections (peers) per worker, one request in flight each.
    #[default(64)]
    pub connections_per_worker: usize,
    /// Run time in seconds.
    #[default(30)]
    pub duration: u64,
    /// Seconds between progress lines; 0: none.
    #[default(2)]
    pub summarize_every: u64,
    /// Milliseconds from sending a request (or starting a connection) to
    /// its reply before it counts as timed out.
    #[default(2000)]
    pub request_timeout_ms: u64,
    /// Cap on announces and scrapes sent per second, over all workers
    /// (each gets an equal share); 0: no cap.
    pub max_requests_per_second: u64,
    /// Replies after which a connection is closed (its peers leave) and a
    /// new one, a new peer, opened; 0: connections stay open.
    pub requests_per_connection: u64,
    pub requests: RequestConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SmartDefault)]
#[serde(default, deny_unknown_fields)]
pub struct RequestConfig {
    #[default(10)]
    pub weight_announce: u32,
    #[default(1)]
    pub weight_scrape: u32,
    #[default(10_000)]
    pub number_of_torrents: u64,
    /// Zipf exponent over torrent ranks.
    #[default(1.0)]
    pub torrent_selection_exponent: f64,
    /// Offers (with fake SDP) in every announce; numwant is the same.
    #[default(5)]
    pub offers_per_announce: usize,
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
    use super::shared_config_tests::fails_naming;
    use super::*;

    #[test]
    fn own_checks_name_the_field() {
        fails_naming(
            |c| (c.requests.weight_announce, c.requests.weight_scrape) = (0, 0),
            "weight",
        );
        let offers = MAX_OFFERS_PER_ANNOUNCE + 1;
        fails_naming(
            |c| c.requests.offers_per_announce = offers,
            "offers_per_announce",
        );
        for scrape in [0, MAX_SCRAPE_TORRENTS + 1] {
            fails_naming(
                |c| c.requests.scrape_max_torrents = scrape,
                "scrape_max_torrents",
            );
        }
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
