# shellcheck shell=bash
# Shared helpers of scripts/bench/udp.sh and scripts/bench/http.sh (and, in
# part, scripts/bench/ws.sh and scripts/bench/scaling.sh); sourced by them
# first thing, not run. Sets strict mode, repo_root (and changes to it),
# SKIP_BUILD and PY. The sourcing script then sets, before calling these:
# bench (udp or http: message prefix and work dir name), the environment
# variables it documents (TRACKERS, TRACKER_CPU, ...), AQUATIC, LOAD_TEST
# and OPENTRACKER, and defines tracker_ready PORT (true once the tracker
# serves PORT) and ready_what (what tracker_ready waits for, for messages).

set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
SKIP_BUILD="${SKIP_BUILD:-0}"
PY=/usr/bin/python3

die() {
    echo "bench/$bench: $*" >&2
    exit 1
}

# ------------------------------------------------------------ checks

check_uints() {
    # check_uints VAR...: each a non-negative integer.
    local var
    for var in "$@"; do
        [[ "${!var}" =~ ^[0-9]+$ ]] || die "$var must be a non-negative integer, not '${!var}'"
    done
}

check_mem_and_access_list() {
    [[ "$MEM_DURATION" -ge 1 && "$MEM_RATE" -ge 1 && "$MEM_RATE" -le 1000000000 ]] ||
        die "MEM_DURATION must be at least 1, MEM_RATE between 1 and 1000000000"
    [[ "$AQUATIC_ACCESS_LIST" == off || "$AQUATIC_ACCESS_LIST" == allow ]] || die "AQUATIC_ACCESS_LIST must be off or allow"
}

check_trackers() {
    local t
    for t in $TRACKERS; do
        [[ "$t" == aquatic || "$t" == aquatic-before || "$t" == opentracker || "$t" == opentracker-debian ]] ||
            die "unknown tracker '$t' in TRACKERS (aquatic, aquatic-before, opentracker, opentracker-debian)"
        if [[ "$t" == aquatic-before ]]; then
            [[ -x "${AQUATIC_BEFORE:-}" ]] || die "aquatic-before needs AQUATIC_BEFORE, the binary of an earlier build"
        fi
    done
}

check_host() {
    # Root, taskset, python; sets ncpu and CLK_TCK.
    [[ $(id -u) -eq 0 ]] || die "run as root (opentracker chroots and drops privileges)"
    command -v taskset >/dev/null || die "taskset not found (util-linux)"
    [[ -x "$PY" ]] || die "$PY not found"
    ncpu="$(nproc)"
    [[ "$TRACKER_CPU" -lt "$ncpu" && "$LOAD_CPU" -lt "$ncpu" ]] || die "TRACKER_CPU/LOAD_CPU must be below $ncpu (cores here)"
    CLK_TCK="$(getconf CLK_TCK)"
}

make_work_dir() {
    # Sets work: WORK_DIR, or a new temporary directory.
    if [[ -n "${WORK_DIR:-}" ]]; then
        work="$WORK_DIR"
        mkdir -p "$work"
    else
        work="$(mktemp -d "/tmp/aquatic-bench-$bench.XXXXXX")"
    fi
    chmod 755 "$work"
}

# ------------------------------------------------------------ cleanup

# shellcheck source=SCRIPTDIR/../lib/processes.sh
. "$repo_root/scripts/lib/processes.sh"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_pid "$load_pid"
    stop_pid "${perf_pid:-}"
    stop_pid "${hitch_pid:-}"
    stop_pid "$tracker_pid"
    if [[ $status -ne 0 ]]; then
        echo "bench/$bench: failed (exit $status); logs in $work" >&2
    fi
    exit "$status"
}

