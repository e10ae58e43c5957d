# shellcheck shell=bash
# Shared helpers of scripts/bench/udp.sh and scripts/bench/http.sh (and, in
# part, scripts/bench/ws.sh, which has its own checks and tracker start);
# sourced by them, not run. The sourcing script sets, before calling these: bench
# (udp or http: message prefix and work dir name), PY, the environment
# variables it documents (TRACKERS, TRACKER_CPU, ...), AQUATIC, LOAD_TEST
# and OPENTRACKER, and defines tracker_ready PORT (true once the tracker
# serves PORT) and ready_what (what tracker_ready waits for, for messages).

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

start_tracker() {
    # start_tracker NAME TAG PORT: start it pinned to TRACKER_CPU; sets
    # tracker_pid; returns once it answers announces (probe PORT HASH, of
    # the sourcing script).
    local name="$1" tag="$2" port="$3" i h
    local tlog="$work/$name-$tag.log"
    case "$name" in
    aquatic | aquatic-before)
        local cfg="$work/$name-$tag.toml" binary="$AQUATIC"
        [[ "$name" == aquatic-before ]] && binary="$AQUATIC_BEFORE"
        cat >"$cfg" <<EOF
log_level = "warn"
socket_workers = 1
request_workers = $AQUATIC_REQUEST_WORKERS

[network]
address = "127.0.0.1:$port"
${AQUATIC_NETWORK:-}

[access_list]
mode = "$AQUATIC_ACCESS_LIST"
path = "$([[ "$AQUATIC_ACCESS_LIST" == allow ]] && echo "$whitelist")"
# The load tester is one source (127.0.0.1) playing many clients: it may
# hold every share (the per-source accounting still runs) and any number of
# peers in a torrent.
[source_budgets]
share_percent = 100
peers_per_torrent = 0
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
    for ((i = 0; i < 200; i++)); do
        kill -0 "$tracker_pid" 2>/dev/null || { cat "$tlog" >&2; die "$name exited at start (log above)"; }
        tracker_ready "$port" && break
        sleep 0.1
    done
    tracker_ready "$port" || { cat "$tlog" >&2; die "$name did not $ready_what 127.0.0.1:$port within 20 s"; }
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
    # each through the script's parse_row), ordered, mib, ratio, plain and
    # md_table (a table as text and as markdown), md_ratios, mem_ratios_of,
    # mem_warnings_of and print_mem_plain (the memory phase).
    cat <<'EOF'
def load(path):
    rows = []
    with open(path) as f:
        header = next(f).rstrip("\n").split("\t")
        for line in f:
            rows.append(parse_row(dict(zip(header, line.rstrip("\n").split("\t")))))
    return rows

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

def md_ratios(ratios, title="aquatic / opentracker"):
    if ratios:
        print(f"| {title} | ratio |")
        print("|---|---:|")
        for label, v in ratios:
            print(f"| {label} | {v} |")
        print()

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
EOF
}
