#!/usr/bin/env bash
# Install the Debian packages the test suite and the benchmarks need:
#   python3-libtorrent  real BitTorrent client for scripts/real_clients/
#                       (for Debian's /usr/bin/python3, not a pyenv python)
#   opentracker         reference tracker for scripts/bench/udp.sh
#
# usage (as root on Debian): scripts/install-test-deps.sh
#
# Idempotent and quiet on success: installs only what is missing, and runs
# `apt-get update` only when something is missing.

set -euo pipefail

packages=(python3-libtorrent opentracker)

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

if ! /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; then
    echo "install-test-deps: /usr/bin/python3 cannot import libtorrent after installing" >&2
    exit 1
fi