install_cleanup() {
    # Stop the tracker and the load tester (by PID) on exit, error or signal.
    tracker_pid=""
    load_pid=""
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# ------------------------------------------------------------ helpers

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

free_port() {
    # A port free on 127.0.0.1 for UDP and TCP (opentracker binds both):
    # the real-client tests' free_port.
    "$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import common; print(common.free_port())' \
        "$repo_root/scripts/real_clients"
}

cpu_ticks() {
    # utime + stime of PID, in clock ticks (fields 14 and 15 of
    # /proc/PID/stat, counted after the ")" that ends the command name).
    local stat
    stat="$(<"/proc/$1/stat")"
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    # after "pid (comm) ": $1 = state (field 3), so field N is $((N - 2))
    echo $((${12} + ${13}))
}

tracker_ticks() {
    # CPU ticks of the tracker and of its helper processes (helper_pids:
    # a TLS terminator in front of it, say).
    local pid sum
    sum="$(cpu_ticks "$tracker_pid")"
    for pid in ${helper_pids:-}; do
        sum=$((sum + $(cpu_ticks "$pid")))
    done
    echo "$sum"
}

user_ticks() {
    # utime of PID alone, in clock ticks (field 14 of /proc/PID/stat).
    local stat
    stat="$(<"/proc/$1/stat")"
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    echo "${12}"
}

peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

port_rows() {
    # port_rows PORT FILE: the rows of FILE (/proc/net/udp or /proc/net/tcp)
    # of the sockets whose local port is PORT.
    local hexport
    hexport="$(printf '%04X' "$1")"
    awk -v p=":$hexport" 'NR > 1 && substr($2, length($2) - 4) == p' "$2"
}

udp_bound() {
    # True once a UDP socket is bound to PORT.
    port_rows "$1" /proc/net/udp | awk 'END { exit !NR }'
}

tcp_listening() {
    # True once a TCP socket listens on PORT.
    port_rows "$1" /proc/net/tcp | awk '$4 == "0A" { found = 1 } END { exit !found }'
}

wait_serving() {
    # wait_serving NAME PID LOG WHAT READY PORT [TRIES]: poll READY PORT
    # every 0.1 s, at most TRIES (200) times, until it succeeds; if PID
    # exits first or READY never succeeds, die with LOG on stderr ("NAME did
    # not WHAT 127.0.0.1:PORT within ... s").
    local name="$1" pid="$2" log="$3" what="$4" ready="$5" port="$6" tries="${7:-200}" i
    for ((i = 0; i < tries; i++)); do
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$name exited at start (log above)"; }
        "$ready" "$port" && break
        sleep 0.1
    done
    "$ready" "$port" || { cat "$log" >&2; die "$name did not $what 127.0.0.1:$port within $((tries / 10)) s"; }
}

children_cpu_s() {
    # Sets children_cpu to the CPU seconds (user + system) of this shell's
    # waited-for children so far; the difference around the load test is
    # the load tester's. Call it directly, not in $(...): the `times`
    # builtin must run in this shell, not in a subshell.
    times >"$work/.times"
    children_cpu="$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] } }
         END { printf "%.3f\n", t }' "$work/.times")"
}

# ------------------------------------------------------------ build

build_and_check_binaries() {
    # build_and_check_binaries PACKAGE...: cargo build --release them
    # (unless SKIP_BUILD=1), then check the binaries to be run exist.
    local bin pkg names="" args=()
    for pkg in "$@"; do
        names+="${names:+, }$pkg"
        args+=(-p "$pkg")
    done
    if [[ "$SKIP_BUILD" != 1 ]]; then
        log "building release: $names"
        timeout 3600 cargo build --release "${args[@]}"
    fi
    for bin in "$LOAD_TEST" $([[ " $TRACKERS " == *" aquatic "* ]] && echo "$AQUATIC"); do
        [[ -x "$bin" ]] || die "$bin missing (build it, or unset SKIP_BUILD)"
    done
    if [[ " $TRACKERS " == *" opentracker "* && ! -x "$OPENTRACKER" ]]; then
        # Upstream opentracker, built with its own Makefile defaults: the
        # build published tracker benchmarks use (shared/peers).
        local build_sh="$repo_root/../shared/peers/opentracker/build.sh"
        [[ -f "$build_sh" ]] || die "$OPENTRACKER missing and no $build_sh to build it"
        log "building upstream opentracker into $(dirname "$OPENTRACKER")"
        bash "$build_sh" "$(dirname "$OPENTRACKER")" >/dev/null
        [[ -x "$OPENTRACKER" ]] || die "$build_sh did not produce $OPENTRACKER"
    fi
    if [[ " $TRACKERS " == *" opentracker-debian "* ]]; then
        [[ -x "$OPENTRACKER_DEBIAN" ]] || die "$OPENTRACKER_DEBIAN missing: run scripts/install-test-deps.sh"
    fi
}

# ------------------------------------------------------------ info hashes

make_info_hashes() {
    # Has the load tester write its TORRENTS info hashes to opentracker's
    # whitelist; sets ot_root, whitelist, probe_first and probe_last.
    # Probed before each run: opentracker reads its whitelist in a thread of
    # its own after it starts serving, and answers announces for hashes it
    # does not (yet) know with a bare 8-byte header (UDP) or a failure
    # reason (HTTP); a full answer for the first and the last hash of the
    # file shows the list is in.
    local lines h
    ot_root="$work/opentracker"
    mkdir -p "$ot_root"
    chmod 755 "$ot_root"
    whitelist="$ot_root/whitelist"
    cat >"$work/hashes.toml" <<EOF
[requests]
number_of_torrents = $TORRENTS
info_hash_file = "$whitelist"
EOF
    log "writing $TORRENTS info hashes to $whitelist"
    timeout 300 "$LOAD_TEST" -c "$work/hashes.toml" >"$work/hashes.log"
    chmod 644 "$whitelist"
    lines="$(wc -l <"$whitelist")"
    [[ "$lines" -eq "$TORRENTS" ]] || die "info hash file has $lines lines, expected $TORRENTS"
    probe_first="$(head -n 1 "$whitelist")"
    probe_last="$(tail -n 1 "$whitelist")"
    for h in "$probe_first" "$probe_last"; do
        [[ "$h" =~ ^[0-9a-f]{40}$ ]] || die "unexpected info hash line '$h' in $whitelist"
    done
}

# ------------------------------------------------------------ one run

aquatic_config() {
    # aquatic_config PORT: on stdout, the config of an aquatic tracker with
    # one socket worker and AQUATIC_REQUEST_WORKERS request workers on
    # 127.0.0.1:PORT, then stdin (the script's further [network] lines and
    # sections), then source budgets that let the load tester play many
    # clients.
    cat <<EOF
log_level = "warn"
socket_workers = 1
request_workers = $AQUATIC_REQUEST_WORKERS

[network]
address = "127.0.0.1:$1"
EOF
    cat
    cat <<'EOF'
# The load tester is one source (127.0.0.1) playing many clients: it may
# hold every share (the per-source accounting still runs) and any number of
# peers in a torrent.
[source_budgets]
share_percent = 100
peers_per_torrent = 0
EOF
}

load_config() {
    # load_config PORT WORKERS DURATION [LINE...]: on stdout, the load
    # tester's config against the tracker on 127.0.0.1:PORT: WORKERS
    # workers, the LINEs (the script's connection settings), DURATION s
    # without periodic summaries, then stdin (the script's rate cap, if it
    # has one, and its [requests] section).
    local port="$1" workers="$2" duration="$3"
    shift 3
    printf '%s\n' "server_address = \"127.0.0.1:$port\"" "workers = $workers" "$@" \
        "duration = $duration" "summarize_every = 0"
    cat
}

start_tracker() {
    # start_tracker NAME TAG PORT: start it pinned to TRACKER_CPU; sets
    # tracker_pid; returns once it answers announces (probe PORT HASH, of
    # the sourcing script).
    local name="$1" tag="$2" port="$3" h
    local tlog="$work/$name-$tag.log"
    case "$name" in
    aquatic | aquatic-before)
        local cfg="$work/$name-$tag.toml" binary="$AQUATIC"
        [[ "$name" == aquatic-before ]] && binary="$AQUATIC_BEFORE"
        aquatic_config "$port" >"$cfg" <<EOF
${AQUATIC_NETWORK:-}

[access_list]
mode = "$AQUATIC_ACCESS_LIST"
path = "$([[ "$AQUATIC_ACCESS_LIST" == allow ]] && echo "$whitelist")"
EOF
        if [[ "$name" == aquatic && "${AQUATIC_IP_FILTER_ENTRIES:-0}" -gt 0 ]]; then
            # A deny list of that many addresses and ranges, none matching
            # the load tester's 127.0.0.1: every datagram is looked up.
            "$PY" -c '
import random, sys
r = random.Random(7)
for i in range(int(sys.argv[1])):
    a = r.randrange(0x01000000, 0x7f000000)
    print("%d.%d.%d.%d%s" % (a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255, "/24" if i % 2 else ""))
' "$AQUATIC_IP_FILTER_ENTRIES" >"$work/ip-filter.txt"
            printf '[ip_filter]\nmode = "deny"\npath = "%s"\n' "$work/ip-filter.txt" >>"$cfg"
        fi
        if [[ "$name" == aquatic && "${AQUATIC_RATE_LIMIT:-0}" == 1 ]]; then
            # Buckets counted for every announce and scrape, none refused.
            printf '[rate_limit]\nenabled = true\nper_second = 1e9\nburst = 16777216\n' >>"$cfg"
        fi
        if [[ "$name" == aquatic && "${STATUS_POLL:-0}" == 1 ]]; then
            status_port="$(free_port)"
            printf '[metrics]\nenabled = true\naddress = "127.0.0.1:%s"\n' "$status_port" >>"$cfg"
        fi
        taskset -c "$TRACKER_CPU" "$binary" -c "$cfg" >"$tlog" 2>&1 &
        tracker_pid=$!
        ;;
    opentracker)
        # Upstream build: no access list (every info hash served), one UDP
        # worker thread (BENCHMARKING.md); chroots into ot_root and runs as
        # nobody; UDP and HTTP (TCP) on the same port.
        local ocfg="$work/opentracker-$tag.conf"
        printf '%s\n' "listen.tcp 127.0.0.1:$port" "listen.udp 127.0.0.1:$port" \
            "listen.udp.workers 1" "tracker.rootdir $ot_root" "tracker.user nobody" >"$ocfg"
        taskset -c "$TRACKER_CPU" "$OPENTRACKER" -f "$ocfg" >"$tlog" 2>&1 &
        tracker_pid=$!
        ;;
    opentracker-debian)
        # Debian's package is built whitelist-only: it chroots into
        # ot_root, reads the whitelist there, runs as nobody; serves UDP
        # and HTTP (TCP) on the same port.
        taskset -c "$TRACKER_CPU" "$OPENTRACKER_DEBIAN" -i 127.0.0.1 -p "$port" -P "$port" \
            -d "$ot_root" -u nobody -w whitelist >"$tlog" 2>&1 &
        tracker_pid=$!
        ;;
    esac
    wait_serving "$name" "$tracker_pid" "$tlog" "$ready_what" tracker_ready "$port"
    for h in "$probe_first" "$probe_last"; do
        probe "$port" "$h" || { cat "$tlog" >&2; die "$name on port $port does not answer announces for $h"; }
    done
    kill -0 "$tracker_pid" 2>/dev/null || die "$name exited"
}

