#!/usr/bin/env bash
# Benchmark aquatic_ws against the npm bittorrent-tracker server (WebSocket
# only) with aquatic_ws_load_test, and measure memory per connected peer.
#
# usage: scripts/bench/ws.sh
#
# The reference is bittorrent-tracker 11.2.3 (the JavaScript tracker
# WebTorrent uses), pinned in scripts/real_clients/webtorrent/package.json and
# started by its reference_tracker.mjs (--quiet: no log line per announce);
# `npm ci` is run there when node_modules is missing. wt-tracker is not
# compared: it is not on the npm registry (`npm view wt-tracker` answers 404).
#
# Throughput phase: builds release binaries, then alternates the trackers
# (aquatic, bittorrent-tracker, aquatic, ...), RUNS runs each, every run with
# a freshly started tracker on its own 127.0.0.1 port pinned to one core
# (taskset -c TRACKER_CPU: Node's helper threads too) and the load tester
# pinned to the other (LOAD_CPU) for DURATION seconds: LOAD_WORKERS x
# CONNECTIONS WebSocket connections, each a peer with one announce (OFFERS
# offers of a browser-sized fake SDP) or scrape in flight, answering every
# offer relayed to it. Per run it records responses/s (announce and scrape
# replies, from the load tester's --json), offers and answers relayed per
# second, the tracker's CPU seconds over the load test (utime+stime of all
# its threads from /proc/PID/stat) and so responses per tracker CPU-second,
# the load tester's CPU, the tracker's peak RSS (VmHWM just before it is
# stopped), failures, timeouts, connections closed by the tracker or
# refused, and whether the load tester's checks (offers and answers add up)
# passed.
#
# Memory phase (MEM_RUNS runs per tracker, alternating, fresh trackers): the
# tracker is started and probed, and after MEM_SETTLE seconds its RSS
# (VmRSS) is read; then ws_peers.mjs (pinned to LOAD_CPU) opens MEM_PEERS
# WebSocket connections, at most 64 at a time, each announcing once
# (event started, no offers) to one of MEM_TORRENTS torrents and then
# staying idle; MEM_SETTLE seconds after the last reply the RSS is read
# again, and the connections to the tracker's port still established are
# counted (/proc/net/tcp). Memory per connected peer = (RSS after - RSS
# before) / peers held: a peer is a connection, its WebSocket state and
# its place in one swarm. (The load tester cannot do this: its connections
# announce again as soon as they get a reply.)
#
# Prints tables with medians and aquatic / bittorrent-tracker ratios, whether
# the issue's target (aquatic_ws at least 3x the better reference tracker's
# responses/s) is met, the memory table, then all as markdown for
# scripts/bench/RESULTS.md. See /work/shared/BENCHMARKING.md (or
# shared/BENCHMARKING.md) for how to read the figures.
#
# Environment (defaults in brackets):
#   DURATION [30]          seconds of load per run
#   RUNS [3]               runs per tracker
#   TORRENTS [10000]       number_of_torrents of the load tester
#   OFFERS [5]             offers_per_announce of the load tester
#   LOAD_WORKERS [1]       load tester worker threads (all on LOAD_CPU)
#   CONNECTIONS [128]      load tester connections_per_worker: requests in
#                          flight (closed loop). Node's accept queue is 511;
#                          the load tester opens at most 128 at a time.
#   MEM_RUNS [1]           memory-phase runs per tracker (0: no memory phase)
#   MEM_PEERS [4000]       connected peers in the memory phase
#   MEM_TORRENTS [1000]    torrents they announce to (MEM_PEERS / this each)
#   MEM_SETTLE [5]         seconds before each RSS reading
#   TRACKER_CPU [0], LOAD_CPU [1]   cores for taskset
#   TRACKERS ["aquatic bittorrent-tracker"]  which trackers, in this order
#                          (also aquatic-before: AQUATIC_BEFORE, an earlier
#                          aquatic_ws binary, for a before/after comparison)
#   AQUATIC_REQUEST_WORKERS [0]  aquatic_ws request_workers: 0 = the socket
#                          worker answers announces itself (one thread, the
#                          one-core setup); 1 = one socket and one request
#                          thread (both on TRACKER_CPU)
#   AQUATIC_MAX_TORRENTS_PER_CONNECTION [TORRENTS]  aquatic_ws
#                          protocol.max_torrents_per_connection (default
#                          1000). Each load tester connection announces to
#                          thousands of torrents in a run (a browser: a
#                          few), and bittorrent-tracker has no such limit:
#                          at 1000 aquatic answers about 6 % of announces
#                          with a failure reason instead, which are not
#                          responses. The default here keeps it out of the
#                          way.
#   SKIP_BUILD [0]         1: use the release binaries already in target/
#   WORK_DIR [mktemp -d]   configs, logs, results.tsv and memory.tsv
#   NODE [node]            Node.js for bittorrent-tracker and ws_peers.mjs
#   AQUATIC, LOAD_TEST [target/release/...]  other binaries (e.g. to try the
#                          script out against a debug build: not a benchmark)
#
# Needs Node.js and npm (for `npm ci` when node_modules is missing), taskset,
# python3, and a file descriptor limit (ulimit -n) of at least MEM_PEERS +
# 1024 (raised up to the hard limit here). Root is not needed. Traffic stays
# on 127.0.0.1; every process started here is stopped by its PID, also on
# error or Ctrl-C.

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

