//! Bounds and checks of the config fields every load tester has.

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
    }
}
