//! Helpers for the load testers' integration tests (a fake tracker on a
//! thread of its own, running the binary, reading the end of its output).
//! Only for tests: they panic on every failure.

use std::fmt::Debug;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aquatic_common::InfoHash;

use crate::torrents::info_hash;

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

/// A connection a fake TCP tracker serves: plain, or TLS over TCP.
pub trait Stream: Read + Write + Send {}

impl<T: Read + Write + Send> Stream for T {}

/// A fake TCP tracker on 127.0.0.1: accepts until stopped and serves each
/// connection on a thread of its own with `serve(stream, stop)`, the
/// stream blocking with `read_timeout` and behind TLS with `tls`.
pub fn serve_tcp(
    tls: Option<Arc<rustls::ServerConfig>>,
    read_timeout: Duration,
    serve: impl Fn(Box<dyn Stream>, Arc<AtomicBool>) + Clone + Send + 'static,
) -> (SocketAddr, ServerThread<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let server = ServerThread::spawn(move |stop| {
        while !stop.load(Ordering::Relaxed) {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                Err(err) => panic!("accept: {err}"),
            };
            let (serve, stop, tls) = (serve.clone(), stop.clone(), tls.clone());
            std::thread::spawn(move || serve(wrap(stream, read_timeout, tls), stop));
        }
    });
    (address, server)
}

fn wrap(
    stream: TcpStream,
    read_timeout: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Box<dyn Stream> {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    match tls {
        None => Box::new(stream),
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).unwrap();
            Box::new(rustls::StreamOwned::new(conn, stream))
        }
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

/// An address on 127.0.0.1 nobody listens on (TCP).
pub fn unused_tcp_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Run a load test of `duration` seconds with `run`, which gets where to
/// write its progress lines, and check what holds for every run: it ended
/// on time (neither early nor more than 2 s late), and each request sent
/// was settled (answered, failed, timed out or dropped) or was in flight at
/// the end, at most one on each of the `connections`; `requests` gives a
/// summary's `[sent, settled, in flight]`. The summary, the progress lines
/// and how long the run took.
pub fn run_checked<S: Debug>(
    duration: u64,
    connections: usize,
    run: impl FnOnce(&mut Vec<u8>) -> anyhow::Result<S>,
    requests: impl FnOnce(&S) -> [u64; 3],
) -> (S, String, Duration) {
    let started = Instant::now();
    let mut progress = Vec::new();
    let summary = run(&mut progress).unwrap();
    let took = started.elapsed();
    let duration = Duration::from_secs(duration);
    assert!(took >= duration, "{took:?}");
    assert!(took < duration + Duration::from_secs(2), "{took:?}");
    let [sent, settled, in_flight] = requests(&summary);
    assert_eq!(sent, settled + in_flight, "{summary:?}");
    assert!(in_flight <= connections as u64, "{summary:?}");
    (summary, String::from_utf8(progress).unwrap(), took)
}

/// Run the binary `exe` with `args` and the config `toml`, written to a
/// new temporary directory (see [`tempdir`]) that is removed afterwards;
/// its output.
pub fn run_binary_with_config(
    exe: &str,
    prefix: &str,
    tag: &str,
    toml: &str,
    args: &[&str],
) -> Output {
    let dir = tempdir(prefix, tag);
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, toml).unwrap();
    let output = run_binary(exe, &config_path, args);
    std::fs::remove_dir_all(&dir).unwrap();
    output
}

/// Run the binary `exe` with `--json` and the config `toml` (see
/// [`run_binary_with_config`]); it must succeed. Its stdout.
pub fn run_binary_json(exe: &str, prefix: &str, toml: &str) -> String {
    let output = run_binary_with_config(exe, prefix, "it", toml, &["--json"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    stdout
}

/// The binary `exe` against `address`, where nobody answers, for a second:
/// it exits with code 2, saying `complaint` on stderr.
pub fn check_exit_code_2_without_tracker(
    exe: &str,
    prefix: &str,
    address: SocketAddr,
    complaint: &str,
) {
    let toml = format!("server_address = \"{address}\"\nduration = 1\n");
    let output = run_binary_with_config(exe, prefix, "none", &toml, &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(complaint), "{stderr}");
}

/// The binary `exe` with `info_hash_file` writes the 20 info hashes of
/// seed 5 there, one line each in hex, the fourth `fourth`, and exits
/// successfully.
pub fn check_info_hash_file(exe: &str, prefix: &str, fourth: &str) {
    let dir = tempdir(prefix, "ih");
    let hashes = dir.join("whitelist");
    let config_path = dir.join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "[requests]\nnumber_of_torrents = 20\ninfo_hash_seed = 5\ninfo_hash_file = \"{}\"\n",
            hashes.display()
        ),
    )
    .unwrap();
    let output = run_binary(exe, &config_path, &[]);
    assert!(output.status.success());
    let text = std::fs::read_to_string(&hashes).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20);
    assert!(lines.iter().all(|l| l.len() == 40));
    assert_eq!(lines[3], fourth);
}

/// A fake TCP tracker (see [`serve_tcp`]) and what it counted.
pub struct TcpTracker<R> {
    /// Where it listens.
    pub address: SocketAddr,
    received: Arc<R>,
    server: ServerThread<()>,
}

impl<R: Default + Send + Sync + 'static> TcpTracker<R> {
    /// Serve each connection with `serve(stream, stop, received)`, the
    /// stream as [`serve_tcp`] makes it.
    pub fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        read_timeout: Duration,
        serve: impl Fn(Box<dyn Stream>, Arc<AtomicBool>, Arc<R>) + Clone + Send + 'static,
    ) -> Self {
        let received = Arc::new(R::default());
        let counts = received.clone();
        let (address, server) = serve_tcp(tls, read_timeout, move |stream, stop| {
            serve(stream, stop, counts.clone())
        });
        Self {
            address,
            received,
            server,
        }
    }

    /// Let requests still on their way be read, then stop; what it counted.
    pub fn finish(self) -> Arc<R> {
        self.server.finish();
        self.received
    }
}

/// The info hashes of torrents `0..n` of seed 0 (the default config's).
pub fn first_info_hashes(n: u64) -> Vec<InfoHash> {
    (0..n).map(|i| info_hash(0, i)).collect()
}

/// A scrape's info hashes: 1 to `max` of them, each one of `torrents`.
pub fn check_scrape(info_hashes: &[InfoHash], max: usize, torrents: &[InfoHash]) {
    assert!((1..=max).contains(&info_hashes.len()), "{info_hashes:?}");
    assert!(info_hashes.iter().all(|h| torrents.contains(h)));
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