DURATION="${DURATION:-30}"
RUNS="${RUNS:-3}"
TORRENTS="${TORRENTS:-10000}"
OFFERS="${OFFERS:-5}"
LOAD_WORKERS="${LOAD_WORKERS:-1}"
CONNECTIONS="${CONNECTIONS:-128}"
MEM_RUNS="${MEM_RUNS:-1}"
MEM_PEERS="${MEM_PEERS:-4000}"
MEM_TORRENTS="${MEM_TORRENTS:-1000}"
MEM_SETTLE="${MEM_SETTLE:-5}"
TRACKER_CPU="${TRACKER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
TRACKERS="${TRACKERS:-aquatic bittorrent-tracker}"
AQUATIC_REQUEST_WORKERS="${AQUATIC_REQUEST_WORKERS:-0}"
AQUATIC_MAX_TORRENTS_PER_CONNECTION="${AQUATIC_MAX_TORRENTS_PER_CONNECTION:-$TORRENTS}"
NODE="${NODE:-node}"

AQUATIC="${AQUATIC:-$repo_root/target/release/aquatic_ws}"
LOAD_TEST="${LOAD_TEST:-$repo_root/target/release/aquatic_ws_load_test}"
bench=ws
wt_dir="$repo_root/scripts/real_clients/webtorrent"
peers_js="$repo_root/scripts/bench/ws_peers.mjs"

check_uints DURATION RUNS TORRENTS OFFERS LOAD_WORKERS CONNECTIONS MEM_RUNS MEM_PEERS MEM_TORRENTS MEM_SETTLE \
    TRACKER_CPU LOAD_CPU AQUATIC_REQUEST_WORKERS AQUATIC_MAX_TORRENTS_PER_CONNECTION
[[ "$AQUATIC_MAX_TORRENTS_PER_CONNECTION" -ge 1 ]] || die "AQUATIC_MAX_TORRENTS_PER_CONNECTION must be at least 1"
[[ "$DURATION" -ge 1 && "$RUNS" -ge 1 && "$TORRENTS" -ge 1 && "$LOAD_WORKERS" -ge 1 && "$CONNECTIONS" -ge 1 ]] ||
    die "DURATION, RUNS, TORRENTS, LOAD_WORKERS and CONNECTIONS must be at least 1"
[[ "$OFFERS" -le 50 ]] || die "OFFERS must be 0 to 50"
[[ "$MEM_PEERS" -ge 1 && "$MEM_PEERS" -le 100000 && "$MEM_TORRENTS" -ge 1 && "$MEM_SETTLE" -le 600 ]] ||
    die "MEM_PEERS must be 1 to 100000, MEM_TORRENTS at least 1, MEM_SETTLE at most 600"