run_load_test() {
    # run_load_test NAME TAG LCFG LOUT DURATION: run the load tester with
    # LCFG (output to LOUT) pinned to LOAD_CPU against the running tracker.
    # Sets, in the caller's locals if it has them: t0, t1 (tracker CPU
    # ticks), w0, w1 (wall clock), l0, l1 (CPU seconds of waited-for
    # children), u0, u1 (tracker user-mode CPU ticks) before and after.
    # Calls before_load and after_load (right after l1) if the sourcing
    # script defines them.
    local name="$1" tag="$2" lcfg="$3" lout="$4" duration="$5" rc
    if declare -F before_load >/dev/null; then before_load; fi
    t0="$(tracker_ticks)"
    u0="$(user_ticks "$tracker_pid")"
    children_cpu_s
    l0="$children_cpu"
    w0="$(date +%s.%N)"
    local poll_pid=""
    if [[ "$name" == aquatic && "${STATUS_POLL:-0}" == 1 ]]; then
        # /stats.json every second, as an operator's dashboard might.
        timeout $((duration + 60)) taskset -c "$LOAD_CPU" bash -c \
            "while :; do curl -s -o /dev/null http://127.0.0.1:$status_port/stats.json; sleep 1; done" &
        poll_pid=$!
    fi
    timeout --kill-after=10 $((duration + 60)) taskset -c "$LOAD_CPU" "$LOAD_TEST" -c "$lcfg" --json >"$lout" 2>&1 &
    load_pid=$!
    if wait "$load_pid"; then rc=0; else rc=$?; fi
    load_pid=""
    if [[ -n "$poll_pid" ]]; then
        kill "$poll_pid" 2>/dev/null || true
        wait "$poll_pid" 2>/dev/null || true
    fi
    w1="$(date +%s.%N)"
    children_cpu_s
    l1="$children_cpu"
    if declare -F after_load >/dev/null; then after_load; fi
    kill -0 "$tracker_pid" 2>/dev/null || { cat "$work/$name-$tag.log" >&2; die "$name died during the load test"; }
    t1="$(tracker_ticks)"
    u1="$(user_ticks "$tracker_pid")"
    if [[ $rc -ne 0 ]]; then
        cat "$lout" >&2
        die "load tester exited with status $rc against $name (output above)"
    fi
}

