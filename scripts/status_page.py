#!/usr/bin/env python3
"""Each daemon's status page (`GET /` on the metrics listener) in headless
Chromium, against `/stats.json`.

usage: scripts/status_page.py [--build debug|release] [--screenshots DIR]

For aquatic_udp, aquatic_http and aquatic_ws in turn: start the daemon
with metrics on a 127.0.0.1 port, run its load tester against it (capped
rate, a few seconds), and

  - while the load runs, render the page (chromium --headless --dump-dom,
    after its scripts have fetched /stats.json) and check that every
    counter it shows (requests, responses, and each by-reason total) lies
    between /stats.json fetched just before and just after: the page shows
    the daemon's own figures, not stale or invented ones;
  - once the load has stopped (the figures are still), render it again
    and check that every figure it shows, counters and swarm gauges,
    equals /stats.json exactly, that it says "healthy", and that it names
    the daemon's workers;
  - take a screenshot at 1280x800 (and at phone width, 390x844) into
    --screenshots (default: a temporary directory, printed).

Every process started is stopped by its PID; loops are bounded in time.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from monitored import Monitored, get  # noqa: E402
CHROMIUM = "/usr/bin/chromium"
LOAD_SECONDS = 8


def stats(base):
    return json.loads(get(base + "/stats.json"))


def chromium(args, timeout=60):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--virtual-time-budget=4000", *args],
        capture_output=True, text=True, timeout=timeout)


def dump_dom(base):
    out = chromium(["--dump-dom", base + "/"])
    if "id=\"cards\"" not in out.stdout:
        raise SystemExit(f"no page from {base}/: {out.stderr[-500:]}")
    # What the page shows, without its script's source.
    return re.sub(r"<script>.*?</script>", "", out.stdout, flags=re.S)


def shown(dom):
    """The figures the page shows: {id or metric|label: exact value}."""
    figures = {}
    for m in re.finditer(r'id="(total-[a-z-]+)" data-value="([^"]*)"', dom):
        figures[m.group(1)] = m.group(2)
    for m in re.finditer(r'data-metric="([^"]+)" data-label="([^"]+)" data-value="([^"]*)"', dom):
        figures[f"{m.group(1)}|{m.group(2)}"] = m.group(3)
    for m in re.finditer(r'data-size="([^"]+)" data-value="([^"]*)"', dom):
        figures[f"size|{m.group(1)}"] = m.group(2)
    for m in re.finditer(r'data-client="([^"]+)" data-value="([^"]*)"', dom):
        figures[f"client|{m.group(1)}"] = m.group(2)
    for m in re.finditer(r'data-peer-client="([^" ]+) ([^"]*)" data-value="([^"]*)"', dom):
        figures[f"peerclient|{m.group(1)}|{m.group(2)}"] = m.group(3)
    return figures


def largest_shown(dom):
    return set(re.findall(r'data-largest="([0-9a-f]{40})"', dom))


def expected(s, key):
    """What /stats.json says for a figure the page shows."""
    prefix = s["daemon"] + "_"
    metrics = s["metrics"]

    def total(name, label=None):
        samples = metrics.get(name, {}).get("samples", [])
        if label:
            k, v = label.split("=", 1)
            samples = [x for x in samples if x["labels"].get(k) == v]
        return sum(x["value"] for x in samples)

    if key.startswith("peerclient|"):
        _, client, version = key.split("|", 2)
        family = metrics.get(prefix + "peers_by_client", {}).get("samples", [])
        return sum(x["value"] for x in family
                   if x["labels"].get("client") == client and x["labels"].get("version") == version)
    if key.startswith("client|"):
        return total(prefix + "announces_by_client_total", "client=" + key.split("|", 1)[1])
    if key.startswith("size|"):
        return total(prefix + "torrents_by_size", "peers=" + key.split("|", 1)[1])
    if "|" in key:
        name, label = key.split("|", 1)
        return total(name, label)
    name = {
        "total-requests": "requests_total",
        "total-responses": "responses_total",
        "total-torrents": "torrents",
        "total-seeders": "seeders",
        "total-leechers": "leechers",
        "total-open-connections": "open_connections",
    }[key]
    return total(prefix + name)


def sum_peer_clients(s):
    family = s["metrics"].get(s["daemon"] + "_peers_by_client", {})
    return sum(x["value"] for x in family.get("samples", []))


def sum_sizes(s):
    family = s["metrics"].get(s["daemon"] + "_torrents_by_size", {})
    return sum(x["value"] for x in family.get("samples", []))


def is_counter(key):
    return key in ("total-requests", "total-responses") or (
        "|" in key and not key.startswith(("size|", "peerclient|")))


def check_daemon(name, build, screenshots):
    work = tempfile.mkdtemp(prefix=f"aquatic-status-{name}.")
    deny_list = os.path.join(work, "deny.txt")
    with open(deny_list, "w") as f:
        f.write("# one info hash nobody announces\n" + "ab" * 20 + "\n")
    with Monitored(name, build, f'[access_list]\nmode = "deny"\npath = "{deny_list}"\n') as daemon:
        base = daemon.base
        daemon.start_load(LOAD_SECONDS)
        time.sleep(3)
        # While the load runs: every counter shown lies between two
        # /stats.json taken around the render.
        before = stats(base)
        dom = dump_dom(base)
        after = stats(base)
        figures = shown(dom)
        if not figures.get("total-requests") or float(figures["total-requests"]) <= 0:
            raise SystemExit(f"{name}: the page shows no requests under load: {figures}")
        for key, value in figures.items():
            if not is_counter(key):
                continue
            low, high, got = expected(before, key), expected(after, key), float(value)
            if not low <= got <= high:
                raise SystemExit(f"{name}: page shows {key} = {got}, /stats.json around it {low}..{high}")
        if sum_sizes(before) > 0 and not any(k.startswith("size|") for k in figures):
            raise SystemExit(f"{name}: the page shows no swarm sizes under load")
        if not largest_shown(dom):
            raise SystemExit(f"{name}: the page shows no largest swarms under load")
        if not any(k.startswith("client|") for k in figures):
            raise SystemExit(f"{name}: the page shows no clients under load")
        chromium(["--window-size=1280,800", f"--screenshot={screenshots}/status-{name}-load.png", base + "/"])
        under_load = len(figures)

        daemon.wait_load(LOAD_SECONDS + 30)
        time.sleep(1)
        # Still: every figure shown equals /stats.json.
        dom = dump_dom(base)
        now = stats(base)
        figures = shown(dom)
        for key, value in figures.items():
            if float(value) != float(expected(now, key)):
                raise SystemExit(f"{name}: page shows {key} = {value}, /stats.json {expected(now, key)}")
        for needle in ("healthy", f">aquatic_{name}<", "socket-0", "request-0",
                       'data-file="access_list">Deny list of 1 info hashes'):
            if needle not in dom:
                raise SystemExit(f"{name}: the page does not show {needle!r}")
        # (aquatic_ws's peers leave with their connections: at rest it has
        # no swarms, and the page must say so too.)
        sizes_shown = any(k.startswith("size|") for k in figures)
        if sizes_shown != (sum_sizes(now) > 0):
            raise SystemExit(f"{name}: swarm sizes shown: {sizes_shown}, /stats.json: {sum_sizes(now)} torrents")
        clients_shown = any(k.startswith("peerclient|") for k in figures)
        if clients_shown != (sum_peer_clients(now) > 0) or clients_shown != sizes_shown:
            raise SystemExit(f"{name}: stored peers' clients shown: {clients_shown}, /stats.json: "
                             f"{sum_peer_clients(now)} peers, sizes shown: {sizes_shown}")
        top = {s["info_hash"] for v in now["largest_swarms"].values() for s in v}
        if largest_shown(dom) != top:
            raise SystemExit(f"{name}: largest swarms shown {sorted(largest_shown(dom))}, /stats.json {sorted(top)}")
        chromium(["--window-size=1280,800", f"--screenshot={screenshots}/status-{name}.png", base + "/"])
        chromium(["--window-size=390,844", f"--screenshot={screenshots}/status-{name}-phone.png", base + "/"])
        size = len(get(base + "/").encode())
        if size > 150 * 1024:
            raise SystemExit(f"{name}: the page is {size} bytes, over 150 KiB")
        print(f"ok   aquatic_{name}: {under_load} figures within /stats.json under load, "
              f"{len(figures)} equal to it at rest; page {size} bytes; screenshots in {screenshots}")



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="debug", choices=["debug", "release"])
    parser.add_argument("--screenshots", default=None)
    args = parser.parse_args()
    screenshots = args.screenshots or tempfile.mkdtemp(prefix="aquatic-status-shots.")
    os.makedirs(screenshots, exist_ok=True)
    for name in ("udp", "http", "ws"):
        check_daemon(name, args.build, screenshots)
    print("status page: 3 passed, 0 failed")


if __name__ == "__main__":
    main()
