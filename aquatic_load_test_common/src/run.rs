//! Running the workers of a load test for its duration with progress lines,
//! and printing what the binaries print before and after.

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use aquatic_cli_helpers::ExtraFlag;
use mio::event::{Event, Source};
use mio::{Events, Interest, Poll, Token};

use crate::counts::{Counts, SharedCounts};
use crate::rate::Throttle;
use crate::torrents;

/// Extra command line flags of the load tester binaries.
pub const EXTRA_FLAGS: &[ExtraFlag] = &[ExtraFlag {
    long: "json",
    help: "also print the summary as one line of JSON",
}];

/// Longest the main thread sleeps before checking on the workers.
const SUPERVISION_TICK: Duration = Duration::from_millis(100);

/// Wait on `poll` for `events`, at most `timeout`. `Ok(false)` when a
/// signal interrupted the wait: the worker skips the round and polls again.
pub fn poll_events(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Duration,
) -> anyhow::Result<bool> {
    match poll.poll(events, Some(timeout)) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::Interrupted => Ok(false),
        Err(err) => Err(err).context("mio poll failed"),
    }
}

/// What every worker has: its poll (its slots, connections or sockets,
/// registered with their index as token), its share of the rate cap, its
/// request timeout and counts, and the totals and stop flag it shares with
/// the main thread.
pub struct WorkerBase<C> {
    pub poll: Poll,
    /// This worker's share of `max_requests_per_second`, and the slots
    /// waiting for a token.
    pub throttle: Throttle,
    pub request_timeout: Duration,
    pub counts: C,
    shared: Arc<SharedCounts<C>>,
    stop: Arc<AtomicBool>,
}

impl<C: Counts> WorkerBase<C> {
    /// For one of `workers` workers with `slots` slots each.
    pub fn new(
        request_timeout_ms: u64,
        max_requests_per_second: u64,
        workers: usize,
        slots: usize,
        shared: Arc<SharedCounts<C>>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            poll: Poll::new().context("cannot create mio Poll")?,
            throttle: Throttle::for_worker(max_requests_per_second, workers, slots, Instant::now()),
            request_timeout: Duration::from_millis(request_timeout_ms),
            counts: C::default(),
            shared,
            stop,
        })
    }
}

impl<C> WorkerBase<C> {
    /// Register the socket of a TCP connection, slot `i`, for reading and
    /// writing.
    pub fn register_connection(&self, socket: &mut impl Source, i: usize) -> std::io::Result<()> {
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll.registry().register(socket, Token(i), interest)
    }
}

/// A worker as [`run_worker`] runs it: slots on a [`WorkerBase`].
pub trait PollWorker<C: Counts> {
    /// The parts every worker has.
    fn base(&mut self) -> &mut WorkerBase<C>;

    /// Start slot `i`'s next request, a token of the rate cap taken for it
    /// (by [`start_when_allowed`](Self::start_when_allowed), or for a slot
    /// that waited, by [`run_worker`]). A worker whose slots only send
    /// from some state (WebSocket: connected and waiting for a token)
    /// overrides `start_when_allowed` to match.
    fn start(&mut self, i: usize, now: Instant);

    /// Mark slot `i` as waiting for a token of the rate cap.
    fn wait_for_token(&mut self, i: usize);

    /// Handle a readiness event of a slot.
    fn event(&mut self, event: &Event, now: Instant);

    /// Time out requests and retry what is due (every
    /// [`sweep_interval`]).
    fn sweep(&mut self, now: Instant);

    /// Requests in flight now.
    fn in_flight(&self) -> usize;

    /// Start slot `i`'s next request now if the rate cap allows it (and no
    /// slot waits longer), else queue it until it does.
    fn start_when_allowed(&mut self, i: usize, now: Instant) {
        if self.base().throttle.admit(i) {
            self.start(i, now);
        } else {
            self.wait_for_token(i);
        }
    }

    /// Begin slot `i` when the run starts: by default its first request,
    /// when the rate cap allows it.
    fn begin(&mut self, i: usize, now: Instant) {
        self.start_when_allowed(i, now);
    }
}

