#!/usr/bin/env bash
# aquatic_udp and opentracker on 1, 2, 4, ... cores: responses/s and
# responses per tracker CPU-second for each core count.
#
# usage: scripts/bench/scaling.sh
#
# For each N in CORES: the tracker gets cores 0..N-1 (taskset) and N socket
# workers (aquatic_udp: socket_workers = N and request_workers = N, or 0
# with N = 1 and AQUATIC_INLINE_AT_ONE=1; opentracker: listen.udp.workers
# N); the load tester gets the next LOAD_CORES_PER_TRACKER_CORE x N cores
# (at least one) with one worker each. CORES entries whose cores the
# machine does not have are skipped with a note. Each tracker runs RUNS
# times for DURATION s per N, alternating, freshly started; the load is
# udp.sh's (announce 100 : scrape 1, TORRENTS torrents, PEERS peers).
#
# Prints a table of medians per (tracker, N) and a markdown copy for
# scripts/bench/RESULTS.md. A machine with 2 cores runs N = 1 only; on a
# larger one run e.g. CORES="1 2 4 8 16".
#
# Environment (defaults in brackets):
#   CORES ["1 2 4 8 16"]   core counts to try
#   RUNS [3], DURATION [20]
#   TORRENTS [1000000], PEERS [2000000]
#   SOCKETS [64]           load tester sockets per worker
#   LOAD_CORES_PER_TRACKER_CORE [1]
#   AQUATIC_INLINE_AT_ONE [1]  N = 1: request_workers = 0 (one thread)
#   TRACKERS ["aquatic opentracker"]
#   SKIP_BUILD [0]
#
# Needs root (opentracker chroots). Traffic stays on 127.0.0.1; every
# process started is stopped by its PID.

# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

CORES="${CORES:-1 2 4 8 16}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-20}"
TORRENTS="${TORRENTS:-1000000}"
PEERS="${PEERS:-2000000}"
SOCKETS="${SOCKETS:-64}"
LOAD_CORES_PER_TRACKER_CORE="${LOAD_CORES_PER_TRACKER_CORE:-1}"
AQUATIC_INLINE_AT_ONE="${AQUATIC_INLINE_AT_ONE:-1}"
TRACKERS="${TRACKERS:-aquatic opentracker}"
OPENTRACKER="${OPENTRACKER:-$repo_root/target/peers/opentracker/opentracker}"
OPENTRACKER_DEBIAN="${OPENTRACKER_DEBIAN:-/usr/bin/opentracker}"
AQUATIC="${AQUATIC:-$repo_root/target/release/aquatic_udp}"
LOAD_TEST="${LOAD_TEST:-$repo_root/target/release/aquatic_udp_load_test}"
bench=scaling
# Unused by this script but expected by common.sh's checks.
TRACKER_CPU=0 LOAD_CPU=0 MEM_DURATION=1 MEM_RATE=1 AQUATIC_ACCESS_LIST=off

check_uints RUNS DURATION TORRENTS PEERS SOCKETS LOAD_CORES_PER_TRACKER_CORE
check_trackers
check_host
make_work_dir
install_cleanup
build_and_check_binaries aquatic_udp aquatic_udp_load_test
ot_root="$work/opentracker"
mkdir -p "$ot_root"
chmod 755 "$ot_root"

results="$work/scaling.tsv"
printf 'tracker\tcores\trun\tresponses_per_s\ttracker_cpu_s\twall_s\n' >"$results"
skipped=()

run_one() {
    # run_one NAME RUN N
    local name="$1" run="$2" n="$3" port tcores lcores lworkers i t0 t1 w0 w1 rc
    port="$(free_port)"
    tcores="0-$((n - 1))"
    lworkers=$((n * LOAD_CORES_PER_TRACKER_CORE))
    lcores="$n-$((n + lworkers - 1))"
    local tlog="$work/$name-$n-$run.log"
    case "$name" in
    aquatic)
        local rw="$n"
        [[ "$n" == 1 && "$AQUATIC_INLINE_AT_ONE" == 1 ]] && rw=0
        cat >"$work/aquatic-$n.toml" <<EOF
log_level = "warn"
socket_workers = $n
request_workers = $rw

[network]
address = "127.0.0.1:$port"