[[ -n "${TRACKERS// /}" ]] || die "TRACKERS is empty"
for t in $TRACKERS; do
    [[ "$t" == aquatic || "$t" == aquatic-before || "$t" == bittorrent-tracker ]] ||
        die "unknown tracker '$t' in TRACKERS (aquatic, aquatic-before, bittorrent-tracker)"
    if [[ "$t" == aquatic-before ]]; then
        [[ -x "${AQUATIC_BEFORE:-}" ]] || die "aquatic-before needs AQUATIC_BEFORE, the binary of an earlier build"
    fi
done

# Host: taskset, python, node; sets ncpu and CLK_TCK (common.sh's
# check_host also wants root, which only opentracker needs).
command -v taskset >/dev/null || die "taskset not found (util-linux)"
[[ -x "$PY" ]] || die "$PY not found"
command -v "$NODE" >/dev/null || die "$NODE (Node.js) not found"
ncpu="$(nproc)"
[[ "$TRACKER_CPU" -lt "$ncpu" && "$LOAD_CPU" -lt "$ncpu" ]] || die "TRACKER_CPU/LOAD_CPU must be below $ncpu (cores here)"
CLK_TCK="$(getconf CLK_TCK)"

# File descriptors: the tracker and ws_peers.mjs each hold MEM_PEERS
# connections in the memory phase.
need_fds=$((MEM_PEERS + 1024))
if [[ "$(ulimit -n)" != unlimited && "$(ulimit -n)" -lt "$need_fds" ]]; then
    hard="$(ulimit -Hn)"
    if [[ "$hard" == unlimited || "$hard" -ge "$need_fds" ]]; then
        ulimit -n "$need_fds"
    else
        die "ulimit -n is $(ulimit -n) (hard limit $hard); MEM_PEERS=$MEM_PEERS needs $need_fds"
    fi
fi

make_work_dir

# ------------------------------------------------------------ cleanup

# Stops tracker_pid and load_pid (the load tester, or ws_peers.mjs in the
# memory phase) on exit, error or signal.
install_cleanup

# ------------------------------------------------------------ helpers

tcp_established() {
    # Established TCP connections whose local port is PORT (the tracker's
    # side of its connections).
    port_rows "$1" /proc/net/tcp | awk '$4 == "01" { n++ } END { print n + 0 }'
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

probe() {
    # probe PORT: a WebSocket announce answered (ws_peers.mjs, at most 30 s).
    timeout 40 "$NODE" "$peers_js" probe --modules "$wt_dir" --port "$1"
}

start_ws_tracker() {
    # start_ws_tracker NAME TAG PORT: start it pinned to TRACKER_CPU; sets
    # tracker_pid; returns once it listens and answers an announce.
    local name="$1" tag="$2" port="$3"
    local tlog="$work/$name-$tag.log"
    case "$name" in
    aquatic | aquatic-before)
        local cfg="$work/$name-$tag.toml" binary="$AQUATIC"
        [[ "$name" == aquatic-before ]] && binary="$AQUATIC_BEFORE"
        aquatic_config "$port" >"$cfg" <<EOF

[protocol]
max_torrents_per_connection = $AQUATIC_MAX_TORRENTS_PER_CONNECTION
EOF
        taskset -c "$TRACKER_CPU" "$binary" -c "$cfg" >"$tlog" 2>&1 &
        tracker_pid=$!
        ;;
    bittorrent-tracker)
        taskset -c "$TRACKER_CPU" "$NODE" "$wt_dir/reference_tracker.mjs" --host 127.0.0.1 --port "$port" --quiet \
            >"$tlog" 2>&1 &
        tracker_pid=$!
        ;;
    esac
    wait_serving "$name" "$tracker_pid" "$tlog" "listen on TCP" tcp_listening "$port"
    probe "$port" || { cat "$tlog" >&2; die "$name on port $port does not answer announces"; }
    kill -0 "$tracker_pid" 2>/dev/null || die "$name exited"
}

stop_tracker() {
    stop_pid "$tracker_pid"
    tracker_pid=""
}

# ------------------------------------------------------------ build