warn_mem_rate() {
    # warn_mem_rate PHASE NAME RPS: warn about a memory run below 95 % of
    # MEM_RATE.
    if [[ "$1" == memory ]] && awk -v r="$3" -v m="$MEM_RATE" 'BEGIN { exit !(r < 0.95 * m) }'; then
        log "warning: $2 got $3 responses/s, below 95 % of MEM_RATE ($MEM_RATE): it could not sustain the rate (or the load tester could not), so this memory run is not at the same load"
    fi
}

alternate() {
    # alternate COUNT COMMAND [ARG...]: COMMAND TRACKER RUN [ARG...] for RUN
    # 1 to COUNT, the TRACKERS in turn within each run.
    local count="$1" run name
    shift
    for ((run = 1; run <= count; run++)); do
        for name in $TRACKERS; do
            "$1" "$name" "$run" "${@:2}"
        done
    done
}

output_py_helpers() {
    # Python for the per-run heredocs (run by output_py): output_lines(path)
    # (each stripped line of a load tester's output, with its JSON object or
    # None; lines that start like JSON but do not parse are left out),
    # text_figures (responses/s and announce responses from a text summary
    # line, where the JSON gave none yet) and cpu_and_wall (tracker CPU and
    # wall seconds of the run, from tick and clock readings).
    cat <<'EOF'
import json, re

def output_lines(path):
    for line in open(path, errors="replace"):
        line = line.strip()
        j = None
        if line.startswith("{"):
            try:
                j = json.loads(line)
            except ValueError:
                continue
        yield line, j

def text_figures(line, rps, announces):
    m = re.match(r"responses per second: ([0-9.]+)", line)
    if m and rps is None:
        rps = float(m.group(1))
    m = re.match(r"announce responses total: (\d+)", line)
    if m and announces is None:
        announces = int(m.group(1))
    return rps, announces

def cpu_and_wall(t0, t1, tck, w0, w1):
    return (int(t1) - int(t0)) / int(tck), float(w1) - float(w0)
EOF
}

