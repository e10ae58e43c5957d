#!/usr/bin/env bash
# Benchmark aquatic_udp against opentracker with aquatic_udp_load_test.
#
# opentracker is upstream's, built by ../shared/peers/opentracker/build.sh
# (the build published tracker benchmarks use: no access list); Debian's
# whitelist-only package can run as a second, labelled row
# (TRACKERS="aquatic opentracker opentracker-debian"). The default load is
# the mix of the independent measurement quoted in issue 13: announces and
# scrapes 100 : 1, 1 million torrents, 2 million peers re-announcing.
#
# usage: scripts/bench/udp.sh
#
# Builds release binaries, then alternates the trackers (aquatic, opentracker,
# aquatic, opentracker, ...), RUNS runs each, every run with a freshly started
# tracker on its own 127.0.0.1 port, pinned to one core (taskset -c 0), and
# the load tester pinned to the other (taskset -c 1) for DURATION seconds.
# Per run it records responses/s (load tester), the tracker's CPU seconds over
# the load test (utime+stime from /proc/PID/stat), its peak RSS (VmHWM just
# before it is stopped) and the drops on its UDP socket (/proc/net/udp).
#
# Then a memory phase: the load tester is closed-loop, so in the runs above a
# faster tracker gets more announces, from more (or new) peers, and stores more
# peers: its peak RSS is not comparable. So the trackers are run again
# (alternating, MEM_RUNS each, fresh trackers) for MEM_DURATION seconds with
# the load tester capped at MEM_RATE requests/s (max_requests_per_second),
# the same offered load for both; per run it records the announce responses,
# responses/s, the tracker's CPU seconds and peak RSS, and warns when a run
# got less than 95 % of MEM_RATE (the rate was not sustained, so the load was
# not the same).
#
# Prints a table with medians and aquatic/opentracker ratios, and the
# "memory at identical load" table with the peak RSS ratio, then both as
# markdown for scripts/bench/RESULTS.md. See /work/shared/BENCHMARKING.md
# (or shared/BENCHMARKING.md) for how to read the figures.
#
# Environment (defaults in brackets):
#   DURATION [30]          seconds of load per run
#   RUNS [3]               runs per tracker
#   TORRENTS [1000000]     number_of_torrents of the load tester (and the
#                          size of Debian opentracker's whitelist)
#   PEERS [2000000]        number_of_peers of the load tester: announces come
#                          from this many peers, each re-announcing its own
#                          torrent (0: every announce from a new peer)
#   EXPONENT [1.0]         torrent_selection_exponent (Zipf; 0.0 uniform)
#   WEIGHTS ["0 100 1"]    weights of connect, announce and scrape requests
#                          (the load tester connects on its own whenever its
#                          connection id is a minute old)
#   PROFILE [1]            1: `perf record` (cpu-clock, call graphs) each
#                          tracker for up to 10 s of its first run; the top
#                          symbols go to perf-NAME.txt in the work dir and
#                          into the report, with the user/kernel split
#   LOAD_WORKERS [1]       load tester worker threads (all on LOAD_CPU)
#   SOCKETS [64]           load tester sockets_per_worker: requests in flight
#                          (closed loop). With the load tester's default of 16
#                          aquatic_udp's core was at times only half busy (the
#                          loop latency-bound); 64 kept both trackers' cores
#                          busy without socket drops (at 256 opentracker drops).
#   MEM_RUNS [1]           memory-phase runs per tracker (0: no memory phase)
#   MEM_DURATION [DURATION]  seconds of load per memory-phase run
#   MEM_RATE [60000]       requests/s (all kinds) of the memory phase: both
#                          trackers must sustain it on one core
#   TRACKER_CPU [0], LOAD_CPU [1]   cores for taskset
#   TRACKERS ["aquatic opentracker"]  which trackers to run, in this order
#   AQUATIC_REQUEST_WORKERS [1]  aquatic_udp request_workers: 1 = one socket
#                         and one request thread; 0 = the socket worker
#                         answers announces itself (one thread)
#   STATUS_POLL [0]        1: the tracker named "aquatic" serves its status
#                          page and /stats.json (a [metrics] section on a
#                          free port), fetched every second during each run
#                          (curl on LOAD_CPU): with AQUATIC_BEFORE a copy of
#                          the same binary, the cost of a polled page
#   AQUATIC_ACCESS_LIST [off]  "allow": aquatic_udp checks the same whitelist
#                          as opentracker does (parity of work per announce)
#   AQUATIC_IP_FILTER_ENTRIES [0]  N > 0: the tracker named "aquatic" runs
#                          with a deny [ip_filter] of N addresses and /24s
#                          (none matching 127.0.0.1: every datagram looked
#                          up); with AQUATIC_BEFORE a copy of the same binary,
#                          the filter's cost
#   AQUATIC_RATE_LIMIT [0]  1: the tracker named "aquatic" counts a token
#                          bucket for every announce and scrape (a rate no
#                          request reaches): the rate limit's cost
#   SKIP_BUILD [0]         1: use the release binaries already in target/
#   WORK_DIR [mktemp -d]   configs, logs, results.tsv and memory.tsv of this
#                          session
#   OPENTRACKER [target/peers/opentracker/opentracker]  upstream build, made
#                          with shared/peers/opentracker/build.sh when missing
#   OPENTRACKER_DEBIAN [/usr/bin/opentracker]  Debian's package
#   AQUATIC_BEFORE         an earlier aquatic_udp binary, run as tracker
#                          "aquatic-before" (TRACKERS="aquatic-before aquatic
#                          opentracker"): before and after in one sitting
#   AQUATIC, LOAD_TEST [target/release/...]  other binaries (e.g. to try the
#                          script out against a debug build: not a benchmark)
#
# Needs root (opentracker chroots and drops to nobody) and opentracker
# installed (scripts/install-test-deps.sh). Traffic stays on 127.0.0.1; every
# process started here is stopped by its PID, also on error or Ctrl-C.

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

