//! The protocol-independent parts of the aquatic load testers
//! (`aquatic_udp_load_test`, `aquatic_http_load_test`,
//! `aquatic_ws_load_test`), so that all three pick the same torrents, pace
//! and count the same way, and print the same progress lines and summary:
//!
//! - [`torrents`]: info hashes derived from a seed and an index (the same on
//!   every run and machine, and written to a whitelist with
//!   `info_hash_file`), the Zipf choice of a torrent, the request mix, peer
//!   ids;
//! - [`rate`]: the token bucket behind `max_requests_per_second`, and the
//!   queue of what waits for it ([`Throttle`]);
//! - [`counts`]: a load tester's counters, per worker and shared totals
//!   ([`impl_counts!`]);
//! - [`run`]: a worker's poll loop ([`run::run_worker`] over the parts
//!   every worker has, [`run::WorkerBase`]), running the worker threads for
//!   the duration with progress lines, and the summary lines
//!   (`responses per second: N`);
//! - [`limits`]: bounds and checks of the config fields they share;
//! - [`testing`]: helpers of their tests (fake tracker threads, the checks
//!   of every run, running the binary, reading its summary lines).
//!
//! Not here: sockets, requests and responses (each load tester's own), and
//! the config structs (each binary documents its own fields).

#![forbid(unsafe_code)]

pub mod counts;
pub mod limits;
pub mod rate;
pub mod run;
pub mod testing;
pub mod tls;
pub mod torrents;

pub use counts::{Counts, SharedCounts};
pub use rate::{RateLimiter, Throttle};
pub use run::{EXTRA_FLAGS, Schedule, per_second, run_workers};
pub use torrents::{TorrentPicker, info_hash, random_peer_id};
