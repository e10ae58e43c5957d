"""A daemon with its metrics listener on, and its load tester, for the
scripts that check what that listener serves (scripts/status_page.py,
scripts/grafana/dashboards.py). Imported, not run.

Everything binds 127.0.0.1; every process started is stopped by its PID
(`stop`), every wait is bounded (`wait_for`).
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_for(what, check, seconds):
    """Until `check()` is true (OSError counts as not yet), at most
    `seconds`; else exit naming `what`."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise SystemExit(f"{what} within {seconds} s (last error: {last})")


def stop(process):
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Monitored:
    """aquatic_NAME (of `build`) on a free port with metrics on another,
    `extra` appended to its config (new sections only), started and
    serving /health when made. `work` holds its files."""

    def __init__(self, name, build, extra="", socket_workers=1):
        self.name = name
        self.build = build
        self.work = tempfile.mkdtemp(prefix=f"aquatic-{name}-monitored.")
        self.port, self.metrics_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.metrics_port}"
        config = os.path.join(self.work, "config.toml")
        with open(config, "w") as f:
            f.write(f"""log_level = "warn"
socket_workers = {socket_workers}
request_workers = 1
[network]
address = "127.0.0.1:{self.port}"
[metrics]
enabled = true
address = "127.0.0.1:{self.metrics_port}"
[source_budgets]
share_percent = 100
peers_per_torrent = 0
[cleaning]
interval = 1
{extra}""")
        binary = os.path.join(REPO, "target", build, f"aquatic_{name}")
        self.process = subprocess.Popen([binary, "-c", config], stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(self.work, "daemon.log"), "w"))
        self.load = None
        try:
            wait_for(f"aquatic_{name} serving /health (log in {self.work})",
                     lambda: self.process.poll() is None and get(self.base + "/health", 1) == "ok\n", 20)
        except SystemExit:
            stop(self.process)
            raise

    def start_load(self, seconds, rate=2000):
        """Its load tester against it for `seconds`, at most `rate`
        requests a second."""
        config = os.path.join(self.work, "load.toml")
        with open(config, "w") as f:
            f.write(f"""server_address = "127.0.0.1:{self.port}"
workers = 1
duration = {seconds}
summarize_every = 0
max_requests_per_second = {rate}
""")
        binary = os.path.join(REPO, "target", self.build, f"aquatic_{self.name}_load_test")
        self.load = subprocess.Popen([binary, "-c", config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def wait_load(self, seconds):
        try:
            self.load.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            stop(self.load)
        self.load = None

    def close(self):
        stop(self.load)
        stop(self.process)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