output_py() {
    # output_py ARG...: run the Python program on stdin with ARGs, after
    # output_py_helpers.
    "$PY" -c "$(output_py_helpers)"$'\n'"$(cat)" "$@"
}

# ------------------------------------------------------------ profiles

profile_start() {
    # profile_start NAME SECONDS: perf record (cpu-clock, call graphs) the
    # running tracker for SECONDS in the background; sets perf_pid.
    command -v perf >/dev/null || { log "no perf: no profile (apt-get install linux-perf)"; perf_pid=""; return 0; }
    perf record -q -e cpu-clock -g -p "$tracker_pid" -o "$work/perf-$1.data" -- sleep "$2" \
        >"$work/perf-$1.log" 2>&1 &
    perf_pid=$!
}

profile_finish() {
    # profile_finish NAME: wait for the recording, then write the top
    # symbols (self time, user and kernel) to perf-NAME.txt.
    [[ -n "${perf_pid:-}" ]] || return 0
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=""
    perf report -q -i "$work/perf-$1.data" --no-children --sort sym --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 25 >"$work/perf-$1.txt" || true
}

# ------------------------------------------------------------ report

report_info() {
    # report_info BINARY CRATE...: sets aquatic_rev (+uncommitted if the
    # CRATEs have changes), ot_version, aquatic_build (release, unless
    # AQUATIC is not target/release/BINARY) and cpu_model.
    local binary="$1"
    shift
    aquatic_rev="$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n "$(git -C "$repo_root" status --porcelain -- "$@" 2>/dev/null)" ]]; then
        aquatic_rev="$aquatic_rev+uncommitted"
    fi
    ot_version="upstream 110868e built by shared/peers/opentracker/build.sh (no access list)"
    ot_debian_version="$(dpkg-query -W -f='${Version}' opentracker 2>/dev/null || echo unknown)"
    aquatic_build="release"
    [[ "$AQUATIC" == "$repo_root/target/release/$binary" ]] || aquatic_build="binary $AQUATIC"
    cpu_model="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
}

