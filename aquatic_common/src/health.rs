//! Whether the daemon's workers are alive and turning: each socket and
//! request worker beats its [`Heartbeat`] once per turn of its loop (they
//! turn at least every poll timeout or idle wake, under load far more
//! often), and `GET /health` on the metrics listener reports a worker whose
//! last turn is older than [`STALL_BOUND_SECS`].
//!
//! A beat is one relaxed load, and a store only when the second changed: the
//! hot path writes its own cache line about once a second.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_utils::CachePadded;

use crate::{SecondsSinceStart, ServerStartInstant};

/// A worker whose loop has not turned for longer than this is stalled.
/// Loops turn at least every poll timeout (50 ms by default) or idle wake
/// (100 ms); cleaning a shard of millions of peers takes a second or two.
pub const STALL_BOUND_SECS: u32 = 15;

/// The second (since start) of a worker's last loop turn.
#[derive(Debug, Default)]
pub struct Heartbeat(CachePadded<AtomicU32>);

impl Heartbeat {
    /// One wait of a worker's event loop: poll for `events` (up to
    /// `timeout`), then beat. The time of the beat, or `None` when a
    /// signal interrupted the wait (go round again).
    pub fn poll(
        &self,
        poll: &mut mio::Poll,
        events: &mut mio::Events,
        timeout: std::time::Duration,
        clock: &ServerStartInstant,
    ) -> anyhow::Result<Option<SecondsSinceStart>> {
        match poll.poll(events, Some(timeout)) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(err) => Err(anyhow::Error::new(err).context("poll failed")),
            Ok(()) => {
                let now = clock.seconds_elapsed();
                self.beat(now);
                Ok(Some(now))
            }
        }
    }

    pub fn beat(&self, now: SecondsSinceStart) {
        if self.0.load(Ordering::Relaxed) != now.0 {
            self.0.store(now.0, Ordering::Relaxed);
        }
    }

    fn last(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The heartbeats registered, with their workers' names.
type Registered = Vec<(String, Arc<Heartbeat>)>;

/// Every worker's heartbeat, by worker name (`socket-0`, `request-1`).
#[derive(Clone, Debug)]
pub struct Heartbeats {
    clock: ServerStartInstant,
    workers: Arc<Mutex<Registered>>,
}

/// One worker as `/health` and `/stats.json` report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerTurn {
    pub name: String,
    /// Seconds since its loop last turned.
    pub idle_secs: u32,
}

impl Heartbeats {
    pub fn new(clock: ServerStartInstant) -> Self {
        Self {
            clock,
            workers: Arc::default(),
        }
    }

    /// A heartbeat for the worker `name`, beaten now (a worker that never
    /// starts is stalled after the bound).
    pub fn register(&self, name: String) -> Arc<Heartbeat> {
        let heartbeat = Arc::new(Heartbeat::default());
        heartbeat.beat(self.clock.seconds_elapsed());
        self.workers().push((name, heartbeat.clone()));
        heartbeat
    }

    /// Every worker, in the order registered.
    pub fn turns(&self) -> Vec<WorkerTurn> {
        self.turns_at(self.clock.seconds_elapsed())
    }

    /// `Ok` while every worker turned within [`STALL_BOUND_SECS`];
    /// otherwise which did not.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(self.clock.seconds_elapsed())
    }

    fn turns_at(&self, now: SecondsSinceStart) -> Vec<WorkerTurn> {
        self.workers()
            .iter()
            .map(|(name, heartbeat)| WorkerTurn {
                name: name.clone(),
                idle_secs: now.0.saturating_sub(heartbeat.last()),
            })
            .collect()
    }

    fn check_at(&self, now: SecondsSinceStart) -> Result<(), String> {
        let stalled: Vec<String> = self
            .turns_at(now)
            .into_iter()
            .filter(|t| t.idle_secs > STALL_BOUND_SECS)
            .map(|t| format!("{} has not turned for {} s", t.name, t.idle_secs))
            .collect();
        if stalled.is_empty() {
            Ok(())
        } else {
            Err(stalled.join("; "))
        }
    }

    /// The list (a panic while it was held leaves it intact: it is only
    /// pushed to).
    fn workers(&self) -> MutexGuard<'_, Registered> {
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The clock the heartbeats are read by (the daemon's).
    pub fn clock(&self) -> ServerStartInstant {
        self.clock
    }

    pub fn uptime_secs(&self) -> u32 {
        self.clock.seconds_elapsed().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_stops_beating_is_reported_by_name() {
        let heartbeats = Heartbeats::new(ServerStartInstant::new());
        let socket = heartbeats.register("socket-0".into());
        let _request = heartbeats.register("request-0".into());
        assert_eq!(heartbeats.check(), Ok(()));
        let later = SecondsSinceStart(STALL_BOUND_SECS + 5);
        socket.beat(later);
        assert_eq!(
            heartbeats.check_at(later),
            Err(format!(
                "request-0 has not turned for {} s",
                STALL_BOUND_SECS + 5
            ))
        );
        let turns = heartbeats.turns_at(later);
        assert_eq!(turns.len(), 2);
        assert_eq!(
            (turns[0].name.as_str(), turns[0].idle_secs),
            ("socket-0", 0)
        );
        // Within the bound is healthy.
        assert_eq!(
            heartbeats.check_at(SecondsSinceStart(STALL_BOUND_SECS)),
            Ok(())
        );
    }
}