# The load tester is one source (127.0.0.1) playing many clients.
[source_budgets]
share_percent = 100
peers_per_torrent = 0
EOF
        taskset -c "$tcores" "$AQUATIC" -c "$work/aquatic-$n.toml" >"$tlog" 2>&1 &
        ;;
    opentracker)
        printf '%s\n' "listen.udp 127.0.0.1:$port" "listen.udp.workers $n" \
            "tracker.rootdir $ot_root" "tracker.user nobody" >"$work/opentracker-$n.conf"
        taskset -c "$tcores" "$OPENTRACKER" -f "$work/opentracker-$n.conf" >"$tlog" 2>&1 &
        ;;
    *) die "scaling.sh runs aquatic and opentracker only, not $name" ;;
    esac
    tracker_pid=$!
    for ((i = 0; i < 200; i++)); do
        udp_bound "$port" && break
        kill -0 "$tracker_pid" 2>/dev/null || die "$name exited at start ($tlog)"
        sleep 0.1
    done
    sleep 0.5
    load_config "$port" "$lworkers" "$DURATION" "sockets_per_worker = $SOCKETS" >"$work/load-$name-$n-$run.toml" <<EOF

[requests]
number_of_torrents = $TORRENTS
number_of_peers = $PEERS
weight_connect = 0
weight_announce = 100
weight_scrape = 1
EOF
    t0="$(cpu_ticks "$tracker_pid")"
    w0="$(date +%s.%N)"
    timeout --kill-after=10 $((DURATION + 60)) taskset -c "$lcores" "$LOAD_TEST" \
        -c "$work/load-$name-$n-$run.toml" --json >"$work/load-$name-$n-$run.out" 2>&1 &
    load_pid=$!
    if wait "$load_pid"; then rc=0; else rc=$?; fi
    load_pid=""
    w1="$(date +%s.%N)"
    t1="$(cpu_ticks "$tracker_pid")"
    stop_pid "$tracker_pid"
    tracker_pid=""
    [[ $rc -eq 0 ]] || die "load tester failed against $name (see $work/load-$name-$n-$run.out)"
    "$PY" - "$work/load-$name-$n-$run.out" "$name" "$n" "$run" "$t0" "$t1" "$CLK_TCK" "$w0" "$w1" >>"$results" <<'EOF'
import json, sys
out, name, n, run, t0, t1, tck, w0, w1 = sys.argv[1:]
rps = None
for line in open(out, errors="replace"):
    if line.startswith("{"):
        try:
            rps = json.loads(line).get("responses_per_second", rps)
        except ValueError:
            pass
if rps is None:
    sys.exit(f"no responses per second in {out}")
print(f"{name}\t{n}\t{run}\t{rps}\t{(int(t1) - int(t0)) / int(tck):.2f}\t{float(w1) - float(w0):.2f}")
EOF
    log "N=$n run $run: $name: $(tail -n 1 "$results" | cut -f4) responses/s, $(tail -n 1 "$results" | cut -f5) tracker CPU s"
}

log "work dir: $work"
for n in $CORES; do
    need=$((n + n * LOAD_CORES_PER_TRACKER_CORE))
    if [[ "$need" -gt "$ncpu" ]]; then
        skipped+=("$n")
        continue
    fi
    alternate "$RUNS" run_one "$n"
done

"$PY" - "$results" "${skipped[*]:-}" <<EOF
import statistics, sys
names = ["tracker", "cores", "run", "rps", "cpu", "wall"]
rows = [dict(zip(names, line.rstrip("\n").split("\t"))) for line in list(open(sys.argv[1]))[1:]]
skipped = sys.argv[2].split()
groups = {}
for r in rows:
    rps, cpu, wall = float(r["rps"]), float(r["cpu"]), float(r["wall"])
    groups.setdefault((r["tracker"], int(r["cores"])), []).append((rps, rps * wall / cpu if cpu else 0.0, 100 * cpu / wall))
print()
print("| tracker | cores (N) | runs | median responses/s | median responses per tracker CPU-s | median tracker CPU % |")
print("|---|---:|---:|---:|---:|---:|")
for (t, n), v in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"| {t} | {n} | {len(v)} | {statistics.median(x[0] for x in v):.0f} | {statistics.median(x[1] for x in v):.0f} | "
          f"{statistics.median(x[2] for x in v):.0f} |")
print()
for n in sorted({n for _, n in groups}):
    a, o = groups.get(("aquatic", n)), groups.get(("opentracker", n))
    if a and o:
        print(f"N={n}: aquatic/opentracker responses per tracker CPU-second "
              f"{statistics.median(x[1] for x in a) / statistics.median(x[1] for x in o):.2f}")
if skipped:
    print()
    print(f"Not run here ({int('$ncpu')} cores; N needs N tracker cores and N x $LOAD_CORES_PER_TRACKER_CORE load cores): N = {', '.join(skipped)}")
print()
print("Command: \`CORES='$CORES' RUNS=$RUNS DURATION=$DURATION TORRENTS=$TORRENTS PEERS=$PEERS SOCKETS=$SOCKETS "
      "LOAD_CORES_PER_TRACKER_CORE=$LOAD_CORES_PER_TRACKER_CORE scripts/bench/scaling.sh\`")
EOF
log "done; configs, logs and scaling.tsv in $work"