/// Run `worker`, with slots `0..slots`, until the stop flag is set: begin
/// every slot, then wait for events (and tokens), start the requests the
/// rate cap's new tokens allow (longest waiting first), handle the events,
/// sweep every [`sweep_interval`] and add the counts to the shared totals
/// once per round. At the end also the requests still in flight.
pub fn run_worker<C: Counts>(worker: &mut impl PollWorker<C>, slots: usize) -> anyhow::Result<()> {
    let mut events = Events::with_capacity(slots.min(1024));
    // Timeouts are checked this often (and the stop flag at least as
    // often).
    let sweep_every = sweep_interval(worker.base().request_timeout);

    let mut now = Instant::now();
    // The bucket starts with one token when the run starts.
    worker.base().throttle.restart(now);
    for i in 0..slots {
        worker.begin(i, now);
    }
    let mut next_sweep = now + sweep_every;

    while !worker.base().stop.load(Ordering::Relaxed) {
        let base = worker.base();
        let timeout = base.throttle.poll_timeout(sweep_every);
        if !poll_events(&mut base.poll, &mut events, timeout)? {
            continue;
        }
        now = Instant::now();
        worker.base().throttle.refill(now);
        while let Some(i) = worker.base().throttle.release() {
            worker.start(i, now);
        }
        for event in events.iter() {
            worker.event(event, now);
        }
        if now >= next_sweep {
            worker.sweep(now);
            next_sweep = now + sweep_every;
        }
        let base = worker.base();
        base.shared.add_and_reset(&mut base.counts);
    }

    let in_flight = worker.in_flight();
    let base = worker.base();
    base.shared.add_and_reset(&mut base.counts);
    base.shared.add_in_flight_at_end(in_flight as u64);
    Ok(())
}

/// How often a worker checks its requests for timeouts (and the stop flag at
/// least as often): an eighth of the request timeout, between 1 and 50 ms,
/// so that a timed-out request is noticed soon after its deadline.
pub fn sweep_interval(request_timeout: Duration) -> Duration {
    (request_timeout / 8).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

/// `count / seconds`, rounded to one decimal; 0 for no time.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (count as f64 / seconds * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// Seconds rounded to milliseconds: `duration_secs` of the JSON summary.
pub fn rounded_secs(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// How long a load test runs and how often it reports.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub duration: Duration,
    /// Zero: no progress lines.
    pub summarize_every: Duration,
}

impl Schedule {
    /// From the config fields `duration` and `summarize_every`, in seconds.
    pub fn from_secs(duration: u64, summarize_every: u64) -> Self {
        Self {
            duration: Duration::from_secs(duration),
            summarize_every: Duration::from_secs(summarize_every),
        }
    }
}

/// Start one thread per worker (`load-worker-N`), let them run for
/// `schedule.duration` while writing a line to `progress` every
/// `schedule.summarize_every` (`interval_line(since start, counts of the
/// interval, seconds of the interval)`), then set `stop` and join them.
///
/// The workers must return soon after `stop` is set, having added their
/// counts to `shared`. Fails early when a worker stops on its own (an error
/// or a panic), with that worker's error. Returns the time from starting
/// the first thread to the stop signal.
pub fn run_workers<C, W>(
    workers: Vec<W>,
    shared: &SharedCounts<C>,
    stop: &AtomicBool,
    schedule: Schedule,
    progress: &mut dyn Write,
    interval_line: impl Fn(Duration, &C, f64) -> String,
) -> anyhow::Result<Duration>
where
    C: Counts,
    W: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    let start = Instant::now();
    let mut handles = Vec::with_capacity(workers.len());
    let mut spawn_error = None;
    for (i, worker) in workers.into_iter().enumerate() {
        match std::thread::Builder::new()
            .name(format!("load-worker-{i}"))
            .spawn(worker)
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
        None => supervise(schedule, shared, &handles, start, progress, interval_line),
    };
    // Stop and join the workers whatever happened above.
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let joined = join_workers(handles);
    supervised?;
    joined?;
    Ok(elapsed)
}

