#!/usr/bin/python3
"""aquatic_udp on a host with several addresses answers from the address
each request was sent to.

usage (as root): scripts/real_clients/multiaddr_udp.py BINARY WORK_DIR

Creates a network namespace of its own with 10.77.0.1, 10.77.0.2, fd77::1
and fd77::2 on its loopback interface (besides 127.0.0.1 and ::1), starts
BINARY (aquatic_udp) there on [::]:PORT (dual stack), and from inside it:

  1. from every address to every other (and to itself), a client with a
     connected UDP socket (which drops datagrams from any other address)
     sends connect, announce and scrape: each must get its answer, so each
     answer came from the address asked;
  2. libtorrent announces a torrent to udp://10.77.0.2:PORT (a secondary
     address) and must get the peer a raw client announced through
     udp://10.77.0.1:PORT (the same swarm, another address of the host).

Prints 'N passed, M failed' and exits non-zero if anything failed. Traffic
stays inside the namespace; the tracker is stopped by its PID and the
namespace deleted, also on failure.
"""

import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
V4 = ["10.77.0.1", "10.77.0.2", "127.0.0.1"]
V6 = ["fd77::1", "fd77::2", "::1"]
PROTOCOL_ID = 0x41727101980


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] multiaddr: {msg}", flush=True)


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)


def outer(binary, work):
    ns = f"aquatic-multiaddr-{os.getpid()}"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "set", "lo", "up")
        for a in V4[:2]:
            run("ip", "-n", ns, "addr", "add", f"{a}/32", "dev", "lo")
        for a in V6[:2]:
            run("ip", "-n", ns, "-6", "addr", "add", f"{a}/128", "dev", "lo", "nodad")
        inner = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--inside", binary, work],
            timeout=300,
        )
        return inner.returncode
    finally:
        # Whatever is left in the namespace goes with it.
        for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], timeout=30)


class Tracker:
    def __init__(self, binary, work):
        self.config = os.path.join(work, "aquatic_udp.toml")
        with open(self.config, "w") as f:
            f.write('log_level = "info"\n[network]\naddress = "[::]:0"\nsocket_recv_buffer_size = 0\n')
        self.log_path = os.path.join(work, "aquatic_udp.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "-c", self.config], stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        end = time.monotonic() + 20
        while time.monotonic() < end and self.port is None:
            time.sleep(0.1)
            with open(self.log_path) as f:
                for line in f:
                    if "listening on" in line:
                        self.port = int(line.rsplit(":", 1)[1].split()[0])
            if self.proc.poll() is not None:
                break
        if self.port is None:
            self.stop()
            sys.exit(f"multiaddr: aquatic_udp did not start (log: {self.log_path})")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            log(f"FAILED: {what}")


def exchange(sock, payload, expect_action, tid):
    """Send, and wait for the answer to `tid` on a connected socket."""
    sock.send(payload)
    end = time.monotonic() + 3
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(2048)
        except (socket.timeout, ConnectionRefusedError):
            return None
        if len(data) >= 8 and struct.unpack(">ii", data[:8]) == (expect_action, tid):
            return data
    return None


def bep15_round(src, dst, port, info_hash, peer_port, left):
    """connect, announce, scrape from src to dst on a connected socket:
    the answers, or None for the first one missing."""
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.connect((dst, port))
        tid = random.randrange(1 << 30)
        data = exchange(s, struct.pack(">qii", PROTOCOL_ID, 0, tid), 0, tid)
        if data is None or len(data) < 16:
            return "connect"
        conn = struct.unpack(">q", data[8:16])[0]
        tid = random.randrange(1 << 30)
        peer_id = b"-MA0001-" + os.urandom(12)
        announce = struct.pack(
            ">qii20s20sqqqiIIiH", conn, 1, tid, info_hash, peer_id, 0, left, 0, 2, 0, 0, 50, peer_port
        )
        data = exchange(s, announce, 1, tid)
        if data is None or len(data) < 20:
            return "announce"
        tid = random.randrange(1 << 30)
        data = exchange(s, struct.pack(">qii20s", conn, 2, tid, info_hash), 2, tid)
        if data is None or len(data) < 20:
            return "scrape"
    return None


def inside(binary, work):
    tracker = Tracker(binary, work)
    checks = Checks()
    try:
        port = tracker.port
        log(f"aquatic_udp on [::]:{port}; addresses {V4 + V6}")
        for family in (V4, V6):
            for dst in family:
                for src in family:
                    missing = bep15_round(src, dst, port, os.urandom(20), random.randrange(1024, 65535), 5)
                    checks.check(
                        missing is None,
                        f"{src} -> {dst}: {missing} answer not from {dst} (or none)" if missing else "",
                    )
        log(f"connected clients, every address to every other: {checks.passed} rounds answered")
        libtorrent_check(port, work, checks)
    finally:
        tracker.stop()
    total = checks.passed + len(checks.failed)
    print(f"multiaddr udp: {checks.passed} passed, {len(checks.failed)} failed")
    return 0 if not checks.failed and total > 0 else 1


def libtorrent_check(port, work, checks):
    sys.path.insert(0, HERE)
    import common  # noqa: E402  (needs libtorrent; run with Debian's python3)

    lt = common.lt
    payload = os.path.join(work, "payload.bin")
    common.make_payload(payload, 7)
    ti = common.make_torrent(payload, f"udp://10.77.0.2:{port}/announce", os.path.join(work, "t.torrent"))
    info_hash = bytes.fromhex(str(ti.info_hashes().v1))
    # A seeder announced through the other address of the host.
    missing = bep15_round("10.77.0.1", "10.77.0.1", port, info_hash, 6881, 0)
    checks.check(missing is None, f"seeder announce through 10.77.0.1: {missing}")
    settings = common.session_settings("multiaddr")
    # From another address of the host: a reply from whichever address
    # the kernel picks would not be the tracker libtorrent asked.
    settings["listen_interfaces"] = "10.77.0.1:0"
    session = lt.session(settings, flags=0)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = os.path.join(work, "download")
    atp.flags = (atp.flags & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused) | (
        lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    )
    session.add_torrent(atp)
    got = None
    errors = []
    end = time.monotonic() + 30
    while time.monotonic() < end and got is None:
        session.wait_for_alert(500)
        for a in session.pop_alerts():
            if isinstance(a, lt.tracker_reply_alert):
                got = a.num_peers
            elif isinstance(a, lt.tracker_error_alert):
                errors.append(a.message())
    checks.check(
        got is not None and got >= 1,
        f"libtorrent announce to udp://10.77.0.2:{port}: reply {got}, errors {errors[:3]}",
    )
    if got:
        log(f"libtorrent announce to the secondary address 10.77.0.2: {got} peer(s)")
    del session


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--inside":
        sys.exit(inside(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if os.geteuid() != 0:
        sys.exit("multiaddr: needs root (ip netns)")
    binary = os.path.abspath(sys.argv[1])
    work = sys.argv[2]
    os.makedirs(work, exist_ok=True)
    sys.exit(outer(binary, work))


if __name__ == "__main__":
    main()
