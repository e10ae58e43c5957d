#!/usr/bin/python3
"""Real-client test of an HTTP(S) BitTorrent tracker with libtorrent-rasterbar.

Run with Debian's python (python3-libtorrent is built for it):

    /usr/bin/python3 scripts/real_clients/libtorrent_http.py TRACKER_BINARY WORKDIR
    /usr/bin/python3 scripts/real_clients/libtorrent_http.py --https TRACKER_BINARY WORKDIR
    /usr/bin/python3 scripts/real_clients/libtorrent_http.py --tracker-url http://127.0.0.1:PORT/announce WORKDIR

The same test as libtorrent_udp.py (one seeder and two downloaders on
127.0.0.1 finding each other through the tracker alone; the same eight
checks), over HTTP: the torrent announces to http://127.0.0.1:PORT/announce,
and libtorrent scrapes http://127.0.0.1:PORT/scrape (the announce URL with
`announce` replaced by `scrape`).

TRACKER_BINARY is aquatic_http (started with a generated config, address
127.0.0.1:0, announce interval 5 s, the port read from its `listening on`
log line) or Debian's opentracker (recognised by its name: started on a free
port with the test torrent's info hash whitelisted).

With --https the tracker URL is https://127.0.0.1:PORT/announce: a
self-signed certificate for 127.0.0.1 is made with openssl in WORKDIR
(tls-cert.pem, tls-key.pem) and aquatic_http is started with it
(tls_certificate_path, tls_private_key_path); the libtorrent sessions run
with validate_https_trackers = false. opentracker has no TLS: with it,
--https puts a TLS relay (threads of this script) in front of it, which
tries the test out but says nothing about a tracker's own TLS.

With --tracker-url an already running tracker is used (http:// or
https://; an https one may have any certificate); if it has a whitelist,
first get the info hash with `--seed N --print-info-hash WORKDIR` and run
the test with the same --seed.

Every wait is bounded (--timeout, 90 s by default); the tracker process, if
started here, is stopped by its PID at the end. Exit status 0 only if every
check passed; the last line is `libtorrent http: N passed, N failed` (or
`libtorrent https: ...`).
"""

import sys

from common import libtorrent_main

if __name__ == "__main__":
    sys.exit(libtorrent_main(__doc__, "http"))
