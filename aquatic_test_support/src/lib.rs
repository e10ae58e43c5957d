//! Test harness shared by the daemons' integration tests: start a daemon
//! binary with a generated config, learn its address from the `listening
//! on` log line, send it signals, read its log, and stop it by PID when
//! dropped; [`metrics`] reads its Prometheus endpoint, [`http`] speaks
//! HTTP/1.1 to aquatic_http, [`ws`] raw WebSocket frames to aquatic_ws,
//! [`tls`] makes certificates and TLS configs, [`defences`] and [`state`]
//! hold what the daemons' tests of those features share, [`collectors`]
//! checks a metrics collector's text (unit tests).
//!
//! Only for tests (`publish = false`); panics freely.

#![forbid(unsafe_code)]

pub mod collectors;
pub mod defences;
pub mod http;
pub mod metrics;
pub mod state;
pub mod tls;
pub mod ws;

use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Child,
    /// The binary's file name (`aquatic_udp`, ...): its metrics' prefix.
    name: String,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// What it logged up to and including `listening on`.
    pub startup_log: String,
    log: mpsc::Receiver<String>,
}

pub fn config_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("config.toml")
}

/// `config` (TOML) with what every test wants unless it says otherwise:
/// `log_level = "info"` (the harness reads the `listening on` line) and
/// `[network] address = "127.0.0.1:0"` (a free port on loopback).
pub fn test_config(config: &str) -> String {
    let mut table: toml::Table = config
        .parse()
        .unwrap_or_else(|err| panic!("test config is not TOML: {err}\n{config}"));
    table.entry("log_level").or_insert_with(|| "info".into());
    let network = table
        .entry("network")
        .or_insert_with(|| toml::Table::new().into());
    if let Some(network) = network.as_table_mut() {
        network
            .entry("address")
            .or_insert_with(|| "127.0.0.1:0".into());
    }
    table.to_string()
}

impl Daemon {
    /// Start `binary` with [`test_config`]`(config)` in a fresh directory;
    /// panics with the daemon's log if it does not start.
    pub fn launch(binary: &str, config: &str) -> Daemon {
        Self::launch_in(
            binary,
            tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            config,
        )
    }

    /// As [`launch`](Self::launch), in `dir` (e.g. one holding files the
    /// config names).
    pub fn launch_in(binary: &str, dir: tempfile::TempDir, config: &str) -> Daemon {
        Self::start(binary, dir, &test_config(config))
            .unwrap_or_else(|log| panic!("{binary} did not start: {log}"))
    }

    /// Start `binary -c <dir>/config.toml` with `config`; the log so far if
    /// it never logs `listening on ADDR` within 10 s.
    pub fn start(binary: &str, dir: tempfile::TempDir, config: &str) -> Result<Daemon, String> {
        Self::start_wrapped(&[], binary, dir, config)
    }

    /// As [`start`](Self::start), run through `wrapper` (a command and its
    /// arguments that execs the rest, e.g. `prlimit --nofile=600:600 --`).
    pub fn start_wrapped(
        wrapper: &[&str],
        binary: &str,
        dir: tempfile::TempDir,
        config: &str,
    ) -> Result<Daemon, String> {
        std::fs::write(config_path(&dir), config).map_err(|e| e.to_string())?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .arg("-c")
            .arg(config_path(&dir))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let name = std::path::Path::new(binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut seen = String::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest
                            .split_whitespace()
                            .next()
                            .and_then(|a| a.parse().ok())
                            .ok_or_else(|| format!("bad address in {line}"))?;
                        return Ok(Daemon {
                            child,
                            name,
                            addr,
                            dir,
                            startup_log: seen,
                            log: rx,
                        });
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(seen);
                }
            }
        }
    }

    /// The binary's file name, e.g. `aquatic_http`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Wait for a log line containing `needle`, up to `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Wait up to `timeout` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `binary -c FILE` with `config` to completion: (exit code, stderr).
pub fn run_to_exit(binary: &str, config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config_path(&dir);
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(binary)
        .arg("-c")
        .arg(&path)
        .output()
        .expect("binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Let this process (and the daemons it starts later, which inherit the
/// limit) have `needed` open files: if the soft `RLIMIT_NOFILE` is lower,
/// raise it towards `needed` with `prlimit` (util-linux), never above the
/// hard limit. The soft limit in effect afterwards.
pub fn ensure_open_files(needed: u64) -> u64 {
    let (soft, hard) = open_files_limits();
    if soft >= needed {
        return soft;
    }
    let _ = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={}:", needed.min(hard)))
        .status();
    open_files_limits().0
}

/// (soft, hard) `RLIMIT_NOFILE` of this process, from /proc/self/limits.
fn open_files_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let value = |v: Option<&str>| match v {
        Some("unlimited") => u64::MAX,
        v => v.and_then(|v| v.parse().ok()).unwrap_or(0),
    };
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .map(|rest| {
            let mut fields = rest.split_whitespace();
            (value(fields.next()), value(fields.next()))
        })
        .unwrap_or((0, 0))
}

/// A TCP connection to `addr` from the local address `from` (any of
/// 127.0.0.0/8 works on Linux without configuration): a client of another
/// source, for per-source budgets. Reads give up after 5 s.
pub fn tcp_from(from: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.bind(&SockAddr::from(SocketAddr::new(from, 0)))?;
    socket.connect_timeout(&SockAddr::from(addr), Duration::from_secs(5))?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// A new directory holding `SECTION.txt` with `lines`, the file's path,
/// and the config section `[SECTION]` of `mode` naming it: the shape of
/// both `[ip_filter]` and `[access_list]`.
pub fn list_file(section: &str, mode: &str, lines: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{section}.txt"));
    std::fs::write(&path, lines).expect("write the list file");
    let config = format!(
        "[{section}]\nmode = \"{mode}\"\npath = {:?}\n",
        path.display().to_string()
    );
    (dir, path, config)
}

/// 127.0.0.N: a loopback address of its own for client number N.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

#[cfg(test)]
mod tests {
    use super::test_config;

    #[test]
    fn test_configs_get_loopback_and_info_unless_they_say_otherwise() {
        let config: toml::Table =
            test_config("socket_workers = 2\n[network]\nmax_connections = 5\n")
                .parse()
                .unwrap();
        assert_eq!(config["log_level"].as_str(), Some("info"));
        assert_eq!(config["socket_workers"].as_integer(), Some(2));
        assert_eq!(config["network"]["address"].as_str(), Some("127.0.0.1:0"));
        assert_eq!(config["network"]["max_connections"].as_integer(), Some(5));
        let config: toml::Table =
            test_config("log_level = \"debug\"\n[network]\naddress = \"[::1]:0\"\n")
                .parse()
                .unwrap();
        assert_eq!(config["log_level"].as_str(), Some("debug"));
        assert_eq!(config["network"]["address"].as_str(), Some("[::1]:0"));
    }
}
