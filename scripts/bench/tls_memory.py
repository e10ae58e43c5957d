#!/usr/bin/env python3
"""Memory of aquatic_http's TLS connections, per connection and per stage.

usage: scripts/bench/tls_memory.py [BINARY] [CONNECTIONS]

Starts BINARY (default target/release/aquatic_http) with a self-signed
certificate on a 127.0.0.1 port, then opens CONNECTIONS (default 2000)
connections in each of three stages and reports the daemon's RSS growth per
connection (VmRSS, after each stage settles):

  tcp        connected, nothing sent;
  hello      a TLS ClientHello sent, the handshake left half done (what a
             client that stalls mid-handshake costs until the idle timeout);
  handshake  the handshake completed (TLS 1.3), no request sent;
  answered   one announce answered on each, `Connection: keep-alive`.

Every connection and the daemon are closed at the end; loops are bounded.
"""

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def settle(pid):
    time.sleep(1.0)
    return rss_kib(pid)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "target/release/aquatic_http")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    work = tempfile.mkdtemp(prefix="aquatic-tls-memory.")
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = os.path.join(work, "config.toml")
    with open(config, "w") as f:
        f.write(f"""log_level = "warn"
socket_workers = 1
request_workers = 0
[network]
address = "127.0.0.1:{port}"
tls_certificate_path = "{cert}"
tls_private_key_path = "{key}"
max_connections = {4 * n + 100}
connection_idle_timeout = 600
[source_budgets]
share_percent = 100
""")
    daemon = subprocess.Popen([binary, "-c", config], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    sockets = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit("aquatic_http did not start")
                time.sleep(0.1)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_3

        base = settle(daemon.pid)
        rows = []

        def stage(name, open_one):
            before = settle(daemon.pid)
            for _ in range(n):
                sockets.append(open_one())
            after = settle(daemon.pid)
            rows.append((name, after - before, (after - before) * 1024 / n))

        def tcp():
            return socket.create_connection(("127.0.0.1", port), timeout=5)

        def hello():
            s = tcp()
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            s.sendall(outgoing.read())
            return (s, obj)

        def handshake():
            return context.wrap_socket(tcp(), server_hostname="localhost")

        def answered():
            s = handshake()
            query = ("info_hash=" + "%01" * 20 + "&peer_id=" + "%02" * 20 + f"&port={len(sockets) % 60000 + 1}"
                     "&uploaded=0&downloaded=0&left=0&compact=1&numwant=0")
            s.sendall(f"GET /announce?{query} HTTP/1.1\r\nHost: localhost\r\n"
                      "Connection: keep-alive\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"e"):
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("closed before the answer")
                data += chunk
            return s

        stage("tcp", tcp)
        stage("hello", hello)
        stage("handshake", handshake)
        stage("answered", answered)
        print(f"aquatic_http RSS {base} KiB before, {rss_kib(daemon.pid)} KiB with {4 * n} connections open")
        print(f"{'stage':<10} {'RSS growth KiB':>15} {'bytes per connection':>21}")
        for name, kib, per in rows:
            print(f"{name:<10} {kib:>15} {per:>21.0f}")
    finally:
        for s in sockets:
            (s[0] if isinstance(s, tuple) else s).close()
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


if __name__ == "__main__":
    main()
