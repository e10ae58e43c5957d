//! Closed-loop load generator for UDP BitTorrent trackers (BEP 15): measures
//! how many responses per second a tracker gives.
//!
//! Each worker thread owns a mio Poll and a number of connected UDP sockets.
//! Every socket has exactly one request in flight: it connects first, reuses
//! its connection id (for at most a minute), and sends its next request
//! (connect, announce or scrape, drawn by weight) the moment the answer to the
//! previous one arrives. A request unanswered within the timeout is counted
//! and the socket connects anew. Announces and scrapes pick torrents from a
//! Zipf distribution over `number_of_torrents` info hashes derived from a
//! seed, so runs are repeatable and a tracker's whitelist can be filled with
//! the same hashes (`info_hash_file`).
//!
//! With `max_requests_per_second` each worker paces its share of that rate
//! with a token bucket: a socket whose next request is not allowed yet waits
//! in a queue. Every tracker that keeps up then gets the same requests in
//! the same time (to compare memory at identical load); a slower one gets
//! fewer, since sockets still wait for their answers.
//!
//! Output: a progress line every `summarize_every` seconds, then totals,
//! `announce responses total: N` and `responses per second: N` (and a JSON
//! object with `--json`). It stops by itself after `duration` seconds and
//! exits 0, or 2 when not a single response arrived.
//!
//! Not here: open-loop load (requests sent at a fixed rate whether or not
//! earlier ones were answered), latency percentiles, HTTP or
//! WebTorrent trackers, BEP 41 URL data, and any check of the answers'
//! contents beyond transaction ids, actions and lengths (the peers in an
//! announce answer are not looked at). It only measures the tracker while the
//! load tester itself keeps up: see BENCHMARKING.md on pinning and checking
//! who is the bottleneck.

#![forbid(unsafe_code)]

pub mod config;
pub mod stats;
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
/// HTTP load tester).
pub use aquatic_load_test_common::torrents;
pub use config::Config;
pub use stats::{Counts, Summary};

use stats::SharedCounts;
use worker::Worker;

/// Extra command line flags of the binary.
pub const EXTRA_FLAGS: &[ExtraFlag] = aquatic_load_test_common::EXTRA_FLAGS;

/// The binary's entry point: parse the command line and run.
pub fn main() -> ! {
    aquatic_cli_helpers::run_app::<Config, _>(
        "aquatic_udp_load_test",
        env!("CARGO_PKG_VERSION"),
        "closed-loop load generator for UDP BitTorrent trackers",
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

    let cap = rate_cap_note(config.max_requests_per_second);
    writeln!(
        out,
        "load testing {} for {} s: {} worker(s) x {} sockets, {} torrents{cap}",
        config.server_address,
        config.duration,
        config.workers,
        config.sockets_per_worker,
        r.number_of_torrents
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

    if summary.totals.invalid > 0 {
        eprintln!(
            "aquatic_udp_load_test: warning: {} answers had the wrong action or length \
             (opentracker answers announces for info hashes missing from its whitelist \
             with a bare 8-byte header: see info_hash_file)",
            summary.totals.invalid
        );
    }
    if summary.totals.responses() == 0 {
        eprintln!(
            "aquatic_udp_load_test: no responses from {}: is a tracker listening there?",
            config.server_address
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

    // Bind, connect and register every socket before starting any thread.
    let workers = (0..config.workers)
        .map(|i| Worker::new(config, i, shared.clone(), stop.clone()))
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