if [[ " $TRACKERS " == *" bittorrent-tracker "* ]]; then
    if [[ ! -d "$wt_dir/node_modules/bittorrent-tracker" || ! -d "$wt_dir/node_modules/ws" ]]; then
        command -v npm >/dev/null || die "npm not found (needed once: npm ci in $wt_dir)"
        log "installing $wt_dir/node_modules (npm ci; .npmrc: ignore-scripts)"
        (cd "$wt_dir" && timeout 900 npm ci)
    fi
    bt_version="$("$NODE" -p "require('$wt_dir/node_modules/bittorrent-tracker/package.json').version")"
fi
[[ -d "$wt_dir/node_modules/ws" ]] || die "$wt_dir/node_modules/ws missing: run npm ci in $wt_dir"
build_and_check_binaries aquatic_ws aquatic_ws_load_test
# The config keys written below: fail now if the load tester has renamed one.
"$LOAD_TEST" -p >"$work/load-test-defaults.toml"
for key in server_address workers connections_per_worker duration summarize_every \
    number_of_torrents offers_per_announce; do
    grep -Eq "^$key = " "$work/load-test-defaults.toml" ||
        die "$LOAD_TEST -p has no '$key': this script needs updating (defaults in $work/load-test-defaults.toml)"
done

# ------------------------------------------------------------ throughput

results="$work/results.tsv"
mem_results="$work/memory.tsv"
printf 'tracker\trun\tresponses_per_s\tannounce_per_s\tscrape_per_s\toffers_per_s\tanswers_per_s\tfailures_per_s\ttracker_cpu_s\twall_s\trss_kib\tload_tester_cpu_s\ttimeouts\ttracker_closes\tconnection_errors\tinvalid\tchecks_pass\n' >"$results"
printf 'tracker\trun\tpeers\theld\tfailed\testablished\tclosed_while_held\tconnect_s\trss_before_kib\trss_after_kib\thwm_kib\ttracker_cpu_s\n' >"$mem_results"

run_one() {
    # run_one NAME RUN: one throughput run, a row in results.tsv.
    local name="$1" run="$2" port tag="run-$2"
    port="$(free_port)"
    log "run $run: $name on 127.0.0.1:$port (cpu $TRACKER_CPU), load tester on cpu $LOAD_CPU for ${DURATION}s"
    start_ws_tracker "$name" "$tag" "$port"

    local lcfg="$work/load-$name-$tag.toml" lout="$work/load-$name-$tag.out"
    load_config "$port" "$LOAD_WORKERS" "$DURATION" "connections_per_worker = $CONNECTIONS" >"$lcfg" <<EOF

[requests]
number_of_torrents = $TORRENTS
offers_per_announce = $OFFERS
EOF
    local t0 t1 w0 w1 l0 l1
    run_load_test "$name" "$tag" "$lcfg" "$lout" "$DURATION"

    local rss
    rss="$(peak_rss_kib "$tracker_pid")"
    stop_tracker

    output_py "$lout" "$name" "$run" "$t0" "$t1" "$CLK_TCK" "$w0" "$w1" "$rss" "$l0" "$l1" >>"$results" <<'EOF'
import re, sys
out, name, run, t0, t1, tck, w0, w1, rss, l0, l1 = sys.argv[1:]
j = None
totals = {}
for line, obj in output_lines(out):
    j = obj if obj is not None else j
    if line.startswith("totals over "):
        for key, pattern in [("connection_errors", r"(\d+) connection errors"), ("invalid", r"(\d+) invalid")]:
            m = re.search(pattern, line)
            if m:
                totals[key] = int(m.group(1))
if j is None or "responses_per_second" not in j:
    sys.exit(f"no --json summary in {out}")
cpu, wall = cpu_and_wall(t0, t1, tck, w0, w1)
print("\t".join(str(x) for x in [
    name, run, j["responses_per_second"], j.get("announce", ""), j.get("scrape", ""), j.get("offers_received", ""),
    j.get("answers_received", ""), j.get("error", ""), f"{cpu:.2f}", f"{wall:.2f}", rss,
    f"{float(l1) - float(l0):.2f}", j.get("timeouts", ""), j.get("tracker_closes", ""),
    totals.get("connection_errors", ""), totals.get("invalid", ""), j.get("checks_pass", ""),
]))
EOF
    local row
    row="$(tail -n 1 "$results")"
    log "run $run: $name: $(cut -f3 <<<"$row") responses/s, offers relayed/s $(cut -f6 <<<"$row"), answers relayed/s $(cut -f7 <<<"$row"), $(cut -f9 <<<"$row") tracker CPU s, peak RSS $rss KiB, failures/s $(cut -f8 <<<"$row"), timeouts $(cut -f13 <<<"$row"), closed by tracker $(cut -f14 <<<"$row"), connection errors $(cut -f15 <<<"$row"), checks pass $(cut -f17 <<<"$row")"
}

