#!/usr/bin/env python3
"""Grafana dashboards for the three daemons, and their check.

usage: scripts/grafana/dashboards.py write
       scripts/grafana/dashboards.py check [--build debug|release]

`write` makes scripts/grafana/aquatic_{udp,http,ws}.json from the panel
lists below (one source for the three files; commit what it writes).

`check` (a step of scripts/test.sh):
  1. the committed files are what `write` makes;
  2. for each daemon: start it with metrics on a 127.0.0.1 port and its
     load tester against it, start Debian's Prometheus (/usr/bin/prometheus)
     scraping it every second, and once it holds some scrapes, evaluate
     every panel's every query through Prometheus's HTTP API
     (/api/v1/query, with $instance as .* and $__rate_interval as 30s):
     each must return data.
Every process started is stopped by its PID; every wait is bounded.
"""

import argparse
import json
import os
import subprocess
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from monitored import Monitored, free_port, get, stop, wait_for  # noqa: E402
PROMETHEUS = "/usr/bin/prometheus"


def summed(inner, by=None, legend=None):
    """A target: the PromQL `inner` summed (by the labels `by`), with its
    legend (by default those labels' value)."""
    expr = f"sum by ({by}) ({inner})" if by else f"sum({inner})"
    return expr, legend if legend is not None else "{{" + by + "}}"


def rate(counter, by=None, legend=None):
    """A target: the per-second rate of the counter {P}_<counter>_total."""
    return summed("rate({P}_" + counter + "_total{S}[$__rate_interval])", by, legend)


def gauge(name, by=None, legend=None):
    """A target: the gauge {P}_<name>."""
    return summed("{P}_" + name + "{S}", by, legend)


# (title, unit, [(expr with {P} for the prefix and {S} for the instance
# selector, legend)]): the panels every daemon has, then each one's own.
COMMON = [
    ("Requests per second, by type", "reqps", [rate("requests", "type")]),
    ("Responses per second, by type", "reqps", [rate("responses", "type")]),
    ("Torrents, seeders, leechers", "short",
     [gauge(name, "ip_version", name + " IPv{{ip_version}}") for name in ("torrents", "seeders", "leechers")]),
    ("Torrents by number of peers (last cleaning)", "short", [gauge("torrents_by_size", "peers", "{{peers}} peers")]),
    ("Bytes per second", "Bps", [rate("received_bytes", legend="in"), rate("sent_bytes", legend="out")]),
    ("Peers not stored per second, by reason", "short", [rate("peers_not_stored", "reason")]),
    ("Sources holding peers", "short", [gauge("sources", "ip_version", "IPv{{ip_version}}")]),
    ("Announces per second, by client", "reqps", [rate("announces_by_client", "client")]),
    ("Refused by defences per second (IP filter, rate limit, host)", "short", [rate("refused", "reason")]),
    ("Files: last load or write worked (1) or failed (0)", "short", [("max by (file) ({P}_file_ok{S})", "{{file}}")]),
    ("Requests per second, by socket worker", "reqps",
     [rate("requests", "instance, worker", "{{instance}} worker {{worker}}")]),
]
TCP = [
    ("Connections per second, by outcome", "short", [rate("connections", "outcome")]),
    ("Open connections", "short", [gauge("open_connections", legend="open")]),
    ("Error responses per second, by reason", "short", [rate("error_responses", "reason")]),
]
OWN = {
    "udp": [
        ("Packets dropped per second, by reason", "short", [rate("dropped", "reason")]),
    ],
    "http": TCP,
    "ws": TCP + [
        ("Connections closed per second, by reason", "short", [rate("closed_connections", "reason")]),
        ("Messages dropped per second, by reason", "short", [rate("dropped_messages", "reason")]),
        ("Offers and answers not relayed per second", "short",
         [rate("offers_not_relayed", "reason", "offers: {{reason}}"), rate("answers_not_relayed", legend="answers")]),
        ("Pending offers", "short", [gauge("pending_offers", legend="pending")]),
    ],
}

def dashboard(daemon):
    prefix = f"aquatic_{daemon}"
    selector = '{instance=~"$instance"}'
    panels = []
    for i, (title, unit, targets) in enumerate(COMMON + OWN[daemon]):
        panels.append({
            "id": i + 1,
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [
                {"refId": chr(ord("A") + j),
                 "expr": expr.replace("{P}", prefix).replace("{S}", selector),
                 "legendFormat": legend}
                for j, (expr, legend) in enumerate(targets)
            ],
        })
    return {
        "title": prefix,
        "uid": f"aquatic-{daemon}",
        "description": f"{prefix}: requests, responses, swarms and drops, from its [metrics] endpoint.",
        "tags": ["aquatic", "bittorrent"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
            {"name": "instance", "label": "Instance", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": f"label_values({prefix}_requests_total, instance)",
             "definition": f"label_values({prefix}_requests_total, instance)",
             "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
             "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": panels,
    }


def path(daemon):
    return os.path.join(HERE, f"aquatic_{daemon}.json")


def text(daemon):
    return json.dumps(dashboard(daemon), indent=2) + "\n"


def check_daemon(daemon, build):
    with Monitored(daemon, build, socket_workers=2) as tracker:
        tracker.start_load(60)
        prometheus_port = free_port()
        config = os.path.join(tracker.work, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: aquatic_{daemon}
    static_configs:
      - targets: ["127.0.0.1:{tracker.metrics_port}"]
""")
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tracker.work}/data",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tracker.work, "prometheus.log"), "w"))
        try:
            api = f"http://127.0.0.1:{prometheus_port}/api/v1/query?query="

            def scrapes():
                result = json.loads(get(api + urllib.parse.quote(
                    f"count_over_time(up{{job=\"aquatic_{daemon}\"}}[1m])")))["data"]["result"]
                return bool(result) and float(result[0]["value"][1]) >= 12
            wait_for(f"Prometheus holding 12 scrapes of aquatic_{daemon} (log in {tracker.work})", scrapes, 60)

            queries = 0
            for panel in dashboard(daemon)["panels"]:
                for target in panel["targets"]:
                    expr = target["expr"].replace("$instance", ".*").replace("$__rate_interval", "30s")
                    answer = json.loads(get(api + urllib.parse.quote(expr)))
                    if answer.get("status") != "success" or not answer["data"]["result"]:
                        raise SystemExit(
                            f"aquatic_{daemon}: panel {panel['title']!r}: no data for {expr}: {answer}")
                    queries += 1
            print(f"ok   aquatic_{daemon}: {len(dashboard(daemon)['panels'])} panels, {queries} queries, "
                  "all with data")
        finally:
            stop(prometheus)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument("--build", default="debug", choices=["debug", "release"])
    args = parser.parse_args()
    daemons = ["udp", "http", "ws"]
    if args.command == "write":
        for d in daemons:
            with open(path(d), "w") as f:
                f.write(text(d))
            print(f"wrote {path(d)}")
        return
    for d in daemons:
        with open(path(d)) as f:
            if f.read() != text(d):
                raise SystemExit(f"{path(d)} is not what `dashboards.py write` makes: run it and commit")
    if not os.access(PROMETHEUS, os.X_OK):
        raise SystemExit(f"no {PROMETHEUS} (Debian package prometheus; scripts/install-test-deps.sh)")
    for d in daemons:
        check_daemon(d, args.build)
    print("grafana dashboards: 3 passed, 0 failed")


if __name__ == "__main__":
    sys.exit(main())