/// Wait for the end of the run, printing progress lines; return early if a
/// worker stops on its own.
fn supervise<C: Counts>(
    schedule: Schedule,
    shared: &SharedCounts<C>,
    handles: &[JoinHandle<anyhow::Result<()>>],
    start: Instant,
    progress: &mut dyn Write,
    interval_line: impl Fn(Duration, &C, f64) -> String,
) -> anyhow::Result<()> {
    let deadline = start + schedule.duration;
    let interval = schedule.summarize_every;
    let mut last = (start, C::default());
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
            let line = interval_line(now.duration_since(start), &counts.since(&last.1), seconds);
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

/// The `info_hash_file` mode: write the info hashes and say so on `out`.
pub fn write_info_hash_file_and_report(
    out: &mut dyn Write,
    path: &Path,
    seed: u64,
    number_of_torrents: u64,
) -> anyhow::Result<()> {
    torrents::write_info_hash_file(path, seed, number_of_torrents)?;
    writeln!(
        out,
        "wrote {number_of_torrents} info hashes (seed {seed}) to {}",
        path.display()
    )
    .context("cannot write to stdout")
}

/// `", at most N requests/s"` for a cap, `""` without one: the end of the
/// first line a load tester prints.
pub fn rate_cap_note(max_requests_per_second: u64) -> String {
    match max_requests_per_second {
        0 => String::new(),
        n => format!(", at most {n} requests/s"),
    }
}

/// Write the end of a load tester's output: the totals line,
/// `announce responses total: N`, `responses per second: N` (rounded to a
/// whole number) and, when given, the JSON line.
pub fn write_summary(
    out: &mut dyn Write,
    totals_line: &str,
    announce_responses_total: u64,
    responses_per_second: f64,
    json: Option<&str>,
) -> anyhow::Result<()> {
    let mut text = format!(
        "{totals_line}\nannounce responses total: {announce_responses_total}\nresponses per second: {}\n",
        responses_per_second.round()
    );
    if let Some(json) = json {
        text.push_str(json);
        text.push('\n');
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    struct One {
        n: u64,
    }
    crate::impl_counts!(One { n });

    #[test]
    fn per_second_rounds_to_one_decimal() {
        assert_eq!(per_second(130, 4.0), 32.5);
        assert_eq!(per_second(1, 3.0), 0.3);
        assert_eq!(per_second(5, 0.0), 0.0);
    }

    #[test]
    fn sweep_interval_is_an_eighth_of_the_timeout_within_bounds() {
        assert_eq!(
            sweep_interval(Duration::from_millis(200)),
            Duration::from_millis(25)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(2)),
            Duration::from_millis(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(2)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn workers_run_for_the_duration_with_progress_lines() {
        let shared = Arc::new(SharedCounts::<One>::default());
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (shared, stop) = (shared.clone(), stop.clone());
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        shared.add_and_reset(&mut One { n: 1 });
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(())
                }
            })
            .collect();
        let mut progress = Vec::new();
        let schedule = Schedule {
            duration: Duration::from_millis(500),
            summarize_every: Duration::from_millis(200),
        };
        let elapsed = run_workers(
            workers,
            &shared,
            &stop,
            schedule,
            &mut progress,
            |t, c, s| format!("{:.1} {} {}", t.as_secs_f64(), c.n > 0, s > 0.1),
        )
        .unwrap();
        assert!(elapsed >= schedule.duration && elapsed < Duration::from_secs(2));
        assert!(stop.load(Ordering::Relaxed));
        assert_eq!(
            String::from_utf8(progress).unwrap(),
            "0.2 true true\n0.4 true true\n"
        );
        assert!(shared.snapshot().n > 10);
    }

    #[test]
    fn a_failing_worker_ends_the_run_early_with_its_error() {
        let shared = SharedCounts::<One>::default();
        let stop = AtomicBool::new(false);
        let workers: Vec<Box<dyn FnOnce() -> anyhow::Result<()> + Send>> = vec![
            Box::new(|| anyhow::bail!("broken")),
            Box::new(|| panic!("worker panic (expected by the test)")),
        ];
        let started = Instant::now();
        let err = run_workers(
            workers,
            &shared,
            &stop,
            Schedule::from_secs(30, 0),
            &mut std::io::sink(),
            |_, _, _| String::new(),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(format!("{err:#}"), "worker 0: broken");
    }

    #[test]
    fn seconds_round_to_milliseconds() {
        assert_eq!(rounded_secs(2.00049), 2.0);
        assert_eq!(rounded_secs(1.2346), 1.235);
    }

    #[test]
    fn summary_lines() {
        let mut out = Vec::new();
        write_summary(&mut out, "totals", 7, 12.5, Some("{}")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "totals\nannounce responses total: 7\nresponses per second: 13\n{}\n"
        );
        assert_eq!(rate_cap_note(0), "");
        assert_eq!(rate_cap_note(500), ", at most 500 requests/s");
    }
}