DURATION="${DURATION:-30}"
RUNS="${RUNS:-3}"
MEM_RUNS="${MEM_RUNS:-1}"
MEM_DURATION="${MEM_DURATION:-$DURATION}"
MEM_RATE="${MEM_RATE:-60000}"
TORRENTS="${TORRENTS:-1000000}"
PEERS="${PEERS:-2000000}"
EXPONENT="${EXPONENT:-1.0}"
WEIGHTS="${WEIGHTS:-0 100 1}"
PROFILE="${PROFILE:-1}"
LOAD_WORKERS="${LOAD_WORKERS:-1}"
SOCKETS="${SOCKETS:-64}"
TRACKER_CPU="${TRACKER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
TRACKERS="${TRACKERS:-aquatic opentracker}"
AQUATIC_ACCESS_LIST="${AQUATIC_ACCESS_LIST:-off}"
AQUATIC_REQUEST_WORKERS="${AQUATIC_REQUEST_WORKERS:-1}"
OPENTRACKER="${OPENTRACKER:-$repo_root/target/peers/opentracker/opentracker}"
OPENTRACKER_DEBIAN="${OPENTRACKER_DEBIAN:-/usr/bin/opentracker}"

AQUATIC="${AQUATIC:-$repo_root/target/release/aquatic_udp}"
LOAD_TEST="${LOAD_TEST:-$repo_root/target/release/aquatic_udp_load_test}"
bench=udp

check_uints DURATION RUNS MEM_RUNS MEM_DURATION MEM_RATE TORRENTS PEERS LOAD_WORKERS SOCKETS TRACKER_CPU LOAD_CPU PROFILE
read -r weight_connect weight_announce weight_scrape <<<"$WEIGHTS"
for w in "$weight_connect" "$weight_announce" "$weight_scrape"; do
    [[ "$w" =~ ^[0-9]+$ ]] || die "WEIGHTS must be three whole numbers (connect announce scrape), not '$WEIGHTS'"
