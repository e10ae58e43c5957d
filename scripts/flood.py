#!/usr/bin/env python3
"""Random info-hash flood: memory stays within the documented budget and
falls back after cleaning.

usage: scripts/flood.py [--build debug|release] [--peers N] [--daemons udp,http,ws]

For each daemon: starts target/BUILD/aquatic_DAEMON on 127.0.0.1 (one
socket worker, request_workers = 0 so one shard holds every peer,
[protocol] max_peers = N, peers dropped --max-peer-age seconds after their
last announce, cleaning every 2 s, Prometheus metrics on), then floods it
with its own load tester (target/BUILD/aquatic_DAEMON_load_test) announcing
to 2^60 torrents picked uniformly, so nearly every announce is for a torrent
never seen before, until --flood-factor x N announces were answered. Then it
stops the load, waits until cleaning has removed every torrent and checks:

  1. the ceiling holds: the torrents gauge reached N and never went over it
     (one peer per torrent, so torrents = peers), and announces beyond it
     were still answered (no error responses, the load tester saw no
     failure);
  2. memory stays within the budget: peak RSS - idle RSS <= N x BUDGET
     bytes + SLACK (the per-peer budget documented in README "Sizing
     memory": worst case, every peer in its own torrent);
  3. memory falls back: within 60 s of the cleaning that removed the last
     torrent, RSS - idle RSS <= a quarter of the peak growth (meanwhile the
     load tester sends a trickle of 1000 scrapes a second, which store
     nothing: the allocator hands freed pages back as the tracker works).

It prints the measured bytes per stored peer, and exits non-zero when a
check fails. The test suite runs it with debug binaries, --peers 300000
and --max-peer-age 90;
scripts/bench/RESULTS.md has a release run with millions.

Binaries must be built already. Traffic stays on 127.0.0.1; every process
started is stopped by its PID; every wait is bounded.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Bytes per stored peer when every peer is in its own torrent (the worst
# case), as README "Sizing memory" documents them. The hash tables of
# torrents double when they fill, so right after a doubling they are less
# than half full, and the allocator returns the old tables' pages lazily:
# the figures hold at any point of that cycle (measured up to 194, 211 and
# 309 bytes in release runs with 0.3 to 2 million peers, RESULTS.md).
BUDGET = {"udp": 110, "http": 240, "ws": 330}
# RSS that is not per peer: socket and channel buffers, the allocator's
# slack, the load's in-flight requests.
SLACK_BYTES = 16 * 1024 * 1024
# Within FALL_BACK_SECONDS of the cleaning that removed the last torrent,
# RSS must be back within this share of the peak growth.
FALL_BACK_SHARE = 0.25
FALL_BACK_SECONDS = 60

CLEANING_INTERVAL = 2
# Scrapes a second while memory falls back. The allocator (mimalloc)
# returns freed pages lazily, from its slow path: every so many
# allocations, so the more the tracker serves, the sooner (measured with
# aquatic_ws after 1.5 million peers: 34 s at 200 scrapes a second,
# at once with MIMALLOC_PURGE_DELAY=0). A public tracker serves far more.
TRICKLE_PER_SECOND = 1000


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def metrics(address, daemon):
    """(torrents, announce responses, error responses) from the daemon's
    Prometheus endpoint; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    torrents = announces = errors = 0
    for line in text.splitlines():
        m = re.match(r'^aquatic_%s_(\w+)\{([^}]*)\} (\S+)$' % daemon, line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2), float(m.group(3))
        if name == "torrents":
            torrents += int(value)
        elif name == "responses_total" and 'type="announce"' in labels:
            announces += int(value)
        elif name == "responses_total" and 'type="error"' in labels:
            errors += int(value)
    return torrents, announces, errors


def stop(proc):
    """Stop a process we started, by its PID: SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def tracker_config(daemon, port, metrics_port, peers, max_peer_age):
    extra = ""
    if daemon == "ws":
        # One connection of the load tester announces to many torrents.
        extra = f"max_torrents_per_connection = {peers}\n"
    return f"""log_level = "warn"
socket_workers = 1
request_workers = 0

[network]
address = "127.0.0.1:{port}"

