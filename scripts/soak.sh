#!/usr/bin/env bash
# Soak test: run aquatic_udp / aquatic_http / aquatic_ws under load for
# MINUTES minutes each and record memory (RSS), CPU and throughput over
# time, to check that RSS plateaus and throughput does not decay.
#
# usage: scripts/soak.sh MINUTES [DAEMONS]     (DAEMONS default "udp http ws")
#
# For each daemon: starts target/release/aquatic_DAEMON (127.0.0.1, a free
# port, log_level warn, socket_workers = 1, request_workers = 0, peers
# dropped 240 s after their last announce, cleaning every 30 s, so that the
# swarms reach their steady size within the first minutes) pinned to CPU 0,
# and its load tester (target/release/aquatic_DAEMON_load_test) pinned to
# CPU 1 for MINUTES minutes:
#   udp:  1,000,000 torrents (Zipf 1.0), 16 sockets;
#   http: 1,000,000 torrents, keep-alive connections;
#   ws:   10,000 torrents, 128 connections each replaced by a new peer after
#         100 replies (so peers keep joining and leaving: connection set-up,
#         swarm removal and the pending-offer map are exercised all along).
# Every 5 s it samples the tracker's VmRSS and utime+stime into
#   scripts/soak/DAEMON-DATE.csv             elapsed_s,rss_kib,cpu_s,cpu_percent_since_last_sample
# parses the load tester's progress lines (every 10 s) into
#   scripts/soak/DAEMON-DATE-throughput.csv  elapsed_s,responses_per_s
# keeps the load tester's --json line in scripts/soak/DAEMON-DATE.json, draws
#   scripts/soak/DAEMON-DATE.png             RSS (MiB) and responses/s over time
# with gnuplot (Debian gnuplot-nox, installed with apt-get if missing) and
# prints a verdict: median and peak RSS per quarter of the run, growth of
# the median over the last quarter (plateau check), and responses/s per
# 1-minute window, first vs last window and first vs second half (decay).
#
# Release binaries must already be built (this script does not build).
# Needs taskset, 2+ cores, python3 (for a free port). Traffic stays on
# 127.0.0.1; every process started here is stopped by its PID, also on error
# or Ctrl-C; every wait is bounded.

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

