#!/usr/bin/env bash
# Real-browser WebTorrent test (webtorrent/run.mjs) against a WebSocket
# tracker, all inside a network namespace of its own.
#
# usage (as root):
#   scripts/real_clients/webtorrent_ws.sh bittorrent-tracker [RUN_ARGS...]
#   scripts/real_clients/webtorrent_ws.sh aquatic PATH/TO/aquatic_ws [RUN_ARGS...]
#
# RUN_ARGS go to run.mjs after the tracker URL: [DOWNLOADERS=2]
# [TIMEOUT_SECONDS=120] [--wire-log FILE] [--linger SECONDS].
#
# bittorrent-tracker is the reference JS tracker from npm (started through
# webtorrent/reference_tracker.mjs, WebSocket only); `aquatic` starts the given
# aquatic_ws binary with a config written by write_aquatic_config below.
#
# WebRTC does not use the loopback interface, so the tracker, the page server
# and the browsers run in a new network namespace with one interface besides
# lo: a dummy interface (or, where the kernel has no dummy driver, one end of
# a veth pair whose other end stays in the namespace, unused) with $WT_ADDR.
# Its default route points at that interface, because Chromium picks its ICE
# host candidate from the default route and gathers none without one; nothing
# answers there, the namespace has no link to the host, and the script fails
# if any packet is sent out of that interface. Name lookups go to the
# namespace's own 127.0.0.1 (/etc/netns/NAME/resolv.conf), where nothing
# listens. The namespace, its resolv.conf, and every process started here are
# removed by PID at exit, whatever happens.
#
# Environment: WT_ADDR (10.213.0.1), WT_PORT (8000), WT_INTERVAL_MS (the
# reference tracker's announce interval in ms; it tells WebSocket clients a
# fifth of it, in seconds; default 10 min), WT_KEEP_WORKDIR=1 keeps the work
# directory (tracker log, config) even on success.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wt_dir="$here/webtorrent"
addr="${WT_ADDR:-10.213.0.1}"
port="${WT_PORT:-8000}"
iface=aqwt0
peer_iface=aqwt1

usage() {
    echo "usage: $0 bittorrent-tracker [RUN_ARGS...]" >&2
    echo "       $0 aquatic PATH/TO/aquatic_ws [RUN_ARGS...]" >&2
    echo "RUN_ARGS: [DOWNLOADERS=2] [TIMEOUT_SECONDS=120] [--wire-log FILE] [--linger SECONDS]" >&2
    exit 2
}

say() { echo "webtorrent_ws: $*"; }
die() {
    echo "webtorrent_ws: $*" >&2
    exit 1
}

# aquatic_ws's config: the keys besides [network] address are not final yet;
# this is the one place to adjust.
write_aquatic_config() {
    local file="$1" address="$2"
    cat >"$file" <<EOF
[network]
address = "$address"
EOF
}