# ------------------------------------------------------------ memory

mem_one() {
    # mem_one NAME RUN: memory per connected peer, a row in memory.tsv.
    local name="$1" run="$2" port tag="mem-$2" i line=""
    port="$(free_port)"
    log "memory run $run: $name on 127.0.0.1:$port (cpu $TRACKER_CPU), $MEM_PEERS peers in $MEM_TORRENTS torrents (cpu $LOAD_CPU)"
    start_ws_tracker "$name" "$tag" "$port"
    sleep "$MEM_SETTLE"
    local before c0 c1
    before="$(rss_kib "$tracker_pid")"
    c0="$(cpu_ticks "$tracker_pid")"

    local pout="$work/peers-$name-$tag.out"
    timeout --kill-after=10 $((MEM_SETTLE + 420)) taskset -c "$LOAD_CPU" "$NODE" "$peers_js" hold --modules "$wt_dir" \
        --port "$port" --peers "$MEM_PEERS" --torrents "$MEM_TORRENTS" --hold-s $((MEM_SETTLE + 400)) \
        >"$pout" 2>&1 &
    load_pid=$!
    # ws_peers.mjs reports within 300 s (its own limit); wait at most 330 s.
    for ((i = 0; i < 3300; i++)); do
        line="$(grep -m 1 '"held"' "$pout" || true)"
        [[ -n "$line" ]] && break
        kill -0 "$load_pid" 2>/dev/null || { cat "$pout" >&2; die "ws_peers.mjs exited before it reported (output above)"; }
        kill -0 "$tracker_pid" 2>/dev/null || { cat "$work/$name-$tag.log" >&2; die "$name died while peers connected"; }
        sleep 0.1
    done
    [[ -n "$line" ]] || die "ws_peers.mjs did not report within 330 s ($pout)"
    sleep "$MEM_SETTLE"
    kill -0 "$tracker_pid" 2>/dev/null || { cat "$work/$name-$tag.log" >&2; die "$name died while peers connected"; }
    local after hwm established
    after="$(rss_kib "$tracker_pid")"
    hwm="$(peak_rss_kib "$tracker_pid")"
    c1="$(cpu_ticks "$tracker_pid")"
    established="$(tcp_established "$port")"
    stop_pid "$load_pid"
    load_pid=""
    stop_tracker

    output_py "$pout" "$name" "$run" "$MEM_PEERS" "$established" "$before" "$after" "$hwm" "$c0" "$c1" "$CLK_TCK" \
        >>"$mem_results" <<'EOF'
import sys
pout, name, run, peers, established, before, after, hwm, c0, c1, tck = sys.argv[1:]
held = closed = None
for line, j in output_lines(pout):
    if j is not None:
        if "held" in j:
            held = j
        if "closed_while_held" in j:
            closed = j["closed_while_held"]
if held is None:
    sys.exit(f"no report in {pout}")
print("\t".join(str(x) for x in [
    name, run, peers, held["held"], held["failed"], established, "" if closed is None else closed,
    f"{held['seconds']:.2f}", before, after, hwm, f"{(int(c1) - int(c0)) / int(tck):.2f}",
]))
EOF
    local row
    row="$(tail -n 1 "$mem_results")"
    log "memory run $run: $name: $(cut -f4 <<<"$row") peers held ($(cut -f5 <<<"$row") failed, $(cut -f6 <<<"$row") established at the reading, $(cut -f7 <<<"$row") closed by the tracker), RSS $before -> $after KiB"
}