done
[[ "$EXPONENT" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "EXPONENT must be a number like 1.0, not '$EXPONENT'"
[[ "$DURATION" -ge 1 && "$RUNS" -ge 1 && "$TORRENTS" -ge 1 && "$LOAD_WORKERS" -ge 1 && "$SOCKETS" -ge 1 ]] ||
    die "DURATION, RUNS, TORRENTS, LOAD_WORKERS and SOCKETS must be at least 1"
check_mem_and_access_list
check_trackers
check_host

make_work_dir

# ------------------------------------------------------------ cleanup

install_cleanup

# ------------------------------------------------------------ helpers

udp_drops() {
    # Sum of the drops column of every /proc/net/udp socket bound to PORT.
    port_rows "$1" /proc/net/udp | awk '{ d += $13 } END { print d + 0 }'
}

# for start_tracker (common.sh)
tracker_ready() { udp_bound "$@"; }
# for run_load_test (common.sh): the profile of the first run
before_load() {
    if [[ "$profile_now" == 1 ]]; then
        profile_start "$profile_name" "$((DURATION > 12 ? 10 : DURATION > 2 ? DURATION - 2 : 1))"
    fi
}
after_load() {
    if [[ "$profile_now" == 1 ]]; then profile_finish "$profile_name"; fi
}
ready_what='bind UDP'

probe() {
    # probe PORT HASH: connect and announce until the tracker answers with a
    # full announce response, for at most 30 s. opentracker answers
    # announces for hashes not (yet) loaded from its whitelist with a bare
    # 8-byte header (but a `stopped` one in full), so a regular announce is
    # sent: this also waits for the whitelist. The probe's peer is then
    # removed again with a `stopped` announce.
    timeout 40 "$PY" - "$1" "$2" <<'EOF'
import os, socket, struct, sys, time
port, info_hash = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
addr = ("127.0.0.1", port)
peer_id = b"-PROBE0-" + os.urandom(12)
end = time.monotonic() + 30
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)

def tid():
    return int.from_bytes(os.urandom(4), "big") & 0x3FFFFFFF

def announce(conn, t, event):
    # connection_id, action 1, transaction_id, info_hash, peer_id,
    # downloaded, left, uploaded, event, ip, key, num_want, port
    return struct.pack(">qii20s20sqqqiIIiH", conn, 1, t, info_hash, peer_id, 0, 0, 0, event, 0, 0, 0, 6881)

last = "nothing"
while time.monotonic() < end:
    try:
        t = tid()
        s.sendto(struct.pack(">qii", 0x41727101980, 0, t), addr)
        data, _ = s.recvfrom(2048)
        if len(data) < 16 or struct.unpack(">ii", data[:8]) != (0, t):
            last = f"connect answer {data[:16].hex()}"
            continue
        conn = struct.unpack(">q", data[8:16])[0]
        t = tid()
        s.sendto(announce(conn, t, 2), addr)  # started
        data, _ = s.recvfrom(2048)
        if len(data) >= 20 and struct.unpack(">ii", data[:8]) == (1, t):
            s.sendto(announce(conn, tid(), 3), addr)  # stopped
            try:
                s.recvfrom(2048)
            except socket.timeout:
                pass
            sys.exit(0)
        last = f"announce answer of {len(data)} bytes"
    except socket.timeout:
        last = "timeout"
    time.sleep(0.05)
sys.exit(f"no full announce answer from 127.0.0.1:{port} for {info_hash.hex()} within 30 s (last: {last})")
EOF
}

# ------------------------------------------------------------ build

build_and_check_binaries aquatic_udp aquatic_udp_load_test

# ------------------------------------------------------------ info hashes

make_info_hashes

# ------------------------------------------------------------ one run

results="$work/results.tsv"
mem_results="$work/memory.tsv"
for f in "$results" "$mem_results"; do
    printf 'tracker\trun\tresponses_per_s\ttracker_cpu_s\twall_s\trss_kib\tdrops\ttimeouts\tinvalid\tload_tester_cpu_s\tannounces\ttracker_user_s\n' >"$f"
done

run_one() {
    # run_one NAME RUN [PHASE]: PHASE "throughput" (the default: closed loop
    # for DURATION s, a row in results.tsv) or "memory" (at most MEM_RATE
    # requests/s for MEM_DURATION s, a row in memory.tsv; files tagged
    # mem-RUN).
    local name="$1" run="$2" phase="${3:-throughput}" port
    local tag="$run" duration="$DURATION" out="$results" what="run $run" cap="" cap_line=""
    if [[ "$phase" == memory ]]; then
        tag="mem-$run" duration="$MEM_DURATION" out="$mem_results" what="memory run $run"
        cap=" at $MEM_RATE requests/s" cap_line="max_requests_per_second = $MEM_RATE"
    fi
    port="$(free_port)"
    log "$what: $name on 127.0.0.1:$port (cpu $TRACKER_CPU), load tester on cpu $LOAD_CPU for ${duration}s$cap"
    start_tracker "$name" "$tag" "$port"

    local lcfg="$work/load-$name-$tag.toml" lout="$work/load-$name-$tag.out"
    load_config "$port" "$LOAD_WORKERS" "$duration" "sockets_per_worker = $SOCKETS" >"$lcfg" <<EOF
$cap_line

[requests]
number_of_torrents = $TORRENTS
number_of_peers = $PEERS
torrent_selection_exponent = $EXPONENT
weight_connect = $weight_connect
weight_announce = $weight_announce
weight_scrape = $weight_scrape
EOF
    local t0 t1 w0 w1 l0 l1 u0 u1
    profile_now=0 profile_name="$name"
    [[ "$PROFILE" == 1 && "$phase" == throughput && "$run" == 1 ]] && profile_now=1
    run_load_test "$name" "$tag" "$lcfg" "$lout" "$duration"

    local rss drops
    rss="$(peak_rss_kib "$tracker_pid")"
    drops="$(udp_drops "$port")"
    stop_pid "$tracker_pid"
    tracker_pid=""

    output_py "$lout" "$name" "$run" "$t0" "$t1" "$CLK_TCK" "$w0" "$w1" "$rss" "$drops" "$l0" "$l1" "$u0" "$u1" >>"$out" <<'EOF'
import re, sys
out, name, run, t0, t1, tck, w0, w1, rss, drops, l0, l1, u0, u1 = sys.argv[1:]
rps = timeouts = invalid = announces = None
for line, j in output_lines(out):
    if j is not None:
        rps = j.get("responses_per_second", rps)
        timeouts = j.get("timeouts", timeouts)
        announces = j.get("announce_responses_total", announces)
    m = re.match(r"totals over .*?(\d+) timeouts, (\d+) invalid", line)
    if m:
        timeouts = timeouts if timeouts is not None else int(m.group(1))
        invalid = int(m.group(2))
    rps, announces = text_figures(line, rps, announces)
if rps is None:
    sys.exit(f"no responses per second in {out}")
cpu, wall = cpu_and_wall(t0, t1, tck, w0, w1)
def opt(v):
    return "" if v is None else v
load_cpu = float(l1) - float(l0)
user = (int(u1) - int(u0)) / int(tck)
print(f"{name}\t{run}\t{rps}\t{cpu:.2f}\t{wall:.2f}\t{rss}\t{drops}\t{opt(timeouts)}\t{opt(invalid)}\t{load_cpu:.2f}\t{opt(announces)}\t{user:.2f}")
EOF
    local row rps
    row="$(tail -n 1 "$out")"
    rps="$(cut -f3 <<<"$row")"
    log "$what: $name: $rps responses/s, $(cut -f4 <<<"$row") tracker CPU s, peak RSS $rss KiB, drops $drops, $(cut -f11 <<<"$row") announce responses"
    warn_mem_rate "$phase" "$name" "$rps"
}

# ------------------------------------------------------------ runs

log "work dir: $work"
alternate "$RUNS" run_one
# Memory at identical load: the same request rate for every tracker.
alternate "$MEM_RUNS" run_one memory

# ------------------------------------------------------------ report

report_info aquatic_udp aquatic_udp aquatic_common aquatic_udp_protocol

"$PY" - "$results" "$mem_results" <<EOF
import statistics, sys

$(report_py_helpers)

def parse_row(r):
    parse_run(r)
    r["drops"] = int(r["drops"])
    r["timeouts"] = int(r["timeouts"] or 0)
    r["invalid"] = int(r["invalid"] or 0)
    user = float(r.get("tracker_user_s") or 0)
    r["kernel_pct"] = 100.0 * (r["cpu"] - user) / r["cpu"] if r["cpu"] > 0 else 0.0
    return r

rows = load(sys.argv[1])
mem_rows = load(sys.argv[2])

names = []
for r in rows:
    if r["tracker"] not in names:
        names.append(r["tracker"])
med = {}
for n in names:
    rs = [r for r in rows if r["tracker"] == n]
    med[n] = {k: statistics.median(r[k] for r in rs) for k in ("rps", "cpu", "busy", "load_busy", "per_cpu", "rss", "drops", "timeouts", "invalid", "kernel_pct")}
    med[n]["rss_max"] = max(r["rss"] for r in rs)

cols = ["tracker", "run", "responses/s", "tracker CPU s", "of it kernel %", "tracker core busy %", "load tester busy %", "responses per CPU-s", "peak RSS MiB", "UDP drops", "timeouts", "invalid answers"]
def row_cells(r, run):
    return [r["tracker"], run, f"{r['rps']:.0f}", f"{r['cpu']:.2f}", f"{r['kernel_pct']:.0f}", f"{r['busy']:.0f}", f"{r['load_busy']:.0f}",
            f"{r['per_cpu']:.0f}", mib(r["rss"]), f"{r['drops']:.0f}", f"{r['timeouts']:.0f}", f"{r['invalid']:.0f}"]
table = [row_cells(r, r["run"]) for r in rows]
for n in names:
    m = dict(med[n], tracker=n)
    table.append(row_cells(m, "median"))

ratios = []
for x, y in (("aquatic", "opentracker"), ("aquatic-before", "opentracker"), ("aquatic", "aquatic-before"),
             ("aquatic", "opentracker-debian")):
    if x in med and y in med:
        a, o = med[x], med[y]
        ratios += [
            (f"{x} / {y}: median responses/s", ratio(a["rps"], o["rps"])),
            (f"{x} / {y}: median responses per tracker CPU-second", ratio(a["per_cpu"], o["per_cpu"])),
            (f"{x} / {y}: median peak RSS", ratio(a["rss"], o["rss"])),
        ]

# plain table
print()
plain(cols, table)
print()
for n in names:
    print(f"{n}: median peak RSS {mib(med[n]['rss'])} MiB (max {mib(med[n]['rss_max'])} MiB)")
for label, v in ratios:
    print(f"{label}: {v}")

bad = [n for n in names if any(r["invalid"] for r in rows if r["tracker"] == n)]
if bad:
    print()
    print("warning: invalid answers from " + ", ".join(bad) + ": for opentracker that means info hashes missing "
          "from its whitelist (see the load tester's output in the work dir); those runs are not comparable.")
notes = [note for note in (busy_note(n, med[n], "SOCKETS") for n in names) if note]
note_bottleneck = " ".join(notes)
for note in notes:
    print()
    print("note: " + note)

# memory at identical load
mem_rate, mem_duration, mem_runs = $MEM_RATE, $MEM_DURATION, $MEM_RUNS
mem_title = f"memory at identical load ({mem_rate} req/s for {mem_duration} s)"
mem_keys = ("announces", "rps", "cpu", "busy", "load_busy", "rss", "drops", "timeouts", "invalid")
mem_cols = ["tracker", "run", "announce responses", "responses/s", "tracker CPU s", "tracker core busy %",
            "load tester busy %", "peak RSS MiB", "UDP drops", "timeouts", "invalid answers"]
def mem_cells(r, run):
    return [r["tracker"], run, f"{r['announces']:.0f}", f"{r['rps']:.0f}", f"{r['cpu']:.2f}", f"{r['busy']:.0f}",
            f"{r['load_busy']:.0f}", mib(r["rss"]), f"{r['drops']:.0f}", f"{r['timeouts']:.0f}", f"{r['invalid']:.0f}"]
mem_table, mem_ratios, mem_warnings = mem_phase(mem_rows, mem_keys, mem_cells, mem_runs, mem_rate)
print_mem_plain(mem_title, mem_cols, mem_table, mem_ratios, mem_warnings)

# markdown
md_start("## UDP: aquatic_udp vs opentracker ($(date -u +%Y-%m-%d))")
print("- Machine: $ncpu cores ($cpu_model), kernel $(uname -r).")
print("- aquatic_udp $aquatic_rev ($aquatic_build, socket_workers = 1, request_workers = $AQUATIC_REQUEST_WORKERS, access list $AQUATIC_ACCESS_LIST, "
      "ip filter entries ${AQUATIC_IP_FILTER_ENTRIES:-0}, rate limit counted ${AQUATIC_RATE_LIMIT:-0}); "
      "opentracker $ot_version, one UDP worker thread; opentracker-debian (if run): Debian's $ot_debian_version, "
      "whitelist of the load tester's $TORRENTS info hashes.")
print("- Tracker pinned to CPU $TRACKER_CPU, aquatic_udp_load_test to CPU $LOAD_CPU ($LOAD_WORKERS worker(s) x $SOCKETS sockets, "
      "$TORRENTS torrents (Zipf exponent $EXPONENT), $PEERS peers, connect/announce/scrape weights $WEIGHTS); "
      "${DURATION} s per run, $RUNS runs each, alternating; every run with a freshly started tracker.")
print("- Command: \`DURATION=$DURATION RUNS=$RUNS MEM_RUNS=$MEM_RUNS MEM_DURATION=$MEM_DURATION MEM_RATE=$MEM_RATE "
      "TORRENTS=$TORRENTS PEERS=$PEERS EXPONENT=$EXPONENT WEIGHTS='$WEIGHTS' LOAD_WORKERS=$LOAD_WORKERS SOCKETS=$SOCKETS "
      "AQUATIC_REQUEST_WORKERS=$AQUATIC_REQUEST_WORKERS AQUATIC_ACCESS_LIST=$AQUATIC_ACCESS_LIST "
      "AQUATIC_IP_FILTER_ENTRIES=${AQUATIC_IP_FILTER_ENTRIES:-0} AQUATIC_RATE_LIMIT=${AQUATIC_RATE_LIMIT:-0} scripts/bench/udp.sh\`")
print()
md_table(cols, table)
md_ratios(ratios, "trackers")
rss_note = (f"Peak RSS is VmHWM after {int($DURATION)} s runs at this load: compare it only between runs of the same "
            "duration and load. Responses per tracker CPU-second = responses over the run / tracker CPU time "
            "(utime + stime) over the run.")
if mem_rows:
    rss_note += (" These runs are closed-loop: a faster tracker gets more announces (more of the peers, or new "
                 "ones), so its peak RSS above is at a higher load; see below for peak RSS at identical load.")
print(rss_note)
if note_bottleneck:
    print()
    print(note_bottleneck)
import os
profiles = [(n, os.path.join("$work", f"perf-{n}.txt")) for n in names]
profiles = [(n, p) for n, p in profiles if os.path.exists(p) and os.path.getsize(p) > 0]
if profiles:
    print()
    print("Where the time goes (\`perf record -e cpu-clock -g\` for up to 10 s of run 1, self time by symbol; "
          "the kernel share of each tracker's CPU time is in the table):")
    for n, p in profiles:
        print()
        print(f"{n}:")
        print()
        print("\`\`\`")
        with open(p) as f:
            for line in list(f)[:15]:
                print(line.rstrip())
        print("\`\`\`")
if mem_rows:
    print()
    print("### " + mem_title[0].upper() + mem_title[1:])
    print()
    print(f"After the runs above, each tracker again ({mem_runs} run(s) each, alternating, freshly started), with the "
          f"load tester capped at {mem_rate} requests/s (max_requests_per_second; all request kinds, same "
          f"{int($LOAD_WORKERS)} worker(s) x {int($SOCKETS)} sockets, torrents and peers) for {mem_duration} s: the "
          "same offered load for both, so each tracker that sustains the rate gets about the same announces from "
          "the same peers. Peak RSS is VmHWM at the end of the run.")
    print()
    print_mem_md(mem_cols, mem_table, mem_ratios, mem_warnings)
EOF
log "done; configs, logs, results.tsv and memory.tsv in $work"
