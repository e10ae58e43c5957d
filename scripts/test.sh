#!/usr/bin/env bash
# The whole test suite, as CI runs it (`bash .ci/run` calls this).
#
#   1. installs what the tests need (Debian packages) if missing;
#   2. formatting and lints (cargo fmt --check, clippy -D warnings);
#   3. unit and integration tests of every crate (cargo test --workspace);
#   4. random info-hash floods (scripts/flood.py): each daemon's peer
#      ceiling holds, its memory stays within the documented bytes per peer
#      and falls back after cleaning;
#   5. status pages (scripts/status_page.py): each daemon's page on the
#      metrics listener in headless Chromium under load, its figures
#      checked against /stats.json, screenshots taken; the Grafana
#      dashboards (scripts/grafana/dashboards.py): every panel's query
#      answered by Prometheus scraping each daemon under load;
#   6. deployment files: systemd units (systemd-analyze, offline) and sample
#      configs (each loads with its daemon's -P); builds the daemons it needs;
#      the Debian packages (scripts/deb/test.sh: cargo-deb, dpkg -i, the
#      installed unit and config checked, conffile kept, dpkg -r and --purge);
#   7. real clients: libtorrent seeding and downloading through aquatic_udp
#      and aquatic_http (plain and TLS), Transmission through aquatic_http,
#      WebTorrent in three headless Chromiums through aquatic_ws (in a
#      network namespace of its own; needs root);
#   8. aquatic_udp on a host with several addresses (a network namespace
#      of its own): every answer from the address asked, libtorrent
#      included (scripts/real_clients/multiaddr_udp.py; needs root);
#   9. the modules with `unsafe` code under valgrind (scripts/valgrind.sh);
#  10. a fuzz smoke: every cargo-fuzz target for 30 s (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

steps=0
step() {
    steps=$((steps + 1))
    printf '\n== %s ==\n' "$*"
}

step "installing test dependencies"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "hostile traffic: random info-hash floods against all three daemons"
cargo build --workspace --bins
# Peers live 90 s: the slowest flood (aquatic_ws, debug) must store all
# 300,000 before the first expire.
/usr/bin/python3 scripts/flood.py --build debug --peers 300000 --max-peer-age 90

step "status pages: each daemon's page in headless Chromium against /stats.json"
/usr/bin/python3 scripts/status_page.py --build debug

step "Grafana dashboards: every panel's query answered by Prometheus scraping each daemon"
/usr/bin/python3 scripts/grafana/dashboards.py check --build debug

step "deployment: systemd units and sample configs"
bash scripts/test_deployment.sh

step "deployment: Debian packages built, installed, checked and removed"
bash scripts/deb/test.sh

step "real clients: libtorrent over UDP"
cargo build -p aquatic_udp
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 scripts/real_clients/libtorrent_udp.py target/debug/aquatic_udp "$work/udp"

step "real clients: aquatic_udp on a host with several addresses"
/usr/bin/python3 scripts/real_clients/multiaddr_udp.py target/debug/aquatic_udp "$work/multiaddr"

step "real clients: libtorrent over HTTP and HTTPS, Transmission over HTTP and HTTPS"
cargo build -p aquatic_http
/usr/bin/python3 scripts/real_clients/libtorrent_http.py target/debug/aquatic_http "$work/http"
/usr/bin/python3 scripts/real_clients/libtorrent_http.py --https target/debug/aquatic_http "$work/https"
/usr/bin/python3 scripts/real_clients/transmission_http.py target/debug/aquatic_http "$work/transmission"
/usr/bin/python3 scripts/real_clients/transmission_http.py --https target/debug/aquatic_http "$work/transmission-https"

step "real clients: WebTorrent in Chromium over aquatic_ws"
cargo build -p aquatic_ws
bash scripts/real_clients/webtorrent_ws.sh aquatic target/debug/aquatic_ws

step "unsafe code under valgrind (memcheck)"
bash scripts/valgrind.sh

step "fuzz smoke: every cargo-fuzz target for 30 s"
bash scripts/fuzz.sh 30

# set -e stops at the first failing step, so reaching here means all passed.
echo
echo "test suite: $steps passed, 0 failed"