report_py_helpers() {
    # Python for the report heredocs of the sourcing scripts (include with
    # $(report_py_helpers)): load(path) (rows of results.tsv or memory.tsv,
    # each through the script's parse_row), parse_run (the figures udp.sh's
    # and http.sh's rows share), ordered, mib, ratio, plain and md_table (a
    # table as text and as markdown), md_start (the markdown's first lines),
    # md_ratios, busy_note (why a tracker core was not busy), mem_phase,
    # mem_ratios_of, mem_warnings_of, print_mem_plain (nothing without memory
    # runs) and print_mem_md (the memory phase).
    cat <<'EOF'
def load(path):
    rows = []
    with open(path) as f:
        header = next(f).rstrip("\n").split("\t")
        for line in f:
            rows.append(parse_row(dict(zip(header, line.rstrip("\n").split("\t")))))
    return rows

def parse_run(r):
    # responses/s, tracker CPU and wall seconds, peak RSS, busy percentages,
    # responses per tracker CPU-second and announce responses of row r
    r["rps"] = float(r["responses_per_s"])
    r["cpu"] = float(r["tracker_cpu_s"])
    r["wall"] = float(r["wall_s"])
    r["rss"] = int(r["rss_kib"])
    r["busy"] = 100.0 * r["cpu"] / r["wall"] if r["wall"] > 0 else 0.0
    r["load_busy"] = 100.0 * float(r["load_tester_cpu_s"]) / r["wall"] if r["wall"] > 0 else 0.0
    # responses over the whole load test / tracker CPU seconds
    r["per_cpu"] = r["rps"] * r["wall"] / r["cpu"] if r["cpu"] > 0 else float("nan")
    r["announces"] = int(r.get("announces") or 0)

def ordered(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out

def mib(kib):
    return f"{kib / 1024:.1f}"

def ratio(x, y):
    return f"{x / y:.2f}" if y else "n/a"

def plain(cols, table):
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *table)]
    print("  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
    for t in table:
        print("  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(t, widths))))

def md_table(cols, table):
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(cols))) + "|")
    for t in table:
        cells = [f"**{c}**" if t[1] == "median" else str(c) for c in t]
        print("| " + " | ".join(cells) + " |")
    print()