# ------------------------------------------------------------ runs

log "work dir: $work"
alternate "$RUNS" run_one
alternate "$MEM_RUNS" mem_one

# ------------------------------------------------------------ report

report_info aquatic_ws aquatic_ws aquatic_common aquatic_ws_protocol
load_build=""
[[ "$LOAD_TEST" == "$repo_root/target/release/aquatic_ws_load_test" ]] || load_build=" (binary $LOAD_TEST)"
node_version="$("$NODE" --version)"

"$PY" - "$results" "$mem_results" <<EOF
import statistics, sys

$(report_py_helpers)

REF = "bittorrent-tracker"
TARGET = 3.0

def parse_row(r):
    for k in ("responses_per_s", "announce_per_s", "scrape_per_s", "offers_per_s", "answers_per_s", "failures_per_s",
              "tracker_cpu_s", "wall_s", "load_tester_cpu_s", "connect_s"):
        if k in r:
            r[k] = float(r[k]) if r[k] != "" else 0.0
    for k in ("rss_kib", "timeouts", "tracker_closes", "connection_errors", "invalid", "peers", "held", "failed",
              "established", "closed_while_held", "rss_before_kib", "rss_after_kib", "hwm_kib"):
        if k in r:
            r[k] = int(r[k]) if r[k] != "" else 0
    if "responses_per_s" in r:
        r["rps"] = r["responses_per_s"]
        r["cpu"] = r["tracker_cpu_s"]
        r["rss"] = r["rss_kib"]
        r["busy"] = 100.0 * r["cpu"] / r["wall_s"] if r["wall_s"] > 0 else 0.0
        r["load_busy"] = 100.0 * r["load_tester_cpu_s"] / r["wall_s"] if r["wall_s"] > 0 else 0.0
        # responses over the whole load test / tracker CPU seconds
        r["per_cpu"] = r["rps"] * r["wall_s"] / r["cpu"] if r["cpu"] > 0 else float("nan")
        r["problems"] = r["timeouts"] + r["tracker_closes"] + r["connection_errors"] + r["invalid"]
        r["checks"] = r["checks_pass"] == "True"
    else:
        r["cpu"] = r["tracker_cpu_s"]
        r["per_peer"] = (r["rss_after_kib"] - r["rss_before_kib"]) * 1024 / r["held"] if r["held"] else float("nan")
    return r

rows = load(sys.argv[1])
mem_rows = load(sys.argv[2])
names = ordered(r["tracker"] for r in rows)

KEYS = ("rps", "offers_per_s", "answers_per_s", "failures_per_s", "cpu", "busy", "load_busy", "per_cpu", "rss",
        "problems")
med = {}
for n in names:
    rs = [r for r in rows if r["tracker"] == n]
    med[n] = {k: statistics.median(r[k] for r in rs) for k in KEYS}
    med[n]["checks"] = all(r["checks"] for r in rs)

cols = ["tracker", "run", "responses/s", "offers relayed/s", "answers relayed/s", "failures/s", "tracker CPU s",
        "tracker core busy %", "load tester busy %", "responses per CPU-s", "peak RSS MiB",
        "timeouts + closes + conn. errors", "checks"]
def cells(r, run):
    return [r["tracker"], run, f"{r['rps']:.0f}", f"{r['offers_per_s']:.0f}", f"{r['answers_per_s']:.0f}",
            f"{r['failures_per_s']:.0f}", f"{r['cpu']:.2f}", f"{r['busy']:.0f}", f"{r['load_busy']:.0f}",
            f"{r['per_cpu']:.0f}", mib(r["rss"]), f"{r['problems']:.0f}", "pass" if r["checks"] else "FAILED"]
table = [cells(r, r["run"]) for r in rows]
for n in names:
    table.append(cells(dict(med[n], tracker=n), "median"))

