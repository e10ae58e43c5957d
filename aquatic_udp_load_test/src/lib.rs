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
pub mod torrents;
mod worker;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use aquatic_cli_helpers::{ExtraFlag, Options};

pub use config::Config;
pub use stats::{Counts, Summary};

use stats::SharedCounts;
use worker::Worker;

/// Extra command line flags of the binary.
pub const EXTRA_FLAGS: &[ExtraFlag] = &[ExtraFlag {
    long: "json",
    help: "also print the summary as one line of JSON",
}];

/// Longest the main thread sleeps before checking on the workers.
const SUPERVISION_TICK: Duration = Duration::from_millis(100);

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
        torrents::write_info_hash_file(&r.info_hash_file, r.info_hash_seed, r.number_of_torrents)?;
        writeln!(
            out,
            "wrote {} info hashes (seed {}) to {}",
            r.number_of_torrents,
            r.info_hash_seed,
            r.info_hash_file.display()
        )
        .context("cannot write to stdout")?;
        return Ok(0);
    }

    let cap = match config.max_requests_per_second {
        0 => String::new(),
        n => format!(", at most {n} requests/s"),
    };
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
    let mut text = format!(
        "{}\nannounce responses total: {}\nresponses per second: {}\n",
        summary.totals_line(),
        summary.totals.announce,
        summary.responses_per_second().round()
    );
    if options.flag("json") {
        text.push_str(&format!("{}\n", summary.to_json()));
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;

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

    let start = Instant::now();
    let mut handles = Vec::with_capacity(workers.len());
    let mut spawn_error = None;
    for (i, worker) in workers.into_iter().enumerate() {
        match std::thread::Builder::new()
            .name(format!("load-worker-{i}"))
            .spawn(move || worker.run())
        {
            Ok(handle) => handles.push(handle),
            Err(err) => {
                spawn_error = Some(anyhow::Error::new(err).context("cannot start worker thread"));
                break;
            }
        }
    }

    let supervised = match spawn_error {
        Some(err) => Err(err),
        None => supervise(config, &shared, &handles, start, progress),
    };
    // Stop and join the workers whatever happened above.
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let joined = join_workers(handles);
    supervised?;
    joined?;

    Ok(Summary {
        totals: shared.snapshot(),
        elapsed,
        in_flight_at_end: shared.in_flight_at_end(),
    })
}

/// Wait for the end of the run, printing progress lines; fail early if a
/// worker stops on its own (an error or a panic).
fn supervise(
    config: &Config,
    shared: &SharedCounts,
    handles: &[JoinHandle<anyhow::Result<()>>],
    start: Instant,
    progress: &mut dyn Write,
) -> anyhow::Result<()> {
    let deadline = start + Duration::from_secs(config.duration);
    let interval = Duration::from_secs(config.summarize_every);
    let mut last = (start, Counts::default());
    let mut next_summary = (!interval.is_zero()).then(|| start + interval);

    loop {
        let now = Instant::now();
        if handles.iter().any(|h| h.is_finished()) {
            // The error itself comes from joining it.
            return Ok(());
        }
        // A line falling due at the deadline is still printed.
        if let Some(at) = next_summary
            && now >= at
            && at <= deadline
        {
            let counts = shared.snapshot();
            let seconds = now.duration_since(last.0).as_secs_f64();
            let line =
                stats::interval_line(now.duration_since(start), &counts.since(&last.1), seconds);
            writeln!(progress, "{line}").context("cannot write progress line")?;
            progress.flush().context("cannot write progress line")?;
            last = (now, counts);
            next_summary = Some(at + interval);
        }
        if now >= deadline {
            return Ok(());
        }
        let mut wake = deadline.min(now + SUPERVISION_TICK);
        if let Some(at) = next_summary {
            wake = wake.min(at);
        }
        std::thread::sleep(wake.saturating_duration_since(now));
    }
}

fn join_workers(handles: Vec<JoinHandle<anyhow::Result<()>>>) -> anyhow::Result<()> {
    let mut first_error = None;
    for (i, handle) in handles.into_iter().enumerate() {
        let result = match handle.join() {
            Ok(result) => result.with_context(|| format!("worker {i}")),
            Err(_) => Err(anyhow::anyhow!("worker {i} panicked")),
        };
        if let Err(err) = result {
            first_error.get_or_insert(err);
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