usage() {
    echo "usage: $0 MINUTES [DAEMONS]   (DAEMONS: udp, http and/or ws, default \"udp http ws\")" >&2
    exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
MINUTES="$1"
DAEMONS="${2:-udp http ws}"
[[ "$MINUTES" =~ ^[0-9]+$ && "$MINUTES" -ge 1 ]] || usage
[[ -n "${DAEMONS// /}" ]] || usage
for d in $DAEMONS; do
    [[ "$d" == udp || "$d" == http || "$d" == ws ]] || usage
done

TRACKER_CPU=0
LOAD_CPU=1
SAMPLE_EVERY=5
SUMMARIZE_EVERY=10
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY="$(command -v python3 || true)"
bench=soak
# shellcheck source=SCRIPTDIR/bench/common.sh
. "$repo_root/scripts/bench/common.sh"

command -v taskset >/dev/null || die "taskset not found (util-linux)"
[[ -n "$PY" && -x "$PY" ]] || die "python3 not found"
[[ "$(nproc)" -ge 2 ]] || die "needs at least 2 cores (tracker on CPU $TRACKER_CPU, load tester on CPU $LOAD_CPU)"
CLK_TCK="$(getconf CLK_TCK)"
for d in $DAEMONS; do
    for bin in "target/release/aquatic_$d" "target/release/aquatic_${d}_load_test"; do
        [[ -x "$bin" ]] || die "$bin missing: build release binaries first"
    done
done

# gnuplot: install Debian's gnuplot-nox only if it is missing
if ! command -v gnuplot >/dev/null; then
    log "gnuplot missing: apt-get install gnuplot-nox"
    timeout 600 apt-get install -y -q gnuplot-nox >/dev/null ||
        { timeout 300 apt-get update -q >/dev/null && timeout 600 apt-get install -y -q gnuplot-nox >/dev/null; } ||
        die "could not install gnuplot-nox"
fi

out_dir="$repo_root/scripts/soak"
mkdir -p "$out_dir"
work="$(mktemp -d /tmp/aquatic-soak.XXXXXX)"
install_cleanup # stops tracker_pid and load_pid (common.sh)

duration=$((MINUTES * 60))

port_ready() {
    # port_ready udp|tcp PORT: the tracker has bound / listens on PORT.
    local hexport
    hexport="$(printf '%04X' "$2")"
    if [[ "$1" == udp ]]; then
        awk -v p=":$hexport" 'NR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' /proc/net/udp
    else
        awk -v p=":$hexport" 'NR > 1 && substr($2, length($2) - 4) == p && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
    fi
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

soak_one() {
    local daemon="$1" port stamp base i proto=udp
    [[ "$daemon" != udp ]] && proto=tcp
    stamp="$(date +%Y%m%d-%H%M%S)"
    base="$out_dir/$daemon-$stamp"
    port="$(free_port)"

    local tcfg="$work/$daemon.toml" tlog="$work/$daemon.log"
    cat >"$tcfg" <<EOF
log_level = "warn"
socket_workers = 1
request_workers = 0

[network]
address = "127.0.0.1:$port"

[protocol]
peer_announce_interval = 120

[cleaning]
interval = 30
max_peer_age = 240
# The load tester is one source (127.0.0.1) playing many clients: it may
# hold every share (the per-source accounting still runs) and any number of
# peers in a torrent.
[source_budgets]
share_percent = 100
peers_per_torrent = 0
EOF
    log "$daemon: aquatic_$daemon on 127.0.0.1:$port (cpu $TRACKER_CPU), load tester on cpu $LOAD_CPU for $MINUTES min"
    taskset -c "$TRACKER_CPU" "target/release/aquatic_$daemon" -c "$tcfg" >"$tlog" 2>&1 &
    tracker_pid=$!
    for ((i = 0; i < 200; i++)); do
        kill -0 "$tracker_pid" 2>/dev/null || { cat "$tlog" >&2; die "aquatic_$daemon exited at start (log above)"; }
        port_ready "$proto" "$port" && break
        sleep 0.1
    done
    port_ready "$proto" "$port" || { cat "$tlog" >&2; die "aquatic_$daemon not ready on 127.0.0.1:$port within 20 s"; }

    local lcfg="$work/$daemon-load.toml" lout="$work/$daemon-load.out" extra="" torrents=1000000
    case "$daemon" in
        http) extra="keep_alive = true" ;;
        ws)
            extra=$'connections_per_worker = 128\nrequests_per_connection = 100'
            torrents=10000
            ;;
    esac
    cat >"$lcfg" <<EOF
server_address = "127.0.0.1:$port"
duration = $duration
summarize_every = $SUMMARIZE_EVERY
$extra

[requests]
number_of_torrents = $torrents
EOF
    local csv="$base.csv"
    echo "elapsed_s,rss_kib,cpu_s,cpu_percent_since_last_sample" >"$csv"
    local w0 t0 wprev tprev now ticks rss
    w0="$(date +%s.%N)"
    t0="$(cpu_ticks "$tracker_pid")"
    wprev="$w0" tprev="$t0"
    echo "0.0,$(rss_kib "$tracker_pid"),0.00,0.0" >>"$csv"
    timeout --kill-after=10 $((duration + 60)) taskset -c "$LOAD_CPU" "target/release/aquatic_${daemon}_load_test" \
        -c "$lcfg" --json >"$lout" 2>&1 &
    load_pid=$!
    # sample every SAMPLE_EVERY s while the load tester runs (bounded: it
    # is under timeout; the loop also gives up 90 s after the planned end)
    local next=$SAMPLE_EVERY
    while kill -0 "$load_pid" 2>/dev/null; do
        now="$(date +%s.%N)"
        if awk -v n="$now" -v w="$w0" -v d="$duration" 'BEGIN { exit !(n - w > d + 90) }'; then
            die "load tester still running 90 s after the planned end"
        fi
        if awk -v n="$now" -v w="$w0" -v t="$next" 'BEGIN { exit !(n - w >= t) }'; then
            kill -0 "$tracker_pid" 2>/dev/null || { cat "$tlog" >&2; die "aquatic_$daemon died during the soak"; }
            ticks="$(cpu_ticks "$tracker_pid")"
            rss="$(rss_kib "$tracker_pid")"
            awk -v n="$now" -v w="$w0" -v wp="$wprev" -v t="$ticks" -v t0="$t0" -v tp="$tprev" -v hz="$CLK_TCK" -v r="$rss" \
                'BEGIN { dw = n - wp; printf "%.1f,%d,%.2f,%.1f\n", n - w, r, (t - t0) / hz, (dw > 0 ? 100 * (t - tp) / hz / dw : 0) }' >>"$csv"
            wprev="$now" tprev="$ticks"
            next=$((next + SAMPLE_EVERY))
        fi
        sleep 0.2
    done
    local rc=0
    wait "$load_pid" || rc=$?
    load_pid=""
    kill -0 "$tracker_pid" 2>/dev/null || { cat "$tlog" >&2; die "aquatic_$daemon died during the soak"; }
    # final sample at the end of the load
    now="$(date +%s.%N)"
    ticks="$(cpu_ticks "$tracker_pid")"
    rss="$(rss_kib "$tracker_pid")"
    awk -v n="$now" -v w="$w0" -v wp="$wprev" -v t="$ticks" -v t0="$t0" -v tp="$tprev" -v hz="$CLK_TCK" -v r="$rss" \
        'BEGIN { dw = n - wp; if (dw >= 1) printf "%.1f,%d,%.2f,%.1f\n", n - w, r, (t - t0) / hz, 100 * (t - tp) / hz / dw }' >>"$csv"
    stop_pid "$tracker_pid"
    tracker_pid=""
    if [[ $rc -ne 0 ]]; then
        cat "$lout" >&2
        die "load tester exited with status $rc against aquatic_$daemon (output above)"
    fi

    # throughput from the progress lines ("   10.0 s  responses/s: 98752 (...")
    local tcsv="$base-throughput.csv"
    echo "elapsed_s,responses_per_s" >"$tcsv"
    sed -nE 's/^ *([0-9.]+) s +responses\/s: ([0-9.]+).*/\1,\2/p' "$lout" >>"$tcsv"
    grep -E '^\{' "$lout" | tail -n 1 >"$base.json" || true
    [[ -s "$base.json" ]] || { cat "$lout" >&2; die "no --json line from the load tester (output above)"; }

    # plot: RSS (MiB) and responses/s over time, two panels
    local have_thr=0
    [[ "$(wc -l <"$tcsv")" -gt 1 ]] && have_thr=1
    timeout 60 gnuplot <<EOF
set terminal png size 1000,700
set output "$base.png"
set datafile separator ","
set key off
set grid
set multiplot layout 2,1 title "aquatic_$daemon soak, $MINUTES min ($stamp)" noenhanced
set title "tracker RSS (MiB)"
set ylabel "MiB"
set xlabel "elapsed s"
set xrange [0:$((duration + 1))]
set yrange [0:*]
plot "$csv" every ::1 using 1:(\$2/1024) with linespoints pt 7 ps 0.5 lc rgb "blue"
set title "load tester responses/s (every $SUMMARIZE_EVERY s)"
set ylabel "responses/s"
$([[ $have_thr == 1 ]] && echo "plot \"$tcsv\" every ::1 using 1:2 with linespoints pt 7 ps 0.5 lc rgb \"red\"" ||
        echo 'set label 1 "no progress lines" at graph 0.4,0.5; plot [0:1] [0:1] NaN')
unset multiplot
EOF

    # verdict
    "$PY" - "$daemon" "$csv" "$tcsv" "$base.json" "$duration" <<'EOF'
import csv, json, sys
daemon, path, tpath, jpath, duration = sys.argv[1:]
duration = float(duration)
rows = [(float(r["elapsed_s"]), int(r["rss_kib"]), float(r["cpu_s"])) for r in csv.DictReader(open(path))]
def quarter(q):
    # samples in the q-th quarter of the run (q = 0..3), RSS in KiB
    lo, hi = q * duration / 4, (q + 1) * duration / 4
    return sorted(r[1] for r in rows if lo < r[0] <= hi + 1) or [0]
quarters = [quarter(q) for q in range(4)]
med = [q[len(q) // 2] for q in quarters]
print(f"== aquatic_{daemon}: {len(rows)} samples over {rows[-1][0]:.0f} s, tracker CPU {rows[-1][2]:.1f} s "
      f"({100 * rows[-1][2] / rows[-1][0]:.0f} % of a core)")
print("   RSS per quarter of the run, median (max): "
      + ", ".join(f"Q{i + 1} {m / 1024:.1f} ({q[-1] / 1024:.1f}) MiB" for i, (m, q) in enumerate(zip(med, quarters))))
# medians, not single samples: one sample can land on a transient peak
growth = 100.0 * (med[3] - med[2]) / med[2] if med[2] else float("nan")
print(f"   plateau check: median RSS, last quarter vs the one before: {growth:+.1f} %"
      + (" (plateau)" if abs(growth) < 5 else " (NOT a plateau: still growing)" if growth > 0 else ""))
thr = [(float(r["elapsed_s"]), float(r["responses_per_s"])) for r in csv.DictReader(open(tpath))]
windows = {}
for t, v in thr:
    windows.setdefault(int((t - 1e-6) // 60), []).append(v)
if windows:
    w = sorted(windows)
    avg = {k: sum(windows[k]) / len(windows[k]) for k in w}
    print("   responses/s per 1-minute window: " + ", ".join(f"{k + 1}: {avg[k]:.0f}" for k in w))
    first, last = avg[w[0]], avg[w[-1]]
    decay = 100.0 * (first - last) / first if first else float("nan")
    note = " (only one window: no decay measurable)" if len(w) == 1 else ""
    print(f"   throughput first vs last window: {first:.0f} -> {last:.0f} responses/s, decay {decay:.1f} %{note}")
    if len(w) >= 2:
        # single windows are noisy (the load tester shares the machine):
        # the halves' means show a trend better
        half = len(w) // 2
        h1 = sum(avg[k] for k in w[:half]) / half
        h2 = sum(avg[k] for k in w[half:]) / (len(w) - half)
        print(f"   throughput first vs second half: {h1:.0f} -> {h2:.0f} responses/s, "
              f"decay {100.0 * (h1 - h2) / h1 if h1 else float('nan'):.1f} %")
else:
    print("   no progress lines: no per-window throughput")
j = json.loads(open(jpath).read())
print(f"   load tester overall (--json): {j.get('responses_per_second', 0):.0f} responses/s")
EOF
    log "$daemon: wrote $csv, $tcsv, $base.json, $base.png"
}

log "work dir (configs, logs): $work"
for d in $DAEMONS; do
    soak_one "$d"
done
