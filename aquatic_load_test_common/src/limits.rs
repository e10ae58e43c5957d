//! Bounds and checks of the config fields every load tester has (each
//! message names the field).

use std::net::SocketAddr;

use anyhow::bail;

/// Longest run and progress interval: a year, in seconds.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// Longest request timeout: an hour, in milliseconds.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 3_600_000;

/// Highest request rate cap: far beyond what a load tester sends, and small
/// enough for exact token arithmetic in f64.
pub const MAX_REQUESTS_PER_SECOND: u64 = 1_000_000_000;

/// Check `duration`, `summarize_every`, `request_timeout_ms` and
/// `max_requests_per_second`; the message names the field. The upper bounds
/// keep every deadline computation far from overflow.
pub fn validate_timing(
    duration: u64,
    summarize_every: u64,
    request_timeout_ms: u64,
    max_requests_per_second: u64,
) -> anyhow::Result<()> {
    if duration == 0 || duration > MAX_SECONDS {
        bail!("duration must be between 1 and {MAX_SECONDS} seconds");
    }
    if summarize_every > MAX_SECONDS {
        bail!("summarize_every must be at most {MAX_SECONDS} seconds");
    }
    if request_timeout_ms == 0 || request_timeout_ms > MAX_REQUEST_TIMEOUT_MS {
        bail!("request_timeout_ms must be between 1 and {MAX_REQUEST_TIMEOUT_MS}");
    }
    if max_requests_per_second > MAX_REQUESTS_PER_SECOND {
        bail!("max_requests_per_second must be at most {MAX_REQUESTS_PER_SECOND} (0: no cap)");
    }
    Ok(())
}

/// Reject an unspecified address or port 0 as `server_address`.
pub fn validate_server_address(server_address: SocketAddr) -> anyhow::Result<()> {
    if server_address.ip().is_unspecified() || server_address.port() == 0 {
        bail!("server_address {server_address} is not an address to send to");
    }
    Ok(())
}

/// Check `requests.number_of_torrents`,
/// `requests.torrent_selection_exponent` and
/// `requests.peer_seeder_probability`.
pub fn validate_torrents(
    number_of_torrents: u64,
    torrent_selection_exponent: f64,
    peer_seeder_probability: f64,
) -> anyhow::Result<()> {
    if number_of_torrents == 0 {
        bail!("requests.number_of_torrents must be at least 1");
    }
    if !(torrent_selection_exponent.is_finite() && torrent_selection_exponent >= 0.0) {
        bail!("requests.torrent_selection_exponent must be a number >= 0");
    }
    if !(0.0..=1.0).contains(&peer_seeder_probability) {
        bail!("requests.peer_seeder_probability must be between 0.0 and 1.0");
    }
    Ok(())
}

/// Check `workers` and the per-worker count of sockets or connections
/// (`per_worker_field`, between 1 and `max_per_worker`).
pub fn validate_workers(
    workers: usize,
    per_worker_field: &str,
    per_worker: usize,
    max_per_worker: usize,
) -> anyhow::Result<()> {
    if workers == 0 {
        bail!("workers must be at least 1");
    }
    if per_worker == 0 || per_worker > max_per_worker {
        bail!("{per_worker_field} must be between 1 and {max_per_worker}");
    }
    Ok(())
}

/// Check the request kind weights: not all 0 (`all_zero` is the message
/// then, naming them), and a sum that fits a `u32`.
pub fn validate_weights(weights: &[u32], all_zero: &str) -> anyhow::Result<()> {
    let total_weight: u64 = weights.iter().copied().map(u64::from).sum();
    if total_weight == 0 {
        bail!("{all_zero}");
    }
    if total_weight > u64::from(u32::MAX) {
        bail!(
            "requests: the sum of the weights must not exceed {}",
            u32::MAX
        );
    }
    Ok(())
}

/// Check `requests.peers_wanted` (-1 or more) and
/// `requests.scrape_max_torrents` (between 1 and `max_scrape_torrents`).
pub fn validate_announce_and_scrape(
    peers_wanted: i32,
    scrape_max_torrents: usize,
    max_scrape_torrents: usize,
) -> anyhow::Result<()> {
    if peers_wanted < -1 {
        bail!("requests.peers_wanted must be -1 (tracker default) or more");
    }
    if scrape_max_torrents == 0 || scrape_max_torrents > max_scrape_torrents {
        bail!("requests.scrape_max_torrents must be between 1 and {max_scrape_torrents}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: anyhow::Result<()>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn messages_name_the_field() {
        validate_timing(30, 2, 500, 0).unwrap();
        assert!(message(validate_timing(0, 2, 500, 0)).contains("duration"));
        assert!(message(validate_timing(u64::MAX, 2, 500, 0)).contains("duration"));
        assert!(message(validate_timing(30, u64::MAX, 500, 0)).contains("summarize_every"));
        assert!(message(validate_timing(30, 2, 0, 0)).contains("request_timeout_ms"));
        assert!(message(validate_timing(30, 2, u64::MAX, 0)).contains("request_timeout_ms"));
        assert!(message(validate_timing(30, 2, 5, u64::MAX)).contains("max_requests_per_second"));
        validate_server_address("127.0.0.1:3000".parse().unwrap()).unwrap();
        for bad in ["0.0.0.0:3000", "[::]:3000", "127.0.0.1:0"] {
            let m = message(validate_server_address(bad.parse().unwrap()));
            assert!(m.contains("server_address"), "{m}");
        }
        validate_torrents(1, 0.0, 1.0).unwrap();
        assert!(message(validate_torrents(0, 1.0, 0.5)).contains("number_of_torrents"));
        let m = message(validate_torrents(1, f64::NAN, 0.5));
        assert!(m.contains("torrent_selection_exponent"));
        let m = message(validate_torrents(1, -1.0, 0.5));
        assert!(m.contains("torrent_selection_exponent"));
        let m = message(validate_torrents(1, 1.0, 1.5));
        assert!(m.contains("peer_seeder_probability"));
        validate_workers(1, "sockets_per_worker", 1, 1).unwrap();
        assert_eq!(
            message(validate_workers(0, "sockets_per_worker", 1, 1)),
            "workers must be at least 1"
        );
        assert_eq!(
            message(validate_workers(1, "sockets_per_worker", 3, 2)),
            "sockets_per_worker must be between 1 and 2"
        );
        validate_weights(&[0, 1], "all 0").unwrap();
        assert_eq!(message(validate_weights(&[0, 0], "all 0")), "all 0");
        let m = message(validate_weights(&[u32::MAX, 1], "all 0"));
        assert!(m.contains("sum of the weights"), "{m}");
        validate_announce_and_scrape(-1, 5, 5).unwrap();
        let m = message(validate_announce_and_scrape(-2, 5, 5));
        assert!(m.contains("peers_wanted"));
        let m = message(validate_announce_and_scrape(30, 6, 5));
        assert_eq!(m, "requests.scrape_max_torrents must be between 1 and 5");
    }
}