ratios = []
target_line = None
if "aquatic" in med and REF in med:
    a, b = med["aquatic"], med[REF]
    ratios = [
        ("median responses/s", ratio(a["rps"], b["rps"])),
        ("median responses per tracker CPU-second", ratio(a["per_cpu"], b["per_cpu"])),
        ("median peak RSS (closed loop: not the same load)", ratio(a["rss"], b["rss"])),
    ]
    best = b["rps"]  # the only reference that installs (wt-tracker: 404 on npm)
    r_rps = a["rps"] / best if best else float("inf")
    r_cpu = a["per_cpu"] / b["per_cpu"] if b["per_cpu"] else float("inf")
    target_line = (f"Target (aquatic_ws at least {TARGET:.0f}x the better reference tracker's responses/s): "
                   f"{r_rps:.2f}x, {'met' if r_rps >= TARGET else 'NOT met'}; per tracker CPU-second {r_cpu:.2f}x"
                   f"{' (met)' if r_cpu >= TARGET else ' (not met)'}.")

before_ratios = []
if "aquatic" in med and "aquatic-before" in med:
    a, b = med["aquatic"], med["aquatic-before"]
    before_ratios = [
        ("median responses/s", ratio(a["rps"], b["rps"])),
        ("median responses per tracker CPU-second", ratio(a["per_cpu"], b["per_cpu"])),
    ]

notes = []
for n in names:
    v = med[n]
    note = busy_note(n, v, "CONNECTIONS")
    if note:
        notes.append(note)
    if not v["checks"]:
        notes.append(f"{n}: the load tester's checks failed in some run (offers or answers do not add up; see its "
                     "output in the work dir).")
bad = ordered(r["tracker"] for r in rows if r["problems"] or r["failures_per_s"])
if bad:
    notes.append("Timeouts, connections closed by the tracker or refused, invalid messages or failure reasons from "
                 + ", ".join(bad) + " (see the load tester's totals line in the work dir).")

mem_names = ordered(r["tracker"] for r in mem_rows)
mem_cols = ["tracker", "run", "peers held", "failed", "established at reading", "RSS before MiB", "RSS after MiB",
            "memory per peer KiB", "peak RSS MiB", "connect s", "tracker CPU s"]
def mem_cells(r, run):
    return [r["tracker"], run, f"{r['held']:.0f}", f"{r['failed']:.0f}", f"{r['established']:.0f}",
            mib(r["rss_before_kib"]), mib(r["rss_after_kib"]), f"{r['per_peer'] / 1024:.1f}", mib(r["hwm_kib"]),
            f"{r['connect_s']:.1f}", f"{r['cpu']:.2f}"]
mem_table = [mem_cells(r, r["run"]) for r in mem_rows]
mem_med = {n: statistics.median(r["per_peer"] for r in mem_rows if r["tracker"] == n) for n in mem_names}
mem_warnings = [f"{r['tracker']} memory run {r['run']}: {r['held']} of {r['peers']} peers held, {r['failed']} failed, "
                f"{r['established']} connections established at the reading, {r['closed_while_held']} closed by "
                "the tracker after their reply."
                for r in mem_rows if r["held"] != r["peers"] or r["established"] != r["held"] or r["closed_while_held"]]
mem_ratio = None
if "aquatic" in mem_med and REF in mem_med and mem_med[REF]:
    mem_ratio = ratio(mem_med["aquatic"], mem_med[REF])

print()
print("throughput:")
print()
plain(cols, table)
print()
for label, v in ratios:
    print(f"aquatic/{REF}, {label}: {v}")
for label, v in before_ratios:
    print(f"aquatic/aquatic-before, {label}: {v}")
if target_line:
    print(target_line)
for note in notes:
    print()
    print("note: " + note)
if mem_rows:
    print()
    print(f"memory per connected peer ($MEM_PEERS peers, $MEM_TORRENTS torrents):")
    print()
    plain(mem_cols, mem_table)
    print()
    for n in mem_names:
        print(f"{n}: median memory per connected peer {mem_med[n] / 1024:.1f} KiB ({mem_med[n]:.0f} bytes)")
    if mem_ratio:
        print(f"aquatic/{REF}, memory per connected peer: {mem_ratio}")
    for w in mem_warnings:
        print()
        print("warning: " + w)

