"""Shared parts of the real-client tests in this folder.

- `Tracker`: starts the tracker under test (aquatic_udp, aquatic_http or
  Debian's opentracker) on 127.0.0.1 for a scheme (udp, http or https) and
  stops it by its PID; for https with opentracker (which has no TLS) a
  TLS-terminating relay (`TlsRelay`) runs in front of it.
- `make_payload`, `make_torrent`: the random payload and its v1 .torrent.
- `Client`: one libtorrent session with one torrent, every peer source but
  the tracker turned off.
- `TrackerTest`: what the tests share (checks, the end of a run).
- `SwarmTest` and `libtorrent_main`: the libtorrent swarm test itself (one
  seeder, two downloaders), run by libtorrent_udp.py and libtorrent_http.py.
- `scrape`: a scrape over plain HTTP(S), independent of any client.

Run the scripts with Debian's /usr/bin/python3: python3-libtorrent is built
for it.
"""

import argparse
import filecmp
import http.client
import os
import random
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

try:
    import libtorrent as lt
except ImportError:
    sys.exit(
        f"{os.path.splitext(os.path.basename(sys.argv[0]))[0]}: cannot import libtorrent: run with /usr/bin/python3 "
        "after scripts/install-test-deps.sh (python3-libtorrent)"
    )

PAYLOAD_SIZE = 4 * 1024 * 1024 + 12345  # a partial last piece, too
PIECE_SIZE = 64 * 1024
# While the "1 seeder, 2 leechers" scrape is taken, downloads are held to
# this rate (bytes/s per downloader), so they cannot finish before it.
THROTTLE = 64 * 1024
ANNOUNCE_INTERVAL = 5

# peer_info.source bits (libtorrent peer_info::peer_source_flags)
SOURCE_TRACKER, SOURCE_DHT, SOURCE_PEX, SOURCE_LSD = 0x1, 0x2, 0x4, 0x8
SOURCE_NAMES = {0x1: "tracker", 0x2: "dht", 0x4: "pex", 0x8: "lsd", 0x10: "resume_data", 0x20: "incoming"}

SCHEMES = ("udp", "http", "https")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class CheckFailed(Exception):
    pass


