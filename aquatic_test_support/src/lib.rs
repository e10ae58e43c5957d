//! Test harness shared by the daemons' integration tests: start a daemon
//! binary with a generated config, learn its address from the `listening
//! on` log line, send it signals, read its log, and stop it by PID when
//! dropped; [`metrics`] reads its Prometheus endpoint.
//!
//! Only for tests (`publish = false`); panics freely.

#![forbid(unsafe_code)]

pub mod metrics;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    log: mpsc::Receiver<String>,
}

pub fn config_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("config.toml")
}

impl Daemon {
    /// Start `binary -c <dir>/config.toml` with `config`; the log so far if
    /// it never logs `listening on ADDR` within 10 s.
    pub fn start(binary: &str, dir: tempfile::TempDir, config: &str) -> Result<Daemon, String> {
        std::fs::write(config_path(&dir), config).map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
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
                            addr,
                            dir,
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
