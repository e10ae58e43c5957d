//! Helpers for the load testers' integration tests (a fake tracker on a
//! thread of its own, running the binary, reading the end of its output).
//! Only for tests: they panic on every failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A thread serving until told to stop, such as a fake tracker's.
pub struct ServerThread<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<T>,
}

impl<T: Send + 'static> ServerThread<T> {
    /// Run `serve` on a new thread; it must return soon after the flag it
    /// gets is set.
    pub fn spawn(serve: impl FnOnce(Arc<AtomicBool>) -> T + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let handle = std::thread::spawn(move || serve(stop_flag));
        Self { stop, handle }
    }

    /// Let requests still on their way be read, then stop the thread and
    /// return what it returned.
    pub fn finish(self) -> T {
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// A new directory `<prefix>_<tag>_<pid>` in the system's temporary
/// directory.
pub fn tempdir(prefix: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run the binary `exe` with `-c config_path` and `args`; its output.
pub fn run_binary(exe: &str, config_path: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .arg("-c")
        .arg(config_path)
        .args(args)
        .output()
        .unwrap()
}

/// The last three lines of a load tester's output with `--json`.
#[derive(Clone, Copy, Debug)]
pub struct SummaryTail<'a> {
    /// From `announce responses total: N`.
    pub announce_responses_total: u64,
    /// From `responses per second: N`.
    pub responses_per_second: f64,
    /// The JSON line.
    pub json: &'a str,
}

impl<'a> SummaryTail<'a> {
    /// Read them from `stdout`; panics (showing it) when they are not there.
    pub fn parse(stdout: &'a str) -> Self {
        let lines: Vec<&str> = stdout.lines().collect();
        let [.., announces, rate, json] = lines[..] else {
            panic!("{stdout}");
        };
        Self {
            announce_responses_total: announces
                .strip_prefix("announce responses total: ")
                .unwrap_or_else(|| panic!("{stdout}"))
                .parse()
                .unwrap(),
            responses_per_second: rate
                .strip_prefix("responses per second: ")
                .unwrap_or_else(|| panic!("{stdout}"))
                .parse()
                .unwrap(),
            json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_thread_stops_and_returns() {
        let server = ServerThread::spawn(|stop| {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rounds += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            rounds
        });
        assert!(server.finish() > 0);
    }

    #[test]
    fn summary_tail_is_read() {
        let stdout = "load testing\ntotals\nannounce responses total: 7\nresponses per second: 13\n{\"a\":1}\n";
        let tail = SummaryTail::parse(stdout);
        assert_eq!(tail.announce_responses_total, 7);
        assert_eq!(tail.responses_per_second, 13.0);
        assert_eq!(tail.json, "{\"a\":1}");
        let dir = tempdir("aquatic_load_test_common", "testing");
        assert!(dir.is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
