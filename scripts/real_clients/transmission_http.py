#!/usr/bin/python3
"""Real-client test of an HTTP(S) BitTorrent tracker with Transmission.

Run with Debian's python (the libtorrent downloader needs python3-libtorrent,
built for it), after scripts/install-test-deps.sh (transmission-daemon):

    /usr/bin/python3 scripts/real_clients/transmission_http.py TRACKER_BINARY WORKDIR
    /usr/bin/python3 scripts/real_clients/transmission_http.py --https TRACKER_BINARY WORKDIR

TRACKER_BINARY is aquatic_http or Debian's opentracker, started as by
libtorrent_http.py (see there; --https too: a self-signed certificate, and
Transmission started with TR_CURL_SSL_NO_VERIFY=1 so its libcurl accepts it).

What it does: makes a random ~4 MiB file and a v1 .torrent announcing to
http://127.0.0.1:PORT/announce, and runs a transmission-daemon of its own as
the current user (`transmission-daemon -f -g WORKDIR/transmission`: in the
foreground, so it is stopped by its PID; RPC and peers on 127.0.0.1 only,
free ports, no RPC authentication; DHT, local peer discovery, PEX, uTP, port
forwarding and the blocklist off; its log in WORKDIR/transmission.log). Over
its RPC the torrent is added, paused, with download-dir where the complete
file already is, verified, and started: Transmission is the seeder. Then one
libtorrent session (peer sources other than the tracker off) downloads it.
Checks:

  1. Transmission verifies the seed data (100 % valid);
  2. its announce succeeds (trackerStats: lastAnnounceSucceeded);
  3. its seederCount is 1, as a scrape of the tracker (sent by this script)
     says: 1 seeder, 0 leechers;
  4. the libtorrent download completes, byte for byte equal to the source,
     from Transmission (a peer learnt from the tracker, nothing from
     DHT/PEX/LSD) which uploaded the whole file;
  5. scrape after the download's `completed`: 2 seeders, downloaded 1;
  6. Transmission's torrent stopped (it sends `stopped`): the scrape says
     1 seeder;
  7. started again (`started`): lastAnnounceSucceeded, and its seederCount
     and leecherCount (2 and 0) equal the tracker's scrape.

Every wait is bounded (--timeout, 90 s by default); transmission-daemon and
the tracker are stopped by their PIDs at the end. Exit status 0 only if
every check passed; the last line is `transmission http: N passed, N failed`
(or `transmission https: ...`).
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import time

from common import (
    PAYLOAD_SIZE,
    SOURCE_TRACKER,
    THROTTLE,
    CheckFailed,
    Client,
    Tracker,
    TrackerTest,
    die_with_parent,
    files_identical,
    free_port,
    http_exchange,
    info_hash_hex,
    install_sigterm_handler,
    log,
    make_torrent,
    other_peer_sources,
    scrape,
    stop_process,
)

# torrent-get "status" (Transmission 3 and 4)
STATUS = {
    0: "stopped", 1: "check wait", 2: "checking", 3: "download wait", 4: "downloading", 5: "seed wait", 6: "seeding",
}  # fmt: skip
CHECKING = (1, 2)
SEEDING = 6
# trackerStats "announceState": inactive, waiting (next announce scheduled),
# queued (due), active (in flight)
ANNOUNCE_INACTIVE, ANNOUNCE_WAITING, ANNOUNCE_QUEUED, ANNOUNCE_ACTIVE = 0, 1, 2, 3

TRACKER_FIELDS = (
    "announce", "hasAnnounced", "lastAnnounceSucceeded", "lastAnnounceResult", "lastAnnounceTime",
    "announceState", "seederCount", "leecherCount", "downloadCount", "lastScrapeSucceeded", "lastScrapeResult",
)  # fmt: skip


class Rpc:
    """Transmission's JSON RPC on 127.0.0.1 (with the X-Transmission-Session-Id
    handshake: a 409 answer carries the id to send)."""

    def __init__(self, port):
        self.port = port
        self.session_id = None

    def call(self, method, arguments=None, timeout=5):
        body = json.dumps({"method": method, "arguments": arguments or {}})
        for _ in range(3):
            headers = {"Content-Type": "application/json"}
            if self.session_id:
                headers["X-Transmission-Session-Id"] = self.session_id
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            resp, data = http_exchange(conn, f"RPC {method}", "POST", "/transmission/rpc", body, headers)
            if resp.status == 409:
                self.session_id = resp.getheader("X-Transmission-Session-Id")
                continue
            if resp.status != 200:
                raise CheckFailed(f"RPC {method}: HTTP status {resp.status}: {data[:200]!r}")
            answer = json.loads(data)
            if answer.get("result") != "success":
                raise CheckFailed(f"RPC {method}: {answer.get('result')!r}")
            return answer.get("arguments", {})
        raise CheckFailed(f"RPC {method}: no session id accepted after 3 tries")


class Transmission:
    """A transmission-daemon of this test's own, in the foreground; stopped by
    its PID."""

    def __init__(self, binary, workdir, https):
        self.binary = binary
        self.confdir = os.path.join(workdir, "transmission")
        self.download_dir = os.path.join(workdir, "transmission-downloads")
        self.log_path = os.path.join(workdir, "transmission.log")
        os.makedirs(self.confdir, exist_ok=True)
        os.makedirs(self.download_dir, exist_ok=True)
        self.rpc_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.rpc_port:
            self.peer_port = free_port()
        settings = {
            "rpc-enabled": True,
            "rpc-bind-address": "127.0.0.1",
            "rpc-port": self.rpc_port,
            "rpc-authentication-required": False,
            "rpc-whitelist-enabled": True,
            "rpc-whitelist": "127.0.0.1",
            "rpc-host-whitelist-enabled": False,
            "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1",
            "peer-port": self.peer_port,
            "peer-port-random-on-start": False,
            "port-forwarding-enabled": False,
            "dht-enabled": False,
            "lpd-enabled": False,
            "pex-enabled": False,
            "utp-enabled": False,
            "blocklist-enabled": False,
            "encryption": 1,  # prefer encryption, accept plaintext
            "download-dir": self.download_dir,
            "incomplete-dir-enabled": False,
            "watch-dir-enabled": False,
            "start-added-torrents": False,
            "trash-original-torrent-files": False,
            "ratio-limit-enabled": False,
            "idle-seeding-limit-enabled": False,
            "speed-limit-down-enabled": False,
            "speed-limit-up-enabled": False,
            "alt-speed-enabled": False,
            "download-queue-enabled": False,
            "seed-queue-enabled": False,
            "queue-stalled-enabled": False,
            "cache-size-mb": 4,
            "message-level": 3,
        }
        with open(os.path.join(self.confdir, "settings.json"), "w") as f:
            json.dump(settings, f, indent=2)
        # Its libcurl must not take a proxy from the environment; with https,
        # accept the test's self-signed certificate.
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        if https:
            env["TR_CURL_SSL_NO_VERIFY"] = "1"
        argv = [binary, "-f", "-g", self.confdir, "--log-debug"]
        log(f"starting transmission: {' '.join(argv)}")
        log(f"transmission: RPC on 127.0.0.1:{self.rpc_port}, peers on 127.0.0.1:{self.peer_port}")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            preexec_fn=die_with_parent,
        )
        self.rpc = Rpc(self.rpc_port)

    def wait_ready(self, deadline, seconds=20):
        end = deadline.until(seconds)
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise CheckFailed(f"transmission-daemon exited with status {self.proc.returncode}:\n{self.tail()}")
            try:
                version = self.rpc.call("session-get", timeout=2).get("version")
                log(f"transmission (pid {self.proc.pid}) {version}: RPC answers")
                return version
            except CheckFailed as e:
                last = e
            time.sleep(0.2)
        raise CheckFailed(
            f"transmission RPC on 127.0.0.1:{self.rpc_port} not answering within {seconds} s ({last}):\n{self.tail()}"
        )

    def tail(self, n=15):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().splitlines()[-n:]
        except OSError:
            lines = []
        return "\n".join("    transmission: " + l for l in lines) or "    (transmission printed nothing)"

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            stop_process(self.proc, "transmission", timeout=10)  # it sends its `stopped` announces first
        self.log_file.close()


class Test(TrackerTest):
    name = "transmission"

    def __init__(self, args):
        super().__init__(args, "https" if args.https else "http")
        self.transmission = None
        self.downloader = None
        self.torrent_id = None
        self.url = None
        self.info_hash = None

    # -- helpers

    def pump(self):
        if self.downloader is not None and self.downloader.session is not None:
            self.downloader.pump()
        if self.tracker is not None and not self.tracker.alive():
            raise CheckFailed(f"tracker exited with status {self.tracker.proc.returncode}:\n{self.tracker.tail()}")
        if self.transmission is not None and not self.transmission.alive():
            raise CheckFailed(
                f"transmission-daemon exited with status {self.transmission.proc.returncode}:\n"
                f"{self.transmission.tail()}"
            )

    def torrent(self):
        fields = ["id", "status", "error", "errorString", "haveValid", "totalSize", "percentDone",
                  "uploadedEver", "peersConnected", "peers", "trackerStats"]  # fmt: skip
        got = self.transmission.rpc.call("torrent-get", {"ids": [self.torrent_id], "fields": fields})
        torrents = got.get("torrents", [])
        if not torrents:
            raise CheckFailed(f"torrent-get: no torrent with id {self.torrent_id}")
        return torrents[0]

    def tracker_stats(self, t):
        stats = t.get("trackerStats") or []
        if not stats:
            raise CheckFailed("torrent-get: no trackerStats")
        return stats[0]

    def show(self, t):
        ts = (t.get("trackerStats") or [{}])[0]
        fields = ", ".join(f"{k}={ts.get(k)!r}" for k in TRACKER_FIELDS if k != "announce")
        return (
            f"    transmission: status={STATUS.get(t.get('status'), t.get('status'))} "
            f"haveValid={t.get('haveValid')}/{t.get('totalSize')} uploadedEver={t.get('uploadedEver')} "
            f"peersConnected={t.get('peersConnected')} error={t.get('error')} {t.get('errorString')!r}\n"
            f"    transmission trackerStats: {fields}"
        )

    def describe(self, t=None):
        lines = []
        try:
            lines.append(self.show(t or self.torrent()))
        except CheckFailed as e:
            lines.append(f"    transmission: {e}")
        if self.downloader is not None and self.downloader.session is not None:
            lines.append("    " + self.downloader.status_line())
        try:
            lines.append(f"    tracker scrape: {scrape(self.url, self.info_hash)}")
        except CheckFailed as e:
            lines.append(f"    tracker scrape: {e}")
        if self.tracker is not None:
            lines.append(self.tracker.tail(10))
        lines.append(self.transmission.tail(10))
        lines.append(f"    logs: {self.transmission.log_path}, {os.path.join(self.workdir, 'alerts.log')}")
        return "\n".join(lines)

    def wait_for(self, what, cond, seconds):
        """Poll cond(torrent) (pumping the libtorrent alerts) until it returns
        something true; at most `seconds` (and the overall budget)."""
        end = self.deadline.until(seconds)
        t = None
        while True:
            self.pump()
            t = self.torrent()
            got = cond(t)
            if got:
                return got
            if time.monotonic() >= end:
                raise CheckFailed(
                    f"{what}: not seen within {seconds} s (or the overall --timeout).\n{self.describe(t)}"
                )
            time.sleep(0.2)

    def last_announce_time(self):
        """lastAnnounceTime of the last announce answered, once the wall clock
        is 2 s past it: an announce answered after this call has a later
        lastAnnounceTime. (Those times are whole seconds of Transmission's
        cached clock, which lags the wall clock by up to a second: two
        announces one upkeep tick apart can have the same time.)"""
        last = self.tracker_stats(self.torrent()).get("lastAnnounceTime", 0)
        end = time.monotonic() + 3
        while time.time() < last + 2 and time.monotonic() < end:
            time.sleep(0.05)
        return last

    # -- the run

    def run(self):
        payload, torrent_path = self.write_payload(None)
        self.info_hash = info_hash_hex(make_torrent(payload, None, torrent_path))
        try:
            self.tracker = Tracker(self.args.tracker, self.workdir, self.info_hash, self.deadline, self.scheme)
        except CheckFailed as e:
            log(f"FAIL tracker starts: {e}")
            self.failed.append("tracker starts")
            return self.finish()
        self.url = self.tracker.url
        ti = make_torrent(payload, self.url, torrent_path)
        log(f"torrent {self.info_hash} ({PAYLOAD_SIZE} bytes, {ti.num_pieces()} pieces) announcing to {self.url}")

        self.events_log = open(os.path.join(self.workdir, "alerts.log"), "w")
        try:
            self.transmission = Transmission(self.args.transmission, self.workdir, self.args.https)
            self.transmission.wait_ready(self.deadline)
            self.run_checks(ti, payload, torrent_path)
        except CheckFailed as e:
            self.failed.append("run aborted")
            log(f"FAIL aborted: {e}")
        finally:
            if self.downloader is not None:
                self.downloader.close()
            if self.transmission is not None:
                self.transmission.stop()
            self.events_log.close()
        return self.finish()

    def run_checks(self, ti, payload, torrent_path):
        rpc = self.transmission.rpc
        seed_dir = os.path.dirname(payload)

        def verified():
            with open(torrent_path, "rb") as f:
                metainfo = base64.b64encode(f.read()).decode()
            added = rpc.call("torrent-add", {"metainfo": metainfo, "download-dir": seed_dir, "paused": True})
            entry = added.get("torrent-added") or added.get("torrent-duplicate")
            if not entry:
                raise CheckFailed(f"torrent-add: {added}")
            self.torrent_id = entry["id"]
            if entry.get("hashString") != self.info_hash:
                raise CheckFailed(f"torrent-add: info hash {entry.get('hashString')}, expected {self.info_hash}")
            rpc.call("torrent-verify", {"ids": [self.torrent_id]})
            self.wait_for(
                "Transmission's verification of the seed data (haveValid = totalSize)",
                lambda t: t["status"] not in CHECKING and t["totalSize"] > 0 and t["haveValid"] == t["totalSize"],
                20,
            )
            return f"{PAYLOAD_SIZE} bytes valid in {seed_dir}"

        if not self.check("transmission verifies the seed data", verified):
            raise CheckFailed("Transmission has no complete data to seed")

        def announced():
            rpc.call("torrent-start", {"ids": [self.torrent_id]})
            t = self.wait_for(
                "Transmission seeding and its announce answered (lastAnnounceSucceeded)",
                lambda t: t["status"] == SEEDING
                and (lambda ts: ts.get("hasAnnounced") and ts.get("lastAnnounceSucceeded"))(self.tracker_stats(t))
                and t,
                20,
            )
            ts = self.tracker_stats(t)
            return f"lastAnnounceSucceeded=True, lastAnnounceResult={ts.get('lastAnnounceResult')!r}"

        if not self.check("transmission's announce succeeds", announced):
            raise CheckFailed("Transmission did not announce, nothing else can work")

        def counts_match(want_seeders, want_leechers):
            """Until Transmission's trackerStats and a scrape of the tracker
            both say want_seeders seeders and want_leechers leechers."""
            seen = {}

            def cond(t):
                ts = self.tracker_stats(t)
                try:
                    seen["scrape"] = s = scrape(self.url, self.info_hash)
                except CheckFailed as e:
                    seen["scrape"] = str(e)
                    return False
                seen["transmission"] = (ts.get("seederCount"), ts.get("leecherCount"))
                return (
                    ts.get("lastAnnounceSucceeded")
                    and (ts.get("seederCount"), ts.get("leecherCount")) == (want_seeders, want_leechers)
                    and (s["complete"], s["incomplete"]) == (want_seeders, want_leechers)
                    and ts
                )

            ts = self.wait_for(
                f"Transmission's seederCount/leecherCount and the tracker's scrape both at "
                f"{want_seeders}/{want_leechers} (last: {seen})",
                cond,
                15,
            )
            s = seen["scrape"]
            return (
                f"trackerStats seederCount={ts.get('seederCount')} leecherCount={ts.get('leecherCount')}, "
                f"tracker scrape complete={s['complete']} incomplete={s['incomplete']} downloaded={s['downloaded']}"
            )

        self.check("transmission's seederCount matches the tracker: 1 seeder", lambda: counts_match(1, 0))

        def downloaded():
            dl_dir = os.path.join(self.workdir, "dl")
            d = self.downloader = Client("downloader", ti, dl_dir, self.events_log, self.scheme)
            # Throttled until a connection to Transmission is seen, so the
            # peer sampling cannot miss it (the transfer takes well under a
            # second at full speed).
            d.start(download_limit=THROTTLE)

            def connected_to_transmission(_t):
                return [
                    k
                    for k, name in d.peer_clients.items()
                    if "Transmission" in name and d.peer_sources.get(k, 0) & SOURCE_TRACKER
                ]

            found = self.wait_for(
                "the downloader connected to Transmission, learnt from the tracker", connected_to_transmission, 20
            )
            d.handle.set_download_limit(-1)
            # Transmission unchokes a new peer at its next rechoke (every 10 s).
            self.wait_for("the download complete", lambda _t: d.handle.status().is_seeding, 40)
            files_identical(payload, d.save_path)
            total, from_tracker, other = other_peer_sources([d])
            if other:
                raise CheckFailed("peers found other than through the tracker: " + "; ".join(other))
            t = self.wait_for(
                f"Transmission's uploadedEver at least {PAYLOAD_SIZE}",
                lambda t: t["uploadedEver"] >= PAYLOAD_SIZE and t,
                10,
            )
            return (
                f"{PAYLOAD_SIZE} bytes identical to the source, from {d.peer_clients[found[0]]} at "
                f"{found[0][0]}:{found[0][1]} (learnt from the tracker; {total} peers seen, none from DHT/PEX/LSD), "
                f"Transmission uploaded {t['uploadedEver']} bytes"
            )

        if not self.check("libtorrent downloads from transmission, file identical", downloaded):
            raise CheckFailed("the download did not complete")

        def scrape_until(want, seconds=15):
            seen = []

            def cond(_t):
                try:
                    s = scrape(self.url, self.info_hash)
                except CheckFailed as e:
                    seen.append(str(e))
                    return False
                seen.append(s)
                return all(s[k] == v for k, v in want.items()) and s

            return self.wait_for(f"the tracker's scrape at {want} (last: {seen[-1:]})", cond, seconds)

        def completed():
            s = scrape_until({"complete": 2, "incomplete": 0, "downloaded": 1})
            return f"complete={s['complete']} incomplete={s['incomplete']} downloaded={s['downloaded']}"

        self.check("scrape after the download: 2 seeders, downloaded 1", completed)

        def stopped():
            before = self.last_announce_time()
            rpc.call("torrent-stop", {"ids": [self.torrent_id]})
            s = scrape_until({"complete": 1, "incomplete": 0})
            t = self.wait_for(
                "Transmission's `stopped` announce answered (a later lastAnnounceTime)",
                lambda t: self.tracker_stats(t).get("lastAnnounceTime", 0) > before and t,
                10,
            )
            ts = self.tracker_stats(t)
            return (
                f"scrape complete={s['complete']} incomplete={s['incomplete']}; Transmission "
                f"lastAnnounceSucceeded={ts.get('lastAnnounceSucceeded')} ({ts.get('lastAnnounceResult')!r})"
            )

        self.check("scrape after stopping transmission's torrent: 1 seeder", stopped)

        def restarted():
            rpc.call("torrent-start", {"ids": [self.torrent_id]})
            # Stopped, the torrent's tier is inactive with nothing queued; started,
            # it is queued (then active) until the `started` answer arrives, which
            # schedules the next regular announce: "waiting". (A failed announce
            # also waits, for its retry, but without lastAnnounceSucceeded.)
            self.wait_for(
                "Transmission's `started` announce after the restart answered (announceState waiting, "
                "lastAnnounceSucceeded)",
                lambda t: (lambda ts: ts.get("announceState") == ANNOUNCE_WAITING and ts.get("lastAnnounceSucceeded"))(
                    self.tracker_stats(t)
                ),
                20,
            )
            return counts_match(2, 0)

        self.check("transmission restarted: seederCount 2 as the tracker says", restarted)

    def logs(self):
        return super().logs() + ([] if self.transmission is None else [("transmission", self.transmission.log_path)])

    def close(self):
        if self.downloader is not None:
            self.downloader.close()
        if self.transmission is not None:
            self.transmission.stop()
        super().close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tracker", help="tracker binary to start (aquatic_http or opentracker)")
    ap.add_argument("workdir", help="directory for the payload, torrent, Transmission's config, downloads and logs")
    ap.add_argument(
        "--https", action="store_true", help="HTTPS with a self-signed certificate (see libtorrent_http.py)"
    )
    ap.add_argument(
        "--transmission",
        default=shutil.which("transmission-daemon") or "/usr/bin/transmission-daemon",
        help="transmission-daemon binary (default: from PATH)",
    )
    ap.add_argument("--timeout", type=float, default=90, help="overall time budget in seconds (default 90)")
    args = ap.parse_args()
    for what in ("tracker", "transmission"):
        if not os.access(getattr(args, what), os.X_OK):
            ap.error(f"{getattr(args, what)} is not an executable file")

    install_sigterm_handler()
    return Test(args).run_to_end()


if __name__ == "__main__":
    sys.exit(main())
