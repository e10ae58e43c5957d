//! Worker supervision: the main thread starts the workers, then waits for a
//! signal or a worker's end.
//!
//! Workers are meant to run for the life of the process, so any worker that
//! returns, fails or panics takes the whole process down with a non-zero exit
//! code and a log line; the daemon is never left half alive. SIGTERM and
//! SIGINT end it with code 0; SIGUSR1 calls the reload hook (access lists,
//! certificates).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;

use anyhow::Context;
use crossbeam_channel::{Receiver, Sender, unbounded};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

#[derive(Debug)]
pub enum SupervisorEvent {
    Terminate,
    Reload,
    WorkerEnded { name: String, error: String },
}

pub struct Supervisor {
    sender: Sender<SupervisorEvent>,
    receiver: Receiver<SupervisorEvent>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        let (sender, receiver) = unbounded();
        Self { sender, receiver }
    }

    /// Start a named worker thread. Its end, by error, panic or return, is
    /// reported to `run`.
    pub fn spawn<F>(&self, name: String, f: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> anyhow::Result<()> + Send + 'static,
    {
        let sender = self.sender.clone();
        let worker_name = name.clone();
        thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let error = match catch_unwind(AssertUnwindSafe(f)) {
                    Ok(Ok(())) => "returned unexpectedly".to_string(),
                    Ok(Err(err)) => format!("failed: {err:#}"),
                    Err(payload) => format!("panicked: {}", panic_message(&payload)),
                };
                let _ = sender.send(SupervisorEvent::WorkerEnded {
                    name: worker_name,
                    error,
                });
            })
            .with_context(|| format!("cannot start thread {name}"))?;
        Ok(())
    }

    /// Route SIGTERM, SIGINT and SIGUSR1 to `run`.
    pub fn handle_signals(&self) -> anyhow::Result<()> {
        let mut signals =
            Signals::new([SIGTERM, SIGINT, SIGUSR1]).context("cannot install signal handlers")?;
        let sender = self.sender.clone();
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let event = if signal == SIGUSR1 {
                        SupervisorEvent::Reload
                    } else {
                        SupervisorEvent::Terminate
                    };
                    if sender.send(event).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start signal thread")?;
        Ok(())
    }

    /// A sender for events from elsewhere (tests, custom triggers).
    pub fn sender(&self) -> Sender<SupervisorEvent> {
        self.sender.clone()
    }

    /// Wait until the daemon must stop; returns the process exit code.
    /// `on_reload` runs on the main thread for every SIGUSR1; `on_terminate`
    /// runs once before a clean exit.
    pub fn run(self, mut on_reload: impl FnMut(), on_terminate: impl FnOnce()) -> i32 {
        loop {
            match self.receiver.recv() {
                Ok(SupervisorEvent::Reload) => on_reload(),
                Ok(SupervisorEvent::Terminate) => {
                    log::info!("received termination signal, exiting");
                    on_terminate();
                    return 0;
                }
                Ok(SupervisorEvent::WorkerEnded { name, error }) => {
                    log::error!("worker {name} {error}; exiting");
                    return 1;
                }
                Err(_) => return 1,
            }
        }
    }
}

fn panic_message(payload: &Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panicking_worker_gives_exit_code_one() {
        let supervisor = Supervisor::new();
        supervisor
            .spawn("doomed".into(), || panic!("boom"))
            .unwrap();
        assert_eq!(supervisor.run(|| {}, || {}), 1);
    }

    #[test]
    fn terminate_gives_zero_and_reload_calls_hook() {
        let supervisor = Supervisor::new();
        let sender = supervisor.sender();
        sender.send(SupervisorEvent::Reload).unwrap();
        sender.send(SupervisorEvent::Reload).unwrap();
        sender.send(SupervisorEvent::Terminate).unwrap();
        let mut reloads = 0;
        let mut terminated = false;
        assert_eq!(supervisor.run(|| reloads += 1, || terminated = true), 0);
        assert_eq!(reloads, 2);
        assert!(terminated);
    }
}
