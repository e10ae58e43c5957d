#!/usr/bin/env python3
"""The swarm state file with millions of peers: load time, save time, file
size and memory while saving, for aquatic_udp (and aquatic_http).

usage: scripts/bench/state_file.py [--daemons udp,http] [--peers 1000000,10000000]

For each daemon and peer count: writes a state file of that many IPv4
peers with `target/release/examples/state_file` (swarms of 1 to 46 peers,
10 on average), starts `target/release/aquatic_DAEMON` (127.0.0.1, default
config but for [state] path and max_peers) so that it loads the file,
waits until it has loaded the file, reads its RSS, sends SIGTERM and samples VmRSS
every 10 ms until it exits. Prints the daemon's own load and
save times (its log lines), the time from SIGTERM to exit, the file
size, the RSS once loaded and the peak RSS during the save, as a Markdown
table for scripts/bench/RESULTS.md. systemd's TimeoutStopSec (90 s by
default) bounds the SIGTERM-to-exit time.

Build first: cargo build --release -p aquatic_udp -p aquatic_http &&
cargo build --release --example state_file -p aquatic_common.
Every process started here is stopped by its PID; every wait is bounded.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def measure(daemon, peers, work):
    state = work / f"{daemon}-{peers}.state"
    subprocess.run(
        [str(RELEASE / "examples" / "state_file"), daemon, str(peers), str(state)],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    size = state.stat().st_size
    config = work / f"{daemon}.toml"
    config.write_text(
        'log_level = "info"\n'
        "[network]\naddress = \"127.0.0.1:0\"\n"
        f"[protocol]\nmax_peers = {2 * peers}\n"
        f"[state]\npath = \"{state}\"\n"
    )
    proc = subprocess.Popen(
        [str(RELEASE / f"aquatic_{daemon}"), "-c", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 600
        # The state is loaded after the sockets are bound (and "listening
        # on" logged) and before any worker starts: wait for its line.
        while not any("swarm state loaded" in line for line in lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"aquatic_{daemon} did not start:\n{''.join(lines)}")
            time.sleep(0.05)
        time.sleep(1)
        rss_loaded = status_kib(proc.pid, "VmRSS")
        peak = rss_loaded
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:
            value = status_kib(proc.pid, "VmRSS")
            if value is not None:
                peak = max(peak, value)
            if time.monotonic() - sent > 300:
                raise RuntimeError("no exit within 300 s of SIGTERM")
            time.sleep(0.01)
        exit_secs = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        reader.join(timeout=5)
    log = "".join(lines)
    loaded = re.search(r"swarm state loaded from .*: (\d+) torrents, (\d+) peers .* in ([0-9.]+) s", log)
    saved = re.search(r"swarm state saved to .* \((\d+) bytes, \d+ shards, ([0-9.]+) s\)", log)
    if not (loaded and saved):
        raise RuntimeError(f"no load or save line in the log:\n{log}")
    state.unlink()
    return {
        "daemon": f"aquatic_{daemon}",
        "peers": int(loaded.group(2)),
        "torrents": int(loaded.group(1)),
        "file_mib": size / 2**20,
        "saved_mib": int(saved.group(1)) / 2**20,
        "load_s": float(loaded.group(3)),
        "save_s": float(saved.group(2)),
        "exit_s": exit_secs,
        "rss_mib": rss_loaded / 1024,
        "peak_mib": peak / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemons", default="udp,http")
    parser.add_argument("--peers", default="1000000,10000000")
    args = parser.parse_args()
    for binary in ["examples/state_file"] + [f"aquatic_{d}" for d in args.daemons.split(",")]:
        if not os.access(RELEASE / binary, os.X_OK):
            sys.exit(f"target/release/{binary} missing: build it first (see --help)")
    print("| daemon | peers | torrents | file MiB | load s | save s | SIGTERM to exit s | RSS loaded MiB | peak RSS while saving MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="aquatic-state-bench.") as tmp:
        for daemon in args.daemons.split(","):
            for peers in [int(p) for p in args.peers.split(",")]:
                r = measure(daemon, peers, Path(tmp))
                print(
                    f"| {r['daemon']} | {r['peers']:,} | {r['torrents']:,} | {r['saved_mib']:.0f} "
                    f"| {r['load_s']:.2f} | {r['save_s']:.2f} | {r['exit_s']:.2f} "
                    f"| {r['rss_mib']:.0f} | {r['peak_mib']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