[[ $# -ge 1 ]] || usage
kind="$1"
shift
tracker_bin=""
case "$kind" in
    bittorrent-tracker) ;;
    aquatic)
        [[ $# -ge 1 ]] || usage
        tracker_bin="$(realpath "$1")"
        shift
        [[ -x "$tracker_bin" ]] || die "not an executable: $tracker_bin"
        ;;
    *) usage ;;
esac

[[ $(id -u) -eq 0 ]] || die "must run as root (it makes a network namespace)"
command -v ip >/dev/null || die "no ip (iproute2); run scripts/install-test-deps.sh"
command -v node >/dev/null || die "no node on PATH"
[[ -x /usr/bin/chromium ]] || die "no /usr/bin/chromium; run scripts/install-test-deps.sh"

# The npm packages, pinned by webtorrent/package-lock.json.
if [[ ! -d "$wt_dir/node_modules/webtorrent/dist" || ! -d "$wt_dir/node_modules/playwright-core" ||
    ! -d "$wt_dir/node_modules/bittorrent-tracker" ]]; then
    npm_log="$(mktemp)"
    if ! (cd "$wt_dir" && timeout 600 npm ci --no-audit --no-fund) >"$npm_log" 2>&1; then
        cat "$npm_log" >&2
        rm -f "$npm_log"
        die "npm ci failed in $wt_dir"
    fi
    rm -f "$npm_log"
fi

ns="aquatic-wt-$$-$RANDOM"
work="$(mktemp -d /tmp/aquatic-webtorrent.XXXXXX)"
tracker_pid=""
run_pid=""
ns_made=0
status=1

# shellcheck source=SCRIPTDIR/../lib/processes.sh
. "$here/../lib/processes.sh"

# shellcheck disable=SC2317  # the EXIT trap
cleanup() {
    set +e
    stop_pid "$run_pid"
    stop_pid "$tracker_pid"
    if [[ $ns_made -eq 1 ]]; then
        # Anything still in the namespace is ours (e.g. a browser left behind
        # by a run.mjs that was killed).
        local pid i
        for ((i = 0; i < 3; i++)); do
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null
            done
            [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && break
            sleep 0.2
        done
        ip netns del "$ns" || echo "webtorrent_ws: could not delete netns $ns" >&2
        rm -rf "/etc/netns/$ns"
    fi
    if [[ $status -ne 0 || "${WT_KEEP_WORKDIR:-0}" == 1 ]]; then
        echo "webtorrent_ws: work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- network namespace ------------------------------------------------------

ip netns add "$ns"
ns_made=1
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
# For commands run to completion. Background processes are started with a
# plain `ip netns exec` (which execs the command), so that $! is their PID.
nsx() { ip netns exec "$ns" "$@"; }
# No IPv6 on the new interface (no router solicitations, no link-local
# chatter): only the test's own IPv4 traffic, which stays on the host.
nsx sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
ip -n "$ns" link set lo up
if ip -n "$ns" link add "$iface" type dummy 2>/dev/null; then
    link_kind=dummy
else
    ip -n "$ns" link add "$iface" type veth peer name "$peer_iface"
    ip -n "$ns" link set "$peer_iface" up
    link_kind="veth (no dummy driver in this kernel)"
fi
ip -n "$ns" addr add "$addr/24" dev "$iface"
ip -n "$ns" link set "$iface" up
ip -n "$ns" route add default dev "$iface"
say "netns $ns: $iface $addr/24, $link_kind"

tx_packets() {
    ip -n "$ns" -s -j link show "$iface" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].stats64.tx.packets))'
}
tx_before="$(tx_packets)"

# ---- tracker --------------------------------------------------------------------

case "$kind" in
    bittorrent-tracker)
        interval_args=()
        if [[ -n "${WT_INTERVAL_MS:-}" ]]; then
            interval_args=(--interval-ms "$WT_INTERVAL_MS")
        fi
        ip netns exec "$ns" node "$wt_dir/reference_tracker.mjs" --host "$addr" --port "$port" "${interval_args[@]}" \
            >"$work/tracker.log" 2>&1 &
        tracker_pid=$!
        ;;
    aquatic)
        write_aquatic_config "$work/aquatic_ws.toml" "$addr:$port"
        # run.mjs also checks the scrape's download count (see there).
        export WT_CHECK_DOWNLOADED=1
        ip netns exec "$ns" "$tracker_bin" -c "$work/aquatic_ws.toml" >"$work/tracker.log" 2>&1 &
        tracker_pid=$!
        ;;
esac
say "tracker $kind started (pid $tracker_pid), log in $work/tracker.log"

listening=0
for ((i = 0; i < 150; i++)); do
    if ! kill -0 "$tracker_pid" 2>/dev/null; then
        tail -n 30 "$work/tracker.log" >&2
        die "the tracker exited before listening"
    fi
    if nsx ss -Hltn "sport = :$port" 2>/dev/null | grep -qF "$addr:$port"; then
        listening=1
        break
    fi
    sleep 0.2
done
if [[ $listening -ne 1 ]]; then
    tail -n 30 "$work/tracker.log" >&2
    die "the tracker is not listening on $addr:$port after 30 s"
fi
say "tracker listening on ws://$addr:$port"

# ---- the browsers ------------------------------------------------------------------

ip netns exec "$ns" node "$wt_dir/run.mjs" "ws://$addr:$port" "$@" &
run_pid=$!
run_status=0
wait "$run_pid" || run_status=$?
run_pid=""

status=$run_status
tx_after="$(tx_packets)"
if [[ "$tx_after" != "$tx_before" ]]; then
    say "FAIL: $((tx_after - tx_before)) packets were sent out of $iface (towards addresses outside the test)"
    status=1
else
    say "no packet was sent out of $iface (nothing went outside the test's addresses)"
fi
if ! kill -0 "$tracker_pid" 2>/dev/null; then
    say "FAIL: the tracker exited during the test"
    status=1
fi
if [[ $status -ne 0 ]]; then
    echo "webtorrent_ws: last lines of the tracker's log:" >&2
    tail -n 30 "$work/tracker.log" >&2
fi
exit "$status"
