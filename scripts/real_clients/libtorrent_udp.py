#!/usr/bin/python3
"""Real-client test of a UDP BitTorrent tracker with libtorrent-rasterbar.

Run with Debian's python (python3-libtorrent is built for it):

    /usr/bin/python3 scripts/real_clients/libtorrent_udp.py TRACKER_BINARY WORKDIR
    /usr/bin/python3 scripts/real_clients/libtorrent_udp.py --tracker-url udp://127.0.0.1:PORT/announce WORKDIR

TRACKER_BINARY is aquatic_udp (started with a generated config, address
127.0.0.1:0, the port read from its `listening on` log line) or Debian's
opentracker (recognised by its name: started on a free port with the test
torrent's info hash whitelisted). With --tracker-url an already running
tracker is used; if it has a whitelist, first get the info hash with
`--seed N --print-info-hash WORKDIR` and run the test with the same --seed.

What it does: makes a random ~4 MiB file and a v1 .torrent announcing to the
tracker, then runs one seeding and two downloading libtorrent sessions on
127.0.0.1 with DHT, local service discovery, peer exchange, UPnP and NAT-PMP
off, so the peers can only find each other through the tracker. Checks:

  1. the seeder's announce is answered;
  2. each downloader gets peers from the tracker;
  3. scrape while both download: 1 seeder, 2 leechers;
  4. both downloads complete, and the files equal the source byte for byte;
  5. no peer was found other than through the tracker;
  6. scrape after completion: 3 seeders, 0 leechers, downloaded 2;
  7. scrape after one downloader is removed (sends `stopped`): 2 seeders;
  8. scrape after the other is paused (sends `stopped`): 1 seeder.

Every wait is bounded; the whole run takes well under --timeout seconds. The
tracker process, if started here, is stopped by its PID at the end. Exit
status 0 only if every check passed; the last line is
`libtorrent udp: N passed, N failed`.

The test itself lives in common.py, shared with libtorrent_http.py.
"""

import sys

from common import libtorrent_main

if __name__ == "__main__":
    sys.exit(libtorrent_main(__doc__, "udp"))
