//! Closed-loop load generator for HTTP(S) BitTorrent trackers (BEP 3 with
//! BEP 23 compact peers): measures how many responses per second a tracker
//! gives.
//!
//! Each worker thread owns a mio Poll and a number of TCP connections.
//! Every connection has exactly one request in flight: it writes an
//! announce or a scrape (drawn by weight; heads written by
//! aquatic_http_protocol's `Request::write`), reads the response until its
//! head and `Content-Length` bytes are in, counts it by kind (announce,
//! scrape, failure reason, other status, or invalid), and writes the next
//! request at once. With `keep_alive = true` connections are reused
//! (HTTP/1.1); with `false` every request opens a new connection and sends
//! `Connection: close`. With `tls = true` it speaks HTTPS through rustls
//! WITHOUT checking the tracker's certificate (see [`tls`](aquatic_load_test_common::tls)). A request
//! without a whole response within the timeout is counted and its
//! connection replaced; so is a connection that fails, is reset or closed
//! early. Announces and scrapes pick torrents from a Zipf distribution over
//! `number_of_torrents` info hashes derived from a seed, the same as
//! aquatic_udp_load_test's (aquatic_load_test_common), so runs are
//! repeatable and a tracker's whitelist can be filled with the same hashes
//! (`info_hash_file`).
//!
//! With `max_requests_per_second` each worker paces its share of that rate
//! with a token bucket: a connection whose next request is not allowed yet
//! waits in a queue.
//!
//! Output: a progress line every `summarize_every` seconds, then totals,
//! `announce responses total: N` and `responses per second: N` (and a JSON
//! object with `--json`). It stops by itself after `duration` seconds and
//! exits 0, or 2 when not a single response arrived.
//!
//! Not here: open-loop load, pipelining, latency percentiles, chunked
//! responses, gzip, host names (the server is an IP address), full scrapes,
//! `key`, and any check of the answers' contents beyond the status and the
//! keys of the bencoded dictionary (the peers in an announce answer are
//! not looked at). It only measures the tracker while the load tester
//! itself keeps up: see BENCHMARKING.md on pinning and checking who is the
//! bottleneck.

#![forbid(unsafe_code)]

pub mod config;
mod requests;
pub mod response;
pub mod stats;
mod transport;
mod worker;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use aquatic_cli_helpers::{ExtraFlag, Options};
use aquatic_load_test_common::run::{
    Schedule, rate_cap_note, run_workers, write_info_hash_file_and_report, write_summary,
};

/// Seed-derived info hashes and the Zipf choice of torrents (shared with the
/// UDP load tester).
pub use aquatic_load_test_common::torrents;
pub use config::Config;
pub use stats::{Counts, Summary};

use stats::SharedCounts;
use transport::Connector;
use worker::Worker;

/// Extra command line flags of the binary.
pub const EXTRA_FLAGS: &[ExtraFlag] = aquatic_load_test_common::EXTRA_FLAGS;

/// The binary's entry point: parse the command line and run.
pub fn main() -> ! {
    aquatic_cli_helpers::run_app::<Config, _>(
        "aquatic_http_load_test",
        env!("CARGO_PKG_VERSION"),
        "closed-loop load generator for HTTP(S) BitTorrent trackers",
        EXTRA_FLAGS,
        run,
    )
}

/// Run as the binary does: write the info hash file, or load test and print
/// the summary on stdout. Returns the exit code: 0, or 2 when not a single
/// response arrived (no tracker listening?).
pub fn run(config: Config, options: Options) -> anyhow::Result<i32> {
    config.validate()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    let r = &config.requests;
    if !r.info_hash_file.as_os_str().is_empty() {
        write_info_hash_file_and_report(
            &mut out,
            &r.info_hash_file,
            r.info_hash_seed,
            r.number_of_torrents,
        )?;
        return Ok(0);
    }

    writeln!(
        out,
        "load testing {}://{} for {} s: {} worker(s) x {} connections ({}), {} torrents{}",
        if config.tls { "https" } else { "http" },
        config.server_address,
        config.duration,
        config.workers,
        config.connections_per_worker,
        if config.keep_alive {
            "keep-alive"
        } else {
            "a new connection per request"
        },
        r.number_of_torrents,
        rate_cap_note(config.max_requests_per_second),
    )
    .context("cannot write to stdout")?;
    let summary = run_load_test(&config, &mut out)?;
    let json = options.flag("json").then(|| summary.to_json().to_string());
    write_summary(
        &mut out,
        &summary.totals_line(),
        summary.totals.announce,
        summary.responses_per_second(),
        json.as_deref(),
    )?;

    let t = &summary.totals;
    if t.invalid > 0 {
        eprintln!(
            "aquatic_http_load_test: warning: {} responses were not understood \
             (not HTTP/1.x with Content-Length, or a body that is not an answer to the request)",
            t.invalid
        );
    }
    if t.responses() == 0 {
        eprintln!(
            "aquatic_http_load_test: no responses from {} ({} connection errors): \
             is a tracker listening there{}?",
            config.server_address,
            t.connection_errors,
            if config.tls { " with TLS" } else { "" }
        );
        return Ok(2);
    }
    Ok(0)
}

/// Set up the workers, run them for `config.duration` seconds writing a
/// progress line to `progress` every `config.summarize_every` seconds, stop
/// them and return what they counted.
pub fn run_load_test(config: &Config, progress: &mut dyn Write) -> anyhow::Result<Summary> {
    config.validate()?;
    let shared = Arc::new(SharedCounts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tls = config
        .tls
        .then(|| aquatic_load_test_common::tls::client_config(config.tls_resumption))
        .transpose()?;
    let connector = Connector::new(config.server_address, tls);

    let workers = (0..config.workers)
        .map(|_| Worker::new(config, connector.clone(), shared.clone(), stop.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let workers = workers
        .into_iter()
        .map(|worker| move || worker.run())
        .collect();
    let elapsed = run_workers(
        workers,
        &shared,
        &stop,
        Schedule::from_secs(config.duration, config.summarize_every),
        progress,
        stats::interval_line,
    )?;

    Ok(Summary {
        totals: shared.snapshot(),
        elapsed,
        in_flight_at_end: shared.in_flight_at_end(),
    })
}
