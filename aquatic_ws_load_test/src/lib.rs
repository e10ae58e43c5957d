//! Closed-loop load generator for WebTorrent trackers (JSON messages over
//! WebSocket, ws:// or wss://): measures how many announce and scrape
//! replies per second a tracker gives while it relays WebRTC offers and
//! answers between peers, and checks that the offers and answers it relays
//! add up.
//!
//! Each worker thread owns a mio Poll and a number of WebSocket
//! connections (tungstenite, non-blocking, handshakes resumed on every
//! event). Every connection is one peer with a peer id of its own and
//! exactly one request in flight: an announce (with `offers_per_announce`
//! offers carrying a fake SDP of browser size, numwant the same, event
//! `started` the first time it announces to a torrent) or a scrape of one
//! or several info hashes, drawn by weight; the next one goes out when the
//! reply to the last has arrived. Every offer the tracker relays to a
//! connection is answered at once (to the offering peer, same offer id and
//! info hash), and every answer relayed back is checked against the offers
//! the connection made. Messages are written by aquatic_ws_protocol's
//! `InMessage::to_json` and read by `OutMessage::from_json`. Torrents come
//! from a Zipf distribution over `number_of_torrents` info hashes derived
//! from a seed, the same as the UDP and HTTP load testers'
//! (aquatic_load_test_common), so runs are repeatable and a tracker's
//! access list can be filled with the same hashes (`info_hash_file`).
//!
//! A request without a reply within the timeout, a WebSocket protocol
//! error, or the tracker closing the connection are counted, and the
//! connection is replaced by a new one (a new peer). With
//! `max_requests_per_second` each worker paces its share of that rate of
//! announces and scrapes with a token bucket. With `tls = true` it speaks
//! wss:// through rustls WITHOUT checking the tracker's certificate (see
//! [`tls`](aquatic_load_test_common::tls)).
//!
//! Output: a progress line every `summarize_every` seconds, then totals,
//! the checks that the counts add up (answers received <= answers sent,
//! offers received <= offers sent, every offer received answered, every
//! request accounted for, ...), the failure reasons seen, `announce
//! responses total: N` and `responses per second: N` (announce and scrape
//! replies; and a JSON object with `--json`). It stops by itself after
//! `duration` seconds and exits 0, or 2 when not a single reply arrived.
//!
//! Not here: WebRTC itself (no peer ever connects to another; the SDP is
//! text the tracker relays), `stopped` and `completed` events, open-loop
//! load, latency percentiles, host names and paths other than `/` (the
//! server is an IP address), WebSocket compression, and any check of the
//! replies beyond their kind, info hash and offer ids. The checks assume
//! the load test's peers are the only ones on the tracker. It only measures
//! the tracker while the load tester itself keeps up: see BENCHMARKING.md
//! on pinning and checking who is the bottleneck.

#![forbid(unsafe_code)]

pub mod config;
mod messages;
pub mod stats;
mod transport;
mod worker;

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use aquatic_cli_helpers::{ExtraFlag, Options};
use aquatic_load_test_common::run::{
    Schedule, rate_cap_note, run_workers, write_info_hash_file_and_report, write_summary,
};

/// Seed-derived info hashes and the Zipf choice of torrents (shared with the
/// UDP and HTTP load testers).
pub use aquatic_load_test_common::torrents;
pub use config::Config;
pub use stats::{Counts, Summary};

use stats::{FailureReasons, SharedCounts};
use transport::Connector;
use worker::Worker;

/// Extra command line flags of the binary.
pub const EXTRA_FLAGS: &[ExtraFlag] = aquatic_load_test_common::EXTRA_FLAGS;

/// The binary's entry point: parse the command line and run.
pub fn main() -> ! {
    aquatic_cli_helpers::run_app::<Config, _>(
        "aquatic_ws_load_test",
        env!("CARGO_PKG_VERSION"),
        "closed-loop load generator for WebTorrent (WebSocket) trackers",
        EXTRA_FLAGS,
        run,
    )
}

/// Run as the binary does: write the info hash file, or load test and print
/// the summary on stdout. Returns the exit code: 0, or 2 when not a single
/// reply arrived (no tracker listening?).
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
        "load testing {}://{} for {} s: {} worker(s) x {} connections, {} offers per announce, {} torrents{}",
        if config.tls { "wss" } else { "ws" },
        config.server_address,
        config.duration,
        config.workers,
        config.connections_per_worker,
        r.offers_per_announce,
        r.number_of_torrents,
        rate_cap_note(config.max_requests_per_second),
    )
    .context("cannot write to stdout")?;
    let summary = run_load_test(&config, &mut out)?;
    let json = options.flag("json").then(|| summary.to_json().to_string());
    write_summary(
        &mut out,
        &summary.report(),
        summary.totals.announce_replies,
        summary.responses_per_second(),
        json.as_deref(),
    )?;

    let t = &summary.totals;
    if !summary.checks_pass() {
        eprintln!(
            "aquatic_ws_load_test: warning: the counts do not add up (see the failed checks); \
             are other clients using the tracker?"
        );
    }
    if t.invalid > 0 {
        eprintln!(
            "aquatic_ws_load_test: warning: {} messages from the tracker were not understood",
            t.invalid
        );
    }
    if t.responses() == 0 {
        eprintln!(
            "aquatic_ws_load_test: no replies from {} ({} connection errors, {} failure reasons): \
             is a WebTorrent tracker listening there{}?",
            config.server_address,
            t.connection_errors,
            t.failures,
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
    let reasons = Arc::new(Mutex::new(FailureReasons::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let tls = config
        .tls
        .then(|| aquatic_load_test_common::tls::client_config(true))
        .transpose()?;
    let connector = Connector::new(config.server_address, tls);

    let workers = (0..config.workers)
        .map(|_| {
            Worker::new(
                config,
                connector.clone(),
                shared.clone(),
                reasons.clone(),
                stop.clone(),
            )
        })
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

    let failure_reasons = reasons
        .lock()
        .map(|reasons| reasons.clone())
        .unwrap_or_default();
    Ok(Summary {
        totals: shared.snapshot(),
        elapsed,
        in_flight_at_end: shared.in_flight_at_end(),
        failure_reasons,
    })
}