# markdown
md_start("## WebSocket (aquatic_ws vs bittorrent-tracker) ($(date -u +%Y-%m-%d))")
print("- Machine: $ncpu cores ($cpu_model), kernel $(uname -r); Node.js $node_version.")
print("- aquatic_ws $aquatic_rev ($aquatic_build, socket_workers = 1, request_workers = $AQUATIC_REQUEST_WORKERS, "
      "max_torrents_per_connection = $AQUATIC_MAX_TORRENTS_PER_CONNECTION, other settings default); npm bittorrent-tracker ${bt_version:-unknown} (its server, WebSocket only, started by "
      "scripts/real_clients/webtorrent/reference_tracker.mjs --quiet). wt-tracker is not compared: it is not on the "
      "npm registry (404).")
print("- Tracker pinned to CPU $TRACKER_CPU (all its threads), aquatic_ws_load_test$load_build to CPU $LOAD_CPU "
      "($LOAD_WORKERS worker(s) x $CONNECTIONS connections, $OFFERS offers per announce, $TORRENTS torrents, other "
      "settings default: 10 announces to 1 scrape, Zipf torrent choice); ${DURATION} s per run, $RUNS runs each, "
      "alternating; every run with a freshly started tracker.")
print("- Command: \`DURATION=$DURATION RUNS=$RUNS TORRENTS=$TORRENTS OFFERS=$OFFERS LOAD_WORKERS=$LOAD_WORKERS "
      "CONNECTIONS=$CONNECTIONS MEM_RUNS=$MEM_RUNS MEM_PEERS=$MEM_PEERS MEM_TORRENTS=$MEM_TORRENTS "
      "MEM_SETTLE=$MEM_SETTLE AQUATIC_REQUEST_WORKERS=$AQUATIC_REQUEST_WORKERS "
      "AQUATIC_MAX_TORRENTS_PER_CONNECTION=$AQUATIC_MAX_TORRENTS_PER_CONNECTION scripts/bench/ws.sh\`")
print()
print("### Throughput")
print()
md_table(cols, table)
md_ratios(ratios, f"aquatic / {REF}")
md_ratios(before_ratios, "aquatic / aquatic-before")
if target_line:
    print(target_line)
    print()
print("Responses are announce and scrape replies; offers and answers relayed are those the load tester's peers "
      "received. Responses per tracker CPU-second = responses over the run / tracker CPU time (utime + stime of "
      "all its threads) over the run. Checks: the load tester's checks that every request is accounted for and "
      "offers and answers add up. Peak RSS is VmHWM after ${DURATION} s closed-loop runs: a faster tracker gets "
      "more announces, so compare memory in the table below.")
for note in notes:
    print()
    print(note)
print()
if mem_rows:
    print(f"### Memory per connected peer ($MEM_PEERS peers in $MEM_TORRENTS torrents)")
    print()
    print(f"Each tracker freshly started and probed ({int($MEM_RUNS)} run(s) each, alternating); RSS (VmRSS) read "
          f"{int($MEM_SETTLE)} s later; then scripts/bench/ws_peers.mjs (on CPU $LOAD_CPU) opens $MEM_PEERS WebSocket "
          "connections (at most 64 at a time), each a peer announcing once (event started, no offers) and then idle; "
          f"RSS read again {int($MEM_SETTLE)} s after the last reply, with the connections still open. Memory per "
          "peer = (RSS after - RSS before) / peers held.")
    print()
    md_table(mem_cols, mem_table)
    for n in mem_names:
        print(f"- {n}: {mem_med[n] / 1024:.1f} KiB per connected peer" + (" (median)" if $MEM_RUNS > 1 else ""))
    if mem_ratio:
        print(f"- aquatic / {REF}: {mem_ratio}")
    print()
    md_warnings(mem_warnings)
EOF
log "done; configs, logs, results.tsv and memory.tsv in $work"
