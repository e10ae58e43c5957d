#!/usr/bin/env bash
# Install the Debian packages the test suite and the benchmarks need:
#   python3-libtorrent  real BitTorrent client for scripts/real_clients/
#                       (for Debian's /usr/bin/python3, not a pyenv python)
#   opentracker         reference tracker for scripts/bench/udp.sh and http.sh
#                       (and for trying the real-client tests out)
#   transmission-daemon real BitTorrent client for
#                       scripts/real_clients/transmission_http.py (only the
#                       binary is used: the tests run their own instance as
#                       the current user; the package's service is not needed)
#   systemd             systemd-analyze, for scripts/test_deployment.sh (it
#                       checks the unit files offline; systemd need not run)
#   prometheus          promtool, which the daemons' metrics tests run on the
#                       /metrics output (`promtool check metrics`); the
#                       package's own Prometheus server is not needed
#   chromium            headless browser for the WebTorrent test,
#                       scripts/real_clients/webtorrent_ws.sh (/usr/bin/chromium,
#                       driven by playwright-core; no browser is downloaded)
#   iproute2            `ip netns`, for the network namespaces of the WebTorrent
#                       and multi-address tests
#   valgrind            memcheck for the modules with `unsafe` (scripts/valgrind.sh)
#   linux-perf          `perf`, for the benchmarks' profiles (not the tests)
#
# Node.js and npm come with the machine and are not installed here; the
# WebTorrent test's npm packages are pinned in
# scripts/real_clients/webtorrent/package-lock.json and installed by
# webtorrent_ws.sh itself (`npm ci`) when missing.
#
# usage (as root on Debian): scripts/install-test-deps.sh
#
# Idempotent and quiet on success: installs only what is missing, and runs
# `apt-get update` only when something is missing.

set -euo pipefail

packages=(python3-libtorrent opentracker transmission-daemon systemd prometheus chromium iproute2 valgrind linux-perf)

missing=()
for pkg in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: missing ${missing[*]}; run this script as root" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: missing ${missing[*]} and no apt-get (not Debian?)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# Output is kept in a log and shown only if a step fails.
run() {
    if ! timeout 900 "$@" >"$log" 2>&1; then
        echo "install-test-deps: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

run apt-get update -q
run apt-get install -y -q --no-install-recommends "${missing[@]}"

# The package enables and starts a system-wide transmission-daemon (as
# debian-transmission, on all addresses, with DHT): the tests run their own
# instance, so a service installed just now is stopped and disabled again.
if [[ " ${missing[*]} " == *" transmission-daemon "* ]]; then
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        run systemctl disable --now transmission-daemon.service
    elif [[ -x /etc/init.d/transmission-daemon ]]; then
        run /etc/init.d/transmission-daemon stop
        if command -v update-rc.d >/dev/null 2>&1; then
            run update-rc.d transmission-daemon disable
        fi
    fi
fi

# Likewise the Prometheus server that comes with promtool (on :9090).
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        run systemctl disable --now prometheus.service
    elif [[ -x /etc/init.d/prometheus ]]; then
        run /etc/init.d/prometheus stop
        if command -v update-rc.d >/dev/null 2>&1; then
            run update-rc.d prometheus disable
        fi
    fi
fi

if ! /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; then
    echo "install-test-deps: /usr/bin/python3 cannot import libtorrent after installing" >&2
    exit 1
fi
if ! command -v transmission-daemon >/dev/null 2>&1; then
    echo "install-test-deps: no transmission-daemon on PATH after installing" >&2
    exit 1
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "install-test-deps: no systemd-analyze on PATH after installing" >&2
    exit 1
fi
if ! command -v promtool >/dev/null 2>&1; then
    echo "install-test-deps: no promtool on PATH after installing" >&2
    exit 1
fi
if [[ ! -x /usr/bin/chromium ]]; then
    echo "install-test-deps: no /usr/bin/chromium after installing" >&2
    exit 1
fi
if ! ip netns list >/dev/null 2>&1; then
    echo "install-test-deps: no \`ip netns\` (iproute2) after installing" >&2
    exit 1
fi