def md_start(title):
    print()
    print("----- markdown for scripts/bench/RESULTS.md -----")
    print()
    print(title)
    print()

def md_ratios(ratios, title="aquatic / opentracker"):
    if ratios:
        print(f"| {title} | ratio |")
        print("|---|---:|")
        for label, v in ratios:
            print(f"| {label} | {v} |")
        print()

def busy_note(label, v, knob):
    # None if the tracker core was at least 90 % busy (v: medians), else
    # whether the load tester or the closed loop's latency (raise knob) held
    # the tracker back
    if v["busy"] >= 90:
        return None
    who = f"{label}: tracker core {v['busy']:.0f} % busy, load tester {v['load_busy']:.0f} %: "
    if v["load_busy"] >= 90:
        return who + ("the load tester was the limit, so responses/s understates this tracker; compare responses "
                      "per tracker CPU-second.")
    return who + (f"neither saturated, so the closed loop was latency-bound (raise {knob}); responses/s "
                  "understates this tracker, compare responses per tracker CPU-second.")

def mem_phase(mem_rows, mem_keys, mem_cells, mem_runs, mem_rate):
    # the memory phase's table (its rows, then with several runs each
    # tracker's medians of mem_keys), ratios and warnings
    mem_names = ordered(r["tracker"] for r in mem_rows)
    mem_med = {n: {k: statistics.median(r[k] for r in mem_rows if r["tracker"] == n) for k in mem_keys}
               for n in mem_names}
    mem_table = [mem_cells(r, r["run"]) for r in mem_rows]
    if mem_runs > 1:
        for n in mem_names:
            mem_table.append(mem_cells(dict(mem_med[n], tracker=n), "median"))
    return mem_table, mem_ratios_of(mem_med, mem_runs), mem_warnings_of(mem_rows, mem_rate)

def mem_ratios_of(mem_med, mem_runs):
    if "aquatic" in mem_med and "opentracker" in mem_med:
        a, o = mem_med["aquatic"], mem_med["opentracker"]
        median = "median " if mem_runs > 1 else ""
        return [
            (f"{median}peak RSS at identical load", ratio(a["rss"], o["rss"])),
            (f"{median}tracker CPU seconds at identical load", ratio(a["cpu"], o["cpu"])),
            (f"{median}announce responses (1.00: the same load)", ratio(a["announces"], o["announces"])),
        ]
    return []

def mem_warnings_of(mem_rows, mem_rate):
    return [
        f"{r['tracker']} memory run {r['run']}: {r['rps']:.0f} responses/s, below 95 % of {mem_rate}: the tracker could "
        "not sustain the rate (or the load tester could not: see its busy %), so this run was not at the same load "
        "and its peak RSS is not comparable."
        for r in mem_rows if r["rps"] < 0.95 * mem_rate
    ]

def print_mem_plain(mem_title, mem_cols, mem_table, mem_ratios, mem_warnings):
    if not mem_table:  # no memory runs
        return
    print()
    print(mem_title)
    print()
    plain(mem_cols, mem_table)
    print()
    for label, v in mem_ratios:
        print(f"aquatic/opentracker, {label}: {v}")
    for w in mem_warnings:
        print()
        print("warning: " + w)

def md_warnings(warnings):
    for w in warnings:
        print("**Warning:** " + w)
        print()

def print_mem_md(mem_cols, mem_table, mem_ratios, mem_warnings):
    md_table(mem_cols, mem_table)
    md_ratios(mem_ratios)
    md_warnings(mem_warnings)
EOF
}