class Deadline:
    """The overall time budget: every wait is cut to what is left of it."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def until(self, seconds):
        """End of a wait of at most `seconds`, within the overall budget."""
        return time.monotonic() + min(seconds, self.left())


# ---------------------------------------------------------------- trackers


def free_port():
    """A port free on 127.0.0.1 for both UDP and TCP (opentracker binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port on 127.0.0.1")


def die_with_parent():
    """In the tracker's child process: get SIGTERM if this script dies
    without its cleanup (SIGKILL). Best effort: Linux clears it when the
    process changes user, as opentracker does."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def udp_port_bound(port):
    """Whether some socket is bound to 127.0.0.1:port or *:port (/proc/net/udp)."""
    want = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    try:
        with open("/proc/net/udp") as f:
            next(f)
            return any(line.split()[1] in want for line in f)
    except OSError:
        return False


def tcp_port_listening(port):
    """Whether some socket listens on 127.0.0.1:port or *:port (/proc/net/tcp)."""
    want = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            return any(line.split()[1] in want and line.split()[3] == "0A" for line in f)
    except OSError:
        return False


def make_certificate(workdir):
    """A self-signed certificate for 127.0.0.1 (and its key), PEM files in
    workdir, made with the openssl command line tool."""
    cert = os.path.join(workdir, "tls-cert.pem")
    key = os.path.join(workdir, "tls-key.pem")
    argv = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", key, "-out", cert,
    ]  # fmt: skip
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CheckFailed(f"cannot make a TLS certificate with openssl: {e}")
    if r.returncode != 0:
        raise CheckFailed(f"openssl req failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()}")
    os.chmod(key, 0o600)
    return cert, key


class TlsRelay:
    """HTTPS on 127.0.0.1 in front of a plain-HTTP tracker on 127.0.0.1
    (opentracker has no TLS): every accepted connection is decrypted and
    relayed byte for byte to the tracker, in threads of this process. Lets
    the https tests be tried out against opentracker; it says nothing about
    the tracker's own TLS."""

    IDLE = 30  # seconds a relayed connection may stay silent

    def __init__(self, cert, key, backend_port):
        self.backend_port = backend_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.connections = 0
        self.errors = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.connections += 1
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        tls = up = None
        try:
            conn.settimeout(10)
            tls = self.ctx.wrap_socket(conn, server_side=True)
            up = socket.create_connection(("127.0.0.1", self.backend_port), timeout=10)
            while not self.stopping.is_set():
                ready = [tls] if tls.pending() else select.select([tls, up], [], [], self.IDLE)[0]
                if not ready:
                    break
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is tls else tls).sendall(data)
        except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
            pass  # a client closing its end first
        except (OSError, ssl.SSLError) as e:
            self.errors.append(str(e))
        finally:
            for s in (tls or conn, up):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def stop(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(timeout=2)


class Tracker:
    """A tracker process started by this script; stopped by its PID.

    scheme "udp": aquatic_udp or opentracker; "http": aquatic_http or
    opentracker; "https": aquatic_http with a self-signed certificate, or
    opentracker behind a TlsRelay with one."""

    def __init__(self, binary, workdir, info_hash, deadline, scheme="udp"):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme}")
        self.binary = os.path.abspath(binary)
        self.workdir = workdir
        self.scheme = scheme
        self.proc = None
        self.relay = None
        self.log_path = os.path.join(workdir, "tracker.log")
        self.log_lines = []
        self.lock = threading.Lock()
        self.port = None  # the port clients use
        self.cert = self.key = None
        if scheme == "https":
            self.cert, self.key = make_certificate(workdir)
        if "opentracker" in os.path.basename(binary):
            self._start_opentracker(info_hash, deadline)
        else:
            self._start_aquatic(deadline)

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}/announce"

    def _drain(self, stream, found):
        with open(self.log_path, "a") as out:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                out.write(line + "\n")
                out.flush()
                with self.lock:
                    self.log_lines.append(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    found.set()

    def _spawn(self, argv, found):
        log(f"starting tracker: {' '.join(argv)}")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            preexec_fn=die_with_parent,
        )
        threading.Thread(target=self._drain, args=(self.proc.stdout, found), daemon=True).start()

    def _aquatic_config(self):
        if self.scheme == "udp":
            return "aquatic_udp.toml", ""
        tls = ""
        if self.scheme == "https":
            tls = f'tls_certificate_path = "{self.cert}"\ntls_private_key_path = "{self.key}"\n'
        return "aquatic_http.toml", tls

    def _start_aquatic(self, deadline):
        name, network_extra = self._aquatic_config()
        config = os.path.join(self.workdir, name)
        with open(config, "w") as f:
            f.write(
                'log_level = "info"\n'
                "socket_workers = 1\n"
                "request_workers = 1\n"
                "[network]\n"
                'address = "127.0.0.1:0"\n'
                f"{network_extra}"
                "[protocol]\n"
                f"peer_announce_interval = {ANNOUNCE_INTERVAL}\n"
                "max_response_peers = 50\n"
                "[access_list]\n"
                'mode = "off"\n'
            )
        found = threading.Event()
        self._spawn([self.binary, "-c", config], found)
        end = deadline.until(20)
        while time.monotonic() < end and not found.is_set():
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader catch the last lines
                raise CheckFailed(f"tracker exited with status {self.proc.returncode} before listening:\n{self.tail()}")
            found.wait(0.1)
        if not found.is_set():
            raise CheckFailed(f"no 'listening on 127.0.0.1:PORT' line from the tracker within 20 s:\n{self.tail()}")
        log(f"tracker (pid {self.proc.pid}) listening on 127.0.0.1:{self.port}")

    def _start_opentracker(self, info_hash, deadline):
        # opentracker chroots into its directory (which must be reachable by
        # `nobody`) and drops to nobody; the whitelist is read inside it.
        root = os.path.join(self.workdir, "opentracker")
        os.makedirs(root, exist_ok=True)
        os.chmod(root, 0o755)
        os.chmod(self.workdir, 0o755)
        with open(os.path.join(root, "whitelist"), "w") as f:
            f.write(info_hash + "\n")
        os.chmod(os.path.join(root, "whitelist"), 0o644)
        port = free_port()
        p = str(port)
        argv = [self.binary, "-i", "127.0.0.1", "-p", p, "-P", p, "-d", root, "-u", "nobody", "-w", "whitelist"]
        self._spawn(argv, threading.Event())
        # It serves UDP and HTTP on the same port; wait for the one tested.
        bound = udp_port_bound if self.scheme == "udp" else tcp_port_listening
        kind = "UDP" if self.scheme == "udp" else "TCP"
        end = deadline.until(20)
        while time.monotonic() < end and not bound(port):
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise CheckFailed(f"opentracker exited with status {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.1)
        if not bound(port):
            raise CheckFailed(f"opentracker did not bind {kind} 127.0.0.1:{port} within 20 s:\n{self.tail()}")
        time.sleep(0.5)  # the whitelist is loaded by a thread of its own
        self.port = port
        log(f"opentracker (pid {self.proc.pid}) on 127.0.0.1:{port}")
        if self.scheme == "https":
            self.relay = TlsRelay(self.cert, self.key, port)
            self.port = self.relay.port
            log(f"TLS relay (in this process) on 127.0.0.1:{self.port} -> opentracker 127.0.0.1:{port}")

    def tail(self, n=30):
        with self.lock:
            lines = self.log_lines[-n:]
        return "\n".join("    tracker: " + l for l in lines) or "    (tracker printed nothing)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.relay is not None:
            self.relay.stop()
            errors = f"; errors: {self.relay.errors[-3:]}" if self.relay.errors else ""
            log(f"TLS relay stopped: {self.relay.connections} connections relayed{errors}")
            self.relay = None
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_process(self.proc, "tracker")


def stop_process(proc, what, timeout=5):
    """Stop `proc` (a Popen, still running) by its PID: SIGTERM, up to
    `timeout` s to exit, then SIGKILL; log its exit status as `what`'s."""
    pid = proc.pid
    try:
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass
    log(f"{what} (pid {pid}) stopped, exit status {proc.returncode}")


def http_exchange(conn, what, *request):
    """conn.request(*request) on an http.client connection, closed after:
    (the response, its body), or CheckFailed("WHAT: error")."""
    try:
        conn.request(*request)
        resp = conn.getresponse()
        return resp, resp.read()
    except (OSError, http.client.HTTPException) as e:
        raise CheckFailed(f"{what}: {e}")
    finally:
        conn.close()


def scrape(announce_url, info_hash, timeout=5):
    """Scrape an HTTP(S) tracker for one info hash (40 hex digits) directly,
    not through a client: {"complete", "incomplete", "downloaded"} (missing
    keys as None), or raise CheckFailed. The scrape URL is the announce URL
    with its last `announce` replaced by `scrape` (BEP 48)."""
    u = urllib.parse.urlsplit(announce_url)
    head, sep, tail = u.path.rpartition("/announce")
    if not sep:
        raise CheckFailed(f"cannot scrape {announce_url}: no /announce in its path")
    raw = bytes.fromhex(info_hash)
    query = (u.query + "&" if u.query else "") + "info_hash=" + urllib.parse.quote_from_bytes(raw, safe="")
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the tests' self-signed certificate
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    resp, body = http_exchange(conn, f"scrape of {announce_url}", "GET", f"{head}/scrape{tail}?{query}")
    if resp.status != 200:
        raise CheckFailed(f"scrape of {announce_url}: HTTP status {resp.status}: {body[:200]!r}")
    d = lt.bdecode(body)
    if not isinstance(d, dict):
        raise CheckFailed(f"scrape of {announce_url}: not a bencoded dictionary: {body[:200]!r}")
    if b"failure reason" in d:
        raise CheckFailed(f"scrape of {announce_url}: failure reason {d[b'failure reason']!r}")
    entry = (d.get(b"files") or {}).get(raw)
    if entry is None:
        return {"complete": 0, "incomplete": 0, "downloaded": 0, "absent": True}
    return {k: entry.get(k.encode()) for k in ("complete", "incomplete", "downloaded")}


# ---------------------------------------------------------------- torrent


def make_payload(path, seed):
    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    data = rng.randbytes(PAYLOAD_SIZE) if seed is not None else os.urandom(PAYLOAD_SIZE)
    with open(path, "wb") as f:
        f.write(data)


def make_torrent(payload, tracker_url, torrent_path):
    fs = lt.file_storage()
    lt.add_files(fs, payload)
    # v1 only: a hybrid torrent would announce a second (v2) info hash.
    ct = lt.create_torrent(fs, PIECE_SIZE, flags=lt.create_torrent.v1_only)
    if tracker_url:
        ct.add_tracker(tracker_url)
    ct.set_creator("aquatic real-client test")
    lt.set_piece_hashes(ct, os.path.dirname(payload))
    with open(torrent_path, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    return lt.torrent_info(torrent_path)


def info_hash_hex(ti):
    return str(ti.info_hashes().v1)


# ---------------------------------------------------------------- clients


def session_settings(name, scheme="udp"):
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        # TCP only, and several peers on 127.0.0.1 must be allowed to meet.
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        # libtorrent clamps the tracker's interval to at least this.
        "min_announce_interval": ANNOUNCE_INTERVAL,
        # bound the wait for `stopped` answers when a session closes
        "stop_tracker_timeout": 2,
        "user_agent": f"aquatic-real-client-test/{name}",
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.storage_notification,
    }
    if scheme in ("http", "https"):
        # libtorrent's SSRF mitigation sends nothing but /announce requests to
        # a tracker on a loopback or local address: the scrapes (/scrape)
        # fail at once with "blocked by SSRF mitigation", never sent.
        settings["ssrf_mitigation"] = False
    if scheme == "https":
        # The tests' tracker has a self-signed certificate.
        settings["validate_https_trackers"] = False
    return settings


class Client:
    """One libtorrent session with one torrent."""

    def __init__(self, name, ti, save_path, events_log, scheme="udp"):
        self.name = name
        self.save_path = save_path
        self.events_log = events_log
        os.makedirs(save_path, exist_ok=True)
        # flags=0: no default plugins, so no ut_pex (nor ut_metadata, which a
        # .torrent does not need).
        self.session = lt.session(session_settings(name, scheme), flags=0)
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = save_path
        flags = atp.flags
        flags &= ~lt.torrent_flags.auto_managed
        flags &= ~lt.torrent_flags.paused
        flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
        atp.flags = flags
        self.atp = atp
        self.handle = None
        self.announces = []  # (time, num_peers) of tracker replies
        self.scrapes = []  # (complete, incomplete) of scrape replies, or error text
        self.errors = []
        self.finished = False
        self.peer_sources = {}  # (ip, port) -> union of peer_info.source bits
        self.peer_clients = {}  # (ip, port) -> client name from the handshake
        self.last_peer_sample = 0.0

    def start(self, download_limit=None):
        self.handle = self.session.add_torrent(self.atp)
        if download_limit:
            self.handle.set_download_limit(download_limit)
        log(f"{self.name}: listening on 127.0.0.1:{self.session.listen_port()}")

    def pump(self):
        for a in self.session.pop_alerts():
            text = f"{self.name}: {type(a).__name__}: {a.message()}"
            self.events_log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            if isinstance(a, lt.tracker_reply_alert):
                self.announces.append((time.monotonic(), a.num_peers))
            elif isinstance(a, lt.scrape_reply_alert):
                self.scrapes.append((a.complete, a.incomplete))
            elif isinstance(a, lt.scrape_failed_alert):
                self.scrapes.append(f"scrape failed: {a.message()}")
                self.errors.append(text)
            elif isinstance(a, (lt.tracker_error_alert, lt.torrent_error_alert, lt.file_error_alert)):
                self.errors.append(text)
            elif isinstance(a, lt.torrent_finished_alert):
                self.finished = True
        self.events_log.flush()
        # Sample where the connected peers were learnt from: seeds drop their
        # connections to each other, so looking only at the end sees none.
        now = time.monotonic()
        if self.handle is not None and self.handle.is_valid() and now - self.last_peer_sample >= 0.2:
            self.last_peer_sample = now
            for p in self.handle.get_peer_info():
                key = tuple(p.ip)
                self.peer_sources[key] = self.peer_sources.get(key, 0) | p.source
                if p.client:
                    name = p.client
                    self.peer_clients[key] = name.decode("utf-8", "replace") if isinstance(name, bytes) else name

    def scrape_downloaded(self):
        """`downloaded` of the last scrape: libtorrent keeps it per tracker
        endpoint and info hash; it comes from scrapes only (a UDP announce
        answer carries seeders and leechers but not downloaded)."""
        best = None
        for tr in self.handle.trackers():
            for ep in tr.get("endpoints", []):
                for ih in ep.get("info_hashes", []):
                    v = ih.get("scrape_downloaded", -1)
                    if v is not None and v >= 0:
                        best = v
        return best

    def status_line(self):
        if self.handle is None or not self.handle.is_valid():
            return f"{self.name}: (no torrent)"
        s = self.handle.status()
        return (
            f"{self.name}: state={s.state} progress={s.progress * 100:.1f}% peers={s.num_peers} "
            f"seeds={s.num_seeds} tracker complete={s.num_complete} incomplete={s.num_incomplete} "
            f"paused={s.paused} errors={self.errors[-3:]}"
        )

    def close(self):
        try:
            if self.handle is not None and self.handle.is_valid():
                self.session.remove_torrent(self.handle)
        except Exception:
            pass
        t0 = time.monotonic()
        self.session = None  # the destructor sends the last `stopped`s
        took = time.monotonic() - t0
        if took > 1:
            log(f"{self.name}: session shutdown took {took:.1f} s")


def files_identical(payload, save_path):
    """Raise CheckFailed unless save_path holds a byte-identical copy of payload."""
    got = os.path.join(save_path, os.path.basename(payload))
    if not os.path.exists(got):
        raise CheckFailed(f"{got} does not exist")
    if not filecmp.cmp(payload, got, shallow=False):
        raise CheckFailed(f"{got} differs from the source")


def other_peer_sources(clients):
    """(peers seen, peers learnt from the tracker, descriptions of peers
    learnt from DHT, PEX or LSD) over the peer samples of clients."""
    other = []
    total = 0
    from_tracker = 0
    for c in clients:
        for ip, source in c.peer_sources.items():
            total += 1
            from_tracker += bool(source & SOURCE_TRACKER)
            if source & (SOURCE_DHT | SOURCE_PEX | SOURCE_LSD):
                names = [n for bit, n in SOURCE_NAMES.items() if source & bit]
                other.append(f"{c.name} <- {ip} via {names}")
    return total, from_tracker, other


# ---------------------------------------------------------------- the libtorrent swarm test


class TrackerTest:
    """What the tests here share: the command line's args, the scheme, the
    work directory, the time budget, the tracker under test, the checks
    passed and failed, and how a run ends. `name` starts the summary line."""

    name = None

    def __init__(self, args, scheme):
        self.args = args
        self.scheme = scheme
        self.workdir = os.path.abspath(args.workdir)
        self.deadline = Deadline(args.timeout)
        self.passed = []
        self.failed = []
        self.tracker = None
        self.events_log = None

    def check(self, name, fn):
        try:
            detail = fn()
        except CheckFailed as e:
            self.failed.append(name)
            log(f"FAIL {name}: {e}")
            return False
        self.passed.append(name)
        log(f"ok   {name}" + (f": {detail}" if detail else ""))
        return True

    def write_payload(self, seed):
        """WORKDIR/seed/payload.bin, from `seed` (or random): its path, and
        that of WORKDIR/test.torrent (not written yet)."""
        os.makedirs(self.workdir, exist_ok=True)
        seed_dir = os.path.join(self.workdir, "seed")
        os.makedirs(seed_dir, exist_ok=True)
        payload = os.path.join(seed_dir, "payload.bin")
        make_payload(payload, seed)
        return payload, os.path.join(self.workdir, "test.torrent")

    def logs(self):
        """(what, path) of each log to look at when a check failed."""
        return [] if self.tracker is None else [("tracker", self.tracker.log_path)]

    def finish(self):
        """Stop the tracker, say what failed, print the summary line; the
        exit status."""
        if self.tracker is not None:
            self.tracker.stop()
        ok = not self.failed
        if not ok:
            log("failed: " + "; ".join(self.failed))
            for what, path in self.logs():
                log(f"{what} log: {path}")
        print(f"{self.name} {self.scheme}: {len(self.passed)} passed, {len(self.failed)} failed", flush=True)
        return 0 if ok else 1

    def close(self):
        """Stop whatever still runs (after run(), however it ended)."""
        if self.tracker is not None:
            self.tracker.stop()

    def run_to_end(self):
        """run(): its exit status, 1 on Ctrl-C; then close() in any case."""
        try:
            return self.run()
        except KeyboardInterrupt:
            log("interrupted")
            return 1
        finally:
            self.close()


class SwarmTest(TrackerTest):
    """One libtorrent seeder and two downloaders meeting through the tracker."""

    name = "libtorrent"

    def __init__(self, args, scheme):
        super().__init__(args, scheme)
        self.clients = []

    # -- helpers

    def pump(self):
        for c in self.clients:
            if c.session is not None:
                c.pump()
        if self.tracker is not None and not self.tracker.alive():
            raise CheckFailed(
                f"tracker process exited with status {self.tracker.proc.returncode}:\n{self.tracker.tail()}"
            )

    def wait_for(self, what, cond, seconds, describe):
        """Pump alerts until cond() holds; at most `seconds` (and the overall
        budget). On timeout raise CheckFailed with what was seen."""
        end = self.deadline.until(seconds)
        while True:
            self.pump()
            if cond():
                return
            if time.monotonic() >= end:
                raise CheckFailed(f"{what}: not seen within {seconds} s (or the overall --timeout).\n{describe()}")
            time.sleep(0.1)

    def scrape_until(self, client, want, seconds):
        """Scrape through `client` until the tracker reports `want`
        (dict of complete/incomplete/downloaded, missing keys not checked)."""
        seen = []
        end = self.deadline.until(seconds)
        while True:
            before = len(client.scrapes)
            client.handle.scrape_tracker()
            reply_end = min(end, time.monotonic() + 5)
            while len(client.scrapes) == before and time.monotonic() < reply_end:
                self.pump()
                time.sleep(0.05)
            if len(client.scrapes) > before:
                r = client.scrapes[-1]
                if isinstance(r, str):
                    seen.append(r)
                else:
                    got = {"complete": r[0], "incomplete": r[1], "downloaded": client.scrape_downloaded()}
                    seen.append(got)
                    if all(got[k] == v for k, v in want.items()):
                        return got
            else:
                seen.append("no scrape reply within 5 s")
            if time.monotonic() >= end:
                shown = seen[-8:]
                raise CheckFailed(
                    f"scrape did not report {want} within {seconds} s; last {len(shown)} of {len(seen)} scrapes: "
                    + "; ".join(str(s) for s in shown)
                    + "\n"
                    + self.describe()
                )
            time.sleep(1.0)

    def describe(self):
        lines = ["    " + c.status_line() for c in self.clients]
        if self.tracker is not None:
            lines.append(self.tracker.tail(15))
        lines.append(f"    libtorrent alerts: {os.path.join(self.workdir, 'alerts.log')}")
        return "\n".join(lines)

    # -- the run

    def run(self):
        payload, torrent_path = self.write_payload(self.args.seed)

        if self.args.print_info_hash:
            print(info_hash_hex(make_torrent(payload, None, torrent_path)))
            return 0

        # The info hash does not depend on the announce URL, so it is known
        # before the tracker (which may need it whitelisted) starts.
        info_hash = info_hash_hex(make_torrent(payload, None, torrent_path))
        try:
            if self.args.tracker_url:
                url = self.args.tracker_url
            else:
                self.tracker = Tracker(self.args.tracker, self.workdir, info_hash, self.deadline, self.scheme)
                url = self.tracker.url
        except CheckFailed as e:
            log(f"FAIL tracker starts: {e}")
            self.failed.append("tracker starts")
            return self.finish()
        ti = make_torrent(payload, url, torrent_path)
        log(f"torrent {info_hash} ({PAYLOAD_SIZE} bytes, {ti.num_pieces()} pieces) announcing to {url}")

        self.events_log = open(os.path.join(self.workdir, "alerts.log"), "w")
        try:
            self.run_checks(ti, payload)
        except CheckFailed as e:
            # something the later checks depend on broke
            self.failed.append("run aborted")
            log(f"FAIL aborted: {e}")
        finally:
            for c in self.clients:
                c.close()
            self.events_log.close()
        return self.finish()

    def run_checks(self, ti, payload):
        seeder = Client("seeder", ti, os.path.dirname(payload), self.events_log, self.scheme)
        d1 = Client("downloader1", ti, os.path.join(self.workdir, "dl1"), self.events_log, self.scheme)
        d2 = Client("downloader2", ti, os.path.join(self.workdir, "dl2"), self.events_log, self.scheme)
        self.clients = [seeder, d1, d2]
        downloaders = [d1, d2]

        def seeder_announced():
            seeder.start()
            self.wait_for(
                "seeder's announce answered (tracker_reply_alert)",
                lambda: seeder.announces and seeder.handle.status().is_seeding,
                20,
                self.describe,
            )
            return "seeding, announce answered"

        if not self.check("seeder announces", seeder_announced):
            raise CheckFailed("no seeder, nothing else can work")

        def downloaders_get_peers():
            for d in downloaders:
                d.start(download_limit=THROTTLE)
            self.wait_for(
                "each downloader's announce answered with at least one peer",
                lambda: all(any(n > 0 for _, n in d.announces) for d in downloaders),
                20,
                lambda: "    announces (time, num_peers): "
                + "; ".join(f"{d.name} {[n for _, n in d.announces]}" for d in downloaders)
                + "\n"
                + self.describe(),
            )
            return ", ".join(f"{d.name} got {max(n for _, n in d.announces)} peers" for d in downloaders)

        self.check("downloaders get peers from the tracker", downloaders_get_peers)

        def scrape_leeching():
            got = self.scrape_until(seeder, {"complete": 1, "incomplete": 2}, 15)
            progress = [d.handle.status().progress for d in downloaders]
            if any(p >= 1.0 for p in progress):
                raise CheckFailed(f"a download finished before the scrape was answered (throttle too high?): {got}")
            shown = ", ".join(f"{p * 100:.0f}%" for p in progress)
            return f"complete={got['complete']} incomplete={got['incomplete']} (downloads at {shown})"

        self.check("scrape while leeching: 1 seeder, 2 leechers", scrape_leeching)

        def downloads_complete():
            for d in downloaders:
                d.handle.set_download_limit(-1)
            self.wait_for(
                "both downloads complete",
                lambda: all(d.handle.status().is_seeding for d in downloaders),
                30,
                self.describe,
            )
            for d in downloaders:
                try:
                    files_identical(payload, d.save_path)
                except CheckFailed as e:
                    raise CheckFailed(f"{d.name}: {e}")
            return f"2 x {PAYLOAD_SIZE} bytes, identical to the source"

        if not self.check("downloads complete, files identical", downloads_complete):
            raise CheckFailed("downloads did not complete")

        def only_tracker_peers():
            total, from_tracker, other = other_peer_sources(self.clients)
            if other:
                raise CheckFailed("peers found other than through the tracker: " + "; ".join(other))
            if from_tracker == 0:
                raise CheckFailed(f"no connected peer was learnt from the tracker ({total} peers seen)")
            return f"{total} peers seen, {from_tracker} learnt from the tracker, none from DHT/PEX/LSD"

        self.check("peers found only through the tracker", only_tracker_peers)

        def scrape_completed():
            got = self.scrape_until(seeder, {"complete": 3, "incomplete": 0, "downloaded": 2}, 15)
            return f"complete={got['complete']} incomplete={got['incomplete']} downloaded={got['downloaded']}"

        self.check("scrape after completion: 3 seeders, downloaded 2", scrape_completed)

        def remove_one():
            d1.session.remove_torrent(d1.handle)  # sends `stopped`
            got = self.scrape_until(seeder, {"complete": 2, "incomplete": 0}, 15)
            return f"complete={got['complete']} incomplete={got['incomplete']} downloaded={got['downloaded']}"

        self.check("scrape after removing a downloader: 2 seeders", remove_one)

        def pause_other():
            d2.handle.pause()  # sends `stopped`
            got = self.scrape_until(seeder, {"complete": 1, "incomplete": 0}, 15)
            return f"complete={got['complete']} incomplete={got['incomplete']} downloaded={got['downloaded']}"

        self.check("scrape after pausing the other downloader: 1 seeder", pause_other)


def install_sigterm_handler():
    """SIGTERM (e.g. from `timeout`) runs the cleanup too: processes started
    here are stopped by their PIDs in the finally blocks."""

    def on_sigterm(signum, frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_sigterm)


def libtorrent_main(doc, transport):
    """Command line of libtorrent_udp.py (transport "udp") and
    libtorrent_http.py (transport "http": plain HTTP, or HTTPS with --https
    or an https:// --tracker-url)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("tracker", nargs="?", help=f"tracker binary to start (aquatic_{transport} or opentracker)")
    ap.add_argument("workdir", help="directory for the payload, torrent, downloads and logs")
    if transport == "udp":
        url_help = "use this already running tracker (udp://127.0.0.1:PORT/announce)"
    else:
        url_help = "use this already running tracker (http[s]://127.0.0.1:PORT/announce)"
        ap.add_argument(
            "--https",
            action="store_true",
            help="HTTPS: the tracker started here gets a self-signed certificate for 127.0.0.1 "
            "(opentracker, which has no TLS, a TLS relay in this process)",
        )
    ap.add_argument("--tracker-url", help=url_help)
    ap.add_argument("--seed", type=int, help="make the payload (and so the info hash) from this seed")
    ap.add_argument("--print-info-hash", action="store_true", help="print the test torrent's info hash and exit")
    ap.add_argument("--timeout", type=float, default=90, help="overall time budget in seconds (default 90)")
    args = ap.parse_args()
    if not args.print_info_hash and bool(args.tracker) == bool(args.tracker_url):
        ap.error("give either a tracker binary or --tracker-url")
    if transport == "udp":
        url_re = r"^udp://127\.0\.0\.1:\d+(/.*)?$"
    else:
        url_re = r"^https?://127\.0\.0\.1:\d+/(.*/)?announce(\?.*)?$"
    if args.tracker_url and not re.match(url_re, args.tracker_url):
        shape = "udp://127.0.0.1:PORT/..." if transport == "udp" else "http[s]://127.0.0.1:PORT/.../announce"
        ap.error(f"--tracker-url must be {shape}: the clients listen on 127.0.0.1 only")
    if args.tracker and not args.print_info_hash and not os.access(args.tracker, os.X_OK):
        ap.error(f"{args.tracker} is not an executable file")
    if transport == "udp":
        scheme = "udp"
    elif args.tracker_url:
        scheme = urllib.parse.urlsplit(args.tracker_url).scheme
        if args.https and scheme != "https":
            ap.error("--https with an http:// --tracker-url")
    else:
        scheme = "https" if args.https else "http"

    install_sigterm_handler()
    return SwarmTest(args, scheme).run_to_end()
