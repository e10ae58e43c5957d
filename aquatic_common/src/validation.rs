//! Config checks all three daemons make: a check is a condition under
//! which the config is rejected and the message naming the field. The
//! first failed check ends the daemon's start with `config: MESSAGE`.

use std::net::SocketAddr;

/// A condition that rejects the config, and the message naming the field.
pub type Check = (bool, &'static str);

/// The worker counts: at least one socket worker, and request workers only
/// left out (the socket worker owning the one shard) with one socket worker.
pub fn worker_checks(socket_workers: usize, request_workers: usize) -> [Check; 2] {
    [
        (socket_workers == 0, "socket_workers must be at least 1"),
        (
            request_workers == 0 && socket_workers != 1,
            "request_workers = 0 (the socket worker answers announces itself) needs socket_workers = 1",
        ),
    ]
}

/// Peers' expiry is kept to 18 hours ahead (`torrent_map::PeerData`):
/// `cleaning.max_peer_age` may not be longer, and cleaning must come round
/// well within that (an expired peer reads as expired for 18 hours).
pub fn peer_lifetime_checks(max_peer_age: u32, cleaning_interval: u64) -> [Check; 2] {
    let max = crate::torrent_map::MAX_PEER_LIFETIME_SECS;
    [
        (
            max_peer_age > max,
            "cleaning.max_peer_age must be at most 65532 seconds (18 hours)",
        ),
        (
            cleaning_interval > u64::from(max / 2),
            "cleaning.interval must be at most 32766 seconds (9 hours)",
        ),
    ]
}

/// Fail with `config: MESSAGE` at the first check whose condition holds.
pub fn first_failed(checks: impl IntoIterator<Item = Check>) -> anyhow::Result<()> {
    for (failed, message) in checks {
        if failed {
            anyhow::bail!("config: {message}");
        }
    }
    Ok(())
}

/// `network.only_ipv6` cannot go with an IPv4 `network.address`.
pub fn check_only_ipv6(only_ipv6: bool, address: SocketAddr) -> anyhow::Result<()> {
    if only_ipv6 && address.is_ipv4() {
        anyhow::bail!("config: network.only_ipv6 is set but network.address {address} is IPv4");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failed_check_is_named() {
        let err = first_failed(
            worker_checks(2, 0)
                .into_iter()
                .chain([(true, "later must not be named")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("config: request_workers = 0"), "{err}");
        first_failed(worker_checks(1, 0)).unwrap();
        first_failed(peer_lifetime_checks(2000, 60)).unwrap();
        let err = first_failed(peer_lifetime_checks(70_000, 60)).unwrap_err();
        assert!(err.to_string().contains("max_peer_age"), "{err}");
        let err = first_failed(peer_lifetime_checks(2000, 40_000)).unwrap_err();
        assert!(err.to_string().contains("cleaning.interval"), "{err}");
        assert!(check_only_ipv6(true, "127.0.0.1:1".parse().unwrap()).is_err());
        check_only_ipv6(true, "[::1]:1".parse().unwrap()).unwrap();
    }
}