[protocol]
max_peers = {peers}
peer_announce_interval = {max(1, max_peer_age // 2)}
{extra}
[cleaning]
interval = {CLEANING_INTERVAL}
max_peer_age = {max_peer_age}

[metrics]
enabled = true
address = "127.0.0.1:{metrics_port}"

# The load tester is one source (127.0.0.1): it may hold every share, so
# that it can fill max_peers (the per-source accounting still runs; its
# cost per source is measured apart, README "Sizing memory").
[source_budgets]
share_percent = 100
"""


def load_config(daemon, port, duration, trickle=False):
    """The flood: announces to 2^60 torrents, uniformly, as fast as the
    tracker answers. With `trickle`: TRICKLE_PER_SECOND scrapes a second of the same
    torrents, which store nothing."""
    lines = [
        f'server_address = "127.0.0.1:{port}"',
        f"duration = {duration}",
        "summarize_every = 0",
    ]
    if trickle:
        lines.append(f"max_requests_per_second = {TRICKLE_PER_SECOND}")
    if daemon == "udp":
        # Timeouts are requests the kernel dropped under load, not refusals.
        lines.append("request_timeout_ms = 2000")
    if daemon == "http":
        lines.append("keep_alive = true")
    if daemon == "ws":
        lines.append("connections_per_worker = 64")
    lines += [
        "",
        "[requests]",
        "weight_announce = 0" if trickle else "weight_scrape = 0",
        f"number_of_torrents = {2**60}",
        "torrent_selection_exponent = 0.0",
    ]
    if daemon == "ws":
        lines.append("offers_per_announce = 0")
    return "\n".join(lines) + "\n"


def flood(daemon, build, peers, factor, max_peer_age, time_limit, work):
    binary = os.path.join(REPO, "target", build, f"aquatic_{daemon}")
    load_binary = binary + "_load_test"
    for b in (binary, load_binary):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} missing: build it first (cargo build{' --release' if build == 'release' else ''})")
    port, metrics_port = free_port(), free_port()
    metrics_address = f"127.0.0.1:{metrics_port}"
    tcfg = os.path.join(work, f"{daemon}.toml")
    with open(tcfg, "w") as f:
        f.write(tracker_config(daemon, port, metrics_port, peers, max_peer_age))
    lcfg = os.path.join(work, f"{daemon}-load.toml")
    with open(lcfg, "w") as f:
        f.write(load_config(daemon, port, time_limit))
    wait_limit = max_peer_age + 4 * CLEANING_INTERVAL + 30
    trickle_cfg = os.path.join(work, f"{daemon}-trickle.toml")
    with open(trickle_cfg, "w") as f:
        f.write(load_config(daemon, port, wait_limit + 30, trickle=True))

    failures = []
    tracker = load = None
    tlog = open(os.path.join(work, f"{daemon}.log"), "w+")
    lout = open(os.path.join(work, f"{daemon}-load.out"), "w+")
    try:
        tracker = subprocess.Popen([binary, "-c", tcfg], stdout=tlog, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while metrics(metrics_address, daemon) is None:
            if tracker.poll() is not None or time.monotonic() > deadline:
                tlog.seek(0)
                raise SystemExit(f"aquatic_{daemon} did not start:\n{tlog.read()}")
            time.sleep(0.1)
        time.sleep(1)
        idle = rss_kib(tracker.pid)

        log(f"{daemon}: flooding aquatic_{daemon} (max_peers {peers}, idle RSS {idle / 1024:.1f} MiB) "
            f"until {factor:g} x {peers} announces are answered")
        load = subprocess.Popen([load_binary, "-c", lcfg], stdout=lout, stderr=subprocess.STDOUT)
        started = time.monotonic()
        peak_rss = idle
        most_torrents = 0
        announces = errors = 0
        next_metrics = 0.0
        while True:
            now = time.monotonic()
            peak_rss = max(peak_rss, rss_kib(tracker.pid))
            if now >= next_metrics:
                m = metrics(metrics_address, daemon)
                if m is not None:
                    torrents, announces, errors = m
                    most_torrents = max(most_torrents, torrents)
                next_metrics = now + 0.5
            if announces >= factor * peers:
                break
            if load.poll() is not None or now - started > time_limit:
                failures.append(f"flood too weak: {announces} announces answered in {now - started:.0f} s, "
                                f"wanted {factor:g} x {peers}")
                break
            time.sleep(0.1)
        flood_seconds = time.monotonic() - started
        stop(load)
        load_status = load.returncode
        load = None
        peak_rss = max(peak_rss, rss_kib(tracker.pid))
        m = metrics(metrics_address, daemon)
        if m is not None:
            torrents, announces, errors = m
            most_torrents = max(most_torrents, torrents)
        log(f"{daemon}: {announces} announces answered in {flood_seconds:.1f} s "
            f"({announces / flood_seconds:.0f}/s), {errors} error responses; most torrents stored {most_torrents}; "
            f"RSS idle {idle / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB")

        # 1. the ceiling
        if most_torrents > peers:
            failures.append(f"ceiling broken: {most_torrents} torrents stored, max_peers {peers}")
        if most_torrents < peers:
            failures.append(f"ceiling never reached: at most {most_torrents} of {peers} torrents stored")
        if errors:
            failures.append(f"{errors} error responses during the flood")
        if load_status not in (0, -signal.SIGTERM):
            lout.seek(0)
            failures.append(f"load tester exited with {load_status}:\n{lout.read()}")

        # 2. the budget
        growth = (peak_rss - idle) * 1024
        per_peer = growth / most_torrents if most_torrents else float("nan")
        allowed = peers * BUDGET[daemon] + SLACK_BYTES
        log(f"{daemon}: peak growth {growth / 2**20:.1f} MiB = {per_peer:.0f} bytes per stored peer; "
            f"budget {BUDGET[daemon]} bytes x {peers} + {SLACK_BYTES // 2**20} MiB = {allowed / 2**20:.1f} MiB")
        if growth > allowed:
            failures.append(f"over budget: grew {growth / 2**20:.1f} MiB, budget {allowed / 2**20:.1f} MiB")

        # 3. the fall back: every peer expires after max_peer_age, the next
        # cleaning removes it and its torrent. Meanwhile the tracker serves
        # a trickle of scrapes, as any public tracker serves something at
        # every moment: the allocator returns freed pages to the system as
        # it works, not while a thread sleeps.
        load = subprocess.Popen([load_binary, "-c", trickle_cfg], stdout=lout, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait_limit
        torrents = most_torrents
        while time.monotonic() < deadline:
            m = metrics(metrics_address, daemon)
            if m is not None:
                torrents = m[0]
                if torrents == 0:
                    break
            time.sleep(0.5)
        if torrents != 0:
            failures.append(f"cleaning left {torrents} torrents after {wait_limit} s")
        # the allocator hands freed pages back over the next seconds
        cleaned = time.monotonic()
        next_report = cleaned + 5
        while True:
            after = rss_kib(tracker.pid)
            left = (after - idle) * 1024
            if left <= FALL_BACK_SHARE * growth or time.monotonic() - cleaned > FALL_BACK_SECONDS:
                break
            if time.monotonic() >= next_report:
                log(f"{daemon}: {time.monotonic() - cleaned:.0f} s after cleaning: RSS {after / 1024:.1f} MiB")
                next_report += 5
            time.sleep(0.5)
        stop(load)
        load = None
        log(f"{daemon}: {time.monotonic() - cleaned:.1f} s after cleaning: {torrents} torrents, RSS {after / 1024:.1f} MiB "
            f"({100 * left / growth if growth > 0 else 0:.0f} % of the peak growth left)")
        if growth > 0 and left > FALL_BACK_SHARE * growth:
            failures.append(f"memory did not fall back within {FALL_BACK_SECONDS} s: "
                            f"{left / 2**20:.1f} MiB of {growth / 2**20:.1f} MiB left")
        if tracker.poll() is not None:
            failures.append(f"aquatic_{daemon} exited with {tracker.returncode}")
        stop(tracker)
        tracker = None
    finally:
        stop(load)
        stop(tracker)
        tlog.close()
        lout.close()
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", choices=["debug", "release"], default="debug")
    parser.add_argument("--peers", type=int, default=300_000, help="max_peers of the tracker")
    parser.add_argument("--daemons", default="udp,http,ws")
    parser.add_argument("--flood-factor", type=float, default=2.0,
                        help="announces to send, as a multiple of --peers")
    parser.add_argument("--max-peer-age", type=int, default=60,
                        help="seconds; longer than the flood lasts")
    parser.add_argument("--time-limit", type=int, default=300, help="most seconds a flood may take")
    args = parser.parse_args()
    daemons = [d for d in args.daemons.split(",") if d]
    if not daemons or any(d not in BUDGET for d in daemons) or args.peers < 1 or args.flood_factor < 1:
        parser.error("--daemons: udp, http, ws; --peers >= 1; --flood-factor >= 1")

    failed = False
    with tempfile.TemporaryDirectory(prefix="aquatic-flood.") as work:
        for daemon in daemons:
            failures = flood(daemon, args.build, args.peers, args.flood_factor, args.max_peer_age,
                             args.time_limit, work)
            for f in failures:
                log(f"{daemon}: FAILED: {f}")
            if not failures:
                log(f"{daemon}: ok (ceiling held, within budget, fell back after cleaning)")
            failed |= bool(failures)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
