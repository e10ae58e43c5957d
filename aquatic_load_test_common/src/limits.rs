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

/// For a load tester's `Config` with the fields every load tester has
/// (`server_address`, `workers`, the per-worker count named first,
/// `duration`, `summarize_every`, `request_timeout_ms`,
/// `max_requests_per_second`, and in `requests`: `number_of_torrents`,
/// `torrent_selection_exponent`, `peer_seeder_probability`):
/// `load_test_config!(include_str!("default_config.toml"),
/// connections_per_worker, MAX_CONNECTIONS_PER_WORKER)`.
///
/// Makes the `aquatic_cli_helpers::Config` impl with the TOML template (no
/// logging: a load tester prints its own output), the constructor
/// `for_local_tracker` (the integration tests' config), the methods
/// `request_mix` (the requests' [`crate::torrents::RequestMix`]) and
/// `shared_checks` (the checks of those fields and of the request
/// weights), and the
/// tests that the TOML template is the default config, that it is valid,
/// and that each shared check names its field. The crate's own tests call
/// `shared_config_tests::fails_naming(edit, field)` for its own checks, and
/// `shared_config_tests::config_with(edit)` for a config with other request
/// fields.
#[macro_export]
macro_rules! load_test_config {
    ($template:expr, $per_worker:ident, $max_per_worker:expr) => {
        impl aquatic_cli_helpers::Config for Config {
            const DEFAULT_TEMPLATE: &'static str = $template;

            fn log_level(&self) -> Option<aquatic_cli_helpers::LogLevel> {
                None
            }
        }

        impl Config {
            /// For short runs against a tracker on this machine (the
            /// integration tests'): 2 workers with 4 each, progress every
            /// second, a timeout loopback never reaches (2 s), 100 torrents
            /// and at most 5 in a scrape.
            pub fn for_local_tracker(server_address: std::net::SocketAddr, duration: u64) -> Self {
                let mut config = Self {
                    server_address,
                    workers: 2,
                    $per_worker: 4,
                    duration,
                    summarize_every: 1,
                    request_timeout_ms: 2000,
                    ..Self::default()
                };
                config.requests.number_of_torrents = 100;
                config.requests.scrape_max_torrents = 5;
                config
            }

            /// The request mix of `requests`: `kinds` drawn by `weights`.
            pub(crate) fn request_mix<K: Copy>(
                &self,
                kinds: &'static [K],
                weights: &[u32],
            ) -> anyhow::Result<$crate::torrents::RequestMix<K>> {
                let r = &self.requests;
                $crate::torrents::RequestMix::new(
                    kinds,
                    weights,
                    r.number_of_torrents,
                    r.torrent_selection_exponent,
                    r.info_hash_seed,
                    r.scrape_max_torrents,
                    r.peer_seeder_probability,
                )
            }

            /// A worker's `aquatic_load_test_common::run::WorkerBase`:
            /// its share of the rate cap, the request timeout.
            pub(crate) fn worker_base<C: $crate::Counts>(
                &self,
                shared: std::sync::Arc<$crate::SharedCounts<C>>,
                stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
            ) -> anyhow::Result<$crate::run::WorkerBase<C>> {
                $crate::run::WorkerBase::new(
                    self.request_timeout_ms,
                    self.max_requests_per_second,
                    self.workers,
                    self.$per_worker,
                    shared,
                    stop,
                )
            }

            /// The checks of the fields every load tester has, and that
            /// not every one of `weights` (the request types') is 0.
            fn shared_checks(&self, weights: &[u32], all_zero: &str) -> anyhow::Result<()> {
                use $crate::limits;
                let per_worker = stringify!($per_worker);
                limits::validate_workers(
                    self.workers,
                    per_worker,
                    self.$per_worker,
                    $max_per_worker,
                )?;
                limits::validate_timing(
                    self.duration,
                    self.summarize_every,
                    self.request_timeout_ms,
                    self.max_requests_per_second,
                )?;
                limits::validate_server_address(self.server_address)?;
                limits::validate_weights(weights, all_zero)?;
                let r = &self.requests;
                let exponent = r.torrent_selection_exponent;
                limits::validate_torrents(r.number_of_torrents, exponent, r.peer_seeder_probability)
            }
        }

        #[cfg(test)]
        pub(crate) mod shared_config_tests {
            #[allow(unused_imports)]
            use super::*;

            /// The default config with `edit`'s request config.
            pub(crate) fn config_with(edit: impl FnOnce(&mut RequestConfig)) -> Config {
                let mut config = Config::default();
                edit(&mut config.requests);
                config
            }

            /// Validation fails after `edit`, naming `field`.
            #[allow(clippy::unwrap_used)]
            pub(crate) fn fails_naming(edit: impl FnOnce(&mut Config), field: &str) {
                let mut config = Config::default();
                edit(&mut config);
                let message = format!("{:#}", config.validate().unwrap_err());
                assert!(message.contains(field), "{message}");
            }

            #[test]
            fn default_template_is_the_valid_default() {
                aquatic_cli_helpers::check_default_template::<Config>();
                Config::default().validate().unwrap();
            }

            #[test]
            fn shared_checks_name_the_field() {
                let per_worker = stringify!($per_worker);
                fails_naming(|c| c.workers = 0, "workers");
                fails_naming(|c| c.$per_worker = 0, per_worker);
                fails_naming(|c| c.$per_worker = $max_per_worker + 1, per_worker);
                fails_naming(|c| c.duration = 0, "duration");
                fails_naming(|c| c.duration = u64::MAX, "duration");
                fails_naming(|c| c.summarize_every = u64::MAX, "summarize_every");
                fails_naming(|c| c.request_timeout_ms = 0, "request_timeout_ms");
                fails_naming(|c| c.request_timeout_ms = u64::MAX, "request_timeout_ms");
                let rate = "max_requests_per_second";
                fails_naming(|c| c.max_requests_per_second = u64::MAX, rate);
                let unspecified = ([0, 0, 0, 0], 3000).into();
                fails_naming(|c| c.server_address = unspecified, "server_address");
                fails_naming(|c| c.requests.number_of_torrents = 0, "number_of_torrents");
                let exponent = "torrent_selection_exponent";
                fails_naming(
                    |c| c.requests.torrent_selection_exponent = f64::NAN,
                    exponent,
                );
                let probability = "peer_seeder_probability";
                fails_naming(|c| c.requests.peer_seeder_probability = 1.5, probability);
            }
        }
    };
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
